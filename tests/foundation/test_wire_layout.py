"""The Layout machinery every codec uses: offsets, short input errors, pack/unpack identity."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpmsg.errors import DecodeError
from rpmsg.wire import layout, linux, port, rpmsg, virtio
from rpmsg.wire.layout import Layout

PROPS = settings(max_examples=200, deadline=None)

LAYOUTS = sorted(
    (value for module in (rpmsg, linux, port, virtio) for value in vars(module).values()
     if isinstance(value, Layout)),
    key=lambda lay: lay.name)


def test_layouts_found() -> None:
    names = {lay.name for lay in LAYOUTS}
    assert {"rpmsg_hdr", "rpmsg_ns_msg", "rpmsg_endpoint_info", "rpmsg_port_header",
            "vring_desc", "vring_used_elem", "fw_rsc_vdev", "fw_rsc_vdev_vring"} <= names


@pytest.mark.parametrize("lay", LAYOUTS, ids=lambda lay: lay.name)
def test_fields_are_packed_in_order(lay: Layout) -> None:
    end = 0
    for f in lay.fields:
        assert f.offset == end
        assert lay.offset(f.name) == f.offset
        end += f.size
    assert end == lay.size


@pytest.mark.parametrize("lay", LAYOUTS, ids=lambda lay: lay.name)
@PROPS
@given(data=st.data())
def test_unpack_pack_identity(lay: Layout, data: st.DataObject) -> None:
    raw = data.draw(st.binary(min_size=lay.size, max_size=lay.size))
    assert lay.pack(*lay.unpack(raw)) == raw
    buf = bytearray(lay.size + 3)
    lay.pack_into(buf, 3, *lay.unpack(raw))
    assert bytes(buf[3:]) == raw


@pytest.mark.parametrize("lay", LAYOUTS, ids=lambda lay: lay.name)
@PROPS
@given(data=st.data())
def test_short_input_names_first_missing_field(lay: Layout, data: st.DataObject) -> None:
    offset = data.draw(st.integers(0, 8))
    have = data.draw(st.integers(0, lay.size - 1))
    raw = bytes(offset + have)
    with pytest.raises(DecodeError) as info:
        lay.unpack(raw, offset)
    err = info.value
    missing = next(f for f in lay.fields if f.offset + f.size > have)
    assert (err.structure, err.field, err.offset) == (lay.name, missing.name,
                                                      offset + missing.offset)
    assert str(err).startswith(f"{lay.name}.{missing.name} at byte offset {err.offset}")


def test_negative_offset_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        rpmsg.RPMSG_HEADER.unpack(bytes(32), -4)


def test_pack_out_of_range_is_value_error() -> None:
    with pytest.raises(ValueError, match="rpmsg_hdr"):
        rpmsg.RPMSG_HEADER.pack(-1, 0, 0, 0, 0)
    with pytest.raises(ValueError):
        port.PORT_HEADER.pack(0x10000, 0, 0, 0)


def test_layout_error_helper() -> None:
    err = rpmsg.RPMSG_HEADER.error("len", "too big", base=8)
    assert (err.structure, err.field, err.offset, err.reason) == ("rpmsg_hdr", "len", 20,
                                                                  "too big")


def test_decode_name_rules() -> None:
    assert layout.decode_name(b"abc\0def") == "abc"
    assert layout.decode_name(b"abcd") == "abc"  # no NUL: the last byte is dropped
    assert layout.encode_name("abc", "x", size=8) == b"abc\0\0\0\0\0"


def test_negative_offset_never_reads_from_the_end() -> None:
    with pytest.raises(DecodeError):
        rpmsg.RPMSG_HEADER.unpack(bytes(64), -20)
    with pytest.raises(DecodeError):
        rpmsg.RpmsgHeader.decode(bytes(64), -16)
