"""A peer that corrupts the rings breaks the transport with a typed, descriptive error that
endpoint users see; nothing crashes, hangs or escapes as a low-level exception."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpmsg.device import Device
from rpmsg.endpoint import Endpoint
from rpmsg.errors import TransportBrokenError
from rpmsg.transport import Release
from rpmsg.virtio.device import DeviceEngine
from rpmsg.virtio.driver import DriverEngine
from rpmsg.virtio.layout import OPENAMP_LINUX
from rpmsg.virtio.memory import FlatMemory
from rpmsg.virtio.shm_pair import pair
from rpmsg.virtio.vring import QueueAddrs
from rpmsg.wire.layout import Buffer

U16 = struct.Struct("<H")
USED_ELEM = struct.Struct("<II")
DESC = struct.Struct("<QIHH")
HDR = struct.Struct("<IIIHH")
Q0, Q1 = OPENAMP_LINUX.queues()
SERVICE = "svc"


class Setup:
    """A bound host/remote pair over in-process memory, with the raw memory at hand."""

    def __init__(self) -> None:
        self.mem = bytearray(OPENAMP_LINUX.size)
        self.driver, self.device = pair(memory=self.mem)
        self.host, self.remote = Device(self.driver), Device(self.device)
        self.r = self.remote.create_endpoint(SERVICE)
        self.h = self.host.create_endpoint(SERVICE)
        self.h.wait_bound(5)
        self.h.send(b"hi")
        assert self.r.recv(timeout=5) == b"hi"
        self.r.send(b"ho")
        assert self.h.recv(timeout=5) == b"ho"

    def u16(self, at: int) -> int:
        return int(U16.unpack_from(self.mem, at)[0])

    def kick_driver(self) -> None:
        assert self.device._channel is not None
        self.device._channel.notify()

    def kick_device(self) -> None:
        assert self.driver._channel is not None
        self.driver._channel.notify()

    def close(self) -> None:
        self.host.close()
        self.remote.close()


@pytest.fixture
def s() -> Iterator[Setup]:
    setup = Setup()
    yield setup
    setup.close()


def expect_broken(ept: Endpoint, pattern: str) -> None:
    with pytest.raises(TransportBrokenError, match=pattern):
        ept.recv(timeout=5)
    with pytest.raises(TransportBrokenError):
        ept.send(b"more", timeout=1)


# As a rogue device writing vq0's used ring (the driver checks) ---------------------------

def fake_used(s: Setup, head: int, length: int, advance: int = 1) -> None:
    idx = s.u16(Q0.used + 2)
    slot = idx & (Q0.num - 1)
    USED_ELEM.pack_into(s.mem, Q0.used + 4 + 8 * slot, head, length)
    U16.pack_into(s.mem, Q0.used + 2, (idx + advance) & 0xFFFF)
    s.kick_driver()


def test_driver_bad_used_id(s: Setup) -> None:
    fake_used(s, 4000, 20)
    expect_broken(s.h, r"vq0 \(device->driver\): used\.ring\[\d+\]\.id = 4000")


def test_driver_used_len_beyond_buffer(s: Setup) -> None:
    head = s.u16(Q0.avail + 4 + 2 * (s.u16(Q0.used + 2) & 255))  # next offered buffer
    fake_used(s, head, 600)
    expect_broken(s.h, r"vq0.*used len 600 .*outside 16\.\.512")


def test_driver_header_len_beyond_used_len(s: Setup) -> None:
    slot = s.u16(Q0.used + 2) & 255
    head = s.u16(Q0.avail + 4 + 2 * slot)
    addr = DESC.unpack_from(s.mem, Q0.desc + 16 * head)[0]
    HDR.pack_into(s.mem, addr, 1024, 1024, 0, 100, 0)
    fake_used(s, head, 16 + 50)
    expect_broken(s.h, r"vq0.*header len 100 exceeds used len 66")


def test_driver_used_index_jumps_ahead(s: Setup) -> None:
    fake_used(s, 0, 16, advance=1000)
    expect_broken(s.h, r"vq0.*used\.idx jumped")


# As a rogue driver writing vq1's avail ring / descriptors (the device checks) ------------

def fake_avail(s: Setup, head: int, addr: int, length: int, advance: int = 1,
               hdr_len: int | None = None) -> None:
    idx = s.u16(Q1.avail + 2)
    DESC.pack_into(s.mem, Q1.desc + 16 * (head % Q1.num), addr, length, 0, 0)
    if hdr_len is not None:
        HDR.pack_into(s.mem, addr, 1024, 1024, 0, hdr_len, 0)
    U16.pack_into(s.mem, Q1.avail + 4 + 2 * (idx & (Q1.num - 1)), head)
    U16.pack_into(s.mem, Q1.avail + 2, (idx + advance) & 0xFFFF)
    s.kick_device()


def test_device_bad_head_id(s: Setup) -> None:
    fake_avail(s, 999, 0x40000, 32)
    expect_broken(s.r, r"vq1 \(driver->device\): avail\.ring\[\d+\] = 999")


def test_device_address_outside_memory(s: Setup) -> None:
    fake_avail(s, 200, 0x7FFFFFF0, 64)
    expect_broken(s.r, r"vq1.*desc\[200\]\.addr = 0x7ffffff0 .*outside the shared memory")


def test_device_length_beyond_memory(s: Setup) -> None:
    fake_avail(s, 200, 0x7FF00, 0x1000)
    expect_broken(s.r, r"vq1.*desc\[200\].*outside the shared memory")


def test_device_header_len_beyond_buffer(s: Setup) -> None:
    fake_avail(s, 200, 0x48000, 64, hdr_len=400)
    expect_broken(s.r, r"vq1.*desc\[200\]: header len 400 exceeds the 48 bytes")


def test_device_descriptor_shorter_than_header(s: Setup) -> None:
    fake_avail(s, 200, 0x48000, 8)
    expect_broken(s.r, r"vq1.*desc\[200\]\.len = 8 is shorter")


def test_device_avail_index_jumps_ahead(s: Setup) -> None:
    fake_avail(s, 200, 0x48000, 64, advance=5000)
    expect_broken(s.r, r"vq1.*avail\.idx jumped")


def test_device_tx_buffer_outside_memory(s: Setup) -> None:
    # The driver's offered RX buffers (vq0) point outside memory; the device's send fails.
    for h in range(Q0.num):
        DESC.pack_into(s.mem, Q0.desc + 16 * h, 0x90000000, 512, 2, 0)
    with pytest.raises(TransportBrokenError, match=r"vq0.*addr = 0x90000000"):
        s.r.send(b"x", timeout=1)
    with pytest.raises(TransportBrokenError):
        s.r.recv(timeout=1)


# Random ring memory into the engines: a value or a broken engine, never an exception ------

class Sink:
    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.errors: list[Exception] = []

    def link_up(self) -> None:
        pass

    def link_down(self, reason: str) -> None:
        pass

    def deliver(self, src: int, dst: int, payload: Buffer, release: Release | None = None) -> None:
        self.messages.append(bytes(payload))
        if release is not None:
            release()

    def broken(self, error: Exception) -> None:
        self.errors.append(error)


SMALL = QueueAddrs.from_layout(0, 4, 4), QueueAddrs.from_layout(0x100, 4, 4)


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=0x400, max_size=0x400))
def test_device_engine_random_memory(raw: bytes) -> None:
    sink = Sink()
    engine = DeviceEngine(FlatMemory(bytearray(raw)), lambda q: None, sink=sink)
    engine.start(SMALL, features=1)
    engine.kick()
    try:
        engine.send(1, 2, b"abc", 0)
    except Exception as exc:  # only the library's typed errors may come out
        assert type(exc).__module__ == "rpmsg.errors", repr(exc)
    assert len(sink.errors) <= 1
    assert all(isinstance(e, TransportBrokenError) for e in sink.errors)


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=0x60, max_size=0x60), st.binary(min_size=32, max_size=32))
def test_driver_engine_random_used_ring(used: bytes, header: bytes) -> None:
    sink = Sink()
    mem = bytearray(0x400)
    engine = DriverEngine(FlatMemory(mem), lambda q: None, sink=sink, buffer_size=64)
    engine.start(SMALL, [0x200, 0x240, 0x280, 0x2C0], [0x300, 0x340], features=1)
    mem[0x200:0x220] = header
    mem[SMALL[0].used : SMALL[0].used + 4 + 8 * 4] = used[: 4 + 32]
    engine.kick()
    assert len(sink.errors) <= 1
    assert all(isinstance(e, TransportBrokenError) for e in sink.errors)
