"""Every example ends on a library error with one line and exit status 1, not a traceback.

Tried as a new user would: a mistyped URL or a peer that is not running made each example
print a traceback of the library's internals; the one line the error carries (what went
wrong, how to fix it) was at the bottom of it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RUNS = [["async_services.py", "serve"], ["async_services.py", "call"], ["echo_client.py"],
        ["echo_server.py"], ["matrix_multiply.py", "remote"], ["matrix_multiply.py", "host"],
        ["nuttx_serial.py"], ["openamp_echo.py", "remote"], ["openamp_echo.py", "host"],
        ["rpmsg_client_sample.py"], ["zero_copy_stream.py", "receive"],
        ["zero_copy_stream.py", "send"]]


def test_every_example_is_listed() -> None:
    assert {r[0] for r in RUNS} == {p.name for p in EXAMPLES.glob("*.py")}


@pytest.mark.parametrize("args", RUNS, ids=" ".join)
def test_a_library_error_is_one_line(args: list[str]) -> None:
    out = subprocess.run([sys.executable, str(EXAMPLES / args[0]), *args[1:], "shm:bad/name"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1 and "one path component" in out.stderr
