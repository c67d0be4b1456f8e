"""``/dev/rpmsgN``: one kernel rpmsg endpoint as a descriptor (:class:`Chardev`).

The kernel gives exactly one message per ``read()`` and sends one message per ``write()``
(``shared/spec/linux-chardev.md`` §5.3). The descriptor is kept non-blocking; waits use
``poll()`` on it together with a private wake-up pipe, so :meth:`Chardev.close` from another
thread ends a blocked read or write at once. The same code runs over any pair of
message-preserving byte streams (:meth:`Chardev.from_streams`) for tests.

This is the transport's view of a device, used by the ``linux:`` link
(:mod:`rpmsg.linux.link`); applications use :class:`rpmsg.linux.Endpoint` or
``rpmsg.open("linux:...")``. Every system call counts on the hot path (on User-Mode Linux
one costs more than the Python around it): a read waits with one ``poll`` then reads once, a
write is one ``write``, no lock is taken, and the clock is read only when a wait has to be
resumed (:mod:`rpmsg.linux.fastpoll`).
"""

from __future__ import annotations

import errno
import fcntl
import math
import os
import re
import select
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

from rpmsg.errors import (
    EndpointClosedError,
    NoBufferError,
    NotAvailableError,
    RemoteDisconnectedError,
    RpmsgTimeoutError,
)
from rpmsg.linux.errors import TruncatedMessageError, map_os_error
from rpmsg.linux.fastpoll import Poller
from rpmsg.linux.ioctl import (
    RPMSG_DESTROY_EPT_IOCTL,
    RPMSG_GET_OUTGOING_FLOWCONTROL,
    RPMSG_SET_INCOMING_FLOWCONTROL,
)
from rpmsg.linux.nodes import INDEX
from rpmsg.linux.sysfs import EndpointDevice, Sysfs, default_sysfs
from rpmsg.transport import MAX_WAIT_SLICE
from rpmsg.wire.layout import Buffer

_NODE_RE = re.compile(rf"(?:.*/)?rpmsg({INDEX})")
_INDEX_RE = re.compile(INDEX)
_ERR = select.POLLERR | select.POLLHUP
_POLLIN = select.POLLIN
#: Longest pause between two write attempts while the kernel has no TX buffer: virtio before
#: the late-2025 EPOLLOUT patch never reports POLLOUT, so waiting for a buffer is a retry loop.
_MAX_RETRY_DELAY = 0.02
#: Longest single wait handed to poll() (its timeout is a C int of milliseconds); longer
#: timeouts are waited in slices (rpmsg.transport.MAX_WAIT_SLICE, a day).
_SLICE = MAX_WAIT_SLICE
_SLICE_MS = math.ceil(_SLICE * 1000)
#: Seconds close() waits for a reader or writer to leave (they wake at once; another thread
#: still in close() is the one case that takes a moment).
_CLOSE_WAIT = 5.0
IoctlFn = Callable[..., Any]


class HasFileno(Protocol):
    def fileno(self) -> int: ...


def endpoint_node(n: int | str | os.PathLike[str], sysfs: Sysfs) -> tuple[str, int | None]:
    """Resolve ``N``, ``"N"``, ``"rpmsgN"`` or a path to (device node path, index or None)."""
    if isinstance(n, bool) or not isinstance(n, (int, str, os.PathLike)):
        raise NotAvailableError(f"{n!r} does not name an endpoint device")
    if isinstance(n, int):
        if n < 0:
            raise NotAvailableError(f"endpoint device index {n} is negative")
        return sysfs.endpoint_node(n), n
    text = os.fspath(n)
    if _INDEX_RE.fullmatch(text):
        return sysfs.endpoint_node(int(text)), int(text)
    match = _NODE_RE.fullmatch(text)
    if "/" in text:
        return text, int(match.group(1)) if match else None
    if match:
        return sysfs.endpoint_node(int(match.group(1))), int(match.group(1))
    raise NotAvailableError(
        f"{text!r} does not name an endpoint device (expected N, rpmsgN or /dev/rpmsgN)")


def open_fd(n: int | str | os.PathLike[str], *, nonblocking: bool = False,
            sysfs: Sysfs | None = None) -> int:
    """Open endpoint device ``n`` and return the raw descriptor (close it yourself).

    The node is checked first (:func:`rpmsg.linux.nodes.open_node`); one that sysfs lists
    but udev has not made yet is waited for briefly (:meth:`~rpmsg.linux.sysfs.Sysfs.wait_node`).
    Raises :class:`~rpmsg.errors.AlreadyOpenError` naming the holder if another process has
    it open, :class:`~rpmsg.errors.AccessDeniedError` naming the fix, NotAvailableError if it
    does not exist.
    """
    sysfs = sysfs or default_sysfs()
    path, _index = endpoint_node(n, sysfs)
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_NONBLOCK if nonblocking else 0)
    return sysfs.open_node(path, flags, "no such endpoint device (see `rpmsg list`)")


def _fileno(stream: int | HasFileno) -> int:
    return stream if isinstance(stream, int) else stream.fileno()


class _Eof:
    """Marker: the byte stream behind :meth:`Chardev.from_streams` ended."""


EOF = _Eof()


class Chardev:
    """An open kernel endpoint device (``/dev/rpmsgN``) or a stand-in over byte streams.

    Reads and writes whole messages. Use one reading and one writing thread at a time (the
    ``linux:`` link serialises its callers).
    """

    def __init__(self, rfd: int, wfd: int, *, path: str, index: int | None = None,
                 device: bool = True, owns_fds: bool = True, sysfs: Sysfs | None = None,
                 ioctl: IoctlFn = fcntl.ioctl) -> None:
        """Wrap open descriptors (made non-blocking; unless owned, their flags are restored
        and they stay open at :meth:`close`)."""
        restore: dict[int, int] = {}
        for fd in {rfd, wfd}:
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            if not flags & os.O_NONBLOCK:
                fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
                if not owns_fds:
                    restore[fd] = flags
        self.rfd = rfd
        self.wfd = wfd
        self.path = path
        self.index = index
        #: True for a kernel device (no end of stream), False for :meth:`from_streams`.
        self.is_device = device
        self.sysfs = sysfs
        self._owns_fds = owns_fds
        self._restore_flags = restore
        self._ioctl = ioctl
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        # One entry per caller using the descriptors, so close() never frees a number still
        # in use. A list, not a lock: append/pop are atomic under the GIL and read no clock
        # (CPython 3.11 reads the monotonic clock on every Lock.acquire, which is a system
        # call where there is no vDSO, e.g. User-Mode Linux).
        self._users: list[None] = []
        self.closed = False
        self._rpoll = Poller([(rfd, _POLLIN), (self._wake_r, _POLLIN)])
        self._wpoll = Poller([(wfd, select.POLLOUT), (self._wake_r, _POLLIN)])
        self.rx_too_large = 0

    @classmethod
    def open(cls, n: int | str | os.PathLike[str], *, sysfs: Sysfs | None = None) -> Chardev:
        """Open endpoint device ``n`` (an index, ``rpmsgN`` or a path such as ``/dev/rpmsg0``)."""
        sysfs = sysfs or default_sysfs()
        path, index = endpoint_node(n, sysfs)
        fd = open_fd(path, nonblocking=True, sysfs=sysfs)
        return cls(fd, fd, path=path, index=index, device=True, sysfs=sysfs)

    @classmethod
    def from_streams(cls, source: int | HasFileno, sink: int | HasFileno, *,
                     close: bool = False) -> Chardev:
        """Messages read from ``source`` and written to ``sink`` (message-preserving streams,
        e.g. ``socketpair(AF_UNIX, SOCK_SEQPACKET)``); an empty read is the end of the stream."""
        rfd, wfd = _fileno(source), _fileno(sink)
        return cls(rfd, wfd, path=f"<streams {rfd}/{wfd}>", device=False, owns_fds=close)

    def info(self) -> EndpointDevice:
        """Name and addresses the kernel reports for this device (from sysfs)."""
        if self.index is None or not self.is_device:
            raise NotAvailableError(f"{self.path} is not a numbered /dev/rpmsgN device")
        return (self.sysfs or default_sysfs()).endpoint(self.index)

    def __repr__(self) -> str:
        return f"<rpmsg.linux.Chardev {self.path}{' closed' if self.closed else ''}>"

    # Reading ----------------------------------------------------------------------------

    def read_message(self, max_size: int, timeout: float | None) -> bytes | _Eof | None:
        """One message, :data:`EOF` at the end of a stream, or None if none came within
        ``timeout`` (0: only one that is already there).

        Waits with one ``poll`` first (a reply is rarely there yet), then reads once.
        Raises :class:`~rpmsg.errors.RemoteDisconnectedError` when the endpoint is gone,
        :class:`~rpmsg.linux.errors.TruncatedMessageError` for a message over ``max_size``
        (consumed, counted), EndpointClosedError once :meth:`close` was called.
        """
        users = self._users
        users.append(None)
        try:
            if timeout == 0:
                return self.read_nowait(max_size)
            end = None
            if timeout is None:
                ms = None
            elif timeout <= _SLICE:
                ms = math.ceil(timeout * 1000)
            else:  # longer than one poll() may wait: in slices, by the clock
                end = time.monotonic() + timeout
                ms = _SLICE_MS
            poller = self._rpoll
            view = poller.view  # revents: this descriptor's at 3, the wake-up pipe's at 7
            while True:
                if not poller.wait(ms):
                    left = None if end is None else end - time.monotonic()
                    if left is None or left <= 0:
                        return None
                    ms = min(_SLICE_MS, math.ceil(left * 1000))
                    continue
                if view[7] or self.closed:
                    raise EndpointClosedError(f"{self.path} was closed")
                revents = view[3] & 0xFFFF
                if revents & select.POLLNVAL:
                    raise EndpointClosedError(f"{self.path}: the descriptor was closed")
                data = self.read_nowait(max_size)
                if data is not None:
                    return data
                if self.is_device and revents & _ERR and not revents & _POLLIN:
                    raise RemoteDisconnectedError(
                        f"{self.path}: the endpoint is gone (the remote went away)")
                # Readable but nothing to read (another reader took it): wait again; the
                # clock is read only now, so this wait may last one timeout longer at worst.
                if timeout is not None:
                    now = time.monotonic()
                    end = end or now + timeout
                    ms = max(0, math.ceil((end - now) * 1000))
        finally:
            users.pop()

    def read_nowait(self, max_size: int) -> bytes | _Eof | None:
        """One message, :data:`EOF`, or None if none is queued; never blocks (called by
        :meth:`read_message`, which keeps close() from freeing the descriptor meanwhile).
        Several readers may race: each message goes to one of them."""
        if self.closed:
            raise EndpointClosedError(f"{self.path} is closed")
        try:
            data = os.read(self.rfd, max_size + 1)
        except BlockingIOError:
            return None
        except OSError as exc:
            if self.closed:
                raise EndpointClosedError(f"{self.path} was closed") from exc
            raise map_os_error(exc, "read", self.path) from exc
        if len(data) > max_size:
            self.rx_too_large += 1
            raise TruncatedMessageError(max_size)
        if not data and not self.is_device:
            return EOF
        return data

    # Writing ----------------------------------------------------------------------------

    def write_message(self, data: Buffer, timeout: float | None, mtu: int) -> None:
        """Send one message, waiting for a free transmit buffer: for ever if ``timeout`` is
        None, not at all if 0 (:class:`~rpmsg.errors.NoBufferError`), else up to ``timeout``
        seconds (:class:`~rpmsg.errors.RpmsgTimeoutError`). ``mtu`` sizes the error for a
        message the kernel finds too large."""
        users = self._users
        users.append(None)
        try:
            if self._write_nowait(data, mtu):
                return
            if timeout == 0:
                raise NoBufferError(f"{self.path}: no free transmit buffer right now")
            self._write_waiting(data, timeout, mtu)
        finally:
            users.pop()

    def _write_waiting(self, data: Buffer, timeout: float | None, mtu: int) -> None:
        end = None if timeout is None else time.monotonic() + timeout
        delay = 0.001
        while True:
            remaining = None if end is None else end - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise RpmsgTimeoutError(f"send on {self.path}: no free transmit buffer "
                                        f"within {timeout} s")
            wait = delay if self.is_device else remaining
            if remaining is not None and wait is not None:
                wait = min(wait, remaining)
            if wait is not None:
                wait = min(wait, _SLICE)
            poller = self._wpoll
            if poller.wait(None if wait is None else math.ceil(wait * 1000)) and (
                    poller.revents(1) or self.closed):
                raise EndpointClosedError(f"{self.path} was closed")
            if self._write_nowait(data, mtu):
                return
            delay = min(delay * 2, _MAX_RETRY_DELAY)

    def _write_nowait(self, data: Buffer, mtu: int) -> bool:
        """Write one message; False if no buffer is free right now."""
        if self.closed:
            raise EndpointClosedError(f"{self.path} is closed")
        try:
            written = os.write(self.wfd, data)
        except BlockingIOError:
            return False
        except OSError as exc:
            if self.closed:
                raise EndpointClosedError(f"{self.path} was closed") from exc
            raise map_os_error(exc, "write", self.path, size=len(data), mtu=mtu) from exc
        if written != len(data):  # cannot happen on a device; a stream split the message
            raise RemoteDisconnectedError(
                f"{self.path}: only {written} of {len(data)} bytes were written")
        return True

    # Kernel controls --------------------------------------------------------------------

    def destroy_device(self) -> None:
        """Remove this endpoint device (``RPMSG_DESTROY_EPT_IOCTL``); close it yourself.

        Only for endpoints created through a control device; the kernel refuses (EINVAL) to
        destroy a channel's default endpoint. A device the kernel already removed (remote
        gone) is left alone: destroying it again would delete the kernel's object twice.
        """
        self._require_device("destroy")
        if self.index is not None and self.sysfs is not None \
                and self.sysfs.endpoint_attrs(self.index) is None:
            return
        try:
            self._ioctl(self.rfd, RPMSG_DESTROY_EPT_IOCTL, 0)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise NotAvailableError(f"{self.path}: the kernel refused to destroy it "
                                        "(EINVAL): a channel's default endpoint cannot be "
                                        "destroyed") from exc
            raise map_os_error(exc, "ioctl", f"{self.path}: RPMSG_DESTROY_EPT_IOCTL") from exc

    def get_outgoing_flow_control(self) -> bool:
        """The remote's flow-control state (``RPMSG_GET_OUTGOING_FLOWCONTROL``, Linux 6.6+;
        only Qualcomm GLINK implements it, virtio always reports False)."""
        self._require_device("get_outgoing_flow_control")
        buf = bytearray(4)
        try:
            self._ioctl(self.rfd, RPMSG_GET_OUTGOING_FLOWCONTROL, buf, True)
        except OSError as exc:
            raise map_os_error(exc, "ioctl", f"{self.path}: GET_OUTGOING_FLOWCONTROL") from exc
        return int.from_bytes(buf, sys.byteorder, signed=True) != 0

    def set_incoming_flow_control(self, enable: bool) -> None:
        """Ask the remote to pause (True) or resume (False) sending (Linux 6.6+, GLINK only);
        on virtio this raises :class:`~rpmsg.errors.NotAvailableError` (EOPNOTSUPP)."""
        self._require_device("set_incoming_flow_control")
        try:  # declared _IOR but the kernel takes the value itself, not a pointer
            self._ioctl(self.rfd, RPMSG_SET_INCOMING_FLOWCONTROL, 1 if enable else 0)
        except OSError as exc:
            raise map_os_error(exc, "ioctl", f"{self.path}: SET_INCOMING_FLOWCONTROL") from exc

    def _require_device(self, what: str) -> None:
        if self.closed:
            raise EndpointClosedError(f"{self.path} is closed")
        if not self.is_device:
            raise NotAvailableError(f"{what} needs a kernel endpoint device, not {self.path}")

    # Lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the descriptors (a ctrl-created kernel endpoint is destroyed by the kernel
        with its last close; a channel's default endpoint stays). Wakes blocked callers at
        once; idempotent, from any thread."""
        if self.closed:
            return
        self.closed = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        # Waiting readers and writers wake on the pipe and leave (a caller that comes later
        # sees ``closed`` after announcing itself); only then are the numbers freed, so none
        # of them can touch a descriptor opened meanwhile by someone else.
        if self._users:
            end = time.monotonic() + _CLOSE_WAIT
            while self._users and time.monotonic() < end:
                time.sleep(0.001)
            if self._users:  # a caller did not leave: leak rather than corrupt
                return
        for fd, flags in self._restore_flags.items():
            try:
                fcntl.fcntl(fd, fcntl.F_SETFL, flags)
            except OSError:
                pass
        fds = {self.rfd, self.wfd} if self._owns_fds else set()
        for fd in (*fds, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def __del__(self) -> None:
        if not getattr(self, "closed", True):
            try:
                self.close()
            except Exception:
                pass


__all__ = ["EOF", "Chardev", "HasFileno", "IoctlFn", "endpoint_node", "open_fd"]
