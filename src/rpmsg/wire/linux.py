"""Linux ``struct rpmsg_endpoint_info`` (uapi ``linux/rpmsg.h``), the argument of the ioctls."""

from __future__ import annotations

from dataclasses import dataclass

from rpmsg.wire.layout import Buffer, Layout, decode_name, encode_name
from rpmsg.wire.rpmsg import ADDR_ANY, NAME_SIZE

ENDPOINT_INFO = Layout(
    "rpmsg_endpoint_info", [("name", f"{NAME_SIZE}s"), ("src", "I"), ("dst", "I")]
)
ENDPOINT_INFO_SIZE = ENDPOINT_INFO.size  # 40


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """Name and addresses of an endpoint or channel, as the kernel's ioctls take them."""

    name: str
    src: int = ADDR_ANY
    dst: int = ADDR_ANY

    def __post_init__(self) -> None:
        encode_name(self.name, ENDPOINT_INFO.name)  # validate early: too long is an error
        for field in ("src", "dst"):
            value = getattr(self, field)
            if not 0 <= value <= 0xFFFFFFFF:
                raise ValueError(f"rpmsg_endpoint_info.{field} {value} is not a u32")

    def encode(self) -> bytes:
        return ENDPOINT_INFO.pack(encode_name(self.name, ENDPOINT_INFO.name), self.src, self.dst)

    @classmethod
    def decode(cls, data: Buffer, offset: int = 0) -> EndpointInfo:
        raw, src, dst = ENDPOINT_INFO.unpack(data, offset)
        return cls(name=decode_name(raw), src=src, dst=dst)
