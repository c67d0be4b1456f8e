"""Driver and device engines back to back over in-process memory, through the real
Device/Endpoint API: binding, echo both ways, sizes, zero copy, batching, link state."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

import rpmsg
from rpmsg.device import Device
from rpmsg.errors import MessageTooLargeError, NoBufferError, RemoteDisconnectedError
from rpmsg.virtio.layout import ShmLayout
from rpmsg.virtio.shm_link import ShmLink
from rpmsg.virtio.shm_pair import pair

SERVICE = "rpmsg-openamp-demo-channel"


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


@pytest.fixture
def link_pair() -> Iterator[tuple[ShmLink, ShmLink]]:
    driver, device = pair()
    yield driver, device
    driver.close()
    device.close()


@pytest.fixture
def devices(link_pair: tuple[ShmLink, ShmLink]) -> Iterator[tuple[Device, Device]]:
    host, remote = Device(link_pair[0]), Device(link_pair[1])
    yield host, remote
    host.close()
    remote.close()


def bound_pair(host: Device, remote: Device) -> tuple[rpmsg.Endpoint, rpmsg.Endpoint]:
    r = remote.create_endpoint(SERVICE)
    h = host.create_endpoint(SERVICE)
    h.wait_bound(5)
    # If the remote's announcement arrived first, the host endpoint bound at creation without
    # announcing itself (OpenAMP rule); the remote then binds on the first message.
    h.send(b"hello")
    assert r.recv(timeout=5) == b"hello"
    assert r.wait_bound(0) == h.addr
    return h, r


def test_names_bind_and_echo_both_ways(devices: tuple[Device, Device]) -> None:
    host, remote = devices
    h, r = bound_pair(host, remote)
    assert h.dst == r.addr and r.dst == h.addr
    assert host.link.ns_enabled and remote.link.ns_enabled
    h.send(b"ping")
    assert r.recv(timeout=5) == b"ping"
    r.send(b"pong")
    assert h.recv(timeout=5) == b"pong"


def test_mtu_496_ok_497_too_large(devices: tuple[Device, Device]) -> None:
    host, remote = devices
    h, r = bound_pair(host, remote)
    assert h.mtu == r.mtu == 496
    h.send(bytes(range(256)) + bytes(240))
    assert len(r.recv(timeout=5)) == 496
    r.send(b"\xa5" * 496)
    assert h.recv(timeout=5) == b"\xa5" * 496
    with pytest.raises(MessageTooLargeError):
        h.send(b"x" * 497)
    with pytest.raises(MessageTooLargeError):
        r.send(b"x" * 497)


def test_many_messages_in_order_both_directions(devices: tuple[Device, Device]) -> None:
    host, remote = devices
    h, r = bound_pair(host, remote)
    n = 3000
    got_h: list[bytes] = []
    got_r: list[bytes] = []

    def reader(ept: rpmsg.Endpoint, out: list[bytes]) -> None:
        for _ in range(n):
            out.append(ept.recv(timeout=10))

    threads = [threading.Thread(target=reader, args=(h, got_h)),
               threading.Thread(target=reader, args=(r, got_r))]
    for t in threads:
        t.start()
    for i in range(n):  # more than the 256 buffers: senders wait for returned buffers
        r.send(i.to_bytes(4, "little") * 4)
        h.send(i.to_bytes(4, "little"))
    for t in threads:
        t.join(20)
    assert [int.from_bytes(g, "little") for g in got_r] == list(range(n))
    assert [int.from_bytes(g[:4], "little") for g in got_h] == list(range(n))


def test_send_many_kicks_once_per_burst(devices: tuple[Device, Device]) -> None:
    host, remote = devices
    h, r = bound_pair(host, remote)
    before = host.link.stats()["notifies"]
    assert h.send_many([b"%d" % i for i in range(100)], timeout=5) == 100
    assert [r.recv(timeout=5) for _ in range(100)] == [b"%d" % i for i in range(100)]
    assert host.link.stats()["notifies"] - before <= 1


def test_zero_copy_send_and_receive(devices: tuple[Device, Device]) -> None:
    host, remote = devices
    r = remote.create_endpoint(SERVICE, zero_copy=True)
    h = host.create_endpoint(SERVICE, zero_copy=True)
    h.wait_bound(5)
    h.send(b"first")
    assert r.recv(timeout=5) == b"first"
    with h.get_tx_buffer(timeout=5) as buf:
        assert buf.capacity == 496
        buf.payload[:5] = b"hello"
        h.send_buffer(buf, 5)
    rx = r.recv_buffer(timeout=5)
    assert bytes(rx.data) == b"hello"
    assert isinstance(rx.data, memoryview)
    rx.release()
    tx = r.get_tx_buffer(timeout=5)
    tx.release()  # unsent: kept for the next send, not lost
    r.send(b"after release")
    assert h.recv(timeout=5) == b"after release"
    # A held buffer stays valid while later messages flow.
    h.send(b"held")
    held = r.recv_buffer(timeout=5)
    for i in range(300):
        h.send(b"%d" % i)
        assert r.recv(timeout=5) == b"%d" % i
    assert bytes(held.data) == b"held"
    held.release()


def test_no_buffer_with_zero_timeout() -> None:
    layout = ShmLayout.openamp(num=4, buffers=4)
    driver, device = pair(layout)
    host = Device(driver)
    # No device Device: nobody returns buffers, so the 4 transmit buffers run out.
    try:
        for _ in range(4):
            driver.send(1024, 1024, b"x", 0)
        with pytest.raises(NoBufferError):
            driver.send(1024, 1024, b"x", 0)
        with pytest.raises(rpmsg.RpmsgTimeoutError):
            driver.send(1024, 1024, b"x", 0.05)
    finally:
        host.close()
        device.close()


def test_driver_close_takes_the_device_link_down(link_pair: tuple[ShmLink, ShmLink]) -> None:
    driver, device = link_pair
    host, remote = Device(driver), Device(device)
    try:
        h, r = bound_pair(host, remote)
        host.close()
        with pytest.raises(RemoteDisconnectedError):
            r.recv(timeout=5)  # NS DESTROY or the link going down, whichever comes first
        wait_for(lambda: not remote.is_up)
        with pytest.raises(RemoteDisconnectedError):
            r.send_to(h.addr, b"anyone?", timeout=1)
    finally:
        remote.close()


def test_ns_feature_follows_negotiation() -> None:
    layout = ShmLayout(features=0)
    driver, device = pair(layout)
    host, remote = Device(driver), Device(device)
    try:
        remote.wait_up(5)
        assert not driver.ns_enabled and not device.ns_enabled
    finally:
        host.close()
        remote.close()


def test_driver_close_waits_until_the_device_took_what_was_sent() -> None:
    """Within its budget, the driver's close waits for the device to return every transmit
    buffer before resetting it (a C device does not drain after a reset)."""
    driver, device = pair()
    taken: list[bytes] = []

    class SlowSink:
        def link_up(self, detail: str = "") -> None:
            pass

        def link_down(self, reason: str, restart: bool = False) -> None:
            pass

        def broken(self, error: Exception) -> None:
            raise AssertionError(error)

        def deliver(self, src: int, dst: int, payload: object, release: object = None) -> None:
            time.sleep(0.001)
            taken.append(bytes(payload))  # type: ignore[call-overload]
            if release is not None:
                release()  # type: ignore[operator]

    device.start(SlowSink())  # type: ignore[arg-type]
    driver.start(SlowSink())  # type: ignore[arg-type]
    driver.send_many([(1024, 1024, b"%d" % i) for i in range(100)], 5)
    t0 = time.monotonic()
    driver.close(5.0)
    assert len(taken) == 100  # all taken before close returned
    assert time.monotonic() - t0 < 5.0
    device.close(1.0)


def test_driver_close_does_not_wait_past_its_budget_for_a_stuck_device() -> None:
    driver, device = pair()  # the device never starts: nothing is ever taken
    driver.start(type("Sink", (), {"link_up": lambda *a, **k: None,
                                   "link_down": lambda *a, **k: None,
                                   "broken": lambda *a: None,
                                   "deliver": lambda *a, **k: None})())
    driver.send(1024, 1024, b"never taken", 1)
    t0 = time.monotonic()
    driver.close(0.3)
    assert time.monotonic() - t0 < 0.6
    device.close(0.1)
