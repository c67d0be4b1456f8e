"""Run small stdlib-only programs as another user (``nobody``), for the hostile-file tests.

The project's interpreter lives under /root, which ``nobody`` cannot enter, so the children
use the system ``python3``; they only need the standard library.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import textwrap

import pytest

try:
    NOBODY = pwd.getpwnam("nobody")
except KeyError:  # pragma: no cover - every Debian has it
    NOBODY = None
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")

needs_other_user = pytest.mark.skipif(
    os.geteuid() != 0 or NOBODY is None or SYSTEM_PYTHON is None,
    reason="needs root (to start a process as nobody), the nobody user and /usr/bin/python3")


def _argv(code: str) -> list[str]:
    assert SYSTEM_PYTHON is not None
    return [SYSTEM_PYTHON, "-c", textwrap.dedent(code)]


def run_as_nobody(code: str, timeout: float = 30.0) -> str:
    """Run ``code`` as nobody; its stdout. Fails the test if it does not exit 0 by itself."""
    assert NOBODY is not None
    proc = subprocess.run(_argv(code), user=NOBODY.pw_uid, group=NOBODY.pw_gid,
                          capture_output=True, text=True, timeout=timeout, cwd="/")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def start_as_nobody(code: str) -> subprocess.Popen[str]:
    """Start ``code`` as nobody; it should print one line when ready."""
    assert NOBODY is not None
    return subprocess.Popen(_argv(code), user=NOBODY.pw_uid, group=NOBODY.pw_gid,
                            stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True, cwd="/")
