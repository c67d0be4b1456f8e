"""Zero-copy buffers on shm (outsider QA): transmit buffers dropped unsent come back to the
ring; releasing a received one never raises.

A ``TxBuffer`` from ``get_tx_buffer()`` that was neither sent nor released kept its ring
buffer for ever: after ``num`` of them every send, name-service messages included, waited in
vain. Now the finaliser gives it back (with a ResourceWarning), also when the cyclic GC runs
it on a thread that holds the engine's lock (where taking that lock would deadlock).
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator

import pytest

from rpmsg.device import Device
from rpmsg.errors import NoBufferError
from rpmsg.virtio.kick import PeerGone
from rpmsg.virtio.layout import ShmLayout
from rpmsg.virtio.shm_link import ShmLink
from rpmsg.virtio.shm_pair import pair

NUM = 8


@pytest.fixture
def devices() -> Iterator[tuple[Device, Device]]:
    driver, device = pair(ShmLayout.openamp(num=NUM, buffers=NUM))
    host, remote = Device(driver), Device(device)
    yield host, remote
    host.close()
    remote.close()


def _link(dev: Device) -> ShmLink:
    link = dev.link
    assert isinstance(link, ShmLink)
    return link


@pytest.mark.parametrize("sender", ["driver", "device"])
def test_dropped_buffers_come_back(devices: tuple[Device, Device], sender: str) -> None:
    host, remote = devices
    r = remote.create_endpoint("svc")
    h = host.create_endpoint("svc")
    h.wait_bound(5)
    h.send(b"hello", timeout=5)
    assert r.recv(timeout=5) == b"hello"
    src, dst = (h, r) if sender == "driver" else (r, h)
    for _ in range(3 * NUM):
        with pytest.warns(ResourceWarning, match="dropped without being sent"):
            buf = src.get_tx_buffer(timeout=5)
            buf.payload[:4] = b"lost"
            del buf
    src.send(b"after", timeout=5)
    assert dst.recv(timeout=5) == b"after"
    # Name-service messages (sent with timeout 0 by the runtime) still find buffers.
    src_dev, dst_dev = (host, remote) if sender == "driver" else (remote, host)
    late_dst = dst_dev.create_endpoint("late")
    late_src = src_dev.create_endpoint("late")
    late_src.wait_bound(5)
    late_src.send(b"bound", timeout=5)
    assert late_dst.recv(timeout=5) == b"bound"


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_gc_finaliser_with_the_engine_lock_held(devices: tuple[Device, Device]) -> None:
    host, remote = devices
    r = remote.create_endpoint("svc")
    h = host.create_endpoint("svc")
    h.wait_bound(5)
    h.send(b"hello", timeout=5)
    assert r.recv(timeout=5) == b"hello"
    engine = _link(host).engine
    buf = h.get_tx_buffer(timeout=5)
    cycle: list[object] = [buf]
    cycle.append(cycle)  # only the cyclic GC can free it
    del buf, cycle
    gc.disable()  # no collection before the one under the lock
    try:
        def collect_under_lock() -> None:
            with engine.lock:
                gc.collect()

        worker = threading.Thread(target=collect_under_lock, daemon=True)
        worker.start()
        worker.join(30)
        assert not worker.is_alive(), "the finaliser deadlocked on the engine lock"
    finally:
        gc.enable()
    # The buffer is back: every one of the NUM transmit buffers can be held at once.
    held = [h.get_tx_buffer(timeout=5) for _ in range(NUM)]
    with pytest.raises(NoBufferError):
        h.get_tx_buffer(timeout=0)
    for b in held:
        b.release()
    h.send(b"after", timeout=5)
    assert r.recv(timeout=5) == b"after"


class _GoneChannel:
    """A kick channel whose peer has gone: every kick fails as a closed socket does."""

    def notify(self) -> None:
        raise PeerGone("kick socket: Broken pipe")

    def close(self) -> None:
        pass


def test_releasing_a_received_buffer_never_raises_when_the_peer_is_gone() -> None:
    """A zero-copy release (any thread, any time) kicks the peer if it waits for buffers;
    when that kick fails because the peer just died, the release still succeeds (it raised
    RemoteDisconnectedError out of ``RxBuffer.release()``)."""
    driver, device = pair(ShmLayout.openamp(num=NUM, buffers=NUM))
    host, remote = Device(driver), Device(device)
    try:
        h = host.create_endpoint("svc", zero_copy=True)
        r = remote.create_endpoint("svc")
        h.wait_bound(5)
        h.send(b"x", timeout=5)
        assert r.recv(timeout=5) == b"x"
        for i in range(NUM):
            r.send(b"m%d" % i, timeout=5)
        held = [h.recv_buffer(timeout=5) for _ in range(NUM)]
        errors: list[BaseException] = []

        def blocked_sender() -> None:  # waits for a buffer: asks the driver for a kick
            try:
                r.send(b"more", timeout=30)
            except BaseException as exc:
                errors.append(exc)

        sender = threading.Thread(target=blocked_sender)
        sender.start()
        deadline = time.monotonic() + 30
        while device.engine.tx_waiters == 0:
            assert time.monotonic() < deadline, "the sender never waited"
            time.sleep(0.001)
        real, driver._channel = driver._channel, _GoneChannel()  # type: ignore[assignment]
        try:
            held[0].release()
        finally:
            driver._channel = real
        for buf in held[1:]:
            buf.release()
        sender.join(30)
        assert not errors
        assert h.recv(timeout=5) == b"more"
    finally:
        host.close()
        remote.close()


def test_a_slow_send_many_iterator_does_not_hold_up_other_senders() -> None:
    """send_many held the engine's lock while the caller's iterator produced the next
    message: a generator that waited for something (input, another message) blocked every
    other sender, timeout=0 name-service sends included, and the worker when it had to
    wake them. Other sends now go through while the iterator waits."""
    driver, device = pair(ShmLayout.openamp(num=NUM, buffers=NUM))
    host, remote = Device(driver), Device(device)
    try:
        r = remote.create_endpoint("a")
        h = host.create_endpoint("a")
        h2 = host.create_endpoint("b")
        r2 = remote.create_endpoint("b")
        h.wait_bound(5)
        h2.wait_bound(5)
        waiting = threading.Event()
        proceed = threading.Event()
        order: list[str] = []

        def slow() -> Iterator[bytes]:
            yield b"first"
            waiting.set()
            proceed.wait(30)  # the test lets it go once the other send is done
            order.append("iterator resumed")
            yield b"second"

        batch = threading.Thread(target=lambda: h.send_many(slow(), timeout=60))
        batch.start()
        assert waiting.wait(30)
        other = threading.Thread(target=lambda: (h2.send(b"other", timeout=0),
                                                 order.append("other sent")))
        other.start()
        other.join(30)
        proceed.set()
        batch.join(30)
        other.join(30)
        assert order == ["other sent", "iterator resumed"]
        assert r2.recv(timeout=10) == b"other"
        assert [r.recv(timeout=10), r.recv(timeout=10)] == [b"first", b"second"]
    finally:
        host.close()
        remote.close()
