"""Over a real pty ``uart:`` pair, two processes: the simulated NuttX chip
(``python -m rpmsg.services.nuttx.sim``) and the ``rpmsg nuttx`` command run in a
pseudo-terminal as a user would: a command typed, its output, a log line received, a file
written by the chip appearing in the served directory. Also ``rpmsg term`` against
``rpmsg remote`` over shared memory."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

BAUD = "?baudrate=4000000"


def start_sim(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "rpmsg.services.nuttx.sim", f"uart:pty{BAUD}",
                             *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line[:1] == ["ready"], line
    return proc, line[1]


def stop(proc: subprocess.Popen[str]) -> int:
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        return proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


class Session:
    """A program in a pseudo-terminal, read with deadlines (never timing for pass/fail)."""

    def __init__(self, argv: list[str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                     start_new_session=True)
        os.close(slave)
        self.seen = b""

    def expect(self, needle: bytes, timeout: float = 30) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not seen; got {self.seen[-2000:]!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.seen += os.read(self.master, 4096)
                except OSError:
                    break
        at = self.seen.index(needle) + len(needle)
        out, self.seen = self.seen[:at], self.seen[at:]
        return out

    def type(self, text: bytes) -> None:
        os.write(self.master, text)

    def close(self) -> int:
        try:
            return self.proc.wait(15)
        finally:
            os.close(self.master)


@pytest.mark.timeout(180)
def test_rpmsg_nuttx_against_the_simulated_chip_over_a_pty_uart(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    log = tmp_path / "chip.log"
    sim, pts = start_sim()
    try:
        s = Session([sys.executable, "-m", "rpmsg.cli.main", "nuttx", f"uart:{pts}{BAUD}",
                     "--fs", str(share), "--log", str(log)])
        transcript = s.expect(b"proxy> ")                       # the held banner, WAKEUP
        assert b"NuttShell (NSH) NuttX-13.0.0" in transcript
        s.type(b"uname -a\r")
        transcript += s.expect(b"proxy> ")
        assert b"NuttX proxy 13.0.0" in transcript
        s.type(b"mount -t rpmsgfs -o cpu=server,fs=/ /mnt\r")
        transcript += s.expect(b"proxy> ")
        s.type(b"echo written by the chip > /mnt/hello.txt\r")
        transcript += s.expect(b"proxy> ")
        s.type(b"cat /mnt/hello.txt\r")
        transcript += s.expect(b"proxy> ")
        assert b"written by the chip" in transcript.split(b"cat /mnt/hello.txt")[1]
        s.type(b"echo the chip says hi > /dev/ttyS1\r")
        transcript += s.expect(b"proxy> ")
        deadline = time.monotonic() + 30
        while b"the chip says hi" not in (log.read_bytes() if log.exists() else b""):
            assert time.monotonic() < deadline, "log line never arrived"
            time.sleep(0.05)
        s.type(b"\x1d")                                          # Ctrl-] leaves
        assert s.close() == 0
        assert (share / "hello.txt").read_text() == "written by the chip\n"
        text = log.read_text()
        assert "[proxy] sim: NuttX simulator booting" in text and "the chip says hi" in text
    finally:
        code = stop(sim)
    assert code == 0  # the chip saw no violation (wrong cookie, unknown command...)


@pytest.mark.timeout(120)
def test_rpmsg_rtc_reads_the_clock_of_a_server_chip(tmp_path: Path) -> None:
    """``rpmsg rtc`` binds the chip's rpmsg-rtc (rpserver role) and reads its time."""
    sim, pts = start_sim("--role", "server", "--export", str(tmp_path))
    try:
        out = subprocess.run([sys.executable, "-m", "rpmsg.cli.main", "rtc",
                              f"uart:{pts}{BAUD}", "--json"], capture_output=True, text=True,
                             timeout=60, check=True)
        assert abs(json.loads(out.stdout)["offset_s"]) < 60
    finally:
        assert stop(sim) == 0


def test_rpmsg_term_over_shm_against_rpmsg_remote() -> None:
    name = f"term-{os.getpid()}"
    remote = subprocess.Popen([sys.executable, "-m", "rpmsg.cli.main", "remote", f"shm:{name}"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert remote.stdout is not None and "serving" in remote.stdout.readline()
        out = subprocess.run([sys.executable, "-m", "rpmsg.cli.main", "term", f"shm:{name}",
                              "rpmsg-echo"], input="first line\nsecond line\n",
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == ["first line", "second line"]
    finally:
        remote.terminate()
        remote.wait(15)
