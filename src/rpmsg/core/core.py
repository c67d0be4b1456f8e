"""The sans-IO RPMsg core: endpoint table, name service, implicit bind and dispatch.

The core takes received messages and local requests and answers with the endpoint to deliver
to plus a list of events (bindings, announcements, messages to send). It never does I/O, never
blocks and never holds a lock; the runtime in :mod:`rpmsg.device` drives it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rpmsg.core.addresses import AddressSpace
from rpmsg.core.policy import OPENAMP, Policy
from rpmsg.errors import AddressInUseError, DecodeError
from rpmsg.wire.layout import Buffer, encode_name
from rpmsg.wire.rpmsg import ADDR_ANY, NS_ADDR, NsFlags, NsMessage


@dataclass(eq=False)
class EndpointRecord:
    """The core's state of one local endpoint."""

    name: str
    addr: int
    dst: int
    #: Destination given at creation (not learned), restored when the link comes back.
    fixed_dst: int
    #: Whether this endpoint announces itself with NS CREATE when the link is up.
    announce: bool
    #: Whether an NS CREATE for it went out on the current link.
    announced: bool = False
    #: Whether ``dst`` is a service the remote announced (NS CREATE), which outlives this
    #: endpoint: on close it goes back to the list of available services.
    dst_is_service: bool = False
    #: Opaque slot for the runtime (the user-facing Endpoint object).
    owner: Any = None

    @property
    def bound(self) -> bool:
        return self.dst != ADDR_ANY


#: Notes kept between two :meth:`RpmsgCore.take_notes` calls.
NOTES_MAX = 1024
#: Announced services kept (not yet taken by a local endpoint). A peer that announces more
#: (a flood of CREATEs with new names or addresses) has the extra ones dropped and counted
#: (``ns_services_overflow``) instead of growing the list, and the lookups, without bound.
SERVICES_MAX = 1024

# Events -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """The runtime must transmit this message (an NS announcement or acknowledgement)."""

    src: int
    dst: int
    payload: bytes
    #: The name-service message the payload encodes (for logs; not part of equality).
    ns: NsMessage | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Bound:
    """A local endpoint now has destination ``dst``."""

    endpoint: EndpointRecord
    dst: int


@dataclass(frozen=True, slots=True)
class Unbound:
    """A local endpoint lost its destination (remote DESTROY, link down or peer restart)."""

    endpoint: EndpointRecord
    reason: str


@dataclass(frozen=True, slots=True)
class ServiceAnnounced:
    """The remote announced ``name`` at ``addr`` and no local endpoint took it (yet)."""

    name: str
    addr: int


@dataclass(frozen=True, slots=True)
class ServiceWithdrawn:
    """The remote withdrew a service (NS DESTROY) or the link went down."""

    name: str
    addr: int


# Notes: what happened, for logs, statistics and taps; the runtime need not act on them.


@dataclass(frozen=True, slots=True)
class NsReceived:
    """A valid name-service message arrived (its effects come as events)."""

    message: NsMessage


@dataclass(frozen=True, slots=True)
class Dropped:
    """A received message was dropped (and counted in :class:`CoreStats`): ``reason`` says why."""

    src: int
    dst: int
    reason: str


Event = Send | Bound | Unbound | ServiceAnnounced | ServiceWithdrawn
Note = NsReceived | Dropped


@dataclass
class CoreStats:
    """Counters: every message the core drops is counted under its reason."""

    rx_messages: int = 0
    rx_bytes: int = 0
    dropped_unknown_dst: int = 0
    ns_received: int = 0
    ns_invalid: int = 0
    ns_unmatched_destroy: int = 0
    ns_services_overflow: int = 0


@dataclass
class RpmsgCore:
    """Endpoint table and name-service state machine for one link to one remote."""

    policy: Policy = OPENAMP
    #: Whether the name service is enabled (virtio feature ``VIRTIO_RPMSG_F_NS``).
    ns_enabled: bool = True
    endpoints: dict[int, EndpointRecord] = field(default_factory=dict)
    #: Services the remote announced that no local endpoint has taken: (name, addr) in order.
    services: list[tuple[str, int]] = field(default_factory=list)
    stats: CoreStats = field(default_factory=CoreStats)
    link_up: bool = False
    events: list[Event] = field(default_factory=list)
    #: Observations for logs and taps (drops with their reason, NS messages received); at
    #: most :data:`NOTES_MAX` are kept between two :meth:`take_notes` (the counters count all).
    notes: list[Note] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.addresses = AddressSpace(self.policy)
        if self.ns_enabled:
            self.addresses.allocate(NS_ADDR)

    def take_events(self) -> list[Event]:
        """Return and clear the events produced since the last call."""
        events, self.events = self.events, []
        return events

    def take_notes(self) -> list[Note]:
        """Return and clear the notes produced since the last call."""
        notes, self.notes = self.notes, []
        return notes

    # Local requests ---------------------------------------------------------------------

    def create(self, name: str = "", src: int = ADDR_ANY, dst: int = ADDR_ANY,
               announce: bool | None = None) -> EndpointRecord:
        """Create a local endpoint; it is announced (now or on link up) per policy.

        A named endpoint created with ``dst`` ANY binds at once to a service of the same
        name the remote already announced and no one took, as an OpenAMP ``ns_bind_cb`` or
        a NuttX service match would.
        """
        if name:
            encode_name(name, "endpoint")
        if dst == NS_ADDR:
            raise AddressInUseError("address 53 belongs to the name service")
        if announce is None:
            announce = self.policy.should_announce(name, src, dst)
        if announce and not name:
            raise ValueError("an endpoint without a name cannot be announced")
        addr = self.addresses.allocate(src)
        rec = EndpointRecord(name=name, addr=addr, dst=dst, fixed_dst=dst, announce=announce)
        self.endpoints[addr] = rec
        taken = self._take_service(name) if name and dst == ADDR_ANY else None
        if taken is not None:
            rec.dst = taken
            rec.dst_is_service = True
            rec.announce = False
            self.events.append(Bound(rec, taken))
            self._ack(rec)
        elif rec.bound:
            if name and (name, dst) in self.services:  # created for an announced service
                self.services.remove((name, dst))
                rec.dst_is_service = True
            if self.link_up:
                self.events.append(Bound(rec, rec.dst))
                self._ack(rec)  # NuttX: a named endpoint with dest != ANY sends CREATE_ACK
        if rec.announce and self.link_up:
            self._announce(rec, NsFlags.CREATE)
        return rec

    def destroy(self, rec: EndpointRecord) -> None:
        """Remove a local endpoint; send NS DESTROY if the policy says so."""
        if self.endpoints.get(rec.addr) is not rec:
            return
        del self.endpoints[rec.addr]
        self.addresses.release(rec.addr)
        if not (self.ns_enabled and self.link_up and rec.name):
            return
        if rec.dst_is_service and rec.bound and (rec.name, rec.dst) not in self.services:
            self.services.append((rec.name, rec.dst))  # the remote endpoint is still there
        if rec.announced or (self.policy.destroy == "named"
                             and rec.addr >= self.policy.addr_min):
            msg = NsMessage(rec.name, rec.addr, NsFlags.DESTROY)
            self.events.append(Send(rec.addr, NS_ADDR, msg.encode(), msg))
        rec.announced = False

    def set_link_up(self) -> None:
        """The link to the remote is usable: announce endpoints, restore fixed bindings."""
        if self.link_up:
            return
        self.link_up = True
        for rec in list(self.endpoints.values()):
            if rec.fixed_dst != ADDR_ANY:
                rec.dst = rec.fixed_dst
                self.events.append(Bound(rec, rec.dst))
                self._ack(rec)
            if rec.announce:
                self._announce(rec, NsFlags.CREATE)

    def set_link_down(self, reason: str) -> None:
        """The remote went away or restarted: every binding and known service is dropped."""
        self.link_up = False
        for name, addr in self.services:
            self.events.append(ServiceWithdrawn(name, addr))
        self.services.clear()
        for rec in self.endpoints.values():
            rec.announced = False
            if rec.bound:
                rec.dst = ADDR_ANY
                rec.dst_is_service = False
                self.events.append(Unbound(rec, reason))

    # Received messages ------------------------------------------------------------------

    def receive(self, src: int, dst: int, payload: Buffer) -> EndpointRecord | None:
        """Dispatch one received message by destination.

        Returns the endpoint whose user gets the payload, or None when the core consumed it
        (name service) or dropped it (unknown destination, counted).
        """
        rec = self.endpoints.get(dst)
        stats = self.stats
        stats.rx_messages += 1
        stats.rx_bytes += len(payload)
        if rec is not None:
            if rec.dst == ADDR_ANY and src != ADDR_ANY:  # a sender of unknown address binds nothing
                rec.dst = src
                self.events.append(Bound(rec, src))
            return rec
        if dst == NS_ADDR and self.ns_enabled:
            self._receive_ns(src, payload)
        else:
            stats.dropped_unknown_dst += 1
            self._note(Dropped(src, dst, f"unknown destination {dst:#x}"))
        return None

    def _receive_ns(self, src: int, payload: Buffer) -> None:
        self.stats.ns_received += 1
        try:
            msg = NsMessage.decode(payload)
        except DecodeError as exc:
            self.stats.ns_invalid += 1
            self._note(Dropped(src, NS_ADDR, f"malformed name-service message: {exc}"))
            return
        if msg.addr == ADDR_ANY or msg.addr == NS_ADDR:
            self.stats.ns_invalid += 1
            self._note(Dropped(src, NS_ADDR, f"name-service message for {msg.name!r} "
                                                     f"with reserved address {msg.addr:#x}"))
            return
        self._note(NsReceived(msg))
        rec = self._match(msg.name, msg.addr)
        if msg.flags == NsFlags.DESTROY:
            self._forget_service(msg.name, msg.addr)
            if rec is not None and rec.dst == msg.addr:
                rec.dst = ADDR_ANY
                rec.dst_is_service = False
                self.events.append(Unbound(rec, f"remote destroyed {msg.name!r}"))
            elif rec is None:
                self.stats.ns_unmatched_destroy += 1
            return
        if rec is not None:
            if not rec.bound:
                rec.dst = msg.addr
                rec.dst_is_service = msg.flags == NsFlags.CREATE
                self.events.append(Bound(rec, msg.addr))
                if msg.flags == NsFlags.CREATE:
                    self._ack(rec)
            return
        if msg.flags == NsFlags.CREATE and (msg.name, msg.addr) not in self.services:
            if len(self.services) >= SERVICES_MAX:
                self.stats.ns_services_overflow += 1
                self._note(Dropped(src, NS_ADDR, f"announcement of {msg.name!r} at "
                                   f"{msg.addr:#x}: {SERVICES_MAX} services already known"))
                return
            self.services.append((msg.name, msg.addr))
            self.events.append(ServiceAnnounced(msg.name, msg.addr))

    # Helpers ----------------------------------------------------------------------------

    def _match(self, name: str, addr: int) -> EndpointRecord | None:
        """The local endpoint named ``name`` bound to ``addr``, else the first unbound one.

        OpenAMP takes the first of either in list order; preferring the exact binding keeps
        a DESTROY (or a duplicate CREATE) from landing on an unbound namesake instead.
        """
        unbound = None
        for rec in self.endpoints.values():
            if rec.name == name:
                if rec.dst == addr:
                    return rec
                if unbound is None and rec.dst == ADDR_ANY:
                    unbound = rec
        return unbound

    def _take_service(self, name: str) -> int | None:
        for i, (sname, addr) in enumerate(self.services):
            if sname == name:
                del self.services[i]
                return addr
        return None

    def _forget_service(self, name: str, addr: int) -> None:
        if (name, addr) in self.services:
            self.services.remove((name, addr))
            self.events.append(ServiceWithdrawn(name, addr))

    def _announce(self, rec: EndpointRecord, flags: NsFlags) -> None:
        if not self.ns_enabled:
            return
        msg = NsMessage(rec.name, rec.addr, flags)
        self.events.append(Send(rec.addr, NS_ADDR, msg.encode(), msg))
        if flags == NsFlags.CREATE:
            rec.announced = True

    def _note(self, note: Note) -> None:
        if len(self.notes) < NOTES_MAX:
            self.notes.append(note)

    def _ack(self, rec: EndpointRecord) -> None:
        if self.policy.create_ack and rec.name and self.link_up:
            self._announce(rec, NsFlags.CREATE_ACK)


__all__ = [
    "Bound",
    "CoreStats",
    "Dropped",
    "EndpointRecord",
    "Event",
    "Note",
    "NsReceived",
    "RpmsgCore",
    "Send",
    "ServiceAnnounced",
    "ServiceWithdrawn",
    "Unbound",
]
