"""Every script in examples/ runs against the simulators, as two processes like on hardware.

The remote half runs in the background (stopped with Ctrl-C), the host half must exit 0.
Transports: shared memory (``shm:``), a real pty pair relayed between the two processes as a
serial cable would be (``uart:``), and the simulated SPI bus (``spisim:``).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import tty
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOST_TIMEOUT = 120


def _python(*args: str) -> list[str]:
    return [sys.executable, *args]


@contextmanager
def background(cmd: list[str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            pytest.fail(f"{cmd} ignored Ctrl-C for 15 s:\n{out}")
        assert proc.returncode in (0, -signal.SIGINT, 130), f"{cmd} failed:\n{out}"


def run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=HOST_TIMEOUT)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc.stdout


@contextmanager
def serial_cable() -> Iterator[tuple[str, str]]:
    """Two pty ends joined by a relay thread: what a null-modem cable between two ports is."""
    pairs = [os.openpty() for _ in range(2)]
    for _master, slave in pairs:
        tty.setraw(slave)
    masters = [m for m, _ in pairs]
    names = [os.ttyname(s) for _, s in pairs]
    stop = threading.Event()

    def relay() -> None:
        while not stop.is_set():
            ready, _, _ = select.select(masters, [], [], 0.1)
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    continue
                other = masters[1 - masters.index(fd)]
                while data:
                    data = data[os.write(other, data):]

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    try:
        yield names[0], names[1]
    finally:
        stop.set()
        thread.join(5)
        for master, slave in pairs:
            os.close(master)
            os.close(slave)


def _shm() -> tuple[str, str]:
    name = f"shm:example-{uuid.uuid4().hex[:8]}"
    return name, name


@contextmanager
def link(kind: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """URLs for the remote and the host half over one transport."""
    if kind == "shm":
        yield _shm()
    elif kind == "uart":
        with serial_cable() as (a, b):
            yield f"uart:{a}", f"uart:{b}"
    else:
        sock = tmp_path / "bus.sock"
        yield f"spisim:{sock}", f"spisim:{sock}"


@pytest.mark.parametrize("kind", ["shm", "uart", "spisim"])
def test_echo_server_and_client(kind: str, tmp_path: Path) -> None:
    with link(kind, tmp_path) as (remote, host), \
            background(_python(str(EXAMPLES / "echo_server.py"), remote)):
        out = run(_python(str(EXAMPLES / "echo_client.py"), host, "--count", "300"))
    assert "300 messages" in out


@pytest.mark.parametrize("script, args, expect", [
    ("openamp_echo.py", (), "payloads of 1..480 bytes echoed intact"),
    ("matrix_multiply.py", ("--rounds", "5"), "round 4: "),
])
def test_openamp_demos_both_halves(script: str, args: tuple[str, ...], expect: str) -> None:
    remote, host = _shm()
    with background(_python(str(EXAMPLES / script), "remote", remote)) as server:
        out = run(_python(str(EXAMPLES / script), "host", host, *args))
        server.wait(15)            # the shutdown word ends the remote half by itself
    assert expect in out


def test_rpmsg_client_sample_against_rpmsg_remote() -> None:
    remote, host = _shm()
    with background(_python("-m", "rpmsg", "remote", remote, "--echo", "rpmsg-client-sample",
                            "--quiet")):
        out = run(_python(str(EXAMPLES / "rpmsg_client_sample.py"), host))
    assert "incoming msg 100 " in out and out.rstrip().endswith("goodbye!")


def test_zero_copy_stream() -> None:
    remote, host = _shm()
    with background(_python(str(EXAMPLES / "zero_copy_stream.py"), "receive", remote)):
        out = run(_python(str(EXAMPLES / "zero_copy_stream.py"), "send", host,
                          "--count", "20000"))
    assert "sent 20000 messages; the receiver counted 20000" in out


@pytest.mark.parametrize("kind", ["shm", "uart"])
def test_asyncio_service_with_several_endpoints(kind: str, tmp_path: Path) -> None:
    with link(kind, tmp_path) as (remote, host), \
            background(_python(str(EXAMPLES / "async_services.py"), "serve", remote)):
        out = run(_python(str(EXAMPLES / "async_services.py"), "call", host))
    assert out.strip() == "b'ASYNCIO' b'desserts' 10"


def test_nuttx_serial_against_the_simulated_chip(tmp_path: Path) -> None:
    chip = subprocess.Popen(_python("-m", "rpmsg.services.nuttx.sim", "uart:pty"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert chip.stdout is not None
        ready = chip.stdout.readline().split()
        assert ready[0] == "ready", ready
        share = tmp_path / "share"
        share.mkdir()
        out = run(_python(str(EXAMPLES / "nuttx_serial.py"), f"uart:{ready[1]}",
                          "--share", str(share)))
    finally:
        assert chip.stdin is not None
        chip.stdin.close()
        assert chip.wait(15) == 0, "the simulated chip saw a protocol violation"
    assert "$ uname -a\nNuttX " in out
    assert (share / "hello.txt").read_text() == "hello from the chip\n"


def test_every_example_is_tested() -> None:
    tested = {"echo_server.py", "echo_client.py", "openamp_echo.py", "matrix_multiply.py",
              "rpmsg_client_sample.py", "zero_copy_stream.py", "async_services.py",
              "nuttx_serial.py"}
    scripts = {p.name for p in EXAMPLES.glob("*.py")}
    assert scripts <= tested, scripts - tested
