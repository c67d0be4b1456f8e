"""The port core: buffer layout, payload limits, link up/down, dispatch checks, queues."""

from __future__ import annotations

import threading

import pytest

from rpmsg import Device
from rpmsg.errors import (
    EndpointClosedError,
    MessageTooLargeError,
    NoBufferError,
    RemoteDisconnectedError,
    RpmsgTimeoutError,
)
from rpmsg.port.core import FRAME_HEADER_SIZE, PortConfig, port_len
from rpmsg.port.ops import DROP_TX
from rpmsg.port.queues import BufferQueue
from rpmsg.wire.port import PORT_HEADER
from rpmsg.wire.rpmsg import RPMSG_HEADER

from .memory_backend import memory_pair


def _up_pair(config: PortConfig | None = None) -> tuple[Device, Device]:
    pa, pb = memory_pair(config)
    da, db = Device(pa), Device(pb)
    pa.register()
    pb.register()
    return da, db


def test_payload_limits() -> None:
    assert PortConfig().tx_payload_size == 2048 - 40
    assert PortConfig(protocol="legacy").tx_payload_size == 2048 - 24
    pa, _pb = memory_pair(PortConfig(txlen=512))
    assert pa.mtu == 512 - 40
    with pytest.raises(ValueError):
        PortConfig(txlen=40)
    with pytest.raises(ValueError):
        PortConfig(protocol="ancient")


def test_default_policy_is_nuttx_with_create_ack() -> None:
    pa, _pb = memory_pair()
    assert pa.default_policy.name == "nuttx"
    assert pa.default_policy.create_ack


def test_buffer_layout_of_a_sent_frame() -> None:
    pa, _pb = memory_pair()
    pa._up = True  # bypass the backend: look at the queued buffer itself
    pa.backend.peer = None  # type: ignore[attr-defined]
    pa.send(0x400, 0x401, b"hello", 0)
    buf = pa.txq.get_buffer(0)
    assert buf is not None
    frame = bytes(pa.tx_frame(buf))
    assert len(frame) == FRAME_HEADER_SIZE + 5 == port_len(frame)
    assert PORT_HEADER.unpack(frame) == (0, 0, 0, 29)
    assert RPMSG_HEADER.unpack(frame, 8) == (0x400, 0x401, 0, 5, 0)
    assert frame[24:] == b"hello"


def test_send_checks_state_and_size() -> None:
    pa, _pb = memory_pair(PortConfig(txnum=2))
    with pytest.raises(RemoteDisconnectedError):
        pa.send(1024, 1025, b"x", 0)
    pa._up = True
    pa.backend.peer = None  # type: ignore[attr-defined]
    with pytest.raises(MessageTooLargeError):
        pa.send(1024, 1025, bytes(pa.mtu + 1), 0)
    pa.send(1024, 1025, bytes(pa.mtu), 0)
    pa.send(1024, 1025, b"", 0)
    with pytest.raises(NoBufferError):
        pa.send(1024, 1025, b"x", 0)
    with pytest.raises(RpmsgTimeoutError):
        pa.send(1024, 1025, b"x", 0.05)
    assert pa.drop_packets(DROP_TX) == 2
    assert pa.stats()["tx_dropped"] == 2
    pa.close()
    with pytest.raises(EndpointClosedError):
        pa.send(1024, 1025, b"x", 0)


def test_name_service_and_echo_over_memory_backend() -> None:
    da, db = _up_pair()
    try:
        server = db.create_endpoint("rpmsg-echo",
                                    callback=lambda e, data, src: e.send_to(src, data))
        client = da.create_endpoint("rpmsg-echo")
        client.wait_bound(2)
        assert server.wait_bound(2) == client.addr
        for i in range(50):
            client.send(bytes([i]) * i, timeout=2)
        got = [client.recv(timeout=2) for _ in range(50)]
        assert got == [bytes([i]) * i for i in range(50)]
        big = bytes(range(256)) * 7 + bytes(da.mtu - 1792)
        client.send(big, timeout=2)
        assert client.recv(timeout=2) == big
    finally:
        da.close()
        db.close()


def test_link_down_unbinds_and_link_up_reannounces() -> None:
    da, db = _up_pair()
    try:
        db.create_endpoint("svc")
        client = da.create_endpoint("svc")
        client.wait_bound(2)
        first = client.dst
        down = threading.Event()
        client.on_unbound = lambda e: down.set()
        da.link.unregister("peer restarted")  # type: ignore[attr-defined]
        assert down.wait(2)
        assert not client.bound
        with pytest.raises(RemoteDisconnectedError):
            da.link.send(client.addr, first, b"x", 0)
        db.link.unregister("peer restarted")  # type: ignore[attr-defined]
        da.link.register()  # type: ignore[attr-defined]
        db.link.register()  # type: ignore[attr-defined]
        assert client.wait_bound(2) == first
    finally:
        da.close()
        db.close()


@pytest.mark.parametrize(("port_length", "rpmsg_len", "reason"), [
    (10, 0, "rx_dropped_short"),
    (4000, 0, "rx_dropped_bad_len"),
    (30, 7, "rx_dropped_bad_rpmsg_len"),
])
def test_bad_frames_are_dropped_and_counted(port_length: int, rpmsg_len: int,
                                            reason: str) -> None:
    pa, _pb = memory_pair()
    received: list[bytes] = []

    class Sink:
        def link_up(self) -> None: ...
        def link_down(self, reason: str) -> None: ...
        def broken(self, error: Exception) -> None: ...
        def deliver(self, src: int, dst: int, payload: object, release: object = None) -> None:
            received.append(bytes(payload))  # type: ignore[call-overload]

    pa._sink = Sink()
    pa._up = True
    buf = pa.rxq.get_available_buffer(0)
    PORT_HEADER.pack_into(buf.view, 0, 0, 0, 0, port_length)
    RPMSG_HEADER.pack_into(buf.view, 8, 1, 2, 0, rpmsg_len, 0)
    pa.rx_dispatch(buf)
    assert received == []
    assert pa.stats()[reason] == 1
    assert pa.rxq.navail() == pa.rxq.num  # the buffer went back


def test_queue_lists_and_close_wakes_waiters() -> None:
    q = BufferQueue("t", 2, 64)
    a = q.get_available_buffer(0)
    b = q.get_available_buffer(0)
    assert q.navail() == 0
    q.add_buffer(a)
    q.add_buffer(b)
    assert q.nused() == 2
    assert q.get_buffer(0) is a
    q.return_buffer(a)
    assert q.drop() == 1
    assert q.navail() == 2 and q.nused() == 0
    q.get_available_buffer(0)
    q.get_available_buffer(0)
    errors: list[Exception] = []

    def waiter() -> None:
        try:
            q.get_available_buffer(None)
        except Exception as exc:
            errors.append(exc)

    t = threading.Thread(target=waiter)
    t.start()
    q.close()
    t.join(2)
    assert isinstance(errors[0], EndpointClosedError)


def test_queue_under_concurrent_producers_consumers_and_drops_loses_no_buffer() -> None:
    """The lock-free fast paths: buffers move between free and ready lists from many
    threads at once, drops included; at the end each buffer is on exactly one list."""
    q = BufferQueue("tx", 8, 64)
    stop = threading.Event()
    errors: list[BaseException] = []

    def producer() -> None:
        try:
            while not stop.is_set():
                try:
                    buf = q.get_available_buffer(0.01)
                except RpmsgTimeoutError:
                    continue
                q.add_buffer(buf)
        except BaseException as exc:
            errors.append(exc)

    def consumer() -> None:
        try:
            while not stop.is_set():
                buf = q.get_buffer(0.01)
                if buf is not None:
                    q.return_buffer(buf)
        except BaseException as exc:
            errors.append(exc)

    def dropper() -> None:
        while not stop.is_set():
            q.drop()

    threads = [threading.Thread(target=f) for f in (producer, producer, consumer,
                                                    consumer, dropper)]
    for t in threads:
        t.start()
    threading.Event().wait(1.0)
    stop.set()
    for t in threads:
        t.join(10)
    assert not errors
    q.drop()
    assert q.navail() == 8 and q.nused() == 0
    assert sorted(b.index for b in q._free) == list(range(8))  # each exactly once
