"""Timestamps are the file's word: ``rpmsg dump`` prints any a capture can hold.

Seen from outside the suite: an interface with a coarse ``if_tsresol`` (10^0 or 2^0: one unit
per second) and a packet timestamp near 2**64 gives a time 2**64 seconds after the epoch;
``rpmsg dump`` died with a traceback (``OverflowError: timestamp out of range for platform
time_t`` from ``time.localtime``) instead of printing the record.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from rpmsg.capture.blocks import block, message_block, options, section_header
from rpmsg.capture.describe import clock
from rpmsg.capture.reader import CapturedMessage, read_capture
from rpmsg.errors import DecodeError
from rpmsg.wire.capture import (
    BT_IDB,
    DIR_TX,
    IDB,
    IF_NAME,
    IF_TSRESOL,
    LINKTYPE_WIRESHARK_UPPER_PDU,
)


def capture(tsresol: int, ts: int) -> bytes:
    idb = block(BT_IDB, IDB.pack(LINKTYPE_WIRESHARK_UPPER_PDU, 0, 0)
                + options([(IF_NAME, b"loop:x"), (IF_TSRESOL, bytes([tsresol]))]))
    return section_header("t") + idb + message_block(0, ts, DIR_TX, 0x400, 0x401, b"hi")


def test_dump_prints_a_time_beyond_the_platforms_range(tmp_path: Path) -> None:
    path = tmp_path / "far.pcapng"
    path.write_bytes(capture(0, 2**64 - 1))  # 10^0: 2**64 - 1 seconds
    out = subprocess.run([sys.executable, "-m", "rpmsg", "dump", str(path)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    line = out.stdout.splitlines()[-1]
    assert line.startswith("@18446744073709551615.000000 #0 tx 0x400 -> 0x401 [2]"), line


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 255), st.integers(0, 2**64 - 1))
def test_every_resolution_and_timestamp_reads_and_prints(tsresol: int, ts: int) -> None:
    try:
        (rec,) = read_capture(capture(tsresol, ts))
    except DecodeError:  # a resolution the reader refuses (if_tsresol out of range)
        assert tsresol & 0x7F > (63 if tsresol & 0x80 else 18)
        return
    assert isinstance(rec, CapturedMessage)
    text = clock(rec.timestamp_ns)
    assert text.endswith(f".{rec.timestamp_ns % 10**9 // 1000:06d}")
