"""The OpenAMP Linux-machine preset reproduces spec §7.2 byte for byte; the resource-table
parser survives random bytes (a value or DecodeError, nothing else)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpmsg.errors import DecodeError
from rpmsg.transports.shm import default_socket
from rpmsg.virtio.layout import OPENAMP_LINUX, ShmLayout
from rpmsg.wire.virtio import ResourceTable

# The 88-byte table of openamp-system-reference's Linux machine, written out field by field.
GOLDEN_TABLE = bytes.fromhex(
    "01000000" "01000000" "00000000" "00000000"  # ver 1, num 1, reserved[2]
    "14000000"                                   # offset[0] = 20
    "03000000" "07000000" "00000000"             # vdev: type 3, id 7 (rpmsg), notifyid 0
    "01000000" "00000000" "00000000"             # dfeatures 1 (NS), gfeatures 0, config_len 0
    "00" "02" "0000"                             # status 0, 2 vrings, reserved
    "00400000" "00100000" "00010000" "01000000" "00000000"  # vring0: da 0x4000 align 0x1000
    "00800000" "00100000" "00010000" "02000000" "00000000"  # vring1: da 0x8000, notifyid 2
)


def test_preset_table_bytes_are_exact() -> None:
    raw = OPENAMP_LINUX.resource_table().encode()
    assert len(raw) == 88
    assert raw == GOLDEN_TABLE
    assert ShmLayout.openamp() == OPENAMP_LINUX


def test_preset_offsets_are_exact() -> None:
    p = OPENAMP_LINUX
    assert p.size == 0x80000
    assert p.rsc_offset == 0
    assert p.status_offset == 0x2C
    assert p.gfeatures_offset == 36
    assert p.vring_da_offset(0) == 48 and p.vring_da_offset(1) == 68
    assert p.vring_das == (0x4000, 0x8000)
    assert (p.num, p.align, p.vring_notifyids) == (256, 0x1000, (1, 2))
    rx, tx = p.rx_buffer_addrs(), p.tx_buffer_addrs()
    assert (len(rx), rx[0], rx[-1] + 512) == (256, 0x10000, 0x30000)
    assert (len(tx), tx[0], tx[-1] + 512) == (256, 0x30000, 0x50000)
    q0, q1 = p.queues()
    assert (q0.desc, q0.avail, q0.used) == (0x4000, 0x5000, 0x6000)
    assert (q1.desc, q1.avail, q1.used) == (0x8000, 0x9000, 0xA000)
    p.check()
    assert default_socket("/dev/shm/openamp.shm") == "/tmp/openamp.event.0"


def test_larger_rings_move_the_parts_up_without_overlap() -> None:
    big = ShmLayout.openamp(num=1024, buffers=1024)
    big.check()
    assert big.size > 0x80000
    assert big.tx_buffer_addrs()[-1] + 512 <= big.size


def test_table_round_trip() -> None:
    table = ResourceTable.decode(GOLDEN_TABLE)
    assert table.encode() == GOLDEN_TABLE
    _off, vdev = table.vdev()
    assert [v.da for v in vdev.vrings] == [0x4000, 0x8000]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_table_random_bytes(raw: bytes) -> None:
    try:
        ResourceTable.decode(raw)
    except DecodeError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 87), st.integers(0, 255))
def test_table_one_corrupt_byte(at: int, value: int) -> None:
    raw = bytearray(GOLDEN_TABLE)
    raw[at] = value
    try:
        ResourceTable.decode(bytes(raw))
    except DecodeError:
        pass


def test_bad_version_is_typed() -> None:
    with pytest.raises(DecodeError, match="ver"):
        ResourceTable.decode(b"\x02" + GOLDEN_TABLE[1:])
