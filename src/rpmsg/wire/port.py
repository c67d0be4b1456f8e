"""NuttX RPMsg Port header: 8 bytes at offset 0 of every port buffer and frame.

Facts: ``shared/spec/rpmsg-port.md`` §2.1.
"""

from __future__ import annotations

from dataclasses import dataclass

from rpmsg.wire.layout import Buffer, Layout

PORT_HEADER = Layout("rpmsg_port_header", [("crc", "H"), ("cmd", "H"), ("avail", "H"),
                                           ("len", "H")])
PORT_HEADER_SIZE = PORT_HEADER.size  # 8
#: The tx/rx CLOCK_MONOTONIC ns at the end of each buffer (current protocol only, §2.5).
TIMESTAMP_TRAILER = Layout("rpmsg_port_timestamp", [("tx_nsec", "Q"), ("rx_nsec", "Q")])
#: Bytes reserved at the end of each buffer for the tx/rx timestamps (current protocol only).
TIMESTAMP_TRAILER_SIZE = TIMESTAMP_TRAILER.size  # 16


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
