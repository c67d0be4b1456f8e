"""A benchmark run under ``RPMSG_CAPTURE`` measures without capture, and says so.

Seen from outside the suite: ``RPMSG_CAPTURE=/tmp/c.pcapng rpmsg bench shm --json``: every
open of the run captured to the one file, the host here and each Python peer process; the
second opener is refused (one capture per file), so the ``rpmsg<->rpmsg`` pairing ended in
a 60 s RpmsgTimeoutError, and before that refusal the figures silently included capturing
while all processes wrote over each other's file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rpmsg.bench import shm
from rpmsg.bench.shm_host import Workload


def test_the_callers_capture_is_set_aside_for_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "user.pcapng"
    monkeypatch.setenv("RPMSG_CAPTURE", str(path))
    monkeypatch.setenv("RPMSG_CAPTURE_LEVEL", "frames")
    work = Workload(rounds=20, echo=50, min_seconds=0.0, stream=200, sizes=(16,), windows=(1,))
    result = shm.run(work=work, c_reference=False, pairs=(("endpoint", "endpoint"),))
    (figures,) = result["pairs"].values()
    assert "error" not in figures, figures.get("error")
    assert not path.exists()  # nothing of the run was captured
    assert "RPMSG_CAPTURE" in capsys.readouterr().err
    assert os.environ["RPMSG_CAPTURE"] == str(path)  # put back afterwards
    assert os.environ["RPMSG_CAPTURE_LEVEL"] == "frames"
