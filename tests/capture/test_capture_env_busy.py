"""``RPMSG_CAPTURE`` is a diagnostic for an unmodified program: when its file cannot be
opened (another process is writing it, as a child that inherited the variable finds), the
program runs without capture and says so once, instead of failing its ``rpmsg.open``. A
capture asked for in the URL itself still fails the open."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

import rpmsg

_HOLDER = """
import sys
from rpmsg.capture import open_capture
tap = open_capture(sys.argv[1], link_name="loop:holder")
print("ready", flush=True)
sys.stdin.read()
tap.close()
"""


def test_an_inherited_capture_that_cannot_open_is_skipped_with_a_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "busy.pcapng"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        monkeypatch.setenv("RPMSG_CAPTURE", str(path))
        with caplog.at_level(logging.WARNING, logger="rpmsg.capture"), \
                rpmsg.open("loop:env-busy", side="remote") as remote, \
                rpmsg.open("loop:env-busy") as host:
            svc = remote.create_endpoint("svc")
            ept = host.create_endpoint("svc")
            ept.wait_bound(timeout=10)
            ept.send(b"works without capture", timeout=10)
            assert svc.recv(timeout=10) == b"works without capture"
        warnings = [r.getMessage() for r in caplog.records if "RPMSG_CAPTURE" in r.getMessage()]
        assert warnings and all("without capture" in w for w in warnings)
        monkeypatch.delenv("RPMSG_CAPTURE")
        with pytest.raises(rpmsg.AlreadyOpenError):
            rpmsg.open(f"loop:url-busy?capture={path}")
    finally:
        holder.communicate("", timeout=30)
    assert holder.returncode == 0
