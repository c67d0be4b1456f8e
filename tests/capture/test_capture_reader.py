"""The capture reader against hostile input: garbage, truncation at every byte, mutations,
oversized blocks, foreign pcapng files; and the fast message encoder against the generic one."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from capture_helpers import sample_session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpmsg.capture import CapturedMessage, CaptureReader, TruncatedCaptureError, open_capture
from rpmsg.capture.blocks import (
    block,
    interface_description,
    message_block,
    packet_block,
    record,
    section_header,
)
from rpmsg.capture.reader import read_capture
from rpmsg.errors import DecodeError, NotAvailableError, RpmsgError
from rpmsg.wire.capture import BT_EPB, DIR_RX, DIR_TX, EPB, IDB, REC_MESSAGE
from rpmsg.wire.rpmsg import encode_message


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("reader") / "sample.pcapng"
    tap = open_capture(str(path), link_name="loop:sample", level="frames")
    sample_session(tap)
    tap.frame("rx", "port", b"\x01\x02" * 20, {"crc": "bad", "escapes": 1})
    tap.close()
    return path.read_bytes()


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1), st.sampled_from([DIR_TX, DIR_RX]),
       st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.binary(max_size=600),
       st.integers(0, 0xFFFF))
def test_fast_message_block_matches_the_generic_encoding(
        iface: int, ts: int, direction: int, src: int, dst: int, payload: bytes,
        flags: int) -> None:
    fast = message_block(iface, ts, direction, src, dst, payload, flags)
    hdr = bytearray(encode_message(src, dst, payload))
    hdr[14:16] = flags.to_bytes(2, "little")
    generic = packet_block(iface, ts, record(REC_MESSAGE, direction, 0, b"", bytes(hdr)),
                           direction)
    assert fast == generic
    assert len(fast) % 4 == 0


def test_truncated_at_every_byte(sample_file: bytes) -> None:
    whole = read_capture(sample_file)
    assert len(whole) == 13
    for cut in range(len(sample_file)):
        reader = CaptureReader(io.BytesIO(sample_file[:cut]))
        got = []
        try:
            got.extend(reader)
        except TruncatedCaptureError:
            pass
        except DecodeError as exc:  # a cut inside the section header's first 8 bytes
            assert cut < 8, exc
        assert got == whole[:len(got)]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutations_give_records_or_typed_errors(sample_file: bytes, data: st.DataObject) -> None:
    buf = bytearray(sample_file)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] = data.draw(st.integers(0, 255))
    try:
        recs = read_capture(bytes(buf))
    except RpmsgError:
        return
    assert len(recs) <= 13


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2000))
def test_garbage_gives_typed_errors(raw: bytes) -> None:
    try:
        read_capture(raw)
    except RpmsgError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_after_a_valid_header(raw: bytes) -> None:
    head = section_header("t") + interface_description("x", "y")
    try:
        read_capture(head + raw)
    except RpmsgError:
        pass


def test_a_huge_block_length_is_refused_without_reading_it() -> None:
    head = section_header("t") + interface_description("x", "y")
    evil = head + BT_EPB.to_bytes(4, "little") + (0xFFFFFFF0).to_bytes(4, "little")
    with pytest.raises(DecodeError, match="block length"):
        read_capture(evil)


def test_structural_errors_name_structure_and_offset() -> None:
    with pytest.raises(DecodeError, match="not a pcapng capture"):
        read_capture(b"\xd4\xc3\xb2\xa1" + b"\0" * 20)  # a classic pcap file
    head = section_header("t")
    bad_if = head + block(BT_EPB, EPB.pack(3, 0, 0, 0, 0))
    with pytest.raises(DecodeError, match="interface 3 was not described") as info:
        read_capture(bad_if)
    assert info.value.structure == "pcapng_epb"
    assert info.value.offset == len(head) + 8
    overrun = head + interface_description("x", "y") + block(BT_EPB, EPB.pack(0, 0, 0, 99, 99))
    with pytest.raises(DecodeError, match="overrun"):
        read_capture(overrun)
    mismatch = bytearray(head)
    mismatch[-4] ^= 4
    with pytest.raises(DecodeError, match="trailing length"):
        read_capture(bytes(mismatch))


def test_foreign_packets_and_malformed_records_are_counted_not_fatal() -> None:
    head = section_header("t")
    ether = block(1, IDB.pack(1, 0, 0))  # an Ethernet interface
    ours = interface_description("loop:x", "")
    other_dissector = packet_block(1, 0, b"\x00\x0c\x00\x04http\x00\x00\x00\x00GET /")
    short_record = packet_block(1, 0, record(REC_MESSAGE, DIR_TX, 0, b"", b"\x01\x02"))
    good = message_block(1, 5, DIR_TX, 1, 2, b"ok")
    reader = CaptureReader(io.BytesIO(head + ether + ours + packet_block(0, 0, b"\xff" * 60)
                                      + other_dissector + short_record + good))
    recs = list(reader)
    assert [(type(r), r.payload) for r in recs] == [(CapturedMessage, b"ok")]  # type: ignore[union-attr]
    assert reader.skipped == 2
    assert reader.malformed == 1
    assert "rpmsg_hdr" in reader.first_malformed


def test_missing_file_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(NotAvailableError):
        read_capture(str(tmp_path / "nope.pcapng"))


def test_read_capture_keeps_the_records_before_a_cut_block(sample_file: bytes) -> None:
    """A writer killed inside a write (a fatal signal cuts a large write between pages)
    leaves a partial last block; read_capture raised and every whole record was lost with
    the exception (test_file_is_valid_after_a_crash failed now and then under load)."""
    whole = read_capture(sample_file)
    extra = message_block(0, 7, DIR_TX, 1, 2, b"cut")
    with pytest.raises(TruncatedCaptureError) as info:
        read_capture(sample_file + extra[:-4])
    assert list(info.value.records) == whole
