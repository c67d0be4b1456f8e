"""RPMsg message header and name-service message, shared by every transport.

Facts: ``shared/spec/rpmsg-virtio.md`` §1-2 (Linux ``virtio_rpmsg_bus``/``rpmsg_ns``, OpenAMP).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rpmsg.wire.layout import Buffer, Layout, decode_name, encode_name

#: Wildcard address: "allocate one for me" (src) or "not bound yet" (dst). Never sent.
ADDR_ANY = 0xFFFFFFFF
#: Addresses below this are never allocated dynamically.
RESERVED_ADDRESSES = 1024
#: The name-service endpoint address, on both sides.
NS_ADDR = 53
#: Size of the name field of NS messages and ``rpmsg_endpoint_info``, NUL included.
NAME_SIZE = 32
#: Default buffer size of Linux and OpenAMP; the payload limit is this minus the header.
DEFAULT_BUFFER_SIZE = 512

RPMSG_HEADER = Layout(
    "rpmsg_hdr",
    [("src", "I"), ("dst", "I"), ("reserved", "I"), ("len", "H"), ("flags", "H")],
)
HEADER_SIZE = RPMSG_HEADER.size  # 16
DEFAULT_MTU = DEFAULT_BUFFER_SIZE - HEADER_SIZE  # 496

NS_MESSAGE = Layout("rpmsg_ns_msg", [("name", f"{NAME_SIZE}s"), ("addr", "I"), ("flags", "I")])
NS_MESSAGE_SIZE = NS_MESSAGE.size  # 40
#: Smallest payload a link may be configured for: a name-service message must fit, else the
#: link could never announce or bind an endpoint. Every transport's size options derive
#: their minimum from this (vring buffer >= 56 bytes; port buffers add their own headers).
MIN_MTU = NS_MESSAGE_SIZE


class NsFlags(enum.IntEnum):
    """Name-service message kinds. CREATE_ACK is NuttX's addition (OpenAMP patch 0001)."""

    CREATE = 0
    DESTROY = 1
    CREATE_ACK = 2


@dataclass(frozen=True, slots=True)
class RpmsgHeader:
    """The 16-byte header in front of every RPMsg payload."""

    src: int
    dst: int
    len: int
    flags: int = 0
    reserved: int = 0

    def encode(self) -> bytes:
        return RPMSG_HEADER.pack(self.src, self.dst, self.reserved, self.len, self.flags)

    @classmethod
    def decode(cls, data: Buffer, offset: int = 0) -> RpmsgHeader:
        src, dst, reserved, length, flags = RPMSG_HEADER.unpack(data, offset)
        return cls(src=src, dst=dst, len=length, flags=flags, reserved=reserved)


def encode_message(src: int, dst: int, payload: Buffer) -> bytes:
    """Header plus payload, as one buffer on the wire (reserved and flags zero)."""
    return RPMSG_HEADER.pack(src, dst, 0, len(payload), 0) + bytes(payload)


def decode_message(data: Buffer, offset: int = 0) -> tuple[RpmsgHeader, memoryview]:
    """Split ``data`` into header and payload; the header length must fit the buffer."""
    hdr = RpmsgHeader.decode(data, offset)
    room = len(data) - offset - HEADER_SIZE
    if hdr.len > room:
        raise RPMSG_HEADER.error("len", f"payload length {hdr.len} exceeds the {room} bytes "
                                 "that follow the header", offset)
    start = offset + HEADER_SIZE
    return hdr, memoryview(data)[start : start + hdr.len]


@dataclass(frozen=True, slots=True)
class NsMessage:
    """A name-service announcement: ``name`` lives at ``addr`` (CREATE/DESTROY/CREATE_ACK)."""

    name: str
    addr: int
    flags: NsFlags = NsFlags.CREATE

    def encode(self) -> bytes:
        return NS_MESSAGE.pack(encode_name(self.name, NS_MESSAGE.name), self.addr, int(self.flags))

    @classmethod
    def decode(cls, data: Buffer, offset: int = 0) -> NsMessage:
        """Decode exactly 40 bytes; both Linux and OpenAMP ignore other lengths."""
        if len(data) - offset != NS_MESSAGE_SIZE:
            if len(data) - offset < NS_MESSAGE_SIZE:
                NS_MESSAGE.check_size(data, offset)
            raise NS_MESSAGE.error(
                "flags", f"message is {len(data) - offset} bytes, must be exactly "
                f"{NS_MESSAGE_SIZE}", offset)
        raw_name, addr, flags = NS_MESSAGE.unpack(data, offset)
        try:
            kind = NsFlags(flags)
        except ValueError:
            raise NS_MESSAGE.error("flags", f"unknown name-service flags {flags:#x}",
                                   offset) from None
        return cls(name=decode_name(raw_name), addr=addr, flags=kind)


def encode_ns(src: int, msg: NsMessage) -> bytes:
    """A complete NS message as sent on the wire: header to NS_ADDR from ``src``, then body."""
    return encode_message(src, NS_ADDR, msg.encode())
