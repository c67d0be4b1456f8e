"""Split-ring layouts, ring geometry and the remoteproc resource table (spec rpmsg-virtio §3-4)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpmsg.errors import DecodeError
from rpmsg.wire.virtio import (
    FW_RSC_VDEV,
    FW_RSC_VDEV_VRING,
    RSC_TABLE_HEADER,
    RSC_VDEV,
    VIRTIO_ID_RPMSG,
    VRING_AVAIL,
    VRING_DESC,
    VRING_USED,
    VRING_USED_ELEM,
    RawEntry,
    ResourceTable,
    VdevEntry,
    VringEntry,
    VringGeometry,
    vdev_field_offset,
    vring_field_offset,
)

PROPS = settings(max_examples=300, deadline=None)
u32 = st.integers(0, 0xFFFFFFFF)


def fields(layout: object) -> list[tuple[str, int, int]]:
    return [(f.name, f.offset, f.size) for f in layout.fields]  # type: ignore[attr-defined]


# Ring layouts -----------------------------------------------------------------------------


def test_vring_desc_layout() -> None:
    assert VRING_DESC.size == 16
    assert fields(VRING_DESC) == [("addr", 0, 8), ("len", 8, 4), ("flags", 12, 2),
                                  ("next", 14, 2)]


def test_vring_used_elem_layout() -> None:
    assert VRING_USED_ELEM.size == 8
    assert fields(VRING_USED_ELEM) == [("id", 0, 4), ("len", 4, 4)]


def test_ring_headers() -> None:
    assert fields(VRING_AVAIL) == [("flags", 0, 2), ("idx", 2, 2)]
    assert fields(VRING_USED) == [("flags", 0, 2), ("idx", 2, 2)]


def test_vring_desc_bytes() -> None:
    wire = VRING_DESC.pack(0x10000, 512, 2, 7)
    assert wire == bytes.fromhex("0000010000000000 00020000 0200 0700")
    assert VRING_DESC.unpack(wire) == (0x10000, 512, 2, 7)


@pytest.mark.parametrize(("num", "align", "used", "total"), [
    (256, 4096, 0x2000, 10246),
    (256, 16, 0x1210, 0x1A16),
    (16, 16, 0x130, 0x1B6),
])
def test_geometry_table_from_spec(num: int, align: int, used: int, total: int) -> None:
    geo = VringGeometry(num, align)
    assert geo.used_offset == used
    assert geo.size == total


def test_geometry_parts() -> None:
    geo = VringGeometry(16, 16)
    assert geo.desc_offset == 0
    assert geo.avail_offset == 256
    assert geo.avail_ring_offset == 260
    assert geo.used_event_offset == 260 + 32
    assert geo.used_ring_offset == 0x130 + 4


@pytest.mark.parametrize(("num", "align"), [(0, 16), (3, 16), (65536, 16), (-4, 16),
                                            (16, 0), (16, 3), (16, -16)])
def test_geometry_rejects_bad_values(num: int, align: int) -> None:
    with pytest.raises(ValueError):
        VringGeometry(num, align)


@PROPS
@given(st.integers(-10, 1 << 17), st.integers(-10, 1 << 14))
def test_geometry_validation(num: int, align: int) -> None:
    try:
        geo = VringGeometry(num, align)
    except ValueError:
        assert not (0 < num <= 32768 and num & (num - 1) == 0
                    and align > 0 and align & (align - 1) == 0)
    else:
        assert geo.used_offset % align == 0
        assert geo.used_offset >= 18 * num + 6
        assert geo.used_offset - (18 * num + 6) < align
        assert geo.size == geo.used_offset + 8 * num + 6


# Resource table ---------------------------------------------------------------------------


def openamp_demo_table() -> ResourceTable:
    """The OpenAMP Linux demo's table (spec §7.2): one vdev with two 256-entry vrings."""
    return ResourceTable([VdevEntry(vrings=[VringEntry(0x4000, 0x1000, 256, 1),
                                            VringEntry(0x8000, 0x1000, 256, 2)])])


def test_vdev_layouts() -> None:
    assert RSC_TABLE_HEADER.size == 16
    assert FW_RSC_VDEV.size == 28
    assert FW_RSC_VDEV.offset("gfeatures") == 16
    assert FW_RSC_VDEV.offset("status") == 24
    assert FW_RSC_VDEV.offset("num_of_vrings") == 25
    assert FW_RSC_VDEV_VRING.size == 20
    assert fields(FW_RSC_VDEV_VRING) == [("da", 0, 4), ("align", 4, 4), ("num", 8, 4),
                                         ("notifyid", 12, 4), ("reserved", 16, 4)]


def test_openamp_table_offsets() -> None:
    table = openamp_demo_table()
    wire = table.encode()
    assert len(wire) == 88
    assert wire[:20] == bytes.fromhex("01000000 01000000 00000000 00000000 14000000")
    vdev_at, vdev = table.vdev()
    assert vdev_at == 20
    assert vdev_field_offset(vdev_at, "status") == 0x2C
    assert vdev_field_offset(vdev_at, "gfeatures") == 36
    assert vring_field_offset(vdev_at, 0, "da") == 48
    assert vring_field_offset(vdev_at, 1, "da") == 68
    assert wire[20:48] == bytes.fromhex(
        "03000000 07000000 00000000 01000000 00000000 00000000 00 02 0000")
    assert wire[48:68] == bytes.fromhex("00400000 00100000 00010000 01000000 00000000")
    assert wire[68:88] == bytes.fromhex("00800000 00100000 00010000 02000000 00000000")
    assert vdev.id == VIRTIO_ID_RPMSG and vdev.dfeatures == 1


def test_openamp_table_round_trip_and_status_write() -> None:
    wire = bytearray(openamp_demo_table().encode())
    assert ResourceTable.decode(wire) == openamp_demo_table()
    wire[0x2C] = 7  # the driver writes DRIVER_OK|DRIVER|ACK there
    wire[36] = 1  # and the negotiated features
    _, vdev = ResourceTable.decode(bytes(wire)).vdev()
    assert (vdev.status, vdev.gfeatures) == (7, 1)


def test_table_with_raw_entry_first() -> None:
    table = ResourceTable([RawEntry(0, b"\x11" * 12), openamp_demo_table().entries[0]])
    wire = table.encode()
    assert table.entry_offsets() == [24, 40]
    assert table.vdev()[0] == 40
    assert ResourceTable.decode(wire) == table


def test_table_without_vdev() -> None:
    with pytest.raises(LookupError):
        ResourceTable([RawEntry(2, bytes(8))]).vdev()


def test_table_bad_version() -> None:
    wire = bytearray(openamp_demo_table().encode())
    wire[0] = 2
    with pytest.raises(DecodeError) as info:
        ResourceTable.decode(wire)
    assert (info.value.structure, info.value.field, info.value.offset) == (
        "resource_table", "ver", 0)


def test_table_short_header() -> None:
    with pytest.raises(DecodeError) as info:
        ResourceTable.decode(bytes.fromhex("01000000 01"))
    assert (info.value.structure, info.value.field, info.value.offset) == (
        "resource_table", "num", 4)


def test_table_offsets_past_end() -> None:
    wire = bytes.fromhex("01000000 05000000 00000000 00000000 14000000")
    with pytest.raises(DecodeError) as info:
        ResourceTable.decode(wire)
    assert (info.value.field, info.value.offset) == ("offset", 16)


def test_table_entry_offset_outside_body() -> None:
    wire = bytearray(openamp_demo_table().encode())
    wire[16:20] = (200).to_bytes(4, "little")
    with pytest.raises(DecodeError) as info:
        ResourceTable.decode(wire)
    assert (info.value.structure, info.value.field, info.value.offset) == (
        "resource_table_offset", "offset", 16)


def test_table_entry_offset_inside_header() -> None:
    wire = bytearray(openamp_demo_table().encode())
    wire[16:20] = (4).to_bytes(4, "little")
    with pytest.raises(DecodeError):
        ResourceTable.decode(wire)


def test_vdev_reserved_nonzero() -> None:
    wire = bytearray(openamp_demo_table().encode())
    wire[20 + 26] = 1
    with pytest.raises(DecodeError) as info:
        ResourceTable.decode(wire)
    assert (info.value.structure, info.value.field, info.value.offset) == (
        "fw_rsc_vdev", "reserved", 46)


def test_vdev_too_many_vrings() -> None:
    wire = bytearray(openamp_demo_table().encode())
    wire[20 + 25] = 3  # three vrings do not fit in the 88 bytes
    with pytest.raises(DecodeError) as info:
        ResourceTable.decode(wire)
    assert (info.value.structure, info.value.field) == ("fw_rsc_vdev", "num_of_vrings")


def test_vdev_config_len_past_end() -> None:
    wire = bytearray(openamp_demo_table().encode())
    wire[20 + 20] = 4
    with pytest.raises(DecodeError) as info:
        ResourceTable.decode(wire)
    assert (info.value.structure, info.value.field) == ("fw_rsc_vdev", "config_len")


def test_vdev_truncated() -> None:
    wire = openamp_demo_table().encode()[:30]
    with pytest.raises(DecodeError) as info:
        ResourceTable.decode(wire)
    assert info.value.structure == "fw_rsc_vdev"


vring_entries = st.builds(VringEntry, u32, u32, u32, u32, u32)
vdevs = st.builds(VdevEntry, vrings=st.lists(vring_entries, max_size=3), id=u32, notifyid=u32,
                  dfeatures=u32, gfeatures=u32, status=st.integers(0, 255),
                  config=st.binary(max_size=12))
raws = st.builds(RawEntry, st.integers(0, 0xFFFFFFFF).filter(lambda t: t != RSC_VDEV),
                 st.binary(max_size=24))
tables = st.builds(ResourceTable, st.lists(st.one_of(vdevs, raws), max_size=4))


@PROPS
@given(tables)
def test_table_round_trip(table: ResourceTable) -> None:
    wire = table.encode()
    assert len(wire) == table.header_size + sum(e.size for e in table.entries)
    assert ResourceTable.decode(wire) == table


@PROPS
@given(tables, st.data())
def test_table_corrupted(table: ResourceTable, data: st.DataObject) -> None:
    """Truncated or byte-flipped tables give a table or DecodeError, nothing else."""
    wire = bytearray(table.encode())
    for _ in range(data.draw(st.integers(0, 4))):
        if not wire:
            break
        at = data.draw(st.integers(0, len(wire) - 1))
        wire[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(wire)))
    try:
        ResourceTable.decode(bytes(wire[:cut]))
    except DecodeError as err:
        assert err.structure in {"resource_table", "resource_table_offset", "fw_rsc_vdev",
                                 "fw_rsc_vdev_vring"}
        assert 0 <= err.offset < max(cut, 1) + 64


@PROPS
@given(st.binary(max_size=128))
def test_table_random_bytes(data: bytes) -> None:
    try:
        ResourceTable.decode(data)
    except DecodeError:
        pass


@PROPS
@given(st.binary(max_size=96))
def test_table_random_body_after_valid_header(body: bytes) -> None:
    head = bytes.fromhex("01000000 01000000 00000000 00000000 14000000")
    try:
        ResourceTable.decode(head + body)
    except DecodeError:
        pass
