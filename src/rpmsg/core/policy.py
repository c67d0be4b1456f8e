"""Peer behaviour as explicit policy: who announces, CREATE_ACK, address range, send rules.

Facts: ``shared/spec/rpmsg-virtio.md`` §1.4, §2.3 (Linux, OpenAMP) and ``rpmsg-port.md`` §5
(NuttX). Presets name the behaviour of each stack; transports pick one as their default.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from rpmsg.errors import ArgumentTypeError, InvalidURLError
from rpmsg.wire.rpmsg import ADDR_ANY, RESERVED_ADDRESSES

Announce = Literal["dst-any", "explicit-src", "never"]
DestroyRule = Literal["announced", "named"]
Allocation = Literal["lowest", "next-fit"]


@dataclass(frozen=True)
class Policy:
    """How the local RPMsg core behaves; each field is one documented peer difference."""

    name: str
    #: Lowest dynamically allocated address.
    addr_min: int = RESERVED_ADDRESSES
    #: Highest dynamically allocated address (inclusive).
    addr_max: int = ADDR_ANY - 1
    #: ``lowest``: lowest free address (Linux idr). ``next-fit``: rotating search (OpenAMP).
    allocation: Allocation = "lowest"
    #: When a named endpoint is announced with NS CREATE: created with ``dst == ANY``
    #: (OpenAMP, NuttX), created with an explicit ``src`` (Linux channels), or never.
    announce: Announce = "dst-any"
    #: Answer a CREATE that binds a named endpoint with CREATE_ACK (NuttX patch 0001).
    create_ack: bool = False
    #: Send NS DESTROY on close for endpoints that were ``announced`` (Linux) or for every
    #: ``named`` endpoint at a dynamic address (OpenAMP, NuttX).
    destroy: DestroyRule = "announced"
    #: A send on an unbound endpoint waits (within its timeout) for the binding (NuttX)
    #: instead of failing at once (Linux, OpenAMP).
    wait_bound_on_send: bool = False

    def with_changes(self, **changes: object) -> Policy:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def should_announce(self, name: str, src: int, dst: int) -> bool:
        """Whether an endpoint created with these arguments sends NS CREATE."""
        if not name or self.announce == "never":
            return False
        if self.announce == "dst-any":
            return dst == ADDR_ANY
        return src != ADDR_ANY


#: Linux ``virtio_rpmsg_bus``: unbounded idr from 1024, announces only channels it creates
#: with an explicit source address, never sends CREATE_ACK.
LINUX = Policy("linux", addr_max=0x7FFFFFFF, allocation="lowest", announce="explicit-src",
               destroy="announced")
#: OpenAMP: 128-bit address bitmap (1024..1151), announces named endpoints created with
#: ``dst == ANY``, sends DESTROY for named endpoints at dynamic addresses.
OPENAMP = Policy("openamp", addr_max=1151, allocation="next-fit", announce="dst-any",
                 destroy="named")
#: NuttX: OpenAMP plus CREATE_ACK, and sends that wait for the binding.
NUTTX = Policy("nuttx", addr_max=1151, allocation="next-fit", announce="dst-any",
               create_ack=True, destroy="named", wait_bound_on_send=True)

PRESETS: dict[str, Policy] = {p.name: p for p in (LINUX, OPENAMP, NUTTX)}


def get_policy(name: str | Policy) -> Policy:
    """Look a preset up by name (``linux``, ``openamp``, ``nuttx``); policies pass through."""
    if isinstance(name, Policy):
        return name
    if not isinstance(name, str):
        raise ArgumentTypeError(f"policy must be a name or a Policy, not {type(name).__name__}")
    try:
        return PRESETS[name.lower()]
    except KeyError:
        raise InvalidURLError(
            f"unknown policy {name!r}; choose one of {', '.join(sorted(PRESETS))}") from None
