"""``rpmsg_endpoint_info`` (Linux uapi) and the NuttX RPMsg Port header codecs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpmsg.errors import DecodeError, NameTooLongError
from rpmsg.wire import (
    ENDPOINT_INFO,
    ENDPOINT_INFO_SIZE,
    PORT_HEADER,
    PORT_HEADER_SIZE,
    EndpointInfo,
    PortHeader,
    encode_message,
    encode_ns,
)
from rpmsg.wire.rpmsg import NsMessage

PROPS = settings(max_examples=300, deadline=None)
u32 = st.integers(0, 0xFFFFFFFF)
u16 = st.integers(0, 0xFFFF)
names = (st.binary(max_size=31).filter(lambda b: b"\0" not in b)
         .map(lambda b: b.decode("utf-8", "surrogateescape")))


# EndpointInfo -----------------------------------------------------------------------------


def test_endpoint_info_layout() -> None:
    assert ENDPOINT_INFO_SIZE == 40
    assert [(f.name, f.offset, f.size) for f in ENDPOINT_INFO.fields] == [
        ("name", 0, 32), ("src", 32, 4), ("dst", 36, 4)]


def test_endpoint_info_golden_bytes() -> None:
    wire = EndpointInfo("my-ept", src=0xFFFFFFFF, dst=0x400).encode()
    assert len(wire) == 40
    assert wire[:32] == b"my-ept".ljust(32, b"\0")
    assert wire[32:] == bytes.fromhex("ffffffff 00040000")


def test_endpoint_info_defaults_are_any() -> None:
    info = EndpointInfo("x")
    assert (info.src, info.dst) == (0xFFFFFFFF, 0xFFFFFFFF)


def test_endpoint_info_name_of_31_bytes() -> None:
    assert EndpointInfo.decode(EndpointInfo("n" * 31).encode()).name == "n" * 31


@pytest.mark.parametrize("name", ["n" * 32, "ü" * 16, "z" * 64])
def test_endpoint_info_name_too_long(name: str) -> None:
    with pytest.raises(NameTooLongError):
        EndpointInfo(name)


@pytest.mark.parametrize("value", [-1, 1 << 32])
def test_endpoint_info_address_not_u32(value: int) -> None:
    with pytest.raises(ValueError):
        EndpointInfo("x", src=value)
    with pytest.raises(ValueError):
        EndpointInfo("x", dst=value)


def test_endpoint_info_garbage_after_nul() -> None:
    raw = b"abc\0" + b"\x55" * 28 + (1).to_bytes(4, "little") + (2).to_bytes(4, "little")
    assert EndpointInfo.decode(raw) == EndpointInfo("abc", 1, 2)


def test_endpoint_info_short() -> None:
    with pytest.raises(DecodeError) as info:
        EndpointInfo.decode(bytes(39))
    err = info.value
    assert (err.structure, err.field, err.offset) == ("rpmsg_endpoint_info", "dst", 36)


@PROPS
@given(name=names, src=u32, dst=u32)
def test_endpoint_info_round_trip(name: str, src: int, dst: int) -> None:
    info = EndpointInfo(name, src, dst)
    wire = info.encode()
    assert len(wire) == ENDPOINT_INFO_SIZE
    assert EndpointInfo.decode(wire) == info


@PROPS
@given(st.binary(max_size=48), st.integers(0, 8))
def test_endpoint_info_random_bytes(data: bytes, offset: int) -> None:
    try:
        info = EndpointInfo.decode(data, offset)
    except DecodeError as err:
        assert err.structure == "rpmsg_endpoint_info"
        assert len(data) - offset < ENDPOINT_INFO_SIZE
    else:
        assert EndpointInfo.decode(info.encode()) == info


# Port header ------------------------------------------------------------------------------


def test_port_header_layout() -> None:
    assert PORT_HEADER_SIZE == 8
    assert [(f.name, f.offset, f.size) for f in PORT_HEADER.fields] == [
        ("crc", 0, 2), ("cmd", 2, 2), ("avail", 4, 2), ("len", 6, 2)]


def test_port_frame_golden_bytes() -> None:
    """The spec's derived UART example: NS CREATE 'rpmsg-ping' from 0x400, no CRC (§2.4)."""
    body = encode_ns(0x400, NsMessage("rpmsg-ping", 0x400))
    frame = PortHeader(crc=0, cmd=0, avail=0, len=PORT_HEADER_SIZE + len(body)).encode() + body
    assert frame == bytes.fromhex(
        "0000 0000 0000 4000"
        "00040000 35000000 00000000 2800 0000") + b"rpmsg-ping" + bytes(22) + bytes.fromhex(
        "00040000 00000000")
    assert len(frame) == 64


def test_port_header_little_endian() -> None:
    assert PortHeader(0x513B, 2, 0x10, 0x40).encode() == bytes.fromhex("3b51 0200 1000 4000")


def test_port_header_short() -> None:
    with pytest.raises(DecodeError) as info:
        PortHeader.decode(b"\0" * 5)
    err = info.value
    assert (err.structure, err.field, err.offset) == ("rpmsg_port_header", "avail", 4)


@PROPS
@given(crc=u16, cmd=u16, avail=u16, length=u16, tail=st.binary(max_size=8))
def test_port_header_round_trip(crc: int, cmd: int, avail: int, length: int,
                                tail: bytes) -> None:
    hdr = PortHeader(crc, cmd, avail, length)
    assert PortHeader.decode(hdr.encode() + tail) == hdr


@PROPS
@given(st.binary(max_size=16), st.integers(0, 10))
def test_port_header_random_bytes(data: bytes, offset: int) -> None:
    try:
        hdr = PortHeader.decode(data, offset)
    except DecodeError as err:
        assert err.structure == "rpmsg_port_header"
        assert len(data) - offset < PORT_HEADER_SIZE
    else:
        assert hdr.encode() == data[offset : offset + PORT_HEADER_SIZE]


def test_port_frame_carries_rpmsg_at_offset_8() -> None:
    from rpmsg.wire import decode_message

    frame = PortHeader(0, 0, 0, 8 + 16 + 3).encode() + encode_message(1, 2, b"abc")
    hdr, payload = decode_message(frame, PORT_HEADER_SIZE)
    assert (hdr.src, hdr.dst, bytes(payload)) == (1, 2, b"abc")
