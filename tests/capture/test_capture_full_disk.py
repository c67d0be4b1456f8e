"""A capture that fills the disk keeps every whole record that fitted.

Seen from outside the suite (a 64 KiB tmpfs, or ``ulimit -f``): the first write that came
up short was cut back to the previous flush, so a capture of 5000 messages whose first batch
did not fit held no message at all, only its section header; the last records before a
failure are usually the ones a user needs. Here the file size limit (RLIMIT_FSIZE; Python
ignores SIGXFSZ, so the write comes up short) stands for the full disk, in a child process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from rpmsg.capture import read_capture
from rpmsg.capture.reader import CapturedMessage

LIMIT = 50_000

_CHILD = textwrap.dedent("""
    import resource, sys
    from rpmsg.capture.blocks import encode_batch, interface_description
    from rpmsg.capture.writer import CaptureFile
    resource.setrlimit(resource.RLIMIT_FSIZE, (@LIMIT@, @LIMIT@))
    f = CaptureFile(sys.argv[1], flush_interval=3600)  # flushed once, by hand
    f.put(interface_description("loop:full", "test"))
    for i in range(50):  # 5000 messages of 400 bytes in 50 batches: ~2.2 MB at once
        f.put(encode_batch(0, 10**18 + i, "tx",
                           [(0x400, 0x401, i.to_bytes(2, "little") * 200)] * 100))
    f.flush()
    print(f.accepting, f.stop_reason, f.size, f.written, f.lost, flush=True)
    f.close()
""").replace("@LIMIT@", str(LIMIT))


def test_a_full_disk_keeps_the_whole_records_that_fit(tmp_path: Path) -> None:
    path = tmp_path / "full.pcapng"
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    accepting, *rest = out.stdout.split()
    assert accepting == "False" and "write" in out.stdout
    assert "capture to" in out.stderr and "stopped" in out.stderr  # said once, in the log
    size = path.stat().st_size
    assert LIMIT - 500 < size <= LIMIT  # filled up to the last whole block
    records = read_capture(str(path))  # a valid capture, no truncated block
    messages = [r for r in records if isinstance(r, CapturedMessage)]
    assert len(messages) > 90
    assert all(m.payload == m.payload[:2] * 200 for m in messages)
    assert int(rest[-1]) == 50 * 100 - len(messages)  # every other message counted lost
