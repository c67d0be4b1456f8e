"""UART framing: golden bytes from the spec, CRC check values, round trips and bad input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpmsg.port.crc import crc16_arc, crc16_xmodem
from rpmsg.port.uart.framer import (
    CURRENT,
    LEGACY,
    Control,
    Event,
    Frame,
    FrameDecoder,
    FrameEncoder,
    FrameError,
    UartProtocol,
)
from rpmsg.wire.port import PORT_HEADER
from rpmsg.wire.rpmsg import NsMessage, encode_ns

SPEC_WIRE = bytes.fromhex(
    "7f 00 00 00 00 00 00 40 00 00 04 00 00 35 00 00 00 00 00 00 00 28 00 00 00"
    "7c 52 7c 50 6d 7c 53 67 2d 7c 50 69 6e 67" + " 00" * 22 + "00 04 00 00 00 00 00 00 70")


def port_frame(body: bytes) -> bytes:
    """A port frame (header with cmd = avail = 0, crc 0) around ``body``."""
    return PORT_HEADER.pack(0, 0, 0, 8 + len(body)) + body


def ns_create_frame() -> bytes:
    return port_frame(encode_ns(0x400, NsMessage("rpmsg-ping", 0x400)))


def frames_of(events: list[Event]) -> list[bytes]:
    return [e.data for e in events if isinstance(e, Frame)]


def test_crc_check_values() -> None:
    assert crc16_arc(b"123456789") == 0xBB3D
    assert crc16_xmodem(b"123456789") == 0x31C3
    data = bytes(range(256)) * 3 + b"x"
    assert crc16_arc(data) == crc16_arc(data[100:], crc16_arc(data[:100]))  # chaining


def test_spec_example_ns_create_escapes_exactly() -> None:
    raw = ns_create_frame()
    assert len(raw) == 64
    assert FrameEncoder(CURRENT).encode(raw) == SPEC_WIRE
    assert frames_of(FrameDecoder(CURRENT).feed(SPEC_WIRE)) == [raw]


def test_spec_example_with_crc16_arc() -> None:
    raw = ns_create_frame()
    assert crc16_arc(raw[2:]) == 0x513B
    wire = FrameEncoder(CURRENT, crc="arc").encode(raw)
    assert wire[1:3] == b"\x3b\x51"
    assert frames_of(FrameDecoder(CURRENT, crc="arc").feed(wire)) == [b"\x3b\x51" + raw[2:]]


def test_legacy_byte_values() -> None:
    raw = port_frame(bytes([0x7B, 0x7C, 0x7D, 0x7E, 0x7F, 0x70, 0x7A]))
    wire = FrameEncoder(LEGACY).encode(raw)
    assert wire[0] == 0x7F and wire[-1] == 0x7E
    assert wire[9:-1] == bytes([0x7B, 0x5B, 0x7B, 0x5C, 0x7B, 0x5D, 0x7B, 0x5E, 0x7B, 0x5F,
                                0x70, 0x7A])
    assert frames_of(FrameDecoder(LEGACY).feed(wire)) == [raw]


def test_control_bytes_inside_a_frame_are_reported_and_skipped() -> None:
    raw = port_frame(b"\x7c\x7cabc" * 3)
    wire = FrameEncoder(CURRENT).encode(raw)
    # A STAYWAKE reply lands between every two bytes, even inside escape pairs.
    mixed = b"".join(bytes([b, 0x78]) for b in wire)
    events = FrameDecoder(CURRENT).feed(mixed)
    assert frames_of(events) == [raw]
    assert sum(1 for e in events if e == Control(0x78)) == len(wire)


@pytest.mark.parametrize("garbage", [
    b"\x70",            # stray END
    b"\x7c",            # stray ESCAPE
    b"\x71\x72\x73",    # reserved control bytes
    b"hello",           # junk between frames
])
def test_stray_bytes_are_counted_and_the_next_frame_arrives(garbage: bytes) -> None:
    raw = port_frame(b"payload")
    dec = FrameDecoder(CURRENT)
    events = dec.feed(garbage + FrameEncoder().encode(raw))
    assert frames_of(events) == [raw]
    assert any(isinstance(e, FrameError) for e in events)
    assert sum(dec.errors.values()) >= 1


def test_truncated_frame_is_dropped_then_resync() -> None:
    enc, dec = FrameEncoder(), FrameDecoder()
    a, b = port_frame(b"first" * 10), port_frame(b"second")
    wa = enc.encode(a)
    events = dec.feed(wa[:20] + enc.encode(b))  # START of b aborts the cut frame a
    assert frames_of(events) == [b]
    assert dec.errors["aborted"] == 1


def test_missing_byte_is_a_length_mismatch_without_crc() -> None:
    enc, dec = FrameEncoder(), FrameDecoder()
    raw = port_frame(b"abcdefgh")
    wire = enc.encode(raw)
    damaged = wire[:12] + wire[13:]
    assert frames_of(dec.feed(damaged + enc.encode(raw))) == [raw]
    assert dec.errors["bad_length"] == 1


def test_frame_longer_than_rx_buffer_is_dropped() -> None:
    enc, dec = FrameEncoder(), FrameDecoder(max_len=64)
    big, small = port_frame(bytes(100)), port_frame(b"ok")
    assert frames_of(dec.feed(enc.encode(big) + enc.encode(small))) == [small]
    assert dec.errors["too_long"] == 1
    # Far too long: discarded while streaming, never buffered.
    huge = port_frame(bytes(10_000))
    assert frames_of(dec.feed(enc.encode(huge) + enc.encode(small))) == [small]
    assert dec.errors["too_long"] == 2


def test_bad_crc_is_dropped_and_counted() -> None:
    enc, dec = FrameEncoder(crc="arc"), FrameDecoder(crc="arc")
    raw = port_frame(b"abcdefgh")
    wire = bytearray(enc.encode(raw))
    wire[14] ^= 0x01
    assert frames_of(dec.feed(bytes(wire) + enc.encode(raw))) == [
        crc_filled(raw, "arc")]
    assert dec.errors["bad_crc"] == 1


@pytest.mark.parametrize("crc", ["arc", "xmodem"])
def test_a_zero_crc_field_is_dropped_and_counted_when_a_crc_is_configured(crc: str) -> None:
    # NuttX writes 0 for "no CRC"; a corrupted frame whose CRC field reads 0 must not pass.
    raw = port_frame(b"abc")
    dec = FrameDecoder(crc=crc)
    events = dec.feed(FrameEncoder().encode(raw))
    assert frames_of(events) == []
    assert dec.errors["no_crc"] == 1
    (err,) = [e for e in events if isinstance(e, FrameError)]
    assert (err.reason, err.data) == ("no_crc", raw)  # the dropped frame, for captures


def test_crc_optional_accepts_frames_without_crc_but_still_checks_nonzero_ones() -> None:
    dec = FrameDecoder(crc="arc", crc_optional=True)
    raw = port_frame(b"abc")
    assert frames_of(dec.feed(FrameEncoder().encode(raw))) == [raw]
    wrong = bytearray(crc_filled(raw, "arc"))
    wrong[0] ^= 1
    assert frames_of(dec.feed(FrameEncoder().encode(bytes(wrong)))) == []
    assert dec.errors["bad_crc"] == 1


def test_a_frame_whose_computed_crc_is_zero_passes_with_a_zero_crc_field() -> None:
    # A reflected CRC without final XOR leaves 0 over data followed by its own CRC (LE).
    body = bytearray(port_frame(b"abc" + b"\0\0"))
    body[-2:] = crc16_arc(bytes(body[2:-2])).to_bytes(2, "little")
    assert crc16_arc(bytes(body[2:])) == 0
    dec = FrameDecoder(crc="arc")
    events = dec.feed(FrameEncoder(crc="arc").encode(bytes(body)))
    assert frames_of(events) == [bytes(body)]
    assert events[0].crc == "ok"  # type: ignore[union-attr]


def test_connreq_aborts_a_partial_frame() -> None:
    dec = FrameDecoder()
    wire = FrameEncoder().encode(port_frame(b"abcdef"))
    events = dec.feed(wire[:10] + b"\x7e" + wire[10:])
    assert Control(0x7E) in events
    assert frames_of(events) == []
    assert dec.errors["aborted"] == 1


def crc_filled(raw: bytes, crc: str) -> bytes:
    fn = crc16_arc if crc == "arc" else crc16_xmodem
    return fn(raw[2:]).to_bytes(2, "little") + raw[2:]


# Properties -----------------------------------------------------------------------------

CONTROL_HEAVY = st.binary(max_size=300) | st.lists(
    st.integers(0x68, 0x80).map(lambda b: b & 0xFF), max_size=300).map(bytes)
PROTOCOLS = st.sampled_from([CURRENT, LEGACY])
CRCS = st.sampled_from(["none", "arc", "xmodem"])


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in points:
        out.append(data[last:p])
        last = p
    out.append(data[last:])
    return out


@settings(max_examples=300, deadline=None)
@given(bodies=st.lists(CONTROL_HEAVY, min_size=1, max_size=6), protocol=PROTOCOLS, crc=CRCS,
       cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_round_trip_any_chunking(bodies: list[bytes], protocol: UartProtocol, crc: str,
                                 cuts: list[int]) -> None:
    raws = [port_frame(b) for b in bodies]
    enc = FrameEncoder(protocol, crc)
    for raw in raws:
        inner = enc.encode(raw)[1:-1]
        assert all(b not in protocol.specials or b == protocol.escape for b in inner)
    wire = enc.encode_many(raws)
    dec = FrameDecoder(protocol, crc, max_len=400)
    events: list[Event] = []
    for chunk in chunked(wire, cuts):
        events += dec.feed(chunk)
    expected = raws if crc == "none" else [crc_filled(r, crc) for r in raws]
    assert frames_of(events) == expected
    assert sum(dec.errors.values()) == 0


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(max_size=500) | CONTROL_HEAVY, body=CONTROL_HEAVY,
       protocol=PROTOCOLS, crc=CRCS)
def test_random_bytes_give_events_only_and_resync(garbage: bytes, body: bytes,
                                                  protocol: UartProtocol, crc: str) -> None:
    dec = FrameDecoder(protocol, crc, max_len=400)
    events = dec.feed(garbage)
    assert all(isinstance(e, Frame | Control | FrameError) for e in events)
    for e in events:
        if isinstance(e, Frame):
            assert PORT_HEADER.unpack(e.data)[3] == len(e.data) <= 400
    raw = port_frame(body)
    tail = dec.feed(FrameEncoder(protocol, crc).encode(raw))
    expected = raw if crc == "none" else crc_filled(raw, crc)
    assert frames_of(tail)[-1:] == [expected]


@settings(max_examples=300, deadline=None)
@given(bodies=st.lists(st.binary(min_size=1, max_size=100), min_size=3, max_size=3),
       flip=st.integers(0, 10_000), bit=st.integers(0, 7), crc=st.sampled_from(["arc",
                                                                                "xmodem"]))
def test_bit_flip_with_crc_drops_only_the_damaged_frame(bodies: list[bytes], flip: int,
                                                        bit: int, crc: str) -> None:
    enc, dec = FrameEncoder(CURRENT, crc), FrameDecoder(CURRENT, crc)
    raws = [crc_filled(port_frame(bytes([i]) + b), crc) for i, b in enumerate(bodies)]
    wires = [enc.encode(r) for r in raws]
    middle = bytearray(wires[1])
    pos = 1 + flip % (len(middle) - 2)  # inside the frame, START and END intact
    middle[pos] ^= 1 << bit
    got = frames_of(dec.feed(wires[0] + bytes(middle) + wires[2]))
    assert got[0] == raws[0] and got[-1] == raws[2]
    assert all(g in raws for g in got)
    assert raws[1] not in got or bytes(middle) == wires[1]
