"""``rpmsg console --pty``: the chip's shell on a local pseudo-terminal, for screen/picocom/pexpect.

The simulated NuttX chip runs in one process over a pty ``uart:`` line; ``rpmsg console --pty``
in another prints the path of its own pseudo-terminal; the test opens that path as a terminal
program would, types a command and reads the chip's answer from it.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
import tty

SIM = [sys.executable, "-m", "rpmsg.services.nuttx.sim"]
RPMSG = [sys.executable, "-m", "rpmsg"]


def read_until(fd: int, needle: bytes, timeout: float = 30.0) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while needle not in got:
        left = deadline - time.monotonic()
        assert left > 0, f"{needle!r} not seen; got {got!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 4096)
            assert chunk, f"end of file before {needle!r}; got {got!r}"
            got += chunk
    return got


def test_console_on_a_local_pseudo_terminal() -> None:
    chip = subprocess.Popen([*SIM, "uart:pty?baudrate=4000000"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    console = None
    try:
        assert chip.stdout is not None
        ready = chip.stdout.readline().split()
        assert ready[0] == "ready", ready
        console = subprocess.Popen(
            [*RPMSG, "console", f"uart:{ready[1]}?baudrate=4000000", "--pty", "--timeout", "30"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        assert console.stdout is not None
        banner = console.stdout.readline()
        assert " is on /dev/pts/" in banner, banner
        path = banner.split(" is on ")[1].split()[0]
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        try:
            tty.setraw(fd)
            os.write(fd, b"uname -a\n")
            out = read_until(fd, b"NuttX proxy")
            assert b"uname -a" in out  # the chip's echo came through the pty too
        finally:
            os.close(fd)
        os.killpg(console.pid, signal.SIGINT)
        assert console.wait(15) in (0, 130)
        assert "Traceback" not in (console.stderr.read() if console.stderr else "")
    finally:
        if console is not None and console.poll() is None:
            os.killpg(console.pid, signal.SIGKILL)
            console.wait()
        assert chip.stdin is not None
        chip.stdin.close()
        assert chip.wait(15) == 0, "the simulated chip saw a protocol violation"
