"""Wire layouts, declared once: every encoder, decoder and test uses these declarations."""

from rpmsg.wire.layout import Field, Layout
from rpmsg.wire.linux import ENDPOINT_INFO, ENDPOINT_INFO_SIZE, EndpointInfo
from rpmsg.wire.port import PORT_HEADER, PORT_HEADER_SIZE, PortHeader
from rpmsg.wire.rpmsg import (
    ADDR_ANY,
    DEFAULT_BUFFER_SIZE,
    DEFAULT_MTU,
    HEADER_SIZE,
    NAME_SIZE,
    NS_ADDR,
    NS_MESSAGE,
    NS_MESSAGE_SIZE,
    RESERVED_ADDRESSES,
    RPMSG_HEADER,
    NsFlags,
    NsMessage,
    RpmsgHeader,
    decode_message,
    encode_message,
    encode_ns,
)

__all__ = [
    "ADDR_ANY",
    "DEFAULT_BUFFER_SIZE",
    "DEFAULT_MTU",
    "ENDPOINT_INFO",
    "ENDPOINT_INFO_SIZE",
    "HEADER_SIZE",
    "NAME_SIZE",
    "NS_ADDR",
    "NS_MESSAGE",
    "NS_MESSAGE_SIZE",
    "PORT_HEADER",
    "PORT_HEADER_SIZE",
    "RESERVED_ADDRESSES",
    "RPMSG_HEADER",
    "EndpointInfo",
    "Field",
    "Layout",
    "NsFlags",
    "NsMessage",
    "PortHeader",
    "RpmsgHeader",
    "decode_message",
    "encode_message",
    "encode_ns",
]
