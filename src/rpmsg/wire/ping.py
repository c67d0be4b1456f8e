"""Payload of NuttX's ``rpmsg-ping`` service (``drivers/rpmsg/rpmsg_ping.c``).

Facts: ``shared/spec/rpmsg-port.md`` §5.2, checked against apache/nuttx ``rpmsg_ping.c``:
``struct rpmsg_ping_msg_s { u32 cmd; u32 len; u64 cookie; u8 data[1]; }`` packed, so the
smallest message NuttX sends is 17 bytes. ``cmd`` bit 0 asks for an answer, bit 1 asks the
receiver to check that every data byte equals the first, bit 2 means a random length;
``cmd & 0xF0`` is 0x00 for a request and 0x20 for a response.
"""

from __future__ import annotations

from dataclasses import dataclass

from rpmsg.wire.layout import Buffer, Layout

PING_NAME = "rpmsg-ping"
PING_HEADER = Layout("rpmsg_ping_msg", [("cmd", "I"), ("len", "I"), ("cookie", "Q")])
#: ``sizeof(struct rpmsg_ping_msg_s)`` in NuttX: the header plus ``data[1]``.
PING_MIN_SIZE = PING_HEADER.size + 1  # 17

PING_ACK = 0x01
PING_CHECK = 0x02
PING_RANDOMLEN = 0x04
PING_CMD_MASK = 0xF0
PING_CMD_REQ = 0x00
PING_CMD_RSP = 0x20


@dataclass(frozen=True, slots=True)
class PingHeader:
    """The 16 bytes in front of a ping's data."""

    cmd: int
    len: int
    cookie: int

    @property
    def is_response(self) -> bool:
        return self.cmd & PING_CMD_MASK == PING_CMD_RSP

    def encode(self) -> bytes:
        return PING_HEADER.pack(self.cmd, self.len, self.cookie)

    @classmethod
    def decode(cls, data: Buffer) -> PingHeader:
        cmd, length, cookie = PING_HEADER.unpack(data)
        return cls(cmd=cmd, len=length, cookie=cookie)
