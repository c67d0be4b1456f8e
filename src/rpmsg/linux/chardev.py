"""``/dev/rpmsgN``: one kernel rpmsg endpoint as a file descriptor, with timeouts and asyncio.

The kernel gives exactly one message per ``read()`` and sends one message per ``write()``
(``shared/spec/linux-chardev.md`` §5.3). The descriptor is kept non-blocking; waits use
``poll()`` together with a private wake-up pipe, so :meth:`Endpoint.close` from another thread
ends a blocked :meth:`~Endpoint.recv` or :meth:`~Endpoint.send` at once. The same code runs over
any pair of message-preserving byte streams (:meth:`Endpoint.from_streams`) for tests.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import math
import os
import re
import select
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Protocol

from rpmsg.errors import (
    EndpointClosedError,
    MessageTooLargeError,
    NoBufferError,
    NotAvailableError,
    RemoteDisconnectedError,
    WouldBlockError,
)
from rpmsg.linux.errors import TruncatedMessageError, map_os_error
from rpmsg.linux.ioctl import (
    RPMSG_DESTROY_EPT_IOCTL,
    RPMSG_GET_OUTGOING_FLOWCONTROL,
    RPMSG_SET_INCOMING_FLOWCONTROL,
)
from rpmsg.linux.sysfs import EndpointDevice, Sysfs, default_sysfs
from rpmsg.transport import Deadline
from rpmsg.wire.layout import Buffer
from rpmsg.wire.rpmsg import DEFAULT_MTU

_NODE_RE = re.compile(r"(?:.*/)?rpmsg(\d+)")
_ERR = select.POLLERR | select.POLLHUP
#: Longest pause between two write attempts while the kernel has no TX buffer: virtio before
#: the late-2025 EPOLLOUT patch never reports POLLOUT, so waiting for a buffer is a retry loop.
_MAX_RETRY_DELAY = 0.02
IoctlFn = Callable[..., Any]


class HasFileno(Protocol):
    def fileno(self) -> int: ...


class _Eof:
    """Marker: the byte stream behind :meth:`Endpoint.from_streams` ended."""


_EOF = _Eof()


def endpoint_node(n: int | str | os.PathLike[str], sysfs: Sysfs) -> tuple[str, int | None]:
    """Resolve ``N``, ``"N"``, ``"rpmsgN"`` or a path to (device node path, index or None)."""
    if isinstance(n, int):
        if n < 0:
            raise NotAvailableError(f"endpoint device index {n} is negative")
        return sysfs.endpoint_node(n), n
    text = os.fspath(n)
    if text.isdigit():
        return sysfs.endpoint_node(int(text)), int(text)
    match = _NODE_RE.fullmatch(text)
    if "/" in text:
        return text, int(match.group(1)) if match else None
    if match:
        return sysfs.endpoint_node(int(match.group(1))), int(match.group(1))
    raise NotAvailableError(
        f"{text!r} does not name an endpoint device (expected N, rpmsgN or /dev/rpmsgN)")


def _fileno(stream: int | HasFileno) -> int:
    return stream if isinstance(stream, int) else stream.fileno()


def _poll_ms(timeout: float | None) -> int | None:
    return None if timeout is None else math.ceil(timeout * 1000)


class Endpoint:
    """A kernel rpmsg endpoint device (``/dev/rpmsgN``) or a stand-in over byte streams.

    ``recv`` returns one message (``None`` at the end of a stream; a real device has no end:
    a zero-length message reads as ``b""`` and a vanished endpoint raises
    :class:`~rpmsg.errors.RemoteDisconnectedError`). Timeouts follow pyserial: None waits,
    0 polls, x seconds waits at most x. Use it from one receiving and one sending thread.
    """

    #: Largest payload of a virtio rpmsg message (512-byte buffer minus the 16-byte header).
    MAX_MESSAGE_SIZE = DEFAULT_MTU

    def __init__(self, rfd: int, wfd: int, *, path: str, index: int | None = None,
                 device: bool = True, owns_fds: bool = True,
                 max_message_size: int = DEFAULT_MTU, sysfs: Sysfs | None = None,
                 ioctl: IoctlFn = fcntl.ioctl) -> None:
        """Wrap open descriptors; use :meth:`open` or :meth:`from_streams` instead.

        The descriptors are made non-blocking; unless owned (closed by :meth:`close`), their
        flags are restored on close.
        """
        restore: dict[int, int] = {}
        for fd in {rfd, wfd}:
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            if not flags & os.O_NONBLOCK:
                fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
                if not owns_fds:
                    restore[fd] = flags
        self._rfd = rfd
        self._wfd = wfd
        self.path = path
        self.index = index
        #: True for a kernel device (no end of stream), False for :meth:`from_streams`.
        self.is_device = device
        self.max_message_size = max_message_size
        self._owns_fds = owns_fds
        self._restore_flags = restore
        self._sysfs = sysfs
        self._ioctl = ioctl
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._rlock = threading.Lock()
        self._wlock = threading.Lock()
        self._closed = False
        self._async_busy = False
        self._async_waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None
        self._rpoll = select.poll()
        self._rpoll.register(rfd, select.POLLIN)
        self._rpoll.register(self._wake_r, select.POLLIN)
        self._wpoll = select.poll()
        self._wpoll.register(wfd, select.POLLOUT)
        self._wpoll.register(self._wake_r, select.POLLIN)
        self.stats = {"rx_messages": 0, "rx_bytes": 0, "tx_messages": 0, "tx_bytes": 0,
                      "rx_too_large": 0}

    # Construction -----------------------------------------------------------------------

    @classmethod
    def open(cls, n: int | str | os.PathLike[str], *, sysfs: Sysfs | None = None,
             max_message_size: int = DEFAULT_MTU) -> Endpoint:
        """Open endpoint device ``n`` (an index, ``rpmsgN`` or a path such as ``/dev/rpmsg0``).

        Raises :class:`~rpmsg.errors.AlreadyOpenError` if another process has it open,
        :class:`~rpmsg.errors.NotAvailableError` if it does not exist.
        """
        sysfs = sysfs or default_sysfs()
        path, index = endpoint_node(n, sysfs)
        fd = cls.open_fd(path, nonblocking=True, sysfs=sysfs)
        return cls(fd, fd, path=path, index=index, device=True,
                   max_message_size=max_message_size, sysfs=sysfs)

    @staticmethod
    def open_fd(n: int | str | os.PathLike[str], *, nonblocking: bool = False,
                sysfs: Sysfs | None = None) -> int:
        """Open endpoint device ``n`` and return the raw descriptor (close it yourself).

        Blocking by default, as the kernel's own semantics: ``read`` waits for a message and
        ``write`` waits up to 15 s for a buffer. Errors are mapped as for :meth:`open`. A node
        that sysfs lists but udev has not made yet is waited for briefly
        (:meth:`~rpmsg.linux.sysfs.Sysfs.wait_node`).
        """
        sysfs = sysfs or default_sysfs()
        path, _index = endpoint_node(n, sysfs)
        flags = os.O_RDWR | os.O_CLOEXEC | (os.O_NONBLOCK if nonblocking else 0)
        return sysfs.open_node(path, flags, "no such endpoint device (see `rpmsg list`)")

    @classmethod
    def from_streams(cls, source: int | HasFileno, sink: int | HasFileno, *,
                     max_message_size: int = DEFAULT_MTU, close: bool = False) -> Endpoint:
        """An endpoint that reads messages from ``source`` and writes them to ``sink``.

        Each ``read`` must return one message, so use message-preserving streams
        (``socketpair(AF_UNIX, SOCK_SEQPACKET)``); a pipe works one message at a time. The
        descriptors are made non-blocking until :meth:`close`, which closes them only if
        ``close`` is true. An empty read is the end of the stream: ``recv`` returns None.
        """
        rfd, wfd = _fileno(source), _fileno(sink)
        return cls(rfd, wfd, path=f"<streams {rfd}/{wfd}>", device=False, owns_fds=close,
                   max_message_size=max_message_size)

    # Properties -------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        """The descriptor messages are read from (for ``select``/``poll``/event loops)."""
        self._check_open()
        return self._rfd

    def info(self) -> EndpointDevice:
        """Name and addresses the kernel reports for this device (from sysfs)."""
        if self.index is None or not self.is_device:
            raise NotAvailableError(f"{self.path} is not a numbered /dev/rpmsgN device")
        return (self._sysfs or default_sysfs()).endpoint(self.index)

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<rpmsg.linux.Endpoint {self.path}{state}>"

    # Receiving --------------------------------------------------------------------------

    def _wait_budget(self, timeout: float | None, deadline: Deadline) -> float | None:
        """Seconds a receive may still wait for a message; raises when it may not wait."""
        if timeout == 0:
            raise WouldBlockError(f"{self.path}: no message queued")
        remaining = deadline.remaining()
        if remaining is not None and remaining <= 0:
            raise deadline.timeout_error(f"recv on {self.path}")
        return remaining

    def recv(self, max_size: int = DEFAULT_MTU, timeout: float | None = None) -> bytes | None:
        """The next message, or None at the end of a stream.

        A message longer than ``max_size`` raises :class:`~rpmsg.errors.MessageTooLargeError`
        (the kernel has discarded it: reads never silently truncate). ``timeout`` 0 raises
        :class:`~rpmsg.errors.WouldBlockError` when nothing is queued, x seconds
        :class:`~rpmsg.errors.RpmsgTimeoutError`; a vanished endpoint (EPIPE, POLLERR) raises
        :class:`~rpmsg.errors.RemoteDisconnectedError`.
        """
        if max_size < 0:
            raise ValueError(f"max_size must be >= 0, not {max_size}")
        deadline = Deadline(timeout)
        with self._rlock:
            while True:
                data = self._read_nowait(max_size)
                if data is _EOF:
                    return None
                if isinstance(data, bytes):
                    return data
                remaining = self._wait_budget(timeout, deadline)
                revents = self._wait(self._rpoll, self._rfd, remaining)
                if self.is_device and revents & _ERR and not revents & select.POLLIN:
                    raise RemoteDisconnectedError(
                        f"{self.path}: the endpoint is gone (the remote went away)")

    def __iter__(self) -> Iterator[bytes]:
        """Yield messages until the end of the stream (or an error)."""
        while True:
            data = self.recv()
            if data is None:
                return
            yield data

    def recv_nowait(self, max_size: int = DEFAULT_MTU) -> bytes | None:
        """One message if one is queued, else None; never blocks (for your own poll loop on
        :meth:`fileno`). The end of a stream raises
        :class:`~rpmsg.errors.RemoteDisconnectedError` here, since None means "nothing yet"."""
        with self._rlock:
            data = self._read_nowait(max_size)
        if data is _EOF:
            raise RemoteDisconnectedError(f"{self.path}: end of stream")
        return data if isinstance(data, bytes) else None

    def _read_nowait(self, max_size: int) -> bytes | _Eof | None:
        """One message, :data:`_EOF`, or None if none is queued; never blocks."""
        self._check_open()
        try:
            data = os.read(self._rfd, max_size + 1)
        except BlockingIOError:
            return None
        except OSError as exc:
            raise map_os_error(exc, "read", self.path) from exc
        if len(data) > max_size:
            self.stats["rx_too_large"] += 1
            raise TruncatedMessageError(max_size)
        if not data and not self.is_device:
            return _EOF
        self.stats["rx_messages"] += 1
        self.stats["rx_bytes"] += len(data)
        return data

    def _wait(self, poller: select.poll, fd: int, timeout: float | None) -> int:
        """Poll ``fd`` (and the wake-up pipe); its revents, 0 on timeout."""
        events = poller.poll(_poll_ms(timeout))
        revents = 0
        for efd, ev in events:
            if efd == self._wake_r or self._closed:
                raise EndpointClosedError(f"{self.path} was closed")
            if efd == fd:
                if ev & select.POLLNVAL:
                    raise EndpointClosedError(f"{self.path}: the descriptor was closed")
                revents |= ev
        return revents

    # Sending ----------------------------------------------------------------------------

    def send(self, data: Buffer, timeout: float | None = None) -> None:
        """Send one message to the endpoint's destination.

        Waits for a free transmit buffer: forever if ``timeout`` is None, not at all if 0
        (:class:`~rpmsg.errors.NoBufferError`), else up to ``timeout`` seconds
        (:class:`~rpmsg.errors.RpmsgTimeoutError`). Raises
        :class:`~rpmsg.errors.MessageTooLargeError` above :attr:`max_message_size`,
        :class:`~rpmsg.errors.NotBoundError` on a receive-only endpoint (dst ANY) and
        :class:`~rpmsg.errors.RemoteDisconnectedError` when the endpoint is gone.
        """
        size = len(data)
        if size > self.max_message_size:
            raise MessageTooLargeError(size, self.max_message_size)
        deadline = Deadline(timeout)
        delay = 0.001
        with self._wlock:
            while True:
                if self._write_nowait(data):
                    return
                if timeout == 0:
                    raise NoBufferError(f"{self.path}: no free transmit buffer right now")
                remaining = deadline.remaining()
                if remaining is not None and remaining <= 0:
                    raise deadline.timeout_error(f"send on {self.path}")
                wait = delay if self.is_device else None
                if remaining is not None:
                    wait = remaining if wait is None else min(wait, remaining)
                self._wait(self._wpoll, self._wfd, wait)
                delay = min(delay * 2, _MAX_RETRY_DELAY)

    def _write_nowait(self, data: Buffer) -> bool:
        """Write one message; False if no buffer is free right now."""
        self._check_open()
        try:
            written = os.write(self._wfd, data)
        except BlockingIOError:
            return False
        except OSError as exc:
            raise map_os_error(exc, "write", self.path, size=len(data),
                               mtu=self.max_message_size) from exc
        if written != len(data):  # cannot happen on a device; a stream split the message
            raise RemoteDisconnectedError(
                f"{self.path}: only {written} of {len(data)} bytes were written")
        self.stats["tx_messages"] += 1
        self.stats["tx_bytes"] += written
        return True

    # Kernel controls --------------------------------------------------------------------

    def destroy(self) -> None:
        """Remove this endpoint device (``RPMSG_DESTROY_EPT_IOCTL``), then close.

        Only for endpoints created through a control device; the kernel refuses (EINVAL) to
        destroy a channel's default endpoint.
        """
        self._require_device("destroy")
        if self.index is not None and self._sysfs is not None \
                and self._sysfs.endpoint_attrs(self.index) is None:
            # The kernel removed it already (remote gone); destroying again would delete the
            # kernel's device object twice.
            self.close()
            return
        try:
            self._ioctl(self._rfd, RPMSG_DESTROY_EPT_IOCTL, 0)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise NotAvailableError(f"{self.path}: the kernel refused to destroy it "
                                        "(EINVAL): a channel's default endpoint cannot be "
                                        "destroyed") from exc
            raise map_os_error(exc, "ioctl", f"{self.path}: RPMSG_DESTROY_EPT_IOCTL") from exc
        finally:
            self.close()

    def get_outgoing_flow_control(self) -> bool:
        """The remote's flow-control state (``RPMSG_GET_OUTGOING_FLOWCONTROL``, Linux 6.6+).

        Only Qualcomm GLINK implements flow control; virtio always reports False.
        """
        self._require_device("get_outgoing_flow_control")
        buf = bytearray(4)
        try:
            self._ioctl(self._rfd, RPMSG_GET_OUTGOING_FLOWCONTROL, buf, True)
        except OSError as exc:
            raise map_os_error(exc, "ioctl", f"{self.path}: GET_OUTGOING_FLOWCONTROL") from exc
        return int.from_bytes(buf, sys.byteorder, signed=True) != 0

    def set_incoming_flow_control(self, enable: bool) -> None:
        """Ask the remote to pause (True) or resume (False) sending (Linux 6.6+, GLINK only);
        on virtio this raises :class:`~rpmsg.errors.NotAvailableError` (EOPNOTSUPP)."""
        self._require_device("set_incoming_flow_control")
        try:  # declared _IOR but the kernel takes the value itself, not a pointer
            self._ioctl(self._rfd, RPMSG_SET_INCOMING_FLOWCONTROL, 1 if enable else 0)
        except OSError as exc:
            raise map_os_error(exc, "ioctl", f"{self.path}: SET_INCOMING_FLOWCONTROL") from exc

    def _require_device(self, what: str) -> None:
        self._check_open()
        if not self.is_device:
            raise NotAvailableError(f"{what} needs a kernel endpoint device, not {self.path}")

    # asyncio ----------------------------------------------------------------------------

    async def recv_async(self, max_size: int = DEFAULT_MTU,
                         timeout: float | None = None) -> bytes | None:
        """:meth:`recv` for asyncio: waits with ``loop.add_reader`` on the descriptor."""
        loop = asyncio.get_running_loop()
        deadline = Deadline(timeout)
        if self._async_busy:
            raise RuntimeError(f"another task is already receiving on {self.path}")
        self._async_busy = True
        try:
            while True:
                if not self._rlock.acquire(blocking=False):
                    self._check_open()
                    raise RuntimeError(f"a thread is already receiving on {self.path}")
                try:
                    data = self._read_nowait(max_size)
                finally:
                    self._rlock.release()
                if data is _EOF:
                    return None
                if isinstance(data, bytes):
                    return data
                remaining = self._wait_budget(timeout, deadline)
                await self._readable(loop, remaining)
        finally:
            self._async_busy = False

    async def _readable(self, loop: asyncio.AbstractEventLoop, timeout: float | None) -> None:
        fut: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        self._check_open()
        loop.add_reader(self._rfd, ready)
        self._async_waiter = (loop, fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            pass  # the caller's loop turns an expired deadline into RpmsgTimeoutError
        finally:
            self._async_waiter = None
            loop.remove_reader(self._rfd)

    async def send_async(self, data: Buffer, timeout: float | None = None) -> None:
        """:meth:`send` for asyncio: retries with short sleeps while no buffer is free."""
        size = len(data)
        if size > self.max_message_size:
            raise MessageTooLargeError(size, self.max_message_size)
        deadline = Deadline(timeout)
        delay = 0.001
        while True:
            if not self._wlock.acquire(blocking=False):
                self._check_open()
                raise RuntimeError(f"a thread is already sending on {self.path}")
            try:
                if self._write_nowait(data):
                    return
            finally:
                self._wlock.release()
            if timeout == 0:
                raise NoBufferError(f"{self.path}: no free transmit buffer right now")
            remaining = deadline.remaining()
            if remaining is not None and remaining <= 0:
                raise deadline.timeout_error(f"send on {self.path}")
            await asyncio.sleep(delay if remaining is None else min(delay, remaining))
            delay = min(delay * 2, _MAX_RETRY_DELAY)

    def as_async(self) -> AsyncEndpoint:
        """The asyncio view of this endpoint."""
        return AsyncEndpoint(self)

    # Lifecycle --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise EndpointClosedError(f"{self.path} is closed")

    def close(self) -> None:
        """Close the descriptor (a ctrl-created kernel endpoint is destroyed; a channel's
        default endpoint stays). Wakes blocked callers; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        waiter = self._async_waiter
        if waiter is not None:
            try:
                waiter[0].call_soon_threadsafe(_resolve, waiter[1])
            except RuntimeError:  # that event loop is closed
                pass
        with self._rlock, self._wlock:
            for fd, flags in self._restore_flags.items():
                try:
                    fcntl.fcntl(fd, fcntl.F_SETFL, flags)
                except OSError:
                    pass
            fds = {self._rfd, self._wfd} if self._owns_fds else set()
            for fd in (*fds, self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            try:
                self.close()
            except Exception:
                pass


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class AsyncEndpoint:
    """asyncio view of an :class:`Endpoint`: ``await recv()``, ``await send()``, ``async for``."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    async def recv(self, max_size: int = DEFAULT_MTU,
                   timeout: float | None = None) -> bytes | None:
        return await self.endpoint.recv_async(max_size, timeout)

    async def send(self, data: Buffer, timeout: float | None = None) -> None:
        await self.endpoint.send_async(data, timeout)

    def close(self) -> None:
        self.endpoint.close()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        while True:
            data = await self.recv()
            if data is None:
                return
            yield data

    async def __aenter__(self) -> AsyncEndpoint:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
