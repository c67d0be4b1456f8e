"""Messages of NuttX's ``rpmsg-syslog`` service (``drivers/syslog/syslog_rpmsg*.c``).

Facts: ``shared/spec/nuttx-services.md`` §2. Every message starts with an 8-byte header
(``command`` u32, ``result`` i32, never used). TRANSFER carries ``count`` bytes of log text
at offset 12 (not aligned, no NUL, ``count`` may be 0); SYNC carries a 64-bit cookie that
the receiving *client* echoes unchanged; SUSPEND and RESUME are header only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rpmsg.errors import DecodeError
from rpmsg.wire.layout import Buffer, Layout

SYSLOG_NAME = "rpmsg-syslog"

SYSLOG_HEADER = Layout("syslog_rpmsg_header", [("command", "I"), ("result", "i")])
SYSLOG_TRANSFER = Layout("syslog_rpmsg_transfer",
                         [("command", "I"), ("result", "i"), ("count", "i")])
SYSLOG_SYNC = Layout("syslog_rpmsg_sync", [("command", "I"), ("result", "i"), ("cookie", "Q")])


class SyslogCommand(enum.IntEnum):
    TRANSFER = 0
    SUSPEND = 1
    RESUME = 2
    SYNC = 3


@dataclass(frozen=True, slots=True)
class SyslogTransfer:
    """Log text from the client (the chip that logs) to the server."""

    data: bytes

    def encode(self) -> bytes:
        return SYSLOG_TRANSFER.pack(SyslogCommand.TRANSFER, 0, len(self.data)) + self.data


@dataclass(frozen=True, slots=True)
class SyslogSync:
    """Flush barrier: the client transfers everything it holds, then echoes this."""

    cookie: int
    result: int = 0

    def encode(self) -> bytes:
        return SYSLOG_SYNC.pack(SyslogCommand.SYNC, self.result, self.cookie)


@dataclass(frozen=True, slots=True)
class SyslogControl:
    """SUSPEND or RESUME (server to client, header only)."""

    command: SyslogCommand

    def encode(self) -> bytes:
        return SYSLOG_HEADER.pack(self.command, 0)


SyslogMessage = SyslogTransfer | SyslogSync | SyslogControl


def transfer_chunks(text: bytes, mtu: int) -> list[bytes]:
    """``text`` as TRANSFER messages of at most ``mtu`` bytes each (at least one message)."""
    room = mtu - SYSLOG_TRANSFER.size
    if room <= 0:
        raise ValueError(f"an MTU of {mtu} bytes cannot carry a syslog TRANSFER")
    if not text:
        return [SyslogTransfer(b"").encode()]
    return [SyslogTransfer(text[i:i + room]).encode() for i in range(0, len(text), room)]


def decode_syslog(data: Buffer) -> SyslogMessage:
    """Decode one message; DecodeError for short input, a bad count or an unknown command."""
    command, _result = SYSLOG_HEADER.unpack(data)
    if command == SyslogCommand.TRANSFER:
        _c, _r, count = SYSLOG_TRANSFER.unpack(data)
        have = len(data) - SYSLOG_TRANSFER.size
        if not 0 <= count <= have:
            raise SYSLOG_TRANSFER.error("count", f"{count} bytes announced, {have} present")
        start = SYSLOG_TRANSFER.size
        return SyslogTransfer(bytes(data[start:start + count]))
    if command == SyslogCommand.SYNC:
        _c, result, cookie = SYSLOG_SYNC.unpack(data)
        return SyslogSync(cookie, result)
    if command in (SyslogCommand.SUSPEND, SyslogCommand.RESUME):
        return SyslogControl(SyslogCommand(command))
    raise DecodeError(SYSLOG_HEADER.name, "command", 0, f"unknown command {command}")


__all__ = [
    "SYSLOG_HEADER",
    "SYSLOG_NAME",
    "SYSLOG_SYNC",
    "SYSLOG_TRANSFER",
    "SyslogCommand",
    "SyslogControl",
    "SyslogMessage",
    "SyslogSync",
    "SyslogTransfer",
    "decode_syslog",
    "transfer_chunks",
]
