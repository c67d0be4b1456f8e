"""Capture paths that cannot be written or read: a typed error, no leaked descriptor.

Seen from outside the suite: ``RPMSG_CAPTURE=/proc/self/status rpmsg ping ...`` (procfs
reports its files as regular, owned by the process's user, one link) passed every check of
``open_private`` and then failed ``ftruncate`` with a raw PermissionError (not an RpmsgError:
the CLI printed a traceback, a library caller caught nothing typed). ``rpmsg dump`` / ``rpmsg
replay`` of a symlink loop, a path through a regular file, a name too long, ``/dev/tty``
without a terminal or ``/proc/self/mem`` (EIO on read) died with OSError tracebacks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rpmsg.capture import open_capture, read_capture
from rpmsg.errors import AccessDeniedError, NotAvailableError


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs procfs")
def test_a_procfs_file_is_a_typed_error_and_leaks_no_descriptor() -> None:
    before = open_fds()
    with pytest.raises(AccessDeniedError, match="/proc/self/status"):
        open_capture("/proc/self/status", link_name="loop:x")
    assert open_fds() <= before


def unreadable_paths(tmp: Path) -> list[str]:
    (tmp / "loop").symlink_to(tmp / "loop")
    (tmp / "file").write_bytes(b"")
    paths = [str(tmp / "loop"), str(tmp / "file" / "x"), str(tmp / ("n" * 300))]
    if os.path.exists("/proc/self/mem"):
        paths.append("/proc/self/mem")  # opens, then EIO on reading at offset 0
    return paths


def test_reading_what_is_no_capture_file_is_a_typed_error(tmp_path: Path) -> None:
    before = open_fds()
    for path in unreadable_paths(tmp_path):
        with pytest.raises(NotAvailableError, match=r"cannot (open|read) capture"):
            read_capture(path)
    assert open_fds() <= before


def test_dump_of_a_symlink_loop_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    out = subprocess.run([sys.executable, "-m", "rpmsg", "dump", str(tmp_path / "loop")],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert "symbolic links" in out.stderr
