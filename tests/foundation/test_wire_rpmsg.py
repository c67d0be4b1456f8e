"""RPMsg header and name-service codecs: golden bytes from the spec, names, errors, properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpmsg.errors import DecodeError, NameTooLongError
from rpmsg.wire import (
    ADDR_ANY,
    DEFAULT_MTU,
    HEADER_SIZE,
    NS_ADDR,
    NS_MESSAGE,
    NS_MESSAGE_SIZE,
    RPMSG_HEADER,
    NsFlags,
    NsMessage,
    RpmsgHeader,
    decode_message,
    encode_message,
    encode_ns,
)

PROPS = settings(max_examples=300, deadline=None)

u32 = st.integers(0, 0xFFFFFFFF)
u16 = st.integers(0, 0xFFFF)
#: Any name that fits: up to 31 bytes without NUL, non-UTF-8 bytes included (surrogateescape).
names = (st.binary(max_size=31).filter(lambda b: b"\0" not in b)
         .map(lambda b: b.decode("utf-8", "surrogateescape")))

GOLDEN_NS_RAW = bytes.fromhex(
    "00040000" "35000000" "00000000" "2800" "0000"
) + b"rpmsg-raw".ljust(32, b"\0") + bytes.fromhex("00040000" "00000000")


# Layout declarations ----------------------------------------------------------------------


def test_constants_match_spec() -> None:
    assert ADDR_ANY == 0xFFFFFFFF
    assert NS_ADDR == 53
    assert HEADER_SIZE == 16
    assert DEFAULT_MTU == 496
    assert NS_MESSAGE_SIZE == 40


def test_header_field_offsets() -> None:
    assert RPMSG_HEADER.size == 16
    assert [(f.name, f.offset, f.size) for f in RPMSG_HEADER.fields] == [
        ("src", 0, 4), ("dst", 4, 4), ("reserved", 8, 4), ("len", 12, 2), ("flags", 14, 2)]


def test_ns_field_offsets() -> None:
    assert [(f.name, f.offset, f.size) for f in NS_MESSAGE.fields] == [
        ("name", 0, 32), ("addr", 32, 4), ("flags", 36, 4)]


def test_ns_flag_values() -> None:
    assert (NsFlags.CREATE, NsFlags.DESTROY, NsFlags.CREATE_ACK) == (0, 1, 2)


# Golden bytes -----------------------------------------------------------------------------


def test_ns_create_golden_bytes() -> None:
    wire = encode_ns(0x400, NsMessage("rpmsg-raw", 0x400, NsFlags.CREATE))
    assert len(wire) == 56
    assert wire == GOLDEN_NS_RAW


def test_ns_create_golden_bytes_decode() -> None:
    hdr, payload = decode_message(GOLDEN_NS_RAW)
    assert hdr == RpmsgHeader(src=0x400, dst=NS_ADDR, len=40, flags=0, reserved=0)
    assert NsMessage.decode(payload) == NsMessage("rpmsg-raw", 0x400, NsFlags.CREATE)


def test_ns_destroy_and_ack_flags_bytes() -> None:
    assert NsMessage("a", 1, NsFlags.DESTROY).encode()[36:] == b"\x01\0\0\0"
    assert NsMessage("a", 1, NsFlags.CREATE_ACK).encode()[36:] == b"\x02\0\0\0"


def test_header_encodes_little_endian() -> None:
    hdr = RpmsgHeader(src=0x01020304, dst=0x0A0B0C0D, len=0x1234, flags=0x5678, reserved=0x11)
    assert hdr.encode() == bytes.fromhex("04030201" "0d0c0b0a" "11000000" "3412" "7856")


def test_encode_message_zeroes_reserved_and_flags() -> None:
    wire = encode_message(5, 6, b"xyz")
    assert wire == bytes.fromhex("05000000" "06000000" "00000000" "0300" "0000") + b"xyz"


# Names ------------------------------------------------------------------------------------


def test_name_is_nul_padded_on_encode() -> None:
    body = NsMessage("ab", 7).encode()
    assert body[:32] == b"ab" + b"\0" * 30


def test_name_garbage_after_nul_is_ignored_on_decode() -> None:
    raw = b"rpmsg-tty\0" + b"\xaa" * 22 + (0x401).to_bytes(4, "little") + bytes(4)
    msg = NsMessage.decode(raw)
    assert msg.name == "rpmsg-tty"
    assert msg.addr == 0x401
    # Re-encoding never reproduces the garbage.
    assert msg.encode()[:32] == b"rpmsg-tty".ljust(32, b"\0")


def test_name_without_nul_drops_the_last_byte() -> None:
    raw = b"N" * 32 + bytes(8)
    assert NsMessage.decode(raw).name == "N" * 31


def test_name_of_31_bytes_fits() -> None:
    msg = NsMessage("x" * 31, 1)
    assert NsMessage.decode(msg.encode()).name == "x" * 31


@pytest.mark.parametrize("name", ["x" * 32, "y" * 100, "é" * 16])
def test_name_too_long_is_an_error_not_a_truncation(name: str) -> None:
    with pytest.raises(NameTooLongError):
        NsMessage(name, 1).encode()
    with pytest.raises(NameTooLongError):
        encode_ns(1, NsMessage(name, 1))


def test_name_with_nul_is_rejected() -> None:
    with pytest.raises(NameTooLongError):
        NsMessage("a\0b", 1).encode()


def test_non_utf8_name_round_trips() -> None:
    raw = b"\xff\xfe-svc".ljust(32, b"\0") + bytes(8)
    msg = NsMessage.decode(raw)
    assert msg.encode() == raw


# Decode errors ----------------------------------------------------------------------------


def test_short_header_names_the_missing_field() -> None:
    with pytest.raises(DecodeError) as info:
        RpmsgHeader.decode(bytes(13))
    err = info.value
    assert (err.structure, err.field, err.offset) == ("rpmsg_hdr", "len", 12)


def test_short_header_at_offset_reports_absolute_offset() -> None:
    with pytest.raises(DecodeError) as info:
        RpmsgHeader.decode(bytes(10), offset=4)
    assert (info.value.field, info.value.offset) == ("dst", 8)  # 6 bytes left: src fits


def test_empty_header() -> None:
    with pytest.raises(DecodeError) as info:
        decode_message(b"")
    assert (info.value.structure, info.value.field, info.value.offset) == ("rpmsg_hdr", "src", 0)


def test_header_len_past_buffer_is_rejected() -> None:
    wire = bytearray(encode_message(1, 2, b"abcd"))
    wire[12] = 5  # claims 5 payload bytes, 4 follow
    with pytest.raises(DecodeError) as info:
        decode_message(bytes(wire))
    err = info.value
    assert (err.structure, err.field, err.offset) == ("rpmsg_hdr", "len", 12)
    assert isinstance(err, ValueError)


def test_decode_message_ignores_trailing_bytes_and_reserved() -> None:
    wire = bytearray(encode_message(1, 2, b"abcd") + b"trailing")
    wire[8:12] = b"\x07\x00\x01\x00"  # OpenAMP scribbles here; receivers ignore it
    hdr, payload = decode_message(wire)
    assert bytes(payload) == b"abcd"
    assert (hdr.src, hdr.dst, hdr.len) == (1, 2, 4)


def test_decode_message_at_offset() -> None:
    wire = b"pad!" + encode_message(9, 10, b"hi")
    hdr, payload = decode_message(wire, 4)
    assert (hdr.src, hdr.dst, bytes(payload)) == (9, 10, b"hi")


def test_ns_short_message() -> None:
    with pytest.raises(DecodeError) as info:
        NsMessage.decode(bytes(35))
    err = info.value
    assert (err.structure, err.field, err.offset) == ("rpmsg_ns_msg", "addr", 32)


def test_ns_long_message_is_rejected() -> None:
    with pytest.raises(DecodeError) as info:
        NsMessage.decode(bytes(41))
    assert info.value.structure == "rpmsg_ns_msg"
    assert "exactly 40" in info.value.reason


def test_ns_unknown_flags() -> None:
    raw = NsMessage("a", 1).encode()[:36] + (3).to_bytes(4, "little")
    with pytest.raises(DecodeError) as info:
        NsMessage.decode(raw)
    err = info.value
    assert (err.structure, err.field, err.offset) == ("rpmsg_ns_msg", "flags", 36)


def test_ns_decode_at_offset_reports_absolute_offset() -> None:
    raw = b"\0" * 16 + NsMessage("a", 1).encode()[:36] + b"\x09\0\0\0"
    with pytest.raises(DecodeError) as info:
        NsMessage.decode(raw, 16)
    assert (info.value.field, info.value.offset) == ("flags", 52)


# Properties -------------------------------------------------------------------------------


@PROPS
@given(src=u32, dst=u32, length=u16, flags=u16, reserved=u32)
def test_header_round_trip(src: int, dst: int, length: int, flags: int, reserved: int) -> None:
    hdr = RpmsgHeader(src=src, dst=dst, len=length, flags=flags, reserved=reserved)
    wire = hdr.encode()
    assert len(wire) == HEADER_SIZE
    assert RpmsgHeader.decode(wire) == hdr


@PROPS
@given(src=u32, dst=u32, payload=st.binary(max_size=600), junk=st.binary(max_size=16))
def test_message_round_trip(src: int, dst: int, payload: bytes, junk: bytes) -> None:
    hdr, got = decode_message(encode_message(src, dst, payload) + junk)
    assert (hdr.src, hdr.dst, hdr.len, hdr.flags, hdr.reserved) == (src, dst, len(payload), 0, 0)
    assert bytes(got) == payload


@PROPS
@given(name=names, addr=u32, flags=st.sampled_from(list(NsFlags)))
def test_ns_round_trip(name: str, addr: int, flags: NsFlags) -> None:
    msg = NsMessage(name, addr, flags)
    body = msg.encode()
    assert len(body) == NS_MESSAGE_SIZE
    assert NsMessage.decode(body) == msg
    wire = encode_ns(addr, msg)
    hdr, payload = decode_message(wire)
    assert (hdr.src, hdr.dst, hdr.len) == (addr, NS_ADDR, 40)
    assert NsMessage.decode(payload) == msg


@PROPS
@given(name=names, garbage=st.binary(min_size=32, max_size=32), addr=u32)
def test_ns_garbage_after_nul(name: str, garbage: bytes, addr: int) -> None:
    raw_name = name.encode("utf-8", "surrogateescape") + b"\0"
    field = (raw_name + garbage)[:32]
    msg = NsMessage.decode(field + addr.to_bytes(4, "little") + bytes(4))
    assert msg.name == name
    assert msg.encode()[:32] == raw_name.ljust(32, b"\0")


@PROPS
@given(st.text(min_size=1).filter(lambda s: "\0" not in s))
def test_ns_encode_never_truncates(name: str) -> None:
    size = len(name.encode("utf-8", "surrogatepass"))
    try:
        body = NsMessage(name, 1).encode()
    except NameTooLongError:
        assert size > 31
    except UnicodeEncodeError:
        pass  # lone surrogates that are not escapes cannot be encoded at all
    else:
        assert size <= 31
        assert NsMessage.decode(body).name == name


@PROPS
@given(st.binary(max_size=64), st.integers(0, 20))
def test_random_bytes_header(data: bytes, offset: int) -> None:
    try:
        hdr = RpmsgHeader.decode(data, offset)
    except DecodeError as err:
        assert err.structure == "rpmsg_hdr"
        assert len(data) - offset < HEADER_SIZE
    else:
        assert hdr.encode() == data[offset : offset + HEADER_SIZE]


@PROPS
@given(st.binary(max_size=80))
def test_random_bytes_message(data: bytes) -> None:
    try:
        hdr, payload = decode_message(data)
    except DecodeError as err:
        assert err.structure == "rpmsg_hdr"
        assert err.field in {f.name for f in RPMSG_HEADER.fields}
    else:
        assert len(payload) == hdr.len <= len(data) - HEADER_SIZE


@PROPS
@given(st.one_of(st.binary(max_size=48), st.binary(min_size=40, max_size=40)))
def test_random_bytes_ns(data: bytes) -> None:
    try:
        msg = NsMessage.decode(data)
    except DecodeError as err:
        assert err.structure == "rpmsg_ns_msg"
        assert err.field in {"name", "addr", "flags"}
        assert 0 <= err.offset < NS_MESSAGE_SIZE
    else:
        assert len(data) == NS_MESSAGE_SIZE
        assert msg.addr == int.from_bytes(data[32:36], "little")
        # A decoded message always re-encodes (no name it produces is too long).
        assert NsMessage.decode(msg.encode()) == msg
