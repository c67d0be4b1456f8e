"""Captured bursts: CaptureTap.message_batch and the batch encoding give the same records as
one message at a time; bad records, the size limit and a full queue keep the file valid."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rpmsg
from rpmsg.capture import CapturedMessage, open_capture, read_capture
from rpmsg.capture.blocks import encode_batch, message_block, message_parts
from rpmsg.capture.writer import MIN_MAX_BYTES
from rpmsg.transports.loop import pair
from rpmsg.wire.capture import DIR_RX, DIR_TX

messages = st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
                              st.binary(max_size=600)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(messages, st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1),
       st.sampled_from(["tx", "rx", DIR_TX, DIR_RX]), st.booleans())
def test_batch_encoding_is_the_messages_one_by_one(
        batch: list[tuple[int, int, bytes]], iface: int, ts: int, direction: str | int,
        views: bool) -> None:
    code = direction if isinstance(direction, int) else {"tx": DIR_TX, "rx": DIR_RX}[direction]
    items = [(src, dst, memoryview(bytearray(p)) if views else p, None)
             for src, dst, p in batch]
    blocks = encode_batch(iface, ts, direction, items)
    assert blocks.nblocks == len(batch)
    assert bytes(blocks) == b"".join(message_block(iface, ts, code, src, dst, p)
                                     for src, dst, p in batch)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1), st.sampled_from(["tx", "rx"]),
       st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.binary(max_size=600),
       st.integers(0, 0xFFFF))
def test_single_message_parts_give_the_same_block(
        iface: int, ts: int, direction: str, src: int, dst: int, payload: bytes,
        flags: int) -> None:
    pack, head, middle, tail = message_parts(iface, direction, len(payload))
    block = pack(head, ts >> 32, ts & 0xFFFFFFFF, middle, src, dst, 0, len(payload), flags,
                 payload, tail)
    code = {"tx": DIR_TX, "rx": DIR_RX}[direction]
    assert block == message_block(iface, ts, code, src, dst, payload, flags)


def test_message_batch_records_read_back_with_one_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "burst.pcapng"
    tap = open_capture(str(path), link_name="loop:burst")
    ring = memoryview(bytearray(b"".join(b"%03d" % i for i in range(50))))
    before = time.time_ns()
    tap.message("tx", 0x400, 0x401, b"single")
    tap.message_batch("rx", [(0x401 + i % 2, 0x400, ring[3 * i:3 * i + 3], None)  # type: ignore[attr-defined]
                             for i in range(50)])
    tap.message_batch("rx", [(0x401, 0x400, b"alone", None)])  # type: ignore[attr-defined]
    tap.close()
    recs = [r for r in read_capture(str(path)) if isinstance(r, CapturedMessage)]
    assert [(r.direction, r.src, r.dst, r.payload) for r in recs] == (
        [("tx", 0x400, 0x401, b"single")]
        + [("rx", 0x401 + i % 2, 0x400, b"%03d" % i) for i in range(50)]
        + [("rx", 0x401, 0x400, b"alone")])
    burst = recs[1:51]
    assert len({r.timestamp_ns for r in burst}) == 1
    assert burst[0].timestamp_ns >= before


def test_a_bad_item_is_skipped_and_the_rest_of_the_burst_kept(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "bad.pcapng"
    tap = open_capture(str(path), link_name="loop:bad")
    tap.message_batch("rx", [(0x401, 0x400, b"one", None), (2**40, 0x400, b"bad", None),  # type: ignore[attr-defined]
                             (0x401, 0x400, b"two", None)])
    tap.message_batch("sideways", [(1, 2, b"x", None), (1, 2, b"y", None)])  # type: ignore[attr-defined]
    tap.message_batch("rx", [(0x401, 0x400, b"three", None)] * 2)  # type: ignore[attr-defined]
    tap.close()
    assert [r.payload for r in read_capture(str(path)) if isinstance(r, CapturedMessage)] == [
        b"one", b"two", b"three", b"three"]
    assert len([r for r in caplog.records if "could not be encoded" in r.getMessage()]) == 1


def test_capture_max_cuts_a_burst_at_a_whole_block(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "max.pcapng"
    tap = open_capture(str(path), link_name="loop:max", max_bytes=MIN_MAX_BYTES * 2)
    caplog.set_level(logging.WARNING, logger="rpmsg.capture")
    file = tap.file  # type: ignore[attr-defined]
    for burst in range(20):
        tap.message_batch("rx", [(0x401, 0x400, (burst * 64 + i).to_bytes(4, "little") * 4,  # type: ignore[attr-defined]
                                  None) for i in range(64)])
    tap.close()
    size = path.stat().st_size
    assert MIN_MAX_BYTES * 2 - 200 < size <= MIN_MAX_BYTES * 2  # filled to the last block
    recs = [r for r in read_capture(str(path))  # whole blocks only
            if isinstance(r, CapturedMessage)]
    assert 64 < len(recs) < 20 * 64  # a burst was cut, not dropped whole
    assert [r.payload[:4] for r in recs] == [i.to_bytes(4, "little") for i in range(len(recs))]
    assert len([r for r in caplog.records if "capture_max" in r.getMessage()]) == 1
    assert file.written == len(recs) + 2  # counted exactly: the section and interface too
    assert file.lost == 20 * 64 - len(recs)


def test_a_full_queue_drops_bursts_and_counts_their_messages(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import rpmsg.capture.writer as writer

    monkeypatch.setattr(writer, "MAX_QUEUED_BYTES", 20_000)
    monkeypatch.setattr(writer, "WAKE_BYTES", 5_000)
    path = tmp_path / "full.pcapng"
    tap = open_capture(str(path), link_name="loop:full")
    file = tap.file  # type: ignore[attr-defined]
    with file._write_lock:  # the flusher is stuck writing (a slow disk)
        for burst in range(20):
            tap.message_batch("rx", [(1, 2, bytes([burst]) * 100, None)] * 10)  # type: ignore[attr-defined]
    tap.close()
    kept = [r for r in read_capture(str(path)) if isinstance(r, CapturedMessage)]
    assert file.overflowed == 200 - len(kept) > 0
    assert [r.payload[0] for r in kept] == sorted(r.payload[0] for r in kept)
    assert len(kept) % 10 == 0  # whole bursts


def test_a_device_captures_received_bursts(tmp_path: Path) -> None:
    """Through loop:'s batched delivery: every message, in order, each direction."""
    path = tmp_path / "dev.pcapng"
    a, b = pair()
    dev_a = rpmsg.Device(a, tap=open_capture(str(path), link_name="loop:a"))
    dev_b = rpmsg.Device(b)
    try:
        ept_b = dev_b.create_endpoint("burst")
        ept_a = dev_a.create_endpoint("burst")
        ept_a.wait_bound(30)
        ept_b.wait_bound(30)
        ept_b.send_many([b"%d" % i for i in range(200)], timeout=30)
        got: list[bytes] = []
        while len(got) < 200:
            got += ept_a.recv_many(64, timeout=30)
        assert got == [b"%d" % i for i in range(200)]
    finally:
        dev_a.close()
        dev_b.close()
    data = [r for r in read_capture(str(path)) if isinstance(r, CapturedMessage)
            and r.src == ept_b.addr and r.dst == ept_a.addr]
    assert [r.payload for r in data] == [b"%d" % i for i in range(200)]
    assert {r.direction for r in data} == {"rx"}
