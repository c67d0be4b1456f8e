"""Device.deliver_many gives exactly what one Device.deliver per message gives.

Two Devices are set up alike (queue endpoints that hold or drop when full, a zero-copy one,
a callback endpoint whose messages close an endpoint, create one or read another's queue,
and a service handler that creates an endpoint for each announced service). One gets a
random stream of messages (data, name service, malformed NS, unknown destinations, with and
without a release) one ``deliver`` at a time, the other the same stream cut into random
``deliver_many`` batches. Everything observable must match: what each endpoint receives and
in which order, callback and handler calls (and what they saw), the name-service messages
sent, counters, tap records and which buffers were released; and in the end every release
was called exactly once.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

import pytest
from foundation_helpers import wait_until
from hypothesis import given, settings
from hypothesis import strategies as st

import rpmsg
from rpmsg import WouldBlockError
from rpmsg.rxqueue import RxQueue
from rpmsg.transport import Delivery, Link, LinkSink, batch_delivery, deliver_each
from rpmsg.wire import NS_ADDR, NsFlags, NsMessage
from rpmsg.wire.layout import Buffer

REMOTE = 0x40
QA, QB, ZC, CB, MADE = 0x30, 0x31, 0x32, 0x33, 0x60
SERVICES = {"s1": 0x50, "s2": 0x51}
#: Where the endpoints the service handler creates land (allocated from the policy's
#: first dynamic address, in creation order), and an address nobody has.
DYNAMIC = (0x400, 0x401, 0x402)
UNKNOWN = 0x999


class FakeLink(Link):
    role = "fake"

    def __init__(self) -> None:
        self.sent: list[tuple[int, int, bytes]] = []

    def start(self, sink: LinkSink) -> None:
        self.sink = sink

    def send(self, src: int, dst: int, payload: Buffer, timeout: float | None) -> None:
        self.sent.append((src, dst, bytes(payload)))

    def close(self, timeout: float | None = None) -> None:
        pass


class RecordingTap:
    """Records what a Device shows; ``batched`` adds the optional batch method."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, int, int, bytes]] = []
        self.events: list[tuple[str, str]] = []
        self.batches = 0

    def message(self, direction: str, src: int, dst: int, payload: Buffer,
                flags: int = 0) -> None:
        self.messages.append((direction, src, dst, bytes(payload)))

    def event(self, kind: str, detail: str = "") -> None:
        self.events.append((kind, detail))

    def frame(self, *args: object) -> None:
        pass

    def close(self) -> None:
        pass


class BatchTap(RecordingTap):
    def message_batch(self, direction: str, batch: Sequence[tuple[Any, ...]]) -> None:
        self.batches += 1
        for item in batch:
            self.message(direction, item[0], item[1], item[2])


class World:
    """One Device with its endpoints, and everything observed of it."""

    def __init__(self, batched_tap: bool = False) -> None:
        self.link = FakeLink()
        self.tap = BatchTap() if batched_tap else RecordingTap()
        self.dev = rpmsg.Device(self.link, tap=self.tap)
        self.dev.link_up()
        self.log: list[tuple[Any, ...]] = []
        self.released: collections.Counter[int] = collections.Counter()
        dev = self.dev
        self.epts = {
            QA: dev.create_endpoint(src=QA, dst=REMOTE, queue=2, hold=None),
            QB: dev.create_endpoint(src=QB, queue=2, hold=0),
            ZC: dev.create_endpoint(src=ZC, dst=REMOTE, zero_copy=True, queue=3, hold=0),
            CB: dev.create_endpoint(src=CB, dst=REMOTE, callback=self._on_message),
        }
        dev.on_service(None, self._on_service)

    def _on_message(self, ept: rpmsg.Endpoint, data: bytes, src: int) -> None:
        qa = self.epts[QA]
        self.log.append(("cb", src, data, qa.pending, self.epts[QB].closed))
        if data.endswith(b"close-qb"):
            self.epts[QB].close()
        elif data.endswith(b"make") and MADE not in self.epts:
            self.epts[MADE] = self.dev.create_endpoint(src=MADE, queue=4, hold=0)
        elif data.endswith(b"peek"):
            try:
                self.log.append(("peek", qa.recv(timeout=0)))
            except WouldBlockError:
                self.log.append(("peek", None))

    def _on_service(self, dev: rpmsg.Device, name: str, addr: int) -> None:
        ept = dev.create_endpoint(name, queue=3, hold=0)
        self.epts[ept.addr] = ept
        self.log.append(("service", name, addr, ept.addr, ept.dst))

    def releaser(self, ident: int) -> rpmsg.transport.Release:
        def release() -> None:
            self.released[ident] += 1
        return release

    def items(self, stream: list[tuple[int, int, bytes, bool]]) -> list[Delivery]:
        return [(src, dst, data, self.releaser(k) if with_release else None)
                for k, (src, dst, data, with_release) in enumerate(stream)]

    def observed(self) -> dict[str, Any]:
        """Everything comparable now (before the queues are read)."""
        stats = self.dev.stats()
        return {
            "log": list(self.log), "sent": list(self.link.sent),
            "released": dict(self.released), "stats": stats,
            # A batch is shown to the tap as it arrived, before what its messages cause
            # (drops, name-service replies): each direction in order, events as a set.
            "tap_rx": [m for m in self.tap.messages if m[0] == "rx"],
            "tap_tx": [m for m in self.tap.messages if m[0] == "tx"],
            "tap_events": collections.Counter(self.tap.events),
            "endpoints": {a: (e.closed, e.dst, e.stats()) for a, e in self.epts.items()},
        }

    def drain(self) -> dict[int, list[tuple[int, bytes]]]:
        """Read every queue empty (held messages follow as room is made)."""
        out: dict[int, list[tuple[int, bytes]]] = {}
        for addr, ept in sorted(self.epts.items()):
            got: list[tuple[int, bytes]] = []
            if not ept.closed and ept.callback is None:
                while True:
                    try:
                        buf = ept.recv_buffer(timeout=0)
                    except (WouldBlockError, rpmsg.RpmsgError):
                        break
                    got.append((buf.src, bytes(buf.data)))
                    buf.release()
            out[addr] = got
        return out


def message(kind: str, k: int, arg: int) -> tuple[int, int, bytes]:
    """One message of the stream: (src, dst, payload)."""
    if kind == "ns":
        name = sorted(SERVICES)[arg % 2]
        flags = (NsFlags.CREATE, NsFlags.DESTROY)[arg // 2 % 2]
        return SERVICES[name], NS_ADDR, NsMessage(name, SERVICES[name], flags).encode()
    if kind == "bad-ns":
        return REMOTE, NS_ADDR, bytes(arg % 40)
    if kind == "cb":
        command = (b"", b"close-qb", b"make", b"peek")[arg % 4]
        return REMOTE, CB, b"m%d:" % k + command
    dst = {"qa": QA, "qb": QB, "zc": ZC, "dyn": DYNAMIC[arg % 3], "made": MADE,
           "unknown": UNKNOWN}[kind]
    src = REMOTE + arg % 3  # several senders: QB binds to the first one
    return src, dst, b"m%d" % k


KINDS = ("qa", "qa", "qb", "zc", "cb", "dyn", "dyn", "made", "ns", "ns", "bad-ns", "unknown")
streams = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 11), st.booleans()),
                   min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(stream=streams, cuts=st.lists(st.integers(1, 20), min_size=1, max_size=60),
       batched_tap=st.booleans())
def test_batches_match_one_delivery_per_message(
        stream: list[tuple[str, int, bool]], cuts: list[int], batched_tap: bool) -> None:
    messages = [(*message(kind, k, arg), with_release)
                for k, (kind, arg, with_release) in enumerate(stream)]
    one, many = World(), World(batched_tap)
    try:
        for src, dst, data, release in one.items(messages):
            one.dev.deliver(src, dst, data, release)
        items = many.items(messages)
        at = 0
        for cut in cuts * (len(items) // len(cuts) + 1):
            if at >= len(items):
                break
            many.dev.deliver_many(items[at:at + cut])
            at += cut
        assert many.observed() == one.observed()
        assert many.drain() == one.drain()
        assert many.observed() == one.observed()
    finally:
        one.dev.close()
        many.dev.close()
    for world in (one, many):
        assert all(n == 1 for n in world.released.values()), world.released
        assert set(world.released) == {k for k, m in enumerate(messages) if m[3]}


def test_service_announced_earlier_in_the_batch_receives_its_message() -> None:
    world = World()
    try:
        world.dev.deliver_many([
            (0x50, NS_ADDR, NsMessage("s1", 0x50).encode(), None),
            (0x50, DYNAMIC[0], b"first", None),
            (REMOTE, CB, b"make", None),
            (REMOTE, MADE, b"second", None),
        ])
        assert world.log[0] == ("service", "s1", 0x50, DYNAMIC[0], 0x50)
        assert world.epts[DYNAMIC[0]].recv(timeout=0) == b"first"
        assert world.epts[MADE].recv(timeout=0) == b"second"
        assert world.dev.stats()["dropped_unknown_dst"] == 0
    finally:
        world.dev.close()


def test_one_wake_and_one_timestamp_per_endpoint_share() -> None:
    world = World()
    try:
        ept = world.dev.create_endpoint(src=0x70, dst=REMOTE, queue=64)
        world.dev.deliver_many([(REMOTE, 0x70, b"%d" % i, None) for i in range(10)])
        got = [ept.recv_message(timeout=0) for _ in range(10)]
        assert [m.data for m in got] == [b"%d" % i for i in range(10)]
        assert len({m.timestamp for m in got}) == 1
        assert world.tap.messages[-10:] == [("rx", REMOTE, 0x70, b"%d" % i) for i in range(10)]
    finally:
        world.dev.close()


def test_full_queue_in_a_batch_holds_and_counts_like_single_deliveries() -> None:
    world = World()
    try:
        rel = [world.releaser(k) for k in range(6)]
        # QA holds (hold=None): two copied (their buffers released at once), the rest held
        # in the transport's buffers; one without a release cannot be held: dropped.
        world.dev.deliver_many([(REMOTE, QA, b"%d" % k, rel[k]) for k in range(4)]
                               + [(REMOTE, QA, b"no-release", None)])
        assert world.epts[QA].pending == 4
        assert dict(world.released) == {0: 1, 1: 1}
        assert world.dev.stats()["dropped_queue_full"] == 1
        assert [world.epts[QA].recv(timeout=0) for _ in range(4)] == [b"0", b"1", b"2", b"3"]
        assert dict(world.released) == {0: 1, 1: 1, 2: 1, 3: 1}
        # QB drops at once when full (hold=0), releasing the dropped buffers now.
        world.dev.deliver_many([(REMOTE, QB, b"%d" % k, rel[k]) for k in (4, 5)]
                               + [(REMOTE, QB, b"x", world.releaser(9))])
        assert world.released[9] == 1
        assert ("drop", f"receive queue of '' at {QB:#x} full") in world.tap.events
    finally:
        world.dev.close()


def test_a_failing_batch_releases_what_the_core_never_saw(
        monkeypatch: pytest.MonkeyPatch) -> None:
    world = World()
    try:
        real = world.dev.core.receive
        calls = []

        def receive(src: int, dst: int, payload: Buffer) -> object:
            calls.append(dst)
            if len(calls) == 3:
                raise RuntimeError("a bug")
            return real(src, dst, payload)

        monkeypatch.setattr(world.dev.core, "receive", receive)
        items = world.items([(REMOTE, QA, b"%d" % k, True) for k in range(6)])
        with pytest.raises(RuntimeError, match="a bug"):
            world.dev.deliver_many(items)
        assert dict(world.released) == {3: 1, 4: 1, 5: 1}  # after the failing one
    finally:
        world.dev.close()


def test_deliver_each_is_the_fallback_for_sinks_without_batches() -> None:
    seen: list[bytes] = []
    released: list[int] = []

    class OldSink:
        def link_up(self, detail: str = "") -> None: ...
        def link_down(self, reason: str, *, restart: bool = False) -> None: ...
        def broken(self, error: Exception) -> None: ...

        def deliver(self, src: int, dst: int, payload: Buffer,
                    release: rpmsg.transport.Release | None = None) -> None:
            if bytes(payload) == b"bad":
                raise ValueError("no")
            seen.append(bytes(payload))
            if release is not None:
                release()

    sink = OldSink()
    many = batch_delivery(sink)
    def releaser(k: int) -> rpmsg.transport.Release:
        return lambda: released.append(k)

    batch: list[Delivery] = [(1, 2, data, releaser(k))
                             for k, data in enumerate([b"a", b"b", b"bad", b"c"])]
    with pytest.raises(ValueError):
        many(batch)
    assert seen == [b"a", b"b"]
    assert released == [0, 1, 2, 3]  # the failing one and those after it by the fallback
    world = World()
    try:
        assert batch_delivery(world.dev) == world.dev.deliver_many
    finally:
        world.dev.close()
    with pytest.raises(ValueError):
        deliver_each(sink, [(1, 2, b"bad", None)])


def test_rxqueue_put_many_releases_copies_and_drops_once() -> None:
    q = RxQueue(0x30, capacity=2, hold=0)
    released: list[int] = []
    def releaser(k: int) -> rpmsg.transport.Release:
        return lambda: released.append(k)

    items: list[Delivery] = [(1, 0x30, b"%d" % k, releaser(k)) for k in range(4)]
    assert q.put_many(items, 5.0) == (2, 0, False)
    assert released == [0, 1, 2, 3]
    assert q.get_many(10, 0, lambda: None) == [(1, b"0", 5.0), (1, b"1", 5.0)]
    q.close()
    assert q.put_many(items[:1]) == (0, 1, False)
    assert released == [0, 1, 2, 3, 0]


def test_messages_for_a_closing_endpoint_are_dropped_and_counted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch arriving between Endpoint.close closing its queue and the core forgetting it."""
    world = World()
    try:
        dev = world.dev
        ept = dev.create_endpoint(src=0x70, dst=REMOTE, zero_copy=True)
        original = dev.remove_endpoint

        def racing_destroy(rec: Any) -> None:
            dev.deliver_many(world.items([(REMOTE, 0x70, b"late", True)] * 2))
            original(rec)

        monkeypatch.setattr(dev, "remove_endpoint", racing_destroy)
        ept.close()
        assert dict(world.released) == {0: 1, 1: 1}
        assert dev.stats()["dropped_closed"] == 2
        assert dev.stats()["dropped_unknown_dst"] == 0
    finally:
        world.dev.close()


def test_a_hold_started_by_a_batch_expires() -> None:
    world = World()
    try:
        ept = world.dev.create_endpoint(src=0x70, dst=REMOTE, queue=1, hold=0.05)
        world.dev.deliver_many(world.items([(REMOTE, 0x70, b"%d" % k, True)
                                            for k in range(3)]))
        assert world.released[0] == 1  # copied
        wait_until(lambda: world.released[1] == world.released[2] == 1, timeout=30)
        assert world.dev.stats()["dropped_queue_full"] == 2
        assert ept.recv(timeout=0) == b"0"
        assert ept.stats()["dropped_queue_full"] == 2
    finally:
        world.dev.close()


def test_send_many_is_shown_to_the_tap_in_bursts_as_it_goes() -> None:
    world = World(batched_tap=True)
    seen_when_sending: list[int] = []
    real_send = world.link.send

    def send(src: int, dst: int, payload: Buffer, timeout: float | None) -> None:
        if payload == b"fail":
            raise rpmsg.RemoteDisconnectedError("fake: gone")
        seen_when_sending.append(len(world.tap.messages))
        real_send(src, dst, payload, timeout)

    world.link.send = send  # type: ignore[method-assign]
    try:
        ept = world.epts[QA]
        start = len(world.tap.messages)
        assert ept.send_many([b"%d" % i for i in range(200)]) == 200
        sent = world.tap.messages[start:]
        assert sent == [("tx", QA, REMOTE, b"%d" % i) for i in range(200)]
        # The first 64 were shown once the link asked for the 65th, not after the call.
        assert seen_when_sending[64] - start == 64
        start = len(world.tap.messages)
        with pytest.raises(rpmsg.RemoteDisconnectedError):
            ept.send_many([b"a", b"b", b"fail", b"c"])
        assert world.tap.messages[start:] == [("tx", QA, REMOTE, b"a"), ("tx", QA, REMOTE, b"b")]
    finally:
        world.dev.close()


def test_a_batch_wakes_a_blocked_reader_and_the_descriptor() -> None:
    import select
    import threading

    world = World()
    try:
        ept = world.dev.create_endpoint(src=0x70, dst=REMOTE)
        got: list[list[bytes]] = []
        reader = threading.Thread(target=lambda: got.append(ept.recv_many(8, timeout=60)))
        reader.start()
        wait_until(lambda: ept._rx._sleepers == 1, timeout=30)  # asleep in recv
        world.dev.deliver_many([(REMOTE, 0x70, b"a", None), (REMOTE, 0x70, b"b", None)])
        reader.join(30)
        assert not reader.is_alive()
        assert got == [[b"a", b"b"]]  # one wake-up for the burst, both queued by then
        fd = ept.fileno()
        assert select.select([fd], [], [], 0)[0] == []
        world.dev.deliver_many([(REMOTE, 0x70, b"c", None), (REMOTE, 0x70, b"d", None)])
        assert select.select([fd], [], [], 30)[0] == [fd]
    finally:
        world.dev.close()
