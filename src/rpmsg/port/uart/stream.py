"""Byte streams the UART backend runs over: pyserial ports and URLs, or a new pseudo-terminal.

:class:`Stream` is the part of pyserial's ``Serial`` the driver uses; :func:`open_serial` opens
any pyserial device path or URL (``/dev/ttyUSB0``, ``socket://host:port``, ``loop://``);
:class:`PtyStream` makes a pseudo-terminal whose other end another program opens by path.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import termios
import time
import tty
from typing import Any, Protocol

from rpmsg.errors import AccessDeniedError, AlreadyOpenError, NotAvailableError, unavailable

#: Stream read timeout: how often the RX thread notices close().
READ_TIMEOUT = 0.1
#: How long an exclusive open retries a line another process holds: a process that was just
#: killed releases its lock only when its last thread has exited.
DYING_OWNER_WAIT = 0.5


class Stream(Protocol):
    """The part of the pyserial ``Serial`` API the driver uses.

    Optional extras the driver uses when present: ``cancel_read()``/``cancel_write()`` (end
    a blocked call, for close), ``out_waiting`` with ``baudrate`` (a real UART's output
    backlog, so control bytes are not queued behind seconds of data, and close waits for it
    to drain), ``reset_output_buffer()`` (discard what could not drain in time, so closing
    the port does not wait for it), ``drain(timeout)`` (a pty: wait until the other end read
    everything, since closing the master discards what it did not read).
    """

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def close(self) -> None: ...


class PtyStream:
    """A new pseudo-terminal: this side uses the master, another program opens :attr:`path`.

    The slave end is kept open (in raw mode, no echo) so that reads do not fail while the
    other program is not attached yet. Reads and writes can be cancelled from another thread
    (``cancel_read``/``cancel_write``), so close never waits for a peer that stopped reading.
    """

    def __init__(self, timeout: float = READ_TIMEOUT) -> None:
        self.master, self._slave = os.openpty()
        try:
            tty.setraw(self._slave)
            attrs = termios.tcgetattr(self._slave)
            attrs[3] &= ~(termios.ECHO | termios.ICANON)
            termios.tcsetattr(self._slave, termios.TCSANOW, attrs)
            self.path = os.ttyname(self._slave)
            os.set_blocking(self.master, False)
            self._cancel_r, self._cancel_w = os.pipe()
            self._wcancel_r, self._wcancel_w = os.pipe()
        except BaseException:
            os.close(self.master)
            os.close(self._slave)
            raise
        for fd in (self._cancel_r, self._cancel_w, self._wcancel_r, self._wcancel_w):
            os.set_blocking(fd, False)
        self.timeout = timeout
        self._closed = False

    @property
    def in_waiting(self) -> int:
        buf = bytearray(4)
        fcntl.ioctl(self.master, termios.FIONREAD, buf)
        return int.from_bytes(buf, "little")

    def read(self, size: int = 1) -> bytes:
        ready, _, _ = select.select([self.master, self._cancel_r], [], [], self.timeout)
        if self._cancel_r in ready:
            _drain(self._cancel_r)
            return b""
        if not ready:
            return b""
        try:
            return os.read(self.master, size)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno == errno.EIO:  # no slave open right now
                time.sleep(self.timeout)
                return b""
            raise

    def write(self, data: bytes, /) -> int:
        """Write all of ``data``, unless :meth:`cancel_write` ends the wait (then fewer)."""
        view = memoryview(data)
        done = 0
        while done < len(view):
            try:
                done += os.write(self.master, view[done:])
                continue
            except BlockingIOError:
                pass
            ready, _, _ = select.select([self._wcancel_r], [self.master], [])
            if self._wcancel_r in ready:
                _drain(self._wcancel_r)
                break
        return done

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until the other end read all we wrote; True if it did.

        Closing the master hangs the line up and discards unread input, so close waits for
        this first (the bytes still unread sit in the slave's input queue, which we hold).
        Written bytes reach that queue through a kernel work item, so it must read empty
        twice, a moment apart.
        """
        end = time.monotonic() + timeout
        empty = 0
        while not self._closed and empty < 2:
            if self._unread():
                empty = 0
            else:
                empty += 1
            if empty < 2:
                if time.monotonic() >= end:
                    return False
                time.sleep(0.003)
        return empty >= 2

    def _unread(self) -> int:
        buf = bytearray(4)
        try:
            fcntl.ioctl(self._slave, termios.FIONREAD, buf)
        except OSError:
            return 0
        return int.from_bytes(buf, "little")

    def cancel_read(self) -> None:
        _poke(self._cancel_w, self._closed)

    def cancel_write(self) -> None:
        _poke(self._wcancel_w, self._closed)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fd in (self.master, self._slave, self._cancel_r, self._cancel_w, self._wcancel_r,
                   self._wcancel_w):
            try:
                os.close(fd)
            except OSError:
                pass


def _drain(fd: int) -> None:
    try:
        os.read(fd, 4096)
    except OSError:
        pass


def _poke(fd: int, closed: bool) -> None:
    if closed:
        return
    try:
        os.write(fd, b"x")
    except OSError:  # full (a wake-up is pending anyway) or closed meanwhile
        pass


def line_owner(path: str) -> str:
    """Which other process has ``path`` open, as "pid N (command)", or "" if none is found.

    Reads ``/proc/*/fd``; processes of other users are invisible without privileges.
    """
    try:
        target = os.path.realpath(path)
        target_rdev = os.stat(target).st_rdev
    except OSError:
        return ""
    me = os.getpid()
    for pid_text in _pids():
        pid = int(pid_text)
        if pid == me:
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            names = os.listdir(fd_dir)
        except OSError:
            continue
        for name in names:
            try:
                link = os.readlink(f"{fd_dir}/{name}")
                if link != target and (not link.startswith("/dev/")
                                       or os.stat(link).st_rdev != target_rdev):
                    continue
            except OSError:
                continue
            return f"pid {pid} ({_command(pid)})"
    return ""


def _pids() -> list[str]:
    try:
        return [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read(512)
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip() or "?"


def open_serial(path: str, *, baudrate: int = 115200, rtscts: bool = False,
                exclusive: bool = True) -> Stream:
    """Open a pyserial device path or URL with the driver's read timeout.

    A device path is opened exclusively (a serial line has one owner): a second opener gets
    :class:`~rpmsg.errors.AlreadyOpenError` naming the owner where it can be found; a passive
    reader may pass ``exclusive=False``.
    Missing devices are :class:`~rpmsg.errors.NotAvailableError`, unreadable ones
    :class:`~rpmsg.errors.AccessDeniedError`.
    """
    try:
        import serial
    except ImportError:
        raise NotAvailableError(
            "the uart: transport needs pyserial (pip install 'rpmsg[serial]')") from None
    is_url = "://" in path
    options: dict[str, Any] = {"baudrate": baudrate, "rtscts": rtscts,
                                  "timeout": READ_TIMEOUT}
    if not is_url:
        options["exclusive"] = exclusive
    end = time.monotonic() + DYING_OWNER_WAIT
    while True:
        try:
            stream: Stream = serial.serial_for_url(path, **options)
            return stream
        except (serial.SerialException, ValueError, OSError) as exc:
            error = _open_error(path, exc)
            if not isinstance(error, AlreadyOpenError) or time.monotonic() >= end:
                raise error from exc
        time.sleep(0.01)  # the owner may be a process dying right now: give it a moment


def _open_error(path: str, exc: Exception) -> Exception:
    """The typed error for a serial port that did not open."""
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code in (errno.EWOULDBLOCK, errno.EBUSY) or "exclusively lock" in text:
        owner = line_owner(path)
        who = f"by {owner}" if owner else "by another program"
        return AlreadyOpenError(
            f"serial port {path} is already open {who}; a serial line has one owner: talk "
            "through that program (e.g. `rpmsg term` on its URL) or capture its traffic "
            "(capture=PATH on its URL) instead")
    if code in (errno.EACCES, errno.EPERM):
        return AccessDeniedError(
            f"serial port {path}: permission denied; add your user to the device's group "
            f"(ls -l {path}; usually `dialout`) or fix its permissions")
    return unavailable(exc, f"cannot open serial port {path!r}: {exc}")


__all__ = ["READ_TIMEOUT", "PtyStream", "Stream", "line_owner", "open_serial"]
