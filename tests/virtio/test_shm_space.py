"""Shared memory on a filesystem too small for the layout (outsider QA).

tmpfs files are sparse: a layout larger than the room left (a container's default /dev/shm
is 64 MiB) was created without complaint, and the first touch of a page the filesystem could
not back killed the process with SIGBUS (the driver, as it zeroed its receive buffers). The
memory is now reserved when the file is sized or mapped: a typed NotAvailableError saying
so, and a device leaves no file behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare(1) to mount a small tmpfs privately")
def test_a_layout_that_does_not_fit_is_an_error_not_sigbus(tmp_path: Path) -> None:
    root = tmp_path / "small"
    root.mkdir()
    script = (f"mount -t tmpfs -o size=1m tmpfs {root} && "
              f"exec {sys.executable} {os.path.join(HERE, 'small_tmpfs.py')} {root}")
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"child ended with {proc.returncode}: {proc.stderr[-2000:]}"
    result = json.loads(proc.stdout)
    for role in ("device", "driver"):
        assert result[role]["error"] == "NotAvailableError", result
        assert result[role]["rpmsg"] is True
        assert "no room for" in result[role]["text"]
    assert result["device_left_files"] == []
