"""NuttX RPMsg Port header: 8 bytes at offset 0 of every port buffer and frame.

Facts: ``shared/spec/rpmsg-port.md`` §2.1.
"""

from __future__ import annotations

from dataclasses import dataclass

from rpmsg.wire.layout import Buffer, Layout

PORT_HEADER = Layout("rpmsg_port_header", [("crc", "H"), ("cmd", "H"), ("avail", "H"),
                                           ("len", "H")])
PORT_HEADER_SIZE = PORT_HEADER.size  # 8
#: Bytes reserved at the end of each buffer for the tx/rx timestamps (current protocol only).
TIMESTAMP_TRAILER_SIZE = 16


@dataclass(frozen=True, slots=True)
class PortHeader:
    """``crc`` covers bytes [2, len) or is 0; ``len`` counts from offset 0 of the frame."""

    crc: int
    cmd: int
    avail: int
    len: int

    def encode(self) -> bytes:
        return PORT_HEADER.pack(self.crc, self.cmd, self.avail, self.len)

    @classmethod
    def decode(cls, data: Buffer, offset: int = 0) -> PortHeader:
        crc, cmd, avail, length = PORT_HEADER.unpack(data, offset)
        return cls(crc=crc, cmd=cmd, avail=avail, len=length)
