"""Replaying a capture: send the captured messages of one direction to a new peer.

Like python-can's player, with RPMsg's addressing on top: a captured endpoint's addresses
are not the new peer's, so the replay first creates one endpoint per captured service name
(the names come from the capture's own name-service messages) and waits until the new peer
binds each one; then it sends every message with the original spacing divided by ``speed``
(or back to back), from the endpoint standing in for the captured source, to the address the
new peer gave that service. Messages of endpoints that no name identifies go from an endpoint
at the captured source address (or any address, if taken) to the captured destination.
Name-service messages themselves are not replayed: the Device sends its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from rpmsg.capture.describe import ServiceTracker
from rpmsg.capture.reader import CapturedMessage, Interface, Record
from rpmsg.device import Device
from rpmsg.endpoint import Endpoint
from rpmsg.errors import AddressInUseError, InvalidArgumentError
from rpmsg.wire.rpmsg import ADDR_ANY, NS_ADDR


@dataclass
class ReplayPlan:
    """What to send: the messages of one direction of one captured link, and the service
    name (if any) of each captured source address."""

    interface: Interface
    direction: str
    messages: list[CapturedMessage]
    #: captured source address -> service name it belongs to
    names: dict[int, str] = field(default_factory=dict)


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


def plan_replay(records: Iterable[Record], direction: str = "tx",
                link: str | int | None = None) -> ReplayPlan:
    """Pick the messages to replay. ``link`` chooses the captured interface by index or
    name when the capture holds several; by default the only one with such messages."""
    if direction not in ("tx", "rx"):
        raise InvalidArgumentError(f"direction must be tx or rx, not {direction!r}")
    tracker = ServiceTracker()
    by_iface: dict[int, tuple[Interface, list[CapturedMessage], dict[int, str]]] = {}
    for rec in records:
        if not isinstance(rec, CapturedMessage):
            continue
        iface = rec.interface
        entry = by_iface.setdefault(iface.id, (iface, [], {}))
        service = tracker.service(iface.id, rec.direction, rec.src, rec.dst)
        tracker.feed(iface.id, rec.direction, rec.dst, rec.payload)
        if rec.direction != direction or rec.dst == NS_ADDR:
            continue
        entry[1].append(rec)
        if service is not None and rec.src not in entry[2]:
            entry[2][rec.src] = service
    candidates = [e for e in by_iface.values() if e[1]]
    if link is not None:
        candidates = [e for e in candidates
                      if e[0].id == link or e[0].name == link or str(e[0].id) == link]
        if not candidates:
            raise InvalidArgumentError(f"the capture has no {direction} messages on link "
                                       f"{link!r}")
    if not candidates:
        raise InvalidArgumentError(f"the capture holds no {direction} messages to replay")
    if len(candidates) > 1:
        names = ", ".join(f"{e[0].id}: {e[0].name}" for e in candidates)
        raise InvalidArgumentError(f"the capture holds {direction} messages of several links "
                                   f"({names}); choose one with --link")
    iface, messages, sources = candidates[0]
    return ReplayPlan(iface, direction, messages, sources)


class Replayer:
    """Binds the plan's services on ``device``, then sends the messages."""

    def __init__(self, device: Device, plan: ReplayPlan, *, speed: float | None = 1.0,
                 timeout: float = 10.0) -> None:
        if speed is not None and not speed > 0:
            raise InvalidArgumentError(f"speed must be > 0 (or max), not {speed!r}")
        self.device = device
        self.plan = plan
        self.speed = speed
        self.timeout = timeout
        self.result = ReplayResult()
        self._lock = threading.Lock()
        self._endpoints: dict[int, Endpoint] = {}
        self._dst_map: dict[int, int] = {}

    def _reply(self, ept: Endpoint, data: bytes, src: int) -> None:
        with self._lock:
            self.result.replies += 1

    def bind(self, say: Callable[[str], None] = lambda s: None) -> None:
        """Create the endpoints: one per named source (waiting for its binding), one per
        anonymous source."""
        for src in dict.fromkeys(m.src for m in self.plan.messages):
            name = self.plan.names.get(src)
            if name is not None:
                ept = self.device.create_endpoint(name, callback=self._reply)
                say(f"waiting for the peer to bind service {name!r}")
                dst = ept.wait_bound(self.timeout)
                captured = [m.dst for m in self.plan.messages if m.src == src]
                for old in dict.fromkeys(captured):
                    self._dst_map.setdefault(old, dst)
                self.result.bindings[name] = (captured[0], dst)
            else:
                try:
                    ept = self.device.create_endpoint(src=src, callback=self._reply)
                except AddressInUseError:
                    ept = self.device.create_endpoint(src=ADDR_ANY, callback=self._reply)
            self._endpoints[src] = ept

    def run(self) -> ReplayResult:
        """Send every message with the original timing scaled by ``speed``."""
        msgs = self.plan.messages
        start = time.monotonic()
        t0 = msgs[0].timestamp_ns if msgs else 0
        for m in msgs:
            if self.speed is not None:
                due = start + (m.timestamp_ns - t0) / 1e9 / self.speed
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            ept = self._endpoints[m.src]
            ept.send_to(self._dst_map.get(m.dst, m.dst), m.payload, timeout=self.timeout)
            self.result.sent += 1
            self.result.bytes += len(m.payload)
        self.result.seconds = time.monotonic() - start
        return self.result

    def close(self) -> None:
        for ept in self._endpoints.values():
            ept.close()


__all__ = ["ReplayPlan", "ReplayResult", "Replayer", "plan_replay"]
