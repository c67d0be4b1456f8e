"""open_capture's link name: checked before the file is made, and never too long to read.

Seen from outside the suite: ``open_capture(path, link_name=123)`` raised AttributeError
after it had created the file, so its flusher thread, descriptor and lock stayed for the
life of the process (no tap to close); a link named by a 2 MB URL wrote an interface block
over the reader's 1 MiB block limit, and ``rpmsg dump`` refused the whole capture.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from rpmsg.capture import CapturedMessage, open_capture, read_capture
from rpmsg.capture.blocks import MAX_IF_TEXT
from rpmsg.errors import ArgumentTypeError


def capture_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("rpmsg-capture")]


def test_a_wrong_link_name_leaves_nothing_open(tmp_path: Path) -> None:
    path = tmp_path / "c.pcapng"
    before = set(os.listdir("/proc/self/fd"))
    threads = capture_threads()
    for bad in (123, None, b"loop:x"):
        with pytest.raises(ArgumentTypeError, match="link_name"):
            open_capture(str(path), link_name=bad)  # type: ignore[arg-type]
    assert capture_threads() == threads
    assert set(os.listdir("/proc/self/fd")) <= before
    assert not path.exists()


def test_a_huge_link_name_still_makes_a_readable_capture(tmp_path: Path) -> None:
    path = tmp_path / "long.pcapng"
    tap = open_capture(str(path), link_name="loop:" + "é" * 1_000_000)
    tap.message("tx", 1, 2, b"hi")
    tap.close()
    (rec,) = read_capture(str(path))
    assert isinstance(rec, CapturedMessage) and rec.payload == b"hi"
    name = rec.interface.name
    assert name.startswith("loop:é") and len(name.encode()) <= MAX_IF_TEXT
    assert "\ufffd" not in name  # cut at a character boundary
