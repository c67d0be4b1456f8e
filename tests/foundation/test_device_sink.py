"""Device as a LinkSink, driven by hand through a fake link: release, link state, broken."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import rpmsg
from rpmsg import (
    EndpointClosedError,
    NoBufferError,
    RemoteDisconnectedError,
    TransportBrokenError,
)
from rpmsg.core import NUTTX, OPENAMP, Policy
from rpmsg.transport import Link, LinkSink
from rpmsg.wire import NS_ADDR, NsFlags, NsMessage
from rpmsg.wire.layout import Buffer


class FakeLink(Link):
    """A link that records what is sent and lets the test play the transport thread."""

    role = "fake"

    def __init__(self, policy: Policy = OPENAMP) -> None:
        self.default_policy = policy
        self.sink: LinkSink | None = None
        self.sent: list[tuple[int, int, bytes]] = []
        self.fail_sends = False
        self.closes = 0

    def start(self, sink: LinkSink) -> None:
        self.sink = sink

    def send(self, src: int, dst: int, payload: Buffer, timeout: float | None) -> None:
        if self.fail_sends:
            raise NoBufferError("fake: no buffer")
        self.sent.append((src, dst, bytes(payload)))

    def close(self) -> None:
        self.closes += 1

    def take(self) -> list[tuple[int, int, bytes]]:
        sent, self.sent = self.sent, []
        return sent


class Releases:
    """Counts release() calls per buffer."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, tag: str) -> rpmsg.transport.Release:
        return lambda: self.calls.append(tag)


@pytest.fixture
def link() -> Iterator[FakeLink]:
    yield FakeLink()


@pytest.fixture
def dev(link: FakeLink) -> Iterator[rpmsg.Device]:
    d = rpmsg.Device(link)
    assert link.sink is d
    d.link_up()
    yield d
    d.close()


def ns(name: str, addr: int, flags: NsFlags = NsFlags.CREATE) -> tuple[int, int, bytes]:
    return (addr, NS_ADDR, NsMessage(name, addr, flags).encode())


# Zero-copy receive ------------------------------------------------------------------------


def test_copying_endpoint_releases_at_once(dev: rpmsg.Device) -> None:
    rel = Releases()
    ept = dev.create_endpoint(src=0x30)
    payload = bytearray(b"data")
    dev.deliver(0x40, 0x30, payload, rel("a"))
    assert rel.calls == ["a"]
    payload[:] = b"XXXX"  # the transport reuses its buffer; the endpoint kept a copy
    assert ept.recv(timeout=0) == b"data"


def test_zero_copy_endpoint_holds_buffer_until_release(dev: rpmsg.Device) -> None:
    rel = Releases()
    ept = dev.create_endpoint(src=0x30, zero_copy=True)
    dev.deliver(0x40, 0x30, b"one", rel("one"))
    dev.deliver(0x40, 0x30, b"two", rel("two"))
    assert rel.calls == []
    buf = ept.recv_buffer(timeout=0)
    assert bytes(buf.data) == b"one" and buf.src == 0x40 and buf.dst == 0x30
    assert buf.data.readonly
    buf.release()
    buf.release()  # a second release is ignored
    assert rel.calls == ["one"]
    assert ept.recv(timeout=0) == b"two"  # recv copies and releases
    assert rel.calls == ["one", "two"]


def test_zero_copy_close_releases_queued_buffers(dev: rpmsg.Device) -> None:
    rel = Releases()
    ept = dev.create_endpoint(src=0x30, zero_copy=True)
    dev.deliver(0x40, 0x30, b"one", rel("one"))
    dev.deliver(0x40, 0x30, b"two", rel("two"))
    ept.close()
    assert sorted(rel.calls) == ["one", "two"]


def test_message_arriving_while_endpoint_closes_is_released(
        dev: rpmsg.Device, monkeypatch: pytest.MonkeyPatch) -> None:
    """A delivery between Endpoint.close marking itself closed and the core forgetting it."""
    rel = Releases()
    ept = dev.create_endpoint(src=0x30, zero_copy=True)
    original = dev.remove_endpoint

    def racing_destroy(rec: object) -> None:
        dev.deliver(0x40, 0x30, b"late", rel("late"))
        original(rec)  # type: ignore[arg-type]

    monkeypatch.setattr(dev, "remove_endpoint", racing_destroy)
    before = dev.stats()["dropped_closed"]
    ept.close()
    assert rel.calls == ["late"]
    assert dev.stats()["dropped_closed"] == before + 1
    assert dev.stats()["dropped_unknown_dst"] == 0


def test_unknown_destination_and_ns_release(dev: rpmsg.Device) -> None:
    rel = Releases()
    dev.deliver(0x40, 0x999, b"nobody", rel("unknown"))
    dev.deliver(0x40, NS_ADDR, NsMessage("svc", 0x40).encode(), rel("ns"))
    assert rel.calls == ["unknown", "ns"]
    assert dev.services == [("svc", 0x40)]
    assert dev.stats()["dropped_unknown_dst"] == 1


def test_callback_endpoint_releases_after_callback(dev: rpmsg.Device) -> None:
    rel = Releases()
    seen: list[tuple[bytes, list[str]]] = []
    dev.create_endpoint(src=0x30, zero_copy=True,
                        callback=lambda e, data, src: seen.append((data, list(rel.calls))))
    dev.deliver(0x40, 0x30, b"cb", rel("cb"))
    assert seen == [(b"cb", [])]  # the payload was still held during the callback
    assert rel.calls == ["cb"]


# Link state -------------------------------------------------------------------------------


def test_link_down_then_up_reannounces(link: FakeLink, dev: rpmsg.Device) -> None:
    unbound: list[int] = []
    ept = dev.create_endpoint("svc", on_unbound=lambda e: unbound.append(e.addr))
    assert link.take() == [ns("svc", ept.addr)]
    dev.deliver(0x40, ept.addr, b"bind me")
    assert ept.dst == 0x40
    dev.link_down("remote reset")
    assert not dev.is_up
    assert unbound == [ept.addr]
    assert ept.recv(timeout=0) == b"bind me"
    with pytest.raises(RemoteDisconnectedError, match="remote reset"):
        ept.recv(timeout=0)
    with pytest.raises(RemoteDisconnectedError):
        ept.send(b"x")
    dev.link_up()
    assert link.take() == [ns("svc", ept.addr)]
    dev.deliver(0x41, NS_ADDR, NsMessage("svc", 0x41).encode())
    assert ept.dst == 0x41
    ept.send(b"again")
    assert link.take() == [(ept.addr, 0x41, b"again")]


def test_nuttx_device_acknowledges(link: FakeLink) -> None:
    link.default_policy = NUTTX
    with rpmsg.Device(link) as dev:
        dev.link_up()
        ept = dev.create_endpoint("rpmsg-ping")
        assert link.take() == [ns("rpmsg-ping", ept.addr)]
        dev.deliver(0x400, NS_ADDR, NsMessage("rpmsg-ping", 0x400).encode())
        assert link.take() == [ns("rpmsg-ping", ept.addr, NsFlags.CREATE_ACK)]
        assert ept.dst == 0x400


def test_close_sends_destroy_and_closes_link_once(link: FakeLink) -> None:
    dev = rpmsg.Device(link)
    dev.link_up()
    ept = dev.create_endpoint("svc")
    link.take()
    dev.close()
    dev.close()
    assert link.take() == [ns("svc", ept.addr, NsFlags.DESTROY)]
    assert link.closes == 1
    assert ept.closed


def test_ns_send_without_buffer_is_queued_then_counted_at_close(link: FakeLink) -> None:
    """No buffer for an NS message: queued, never waited for on the caller's thread; still
    unsent at close it is counted (issue 10.3)."""
    dev = rpmsg.Device(link)
    dev.link_up()
    link.fail_sends = True
    dev.create_endpoint("svc")  # returns at once although no buffer is free
    assert dev.stats()["ns_queued"] == 1
    assert dev.stats()["ns_send_failures"] == 0
    dev.close(timeout=0.2)
    stats = dev.stats()
    assert stats["ns_dropped_at_close"] == 2  # the CREATE and the close's DESTROY
    assert stats["ns_queued"] == 0
    assert link.sent == []


def test_broken_transport(dev: rpmsg.Device) -> None:
    ept = dev.create_endpoint(src=0x30, dst=0x40)
    dev.deliver(0x40, 0x30, b"before")
    dev.broken(RuntimeError("ring corrupt"))
    assert isinstance(dev.broken_error, RuntimeError)
    with pytest.raises(TransportBrokenError, match="ring corrupt"):
        ept.send(b"x")
    with pytest.raises(TransportBrokenError):
        dev.create_endpoint("late")
    assert ept.recv(timeout=0) == b"before"  # what arrived before is still readable
    with pytest.raises(TransportBrokenError):
        ept.recv(timeout=0)
    with pytest.raises(TransportBrokenError):
        dev.wait_up(timeout=0)
    ept.close()
    with pytest.raises(EndpointClosedError):
        ept.recv(timeout=0)


def test_policy_override_beats_link_default(link: FakeLink) -> None:
    with rpmsg.Device(link, policy="nuttx") as dev:
        assert dev.policy is NUTTX
    with rpmsg.Device(FakeLink(NUTTX)) as dev:
        assert dev.policy is NUTTX
