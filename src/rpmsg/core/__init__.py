"""Sans-IO RPMsg protocol core: policies, address allocation, endpoint table, name service."""

from rpmsg.core.core import (
    Bound,
    CoreStats,
    Dropped,
    EndpointRecord,
    Event,
    Note,
    NsReceived,
    RpmsgCore,
    Send,
    ServiceAnnounced,
    ServiceWithdrawn,
    Unbound,
)
from rpmsg.core.policy import LINUX, NUTTX, OPENAMP, PRESETS, Policy, get_policy

__all__ = [
    "LINUX",
    "NUTTX",
    "OPENAMP",
    "PRESETS",
    "Bound",
    "CoreStats",
    "Dropped",
    "EndpointRecord",
    "Event",
    "Note",
    "NsReceived",
    "Policy",
    "RpmsgCore",
    "Send",
    "ServiceAnnounced",
    "ServiceWithdrawn",
    "Unbound",
    "get_policy",
]
