"""Split virtqueue in both roles over in-process memory: normal use, wrap-around, flags,
and every kind of corrupt ring the peer could write (RingError, never anything else)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpmsg.errors import ProtocolError
from rpmsg.virtio.memory import FlatMemory, MemoryRangeError
from rpmsg.virtio.vring import (
    DeviceRing,
    DriverRing,
    QueueAddrs,
    RingError,
    device_ring,
    driver_ring,
)
from rpmsg.wire.virtio import VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, VringGeometry

NUM = 8


def make(num: int = NUM, align: int = 16, base: int = 0) -> tuple[FlatMemory, QueueAddrs,
                                                                   DriverRing, DeviceRing]:
    mem = FlatMemory(bytearray(0x4000))
    q = QueueAddrs.from_layout(0x100, num, align)
    drv = driver_ring("vqX", mem, q)
    dev = device_ring("vqX", mem, q, base)
    return mem, q, drv, dev


def test_layout_addresses_follow_geometry() -> None:
    q = QueueAddrs.from_layout(0x4000, 256, 0x1000)
    assert (q.desc, q.avail, q.used) == (0x4000, 0x5000, 0x6000)
    assert VringGeometry(256, 0x1000).size == 0x2806


def test_round_trip_both_roles() -> None:
    _mem, _q, drv, dev = make()
    heads = [drv.add(0x1000 + 64 * i, 64, VRING_DESC_F_WRITE) for i in range(3)]
    assert heads == [0, 1, 2]
    assert dev.avail_pending() == 0  # not published yet
    drv.publish()
    assert dev.avail_pending() == 3
    popped = [dev.pop() for _ in range(3)]
    assert [(h, a, n) for h, a, n, _f in popped] == [(0, 0x1000, 64), (1, 0x1040, 64),
                                                     (2, 0x1080, 64)]
    dev.push(1, 20)  # out of order is allowed
    dev.push(0, 10)
    assert drv.reap() == []  # not published
    dev.publish()
    assert drv.reap() == [(1, 20, 64, 0x1040), (0, 10, 64, 0x1000)]
    assert drv.num_free == NUM - 1


def test_indices_wrap_past_u16() -> None:
    _mem, _q, drv, dev = make(num=4)
    for i in range(70000):
        h = drv.add(0x1000, 16, 0)
        drv.publish()
        assert dev.avail_pending() == 1
        head, _a, _n, _f = dev.pop()
        assert head == h
        dev.push(head, i & 0xFF)
        dev.publish()
        assert drv.reap() == [(h, i & 0xFF, 16, 0x1000)]
    assert drv.avail_idx == 70000 & 0xFFFF
    assert dev.used_idx == 70000 & 0xFFFF


def test_device_starts_at_base_and_used_index_in_memory() -> None:
    mem, q, drv, dev = make()
    for _ in range(5):
        drv.add(0x1000, 16, 0)
    drv.publish()
    for _ in range(5):
        dev.push(dev.pop()[0], 16)
    dev.publish()
    drv.reap()
    # A restarted device (vhost-user SET_VRING_BASE 5) continues where the old one stopped.
    again = device_ring("vqX", mem, q, base=5)
    assert again.used_idx == 5
    drv.add(0x2000, 32, 0)
    drv.publish()
    assert again.avail_pending() == 1
    assert again.pop()[1:3] == (0x2000, 32)


def test_notification_flags() -> None:
    _mem, _q, drv, dev = make()
    assert drv.peer_wants_notify() and dev.peer_wants_interrupt()
    dev.set_notifications(False)
    drv.set_interrupts(False)
    assert not drv.peer_wants_notify() and not dev.peer_wants_interrupt()
    dev.set_notifications(True)
    drv.set_interrupts(True)
    assert drv.peer_wants_notify() and dev.peer_wants_interrupt()


def test_unpop_gives_the_same_buffer_again() -> None:
    _mem, _q, drv, dev = make()
    drv.add(0x1000, 16, 0)
    drv.publish()
    head = dev.pop()[0]
    dev.unpop(head)
    assert dev.avail_pending() == 1
    assert dev.pop()[0] == head


# Corrupt rings ---------------------------------------------------------------------------

U16 = struct.Struct("<H")


def test_used_id_out_of_range() -> None:
    mem, q, drv, _dev = make()
    drv.add(0x1000, 16, 0)
    drv.publish()
    struct.pack_into("<II", mem.mv, q.used + 4, 99, 16)
    U16.pack_into(mem.mv, q.used + 2, 1)
    with pytest.raises(RingError, match=r"vqX: used.ring\[0\].id = 99"):
        drv.reap()


def test_used_id_not_in_flight() -> None:
    mem, q, drv, _dev = make()
    drv.add(0x1000, 16, 0)
    drv.publish()
    struct.pack_into("<II", mem.mv, q.used + 4, 3, 16)
    U16.pack_into(mem.mv, q.used + 2, 1)
    with pytest.raises(RingError, match="id = 3 is not a buffer in flight"):
        drv.reap()


def test_used_index_jumps_ahead() -> None:
    mem, q, drv, _dev = make()
    drv.add(0x1000, 16, 0)
    drv.publish()
    U16.pack_into(mem.mv, q.used + 2, NUM + 5)
    with pytest.raises(RingError, match=r"used\.idx jumped to 13"):
        drv.reap()


def test_avail_index_jumps_ahead() -> None:
    mem, q, _drv, dev = make()
    U16.pack_into(mem.mv, q.avail + 2, NUM + 1)
    with pytest.raises(RingError, match=r"avail\.idx jumped to 9"):
        dev.avail_pending()


def test_avail_head_out_of_range() -> None:
    mem, q, _drv, dev = make()
    U16.pack_into(mem.mv, q.avail + 4, 1234)
    U16.pack_into(mem.mv, q.avail + 2, 1)
    assert dev.avail_pending() == 1
    with pytest.raises(RingError, match=r"avail.ring\[0\] = 1234 is not a descriptor"):
        dev.pop()


def test_chained_descriptor_refused() -> None:
    _mem, _q, drv, dev = make()
    drv.add(0x1000, 16, VRING_DESC_F_NEXT)
    drv.publish()
    with pytest.raises(RingError, match=r"desc\[0\].flags = 0x1"):
        dev.pop()


def test_same_head_offered_twice() -> None:
    mem, q, drv, dev = make()
    drv.add(0x1000, 16, 0)
    drv.publish()
    dev.pop()
    U16.pack_into(mem.mv, q.avail + 4 + 2, 0)  # slot 1 offers head 0 again
    U16.pack_into(mem.mv, q.avail + 2, 2)
    with pytest.raises(RingError, match="still holds"):
        dev.pop()


def test_ring_outside_memory() -> None:
    mem = FlatMemory(bytearray(0x1000))
    with pytest.raises(MemoryRangeError, match="outside the shared memory"):
        device_ring("vq", mem, QueueAddrs.from_layout(0xF00, 16, 16))


# Property tests: random ring contents give values or RingError, nothing else -------------

@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0x400, max_size=0x400), st.integers(0, 0xFFFF))
def test_device_ring_random_bytes(raw: bytes, base: int) -> None:
    mem = FlatMemory(bytearray(raw))
    dev = device_ring("vq", mem, QueueAddrs.from_layout(0, NUM, 4), base)
    try:
        for _ in range(3 * NUM):
            n = dev.avail_pending()
            if not n:
                break
            head, addr, length, _flags = dev.pop()
            assert 0 <= head < NUM
            dev.push(head, length)
            dev.publish()
            try:
                mem.view(addr, length)
            except MemoryRangeError:
                pass
    except RingError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=8 * NUM + 6, max_size=8 * NUM + 6), st.integers(0, NUM))
def test_driver_ring_random_used(raw_used: bytes, offered: int) -> None:
    mem = FlatMemory(bytearray(0x400))
    q = QueueAddrs.from_layout(0, NUM, 4)
    drv = driver_ring("vq", mem, q)
    for _ in range(offered):
        drv.add(0x300, 16, 0)
    drv.publish()
    mem.mv[q.used : q.used + len(raw_used)] = raw_used
    try:
        for head, _len, off, _addr in drv.reap():
            assert 0 <= head < NUM and off == 16
    except RingError as exc:
        assert isinstance(exc, ProtocolError)
    assert 0 <= drv.num_free <= NUM
