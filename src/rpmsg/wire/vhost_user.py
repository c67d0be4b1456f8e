"""vhost-user protocol numbers and message layouts, as Linux UML 6.12 and QEMU speak them.

Facts: ``shared/spec/kernel-peer-uml.md`` §3 and the public vhost-user specification
(QEMU ``docs/interop/vhost-user.rst``). Every message is a 12-byte header (request, flags,
payload size) followed by the payload; file descriptors travel as ``SCM_RIGHTS``.
"""

from __future__ import annotations

import enum

from rpmsg.wire.layout import Layout

#: Protocol version carried in the low two bits of ``flags``.
VHOST_USER_VERSION = 1
VHOST_USER_VERSION_MASK = 0x3
#: ``flags`` bit: this message is a reply.
VHOST_USER_FLAG_REPLY = 0x4
#: ``flags`` bit: the sender wants an acknowledgement (REPLY_ACK protocol feature).
VHOST_USER_FLAG_NEED_REPLY = 0x8

#: Feature bit: the back-end supports GET/SET_PROTOCOL_FEATURES (and SET_VRING_ENABLE).
VHOST_USER_F_PROTOCOL_FEATURES = 30
#: Virtio feature bit: modern (little-endian) device.
VIRTIO_F_VERSION_1 = 32

#: In SET_VRING_KICK/CALL/ERR payloads: the low byte is the queue index and this bit says
#: that no file descriptor is attached (the front-end polls instead).
VHOST_USER_VRING_INDEX_MASK = 0xFF
VHOST_USER_VRING_NOFD_MASK = 0x100

#: Largest number of memory regions in one SET_MEM_TABLE (the spec's baseline).
VHOST_USER_MAX_REGIONS = 8
#: Upper bound we accept for one payload; the largest message we understand is far smaller.
VHOST_USER_MAX_PAYLOAD = 4096


class ProtocolFeature(enum.IntEnum):
    """Bits of the vhost-user protocol feature word."""

    MQ = 0
    LOG_SHMFD = 1
    RARP = 2
    REPLY_ACK = 3
    NET_MTU = 4
    BACKEND_REQ = 5
    CROSS_ENDIAN = 6
    CONFIG = 9
    INBAND_NOTIFICATIONS = 14


class Request(enum.IntEnum):
    """Front-end to back-end request codes."""

    GET_FEATURES = 1
    SET_FEATURES = 2
    SET_OWNER = 3
    RESET_OWNER = 4
    SET_MEM_TABLE = 5
    SET_LOG_BASE = 6
    SET_LOG_FD = 7
    SET_VRING_NUM = 8
    SET_VRING_ADDR = 9
    SET_VRING_BASE = 10
    GET_VRING_BASE = 11
    SET_VRING_KICK = 12
    SET_VRING_CALL = 13
    SET_VRING_ERR = 14
    GET_PROTOCOL_FEATURES = 15
    SET_PROTOCOL_FEATURES = 16
    GET_QUEUE_NUM = 17
    SET_VRING_ENABLE = 18
    SEND_RARP = 19
    NET_SET_MTU = 20
    SET_BACKEND_REQ_FD = 21
    IOTLB_MSG = 22
    SET_VRING_ENDIAN = 23
    GET_CONFIG = 24
    SET_CONFIG = 25


VHOST_USER_HEADER = Layout("vhost_user_header", [("request", "I"), ("flags", "I"), ("size", "I")])
VHOST_USER_U64 = Layout("vhost_user_u64", [("value", "Q")])
VHOST_USER_VRING_STATE = Layout("vhost_user_vring_state", [("index", "I"), ("num", "I")])
VHOST_USER_VRING_ADDR = Layout(
    "vhost_user_vring_addr",
    [("index", "I"), ("flags", "I"), ("desc", "Q"), ("used", "Q"), ("avail", "Q"), ("log", "Q")],
)
VHOST_USER_MEMORY = Layout("vhost_user_memory", [("nregions", "I"), ("padding", "I")])
VHOST_USER_MEM_REGION = Layout(
    "vhost_user_mem_region",
    [("guest_addr", "Q"), ("size", "Q"), ("user_addr", "Q"), ("mmap_offset", "Q")],
)
