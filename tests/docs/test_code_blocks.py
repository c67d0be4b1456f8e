"""Every code block of the README and the docs runs as written (unless marked, see doc_blocks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from doc_blocks import PYTHON, ROOT, SHELL, Block, blocks, documents

BLOCK_TIMEOUT = 120.0


def _env() -> dict[str, str]:
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    env.pop("RPMSG_CAPTURE", None)
    return env


def _run(block: Block, cwd: str, env: dict[str, str]) -> None:
    if block.lang in PYTHON:
        cmd = [sys.executable, "-c", block.code]
    else:
        cmd = ["bash", "-e", "-o", "pipefail", "-c", block.code]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=BLOCK_TIMEOUT)
    assert proc.returncode == 0, (
        f"{block.where} ({block.lang}) exited {proc.returncode}\n--- code\n{block.code}"
        f"--- stdout\n{proc.stdout}--- stderr\n{proc.stderr}")


def _stop(proc: subprocess.Popen[str], block: Block) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"{block.where}: background block ignored Ctrl-C for 10 s")


def _documents_with_blocks() -> list[Path]:
    return [p for p in documents() if any(b.runnable for b in blocks(p))]


@pytest.mark.parametrize("doc", _documents_with_blocks(),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_document_blocks_run(doc: Path) -> None:
    env = _env()
    background: list[tuple[subprocess.Popen[str], Block]] = []
    with tempfile.TemporaryDirectory(prefix="rpmsg-doc-") as scratch:
        # The README speaks to a clone (./scripts/demo); the docs pages to any directory.
        cwd = str(ROOT) if doc == ROOT / "README.md" else scratch
        try:
            for block in blocks(doc):
                if not block.runnable or block.mode in ("skip", "uml"):
                    continue
                if block.mode == "background":
                    assert block.lang in SHELL, f"{block.where}: only shell runs in background"
                    proc = subprocess.Popen(["bash", "-e", "-c", block.code],
                                            cwd=cwd, env=env, text=True,
                                            stdout=subprocess.DEVNULL, start_new_session=True)
                    background.append((proc, block))
                    continue
                _run(block, cwd, env)
        finally:
            for proc, block in background:
                _stop(proc, block)


def test_markers_say_why() -> None:
    """A skipped block gives its reason, so readers and reviewers see why it is not run."""
    for doc in documents():
        for block in blocks(doc):
            if block.mode == "skip":
                assert block.reason, f"{block.where}: '<!-- test: skip REASON -->' needs a reason"
