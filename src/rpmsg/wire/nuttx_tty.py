"""Messages of NuttX's tty over rpmsg (``drivers/serial/uart_rpmsg.c``, endpoint ``rpmsg-tty*``).

Facts: ``shared/spec/nuttx-services.md`` §3. A 16-byte header: ``w0`` u32 whose bits 0-30
are the command and bit 31 the *response* flag (GCC's little-endian bitfield), ``result``
i32, ``cookie`` u64. WRITE (command 0) adds ``count`` u32 and ``resolved`` u32 and, in a
request, ``count`` bytes of data at offset 24; its response is those 24 bytes with
``result`` = bytes taken. WAKEUP (command 1) is the header only: "I have room again".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rpmsg.errors import DecodeError
from rpmsg.wire.layout import Buffer, Layout

#: Every NuttX tty endpoint name starts with this; the rest is the device name.
TTY_PREFIX = "rpmsg-tty"
#: The bit of ``w0`` that marks a response.
RESPONSE_BIT = 0x80000000
#: What NuttX puts in the ``result`` of its own requests (-ENXIO).
REQUEST_RESULT = -6

TTY_HEADER = Layout("uart_rpmsg_header", [("w0", "I"), ("result", "i"), ("cookie", "Q")])
TTY_WRITE = Layout("uart_rpmsg_write_s", [("w0", "I"), ("result", "i"), ("cookie", "Q"),
                                           ("count", "I"), ("resolved", "I")])


class TtyCommand(enum.IntEnum):
    WRITE = 0
    WAKEUP = 1


@dataclass(frozen=True, slots=True)
class TtyWrite:
    """A WRITE request: bytes for the receiver's input side."""

    data: bytes
    cookie: int = 0
    resolved: int = 0
    result: int = REQUEST_RESULT

    def encode(self) -> bytes:
        return TTY_WRITE.pack(TtyCommand.WRITE, self.result, self.cookie, len(self.data),
                              self.resolved) + self.data


@dataclass(frozen=True, slots=True)
class TtyWriteResponse:
    """The answer to a WRITE: ``result`` bytes were taken (< 0: none), ``count`` echoed."""

    result: int
    cookie: int
    count: int
    resolved: int = 0

    def encode(self) -> bytes:
        return TTY_WRITE.pack(TtyCommand.WRITE | RESPONSE_BIT, self.result, self.cookie,
                              self.count, self.resolved)

    @property
    def taken(self) -> int:
        """Bytes the receiver consumed (a negative result counts as 0, as NuttX does)."""
        return max(0, min(self.result, self.count))


@dataclass(frozen=True, slots=True)
class TtyWakeup:
    """The receiver drained its input ring: resend what it did not take."""

    cookie: int = 0

    def encode(self) -> bytes:
        return TTY_HEADER.pack(TtyCommand.WAKEUP, 0, self.cookie)


TtyMessage = TtyWrite | TtyWriteResponse | TtyWakeup

#: Bytes of a WRITE in front of its data.
WRITE_OVERHEAD = TTY_WRITE.size


def response_to(request: TtyWrite, taken: int) -> TtyWriteResponse:
    """The response that accepts ``taken`` bytes of ``request`` (cookie, resolved echoed)."""
    return TtyWriteResponse(taken, request.cookie, len(request.data), request.resolved)


def decode_tty(data: Buffer) -> TtyMessage:
    """Decode one message. A WRITE request whose ``count`` exceeds its data is an error."""
    w0, result, cookie = TTY_HEADER.unpack(data)
    command = w0 & ~RESPONSE_BIT
    response = bool(w0 & RESPONSE_BIT)
    if command == TtyCommand.WAKEUP:
        return TtyWakeup(cookie)
    if command != TtyCommand.WRITE:
        raise DecodeError(TTY_HEADER.name, "w0", 0, f"unknown command {command}")
    _w0, _r, _c, count, resolved = TTY_WRITE.unpack(data)
    if response:
        return TtyWriteResponse(result, cookie, count, resolved)
    have = len(data) - TTY_WRITE.size
    if count > have:
        raise TTY_WRITE.error("count", f"{count} bytes announced, {have} present")
    start = TTY_WRITE.size
    return TtyWrite(bytes(data[start:start + count]), cookie, resolved, result)


__all__ = [
    "REQUEST_RESULT",
    "RESPONSE_BIT",
    "TTY_HEADER",
    "TTY_PREFIX",
    "TTY_WRITE",
    "WRITE_OVERHEAD",
    "TtyCommand",
    "TtyMessage",
    "TtyWakeup",
    "TtyWrite",
    "TtyWriteResponse",
    "decode_tty",
    "response_to",
]
