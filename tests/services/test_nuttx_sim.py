"""The PC-side services against the simulated NuttX chip over ``loop:`` (both roles)."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import rpmsg
from rpmsg.services.nuttx import (
    Console,
    FsClient,
    NuttxHost,
    RtcClient,
    RtcServer,
    SyslogHandler,
    SyslogServer,
)
from rpmsg.services.nuttx.sim import NuttxSim
from rpmsg.wire.nuttx_tty import TtyWriteResponse

_names = itertools.count()


@pytest.fixture
def pair() -> Iterator[tuple[rpmsg.Device, rpmsg.Device]]:
    name = f"sim-{next(_names)}"
    with rpmsg.open(f"loop:{name}", policy="nuttx") as pc, \
            rpmsg.open(f"loop:{name}", policy="nuttx") as chip:
        yield pc, chip


def test_console_log_files_and_time_against_the_proxy(pair: tuple[rpmsg.Device, rpmsg.Device],
                                                      tmp_path: Path) -> None:
    pc, chip = pair
    sim = NuttxSim(chip, role="proxy")
    lines = []
    host = NuttxHost(pc, fs_dir=tmp_path, on_log=lines.append, console_timeout=10)
    try:
        c = host.console
        assert c is not None
        # held banner: arrives only because the console sent WAKEUP after binding
        assert b"NuttShell (NSH) NuttX-13.0.0" in c.read_until(b"proxy> ", timeout=10)
        assert c.command("uname -a").startswith("NuttX proxy 13.0.0")
        assert c.command("date").endswith(time.strftime("%Y", time.gmtime()))  # SYNC worked
        assert sim.rtc_client is not None and sim.rtc_client.syncs == 1
        assert c.command("rtcget").split(".")[0].isdigit()                # GET answered
        assert c.command("mount -t rpmsgfs -o cpu=server,fs=/ /mnt") == ""
        assert c.command("echo written by the chip > /mnt/hello.txt") == ""
        assert (tmp_path / "hello.txt").read_text() == "written by the chip\n"
        assert "hello.txt" in c.command("ls /mnt")
        assert c.command("echo a log line > /dev/ttyS1") == ""
        assert host.syslog is not None and host.syslog.flush(10) == 1
        texts = [line.text for line in lines]
        assert any(t.endswith("[proxy] sim: NuttX simulator booting") for t in texts)  # backlog
        assert any(t.endswith("[proxy] a log line") for t in texts)
        assert c.stats["wakeups_sent"] >= 1
    finally:
        host.close()
        sim.close()
    assert sim.violations.items == []


def test_flow_control_partial_accept_and_wakeup(pair: tuple[rpmsg.Device, rpmsg.Device]) -> None:
    pc, chip = pair
    sim = NuttxSim(chip, role="proxy")
    c = Console(pc, timeout=10, buffer_size=64)   # tiny: the chip's output must be held
    try:
        c.read_until(b"proxy> ", timeout=10)
        c.write("help\n")
        out = c.read_until(b"proxy> ", timeout=10)  # each read makes room: WAKEUP, resume
        assert b"help usage" in out and b"uname" in out
        assert c.stats["held"] >= 2 and c.stats["wakeups_sent"] >= 3
        # our input beyond the chip's ring: partial accept, its WAKEUP, resend (we keep
        # taking its echo meanwhile, or its shell would block on output, as NuttX's does)
        c.buffer_size = 1 << 20
        sim.tty.ring = 100
        c.write("echo " + "x" * 300 + "\n", timeout=10)
        assert ("x" * 300) in c.read_until(b"proxy> ", timeout=10).decode()
    finally:
        c.close()
        sim.close()
    assert sim.violations.items == []


def test_chip_detects_a_wrong_answer(pair: tuple[rpmsg.Device, rpmsg.Device]) -> None:
    """The sim's own checks work: an answer to nothing in flight is a violation."""
    pc, chip = pair
    sim = NuttxSim(chip, role="proxy")
    ept = pc.create_endpoint("rpmsg-ttyproxy")
    ept.wait_bound(5)
    ept.send(TtyWriteResponse(3, 0xDEAD, 3).encode(), timeout=5)
    deadline = time.monotonic() + 10
    while not sim.violations.items and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "nothing in flight" in sim.violations.items[0]
    ept.close()
    sim.close()


def test_server_role_prints_our_log_exports_files_and_serves_time(
        pair: tuple[rpmsg.Device, rpmsg.Device], tmp_path: Path) -> None:
    pc, chip = pair
    (tmp_path / "etc.txt").write_text("exported by the chip\n")
    printed: list[str] = []
    sim = NuttxSim(chip, role="server", export=str(tmp_path), printer=printed.append)
    handler = SyslogHandler(pc, timeout=10)
    logger = logging.getLogger("rpmsg-test-to-chip")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("hello from the pc")
        fs = FsClient(pc, "/", timeout=10)
        assert fs.read_file("/etc.txt") == b"exported by the chip\n"
        rtc = RtcClient(pc, timeout=10)
        sync = rtc.wait_sync(10)          # the chip's server sends SYNC on binding
        assert abs(sync.time_ns - time.time_ns()) < 60e9
        assert abs(rtc.get(10).offset) < 60
        deadline = time.monotonic() + 10
        while "hello from the pc" not in printed and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "hello from the pc" in printed
        fs.shutdown()
        rtc.close()
    finally:
        logger.removeHandler(handler)
        handler.close()
        sim.close()
    assert sim.violations.items == []


def test_rtc_server_never_serves_a_chip_that_is_a_server(
        pair: tuple[rpmsg.Device, rpmsg.Device]) -> None:
    pc, chip = pair
    chip_server = RtcServer(chip)             # the chip announces rpmsg-rtc itself
    chip.wait_up(5)
    time.sleep(0.2)
    ours = RtcServer(pc)
    deadline = time.monotonic() + 10
    while ours.stats.servers_ignored == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ours.stats.servers_ignored == 1 and ours.stats.syncs_sent == 0
    ours.close()
    chip_server.close()


def test_syslog_server_counts_and_flushes(pair: tuple[rpmsg.Device, rpmsg.Device]) -> None:
    pc, chip = pair
    sim = NuttxSim(chip, role="proxy")
    server = SyslogServer(pc)
    try:
        for i in range(200):  # more than the 4 KiB ring holds while nobody reads: chunked
            sim.log(f"line {i} " + "y" * 40)
        deadline = time.monotonic() + 60  # the binding may take a while on a loaded machine
        while not server.bound and time.monotonic() < deadline:  # (flush asks bound chips)
            time.sleep(0.01)
        assert server.flush(10) == 1
        got = []
        while True:
            try:
                got.append(server.recv(timeout=0.5).text)
            except rpmsg.RpmsgTimeoutError:
                break
        assert got[-1].endswith("line 199 " + "y" * 40)
        assert all(not line.partial for line in server._lines)
    finally:
        server.close()
        sim.close()
