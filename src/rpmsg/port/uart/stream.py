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
from typing import Protocol

from rpmsg.errors import NotAvailableError

#: Stream read timeout: how often the RX thread notices close().
READ_TIMEOUT = 0.1


class Stream(Protocol):
    """The part of the pyserial ``Serial`` API the driver uses."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def close(self) -> None: ...


class PtyStream:
    """A new pseudo-terminal: this side uses the master, another program opens :attr:`path`.

    The slave end is kept open (in raw mode, no echo) so that reads do not fail while the
    other program is not attached yet.
    """

    def __init__(self, timeout: float = READ_TIMEOUT) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        attrs = termios.tcgetattr(self._slave)
        attrs[3] &= ~(termios.ECHO | termios.ICANON)
        termios.tcsetattr(self._slave, termios.TCSANOW, attrs)
        self.path = os.ttyname(self._slave)
        self.timeout = timeout
        self._cancel_r, self._cancel_w = os.pipe()
        os.set_blocking(self._cancel_r, False)
        self._closed = False

    @property
    def in_waiting(self) -> int:
        buf = bytearray(4)
        fcntl.ioctl(self.master, termios.FIONREAD, buf)
        return int.from_bytes(buf, "little")

    def read(self, size: int = 1) -> bytes:
        ready, _, _ = select.select([self.master, self._cancel_r], [], [], self.timeout)
        if self._cancel_r in ready:
            try:
                os.read(self._cancel_r, 64)
            except BlockingIOError:
                pass
            return b""
        if not ready:
            return b""
        try:
            return os.read(self.master, size)
        except OSError as exc:
            if exc.errno == errno.EIO:  # no slave open right now
                time.sleep(self.timeout)
                return b""
            raise

    def write(self, data: bytes, /) -> int:
        view = memoryview(data)
        while view:
            select.select([], [self.master], [])
            n = os.write(self.master, view)
            view = view[n:]
        return len(data)

    def cancel_read(self) -> None:
        if not self._closed:
            os.write(self._cancel_w, b"x")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fd in (self.master, self._slave, self._cancel_r, self._cancel_w):
            try:
                os.close(fd)
            except OSError:
                pass


def open_serial(path: str, *, baudrate: int = 115200, rtscts: bool = False) -> Stream:
    """Open a pyserial device path or URL with the driver's read timeout."""
    try:
        import serial
    except ImportError:
        raise NotAvailableError(
            "the uart: transport needs pyserial (pip install 'rpmsg[serial]')") from None
    try:
        stream: Stream = serial.serial_for_url(path, baudrate=baudrate, rtscts=rtscts,
                                               timeout=READ_TIMEOUT)
    except (serial.SerialException, ValueError, OSError) as exc:
        raise NotAvailableError(f"cannot open serial port {path!r}: {exc}") from exc
    return stream


__all__ = ["READ_TIMEOUT", "PtyStream", "Stream", "open_serial"]
