"""Replaying a capture: send the captured messages of one direction to a new peer.

Like python-can's player, with RPMsg's addressing on top: the captured addresses are not the
new peer's, so each message is tied to the service it belonged to when captured (from the
capture's own name-service messages, forgotten at each link-down or restart). The replay
first creates one endpoint per service and waits until the new peer binds each one; then it
sends every message with the original spacing divided by ``speed`` (or back to back), from
that service's endpoint to the address the new peer gave the service. Messages no service
names go from an endpoint at the captured source address (or any address, if taken) to the
captured destination. Name-service messages are not replayed: the Device sends its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from rpmsg.capture.describe import RESETS, ServiceTracker
from rpmsg.capture.reader import CapturedEvent, CapturedMessage, Interface, Record
from rpmsg.device import Device
from rpmsg.endpoint import Endpoint
from rpmsg.errors import AddressInUseError, InvalidArgumentError
from rpmsg.wire.rpmsg import ADDR_ANY, NS_ADDR

#: Longest single sleep between two messages: a pause of any length (a capture's timestamps
#: are the file's word, perhaps centuries apart) is waited in slices the OS accepts.
SLEEP_SLICE = 3600.0
#: A pause longer than this is announced through ``say`` before it starts.
NOTICE_AFTER = 1.0


@dataclass(frozen=True)
class ReplayItem:
    """One message to send, with the service it belonged to when it was captured (None if
    no name-service message named it) and whether it went to that service's announced
    address (then it goes to the new peer's address for the service)."""

    message: CapturedMessage
    service: str | None
    to_peer: bool


@dataclass
class ReplayPlan:
    """What to send: the messages of one direction of one captured link."""

    interface: Interface
    direction: str
    items: list[ReplayItem]

    @property
    def messages(self) -> list[CapturedMessage]:
        return [i.message for i in self.items]

    @property
    def services(self) -> list[str]:
        """The service names to bind, in order of first use."""
        return list(dict.fromkeys(i.service for i in self.items if i.service is not None))


@dataclass
class ReplayResult:
    sent: int = 0
    bytes: int = 0
    replies: int = 0
    seconds: float = 0.0
    #: service name -> (captured peer address, new peer address)
    bindings: dict[str, tuple[int, int]] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        return {"sent": self.sent, "bytes": self.bytes, "replies": self.replies,
                "seconds": round(self.seconds, 6),
                "bindings": {k: {"captured": v[0], "now": v[1]}
                             for k, v in self.bindings.items()}}


_Link = tuple[Interface, list[ReplayItem]]


def plan_replay(records: Iterable[Record], direction: str = "tx",
                link: str | int | None = None) -> ReplayPlan:
    """Pick the messages to replay. ``link`` chooses the captured interface by index or
    name when the capture holds several; by default the only one with such messages."""
    if direction not in ("tx", "rx"):
        raise InvalidArgumentError(f"direction must be tx or rx, not {direction!r}")
    iface, items = _one_link(_items_by_link(records, direction), direction, link)
    return ReplayPlan(iface, direction, items)


def _items_by_link(records: Iterable[Record], direction: str) -> list[_Link]:
    """Each captured link's messages of ``direction`` (not name-service ones), with the
    service each belongs to, as the capture's name-service messages tell."""
    tracker = ServiceTracker()
    by_iface: dict[int, _Link] = {}
    for rec in records:
        if isinstance(rec, CapturedEvent) and rec.kind in RESETS:
            tracker.forget(rec.interface.id)
        if not isinstance(rec, CapturedMessage):
            continue
        iface = rec.interface
        entry = by_iface.setdefault(iface.id, (iface, []))
        service, to_peer = tracker.lookup(iface.id, rec.direction, rec.src, rec.dst)
        tracker.feed(iface.id, rec.direction, rec.dst, rec.payload)
        if rec.direction == direction and rec.dst != NS_ADDR:
            entry[1].append(ReplayItem(rec, service, to_peer))
    return list(by_iface.values())


def _names(iface: Interface, link: str | int) -> bool:
    """Whether ``--link`` names ``iface`` (by index, as a number or text, or by name)."""
    return iface.id == link or iface.name == link or str(iface.id) == link


def _one_link(links: list[_Link], direction: str, link: str | int | None) -> _Link:
    """The link to replay: the one ``link`` names, else the only one with messages."""
    candidates = [e for e in links if e[1]]
    if link is not None:
        candidates = [e for e in candidates if _names(e[0], link)]
        if not candidates:
            raise InvalidArgumentError(f"the capture has no {direction} messages on link "
                                       f"{link!r}")
    if not candidates:
        raise InvalidArgumentError(f"the capture holds no {direction} messages to replay")
    if len(candidates) > 1:
        names = ", ".join(f"{e[0].id}: {e[0].name}" for e in candidates)
        raise InvalidArgumentError(f"the capture holds {direction} messages of several links "
                                   f"({names}); choose one with --link")
    return candidates[0]


class Replayer:
    """Binds the plan's services on ``device``, then sends the messages."""

    def __init__(self, device: Device, plan: ReplayPlan, *, speed: float | None = 1.0,
                 timeout: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if speed is not None and not speed > 0:
            raise InvalidArgumentError(f"speed must be > 0 (or max), not {speed!r}")
        self.device = device
        self.plan = plan
        self.speed = speed
        self.timeout = timeout
        self._clock = clock
        self._sleep = sleep
        self.result = ReplayResult()
        self._lock = threading.Lock()
        self._by_service: dict[str, Endpoint] = {}
        self._by_src: dict[int, Endpoint] = {}

    def _reply(self, ept: Endpoint, data: bytes, src: int) -> None:
        with self._lock:
            self.result.replies += 1

    def bind(self, say: Callable[[str], None] = lambda s: None) -> None:
        """One endpoint per service, each waiting until the new peer binds it; one per
        source address of the messages no service names."""
        for name in self.plan.services:
            ept = self.device.create_endpoint(name, callback=self._reply)
            self._by_service[name] = ept
            say(f"waiting for the peer to bind service {name!r}")
            dst = ept.wait_bound(self.timeout)
            captured = next((i.message.dst for i in self.plan.items
                             if i.service == name and i.to_peer), ADDR_ANY)
            self.result.bindings[name] = (captured, dst)
        for item in self.plan.items:
            src = item.message.src
            if item.service is None and src not in self._by_src:
                try:
                    ept = self.device.create_endpoint(src=src, callback=self._reply)
                except AddressInUseError:
                    ept = self.device.create_endpoint(src=ADDR_ANY, callback=self._reply)
                self._by_src[src] = ept

    def run(self, say: Callable[[str], None] = lambda s: None) -> ReplayResult:
        """Send every message with the original timing scaled by ``speed``; a pause longer
        than :data:`NOTICE_AFTER` is announced through ``say`` first."""
        items = self.plan.items
        start = self._clock()
        t0 = items[0].message.timestamp_ns if items else 0
        for n, item in enumerate(items, 1):
            m = item.message
            if self.speed is not None:
                due = start + (m.timestamp_ns - t0) / 1e9 / self.speed
                delay = due - self._clock()
                if delay > NOTICE_AFTER:
                    say(f"waiting {delay:.1f} s before message {n} of {len(items)} (the "
                        f"captured spacing; --speed max sends without waiting)")
                if delay > 0:
                    self._wait_until(due)
            if item.service is not None:
                ept = self._by_service[item.service]
                dst = ept.dst if item.to_peer else m.dst
            else:
                ept, dst = self._by_src[m.src], m.dst
            ept.send_to(dst, m.payload, timeout=self.timeout)
            self.result.sent += 1
            self.result.bytes += len(m.payload)
        self.result.seconds = self._clock() - start
        return self.result

    def _wait_until(self, due: float) -> None:
        while True:
            left = due - self._clock()
            if left <= 0:
                return
            self._sleep(min(left, SLEEP_SLICE))

    def close(self) -> None:
        for ept in [*self._by_service.values(), *self._by_src.values()]:
            ept.close()


__all__ = ["ReplayItem", "ReplayPlan", "ReplayResult", "Replayer", "plan_replay"]
