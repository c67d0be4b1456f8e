"""The documentation's Linux blocks (``<!-- test: uml -->``) run inside the real kernel.

One boot per document: the host serves the simulated co-processor the tutorial describes,
``rpmsg remote vhost-user:SOCK --echo rpmsg-raw --ping`` (the real command, as a subprocess),
and the guest runs the document's marked blocks in order, Python blocks with the host's
interpreter and shell blocks with the project's ``rpmsg`` command on ``PATH``. Every block must
exit 0; the console must show no kernel BUG.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .uml import VIRTIO_ID_RPMSG, boot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs"))
from doc_blocks import PYTHON, ROOT, Block, blocks, documents

pytestmark = pytest.mark.kernel
BOOT_TIMEOUT = 240

GUEST = r'''
import json, os, subprocess, sys
blocks = json.loads(os.environ["DOC_BLOCKS"])
env = dict(os.environ, PATH=os.environ["VENV_BIN"] + ":" + os.environ["PATH"])
results = []
for where, lang, code in blocks:
    if lang == "python":
        cmd = [sys.executable, "-c", code]
    else:
        cmd = ["bash", "-e", "-o", "pipefail", "-c", code]
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out, err = "timeout", str(exc.stdout), str(exc.stderr)
    results.append({"where": where, "rc": rc, "out": out[-2000:], "err": err[-4000:]})
    if rc != 0:
        break
print(json.dumps(results))
'''


def _uml_blocks(doc: Path) -> list[Block]:
    return [b for b in blocks(doc) if b.mode == "uml"]


def _docs_with_uml_blocks() -> list[Path]:
    return [p for p in documents() if _uml_blocks(p)]


@pytest.mark.parametrize("doc", _docs_with_uml_blocks(), ids=lambda p: str(p.relative_to(ROOT)))
def test_uml_blocks_run_in_the_kernel(doc: Path, tmp_path: Path) -> None:
    sock = tmp_path / "rpmsg.sock"
    remote = subprocess.Popen(
        [sys.executable, "-m", "rpmsg", "remote", f"vhost-user:{sock}", "--echo", "rpmsg-raw",
         "--ping", "--quiet"], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert remote.poll() is None, "rpmsg remote exited before listening"
            assert time.monotonic() < deadline, "rpmsg remote did not listen within 30 s"
            time.sleep(0.05)
        code = [(b.where, "python" if b.lang in PYTHON else "sh", b.code)
                for b in _uml_blocks(doc)]
        result = boot(GUEST, devices=[(str(sock), VIRTIO_ID_RPMSG)], timeout=BOOT_TIMEOUT,
                      env={"DOC_BLOCKS": json.dumps(code),
                           "VENV_BIN": str(Path(sys.executable).parent)}).check()
        ran = json.loads(result.stdout)
        for item in ran:
            assert item["rc"] == 0, (f"{item['where']} exited {item['rc']} in the guest\n"
                                     f"--- stdout\n{item['out']}\n--- stderr\n{item['err']}")
        assert len(ran) == len(code)
        assert "BUG" not in result.console, result.console[-3000:]
    finally:
        if remote.poll() is None:
            os.killpg(remote.pid, signal.SIGINT)
            try:
                remote.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(remote.pid, signal.SIGKILL)
                remote.wait()
