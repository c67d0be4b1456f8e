"""The capture commands as a user runs them, each as its own process over shared memory:
RPMSG_CAPTURE on an unmodified ``rpmsg ping``, ``rpmsg replay`` reproducing a session
byte for byte, ``rpmsg dump`` (filters, JSON, --follow), ``--stats`` and ``rpmsg wireshark``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from capture_helpers import TSHARK, ns, sample_session, tshark_fields, wait_until

import rpmsg
from rpmsg.capture import CapturedMessage, open_capture, plugin_path, read_capture
from rpmsg.capture.replay import Replayer, plan_replay
from rpmsg.errors import InvalidArgumentError
from rpmsg.services import EchoService
from rpmsg.wire.ping import PING_CMD_RSP, PingHeader
from rpmsg.wire.rpmsg import NS_ADDR

RPMSG = [sys.executable, "-m", "rpmsg"]


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([*RPMSG, *args], capture_output=True, text=True, timeout=timeout,
                         env=env, check=False)
    if check:
        assert out.returncode == 0, out.stderr
    return out


class Remote:
    """``rpmsg remote URL`` in a process of its own, stopped with Ctrl-C."""

    def __init__(self, url: str, *extra: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([*RPMSG, "remote", url, *extra], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "serving" in line, self.proc.stderr.read() if self.proc.stderr else line

    def stop(self) -> str:
        """Ctrl-C, wait, and return its stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _out, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _out, err = self.proc.communicate()
        return err


@pytest.fixture
def shm_url() -> Iterator[str]:
    tag = f"h6cap-{uuid.uuid4().hex[:8]}"
    yield f"shm:{tag}"
    for leftover in Path("/dev/shm").glob(f"{tag}*"):
        leftover.unlink()


def env_with(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RPMSG_CAPTURE", None)
    env.pop("RPMSG_CAPTURE_LEVEL", None)
    env.update(extra)
    return env


def payloads(path: Path, direction: str) -> list[bytes]:
    return [r.payload for r in read_capture(str(path))
            if isinstance(r, CapturedMessage) and r.direction == direction and r.dst != NS_ADDR]


def test_env_capture_of_an_unmodified_ping(tmp_path: Path, shm_url: str) -> None:
    remote = Remote(shm_url, env=env_with())
    try:
        proc = subprocess.Popen([*RPMSG, "ping", shm_url, "--count", "5", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env_with(RPMSG_CAPTURE=str(tmp_path / "ping-%p.pcapng")))
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert json.loads(out)["received"] == 5
    finally:
        remote.stop()
    path = tmp_path / f"ping-{proc.pid}.pcapng"  # %p is the pid of the captured process
    recs = read_capture(str(path))
    assert {r.interface.name for r in recs} == {shm_url}
    replies = [PingHeader.decode(p) for p in payloads(path, "rx")]
    assert [(h.cmd, h.cookie) for h in replies] == [(PING_CMD_RSP, i) for i in range(1, 6)]
    if TSHARK is not None:
        rows = tshark_fields(path, "rpmsg.ns.name", "rpmsg.service", "rpmsg.ping.cookie",
                             display_filter="rpmsg.direction == \"rx\"")
        assert ["rpmsg-ping", "", ""] in rows
        cookies = [r[2] for r in rows if r[1] == "rpmsg-ping"]
        assert cookies == [f"0x{i:016x}" for i in range(1, 6)]


def test_replay_reproduces_a_session_byte_for_byte(tmp_path: Path, shm_url: str) -> None:
    """The remote's capture of a ping session is replayed (what it received) against a new
    remote, whose own capture then holds exactly the same messages."""
    first = tmp_path / "first.pcapng"
    second = tmp_path / "second.pcapng"
    remote = Remote(shm_url, env=env_with(RPMSG_CAPTURE=str(first)))
    try:
        run("ping", shm_url, "--count", "30", "--size", "200", "--random-size",
            env=env_with())
        run("ping", shm_url, "--count", "10", "--service", "rpmsg-echo", env=env_with())
    finally:
        remote.stop()
    original = payloads(first, "rx")
    assert len(original) == 40
    url2 = shm_url + "-2"
    remote = Remote(url2, env=env_with(RPMSG_CAPTURE=str(second)))
    try:
        out = run("replay", str(first), url2, "--dir", "rx", "--speed", "max", "--json",
                  env=env_with())
    finally:
        remote.stop()
        for leftover in Path("/dev/shm").glob(url2.split(":")[1] + "*"):
            leftover.unlink()
    result = json.loads(out.stdout)
    assert result["sent"] == 40
    assert set(result["bindings"]) == {"rpmsg-ping", "rpmsg-echo"}
    assert result["replies"] == 40  # every ping acked, every echo returned
    assert payloads(second, "rx") == original


def test_replay_of_what_a_program_sent(tmp_path: Path, shm_url: str) -> None:
    """The host's own capture (RPMSG_CAPTURE on rpmsg ping), replayed with the default
    ``--dir tx`` against a new remote: the new remote receives what the program sent and
    answers as the first one did."""
    host = tmp_path / "host.pcapng"
    remote = Remote(shm_url, env=env_with())
    try:
        run("ping", shm_url, "--count", "20", "--size", "100", "--random-size",
            env=env_with(RPMSG_CAPTURE=str(host)))
    finally:
        remote.stop()
    url2 = shm_url + "-2"
    seen = tmp_path / "seen.pcapng"
    remote = Remote(url2, env=env_with(RPMSG_CAPTURE=str(seen)))
    try:
        out = json.loads(run("replay", str(host), url2, "--speed", "max", "--json",
                             env=env_with()).stdout)
    finally:
        remote.stop()
        for leftover in Path("/dev/shm").glob(url2.split(":")[1] + "*"):
            leftover.unlink()
    assert out["sent"] == 20 and out["replies"] == 20
    assert payloads(seen, "rx") == payloads(host, "tx")
    assert payloads(seen, "tx") == payloads(host, "rx")  # the same answers, byte for byte


def test_replay_timing_is_the_captured_spacing_over_speed(tmp_path: Path) -> None:
    """Against an in-process echo; the replayer's clock is a fake, so no wall time counts."""
    path = tmp_path / "timed.pcapng"
    tap = open_capture(str(path), link_name="loop:timed")
    tap.message("rx", 0x400, NS_ADDR, ns("rpmsg-echo", 0x400))
    tap.close()
    recs = read_capture(str(path))
    base = recs[0]
    msgs = [CapturedMessage(base.timestamp_ns + int(t * 1e9), base.interface, "tx", 0x401,
                            0x400, bytes([i])) for i, t in enumerate((0.0, 1.0, 1.5, 4.0))]
    plan = plan_replay([recs[0], *msgs], "tx")
    assert plan.services == ["rpmsg-echo"]
    assert all(i.to_peer for i in plan.items)
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    name = f"h6-{uuid.uuid4().hex[:8]}"
    with rpmsg.open(f"loop:{name}", side="remote") as remote, \
            rpmsg.open(f"loop:{name}") as host:
        EchoService(remote, "rpmsg-echo")
        replayer = Replayer(host, plan, speed=2.0, clock=lambda: now[0], sleep=sleep)
        replayer.bind()
        result = replayer.run()
        assert wait_until(lambda: replayer.result.replies == 4)
        replayer.close()
    assert slept == [0.5, 0.25, 1.25]  # gaps 1, 0.5, 2.5 s at twice the speed
    assert result.sent == 4 and result.bytes == 4
    with pytest.raises(InvalidArgumentError):
        Replayer(host, plan, speed=0)
    with pytest.raises(InvalidArgumentError, match="no rx messages"):
        plan_replay([recs[0], *msgs], "rx")


def test_dump_filters_and_json(tmp_path: Path) -> None:
    path = tmp_path / "s.pcapng"
    tap = open_capture(str(path), link_name="loop:sample")
    sample_session(tap)
    tap.close()
    text = run("dump", str(path)).stdout.splitlines()
    assert text[0] == "# link #0: loop:sample"
    assert len(text) == 13 and all(" #0 " in ln for ln in text[1:])
    assert any("rx 0x401 -> 0x35 [40] NS CREATE 'rpmsg-ping' addr 0x401" in ln for ln in text)
    assert any("-- drop (unknown destination 0x999)" in ln for ln in text)
    ping = run("dump", str(path), "--name", "rpmsg-ping").stdout.splitlines()[1:]
    assert len(ping) == 4 and all("rpmsg-ping" in ln for ln in ping)
    rx = run("dump", str(path), "--dir", "rx", "--addr", "0x402", "--json").stdout.splitlines()
    objs = [json.loads(ln) for ln in rx]
    assert [(o["src"], o["dst"], o.get("ns", {}).get("op")) for o in objs] == [
        (0x402, NS_ADDR, "CREATE"), (0x402, 0x403, None), (0x402, NS_ADDR, "DESTROY")]
    assert objs[1]["payload"] == b"hello".hex() and objs[1]["service"] == "rpmsg-echo"


def test_dump_of_a_damaged_file_prints_what_it_can_then_fails(tmp_path: Path) -> None:
    path = tmp_path / "s.pcapng"
    tap = open_capture(str(path), link_name="loop:sample")
    sample_session(tap)
    tap.close()
    data = path.read_bytes()
    path.write_bytes(data[:-30])
    out = run("dump", str(path), check=False)
    assert out.returncode == 1
    assert len(out.stdout.splitlines()) == 1 + 11
    assert out.stderr.startswith("rpmsg: error:") and "truncated" in out.stderr
    assert "Traceback" not in out.stderr
    missing = run("dump", str(tmp_path / "none.pcapng"), check=False)
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_dump_follow_tails_a_growing_capture(tmp_path: Path) -> None:
    path = tmp_path / "live.pcapng"
    tap = open_capture(str(path), link_name="loop:live")
    tap.flush()  # type: ignore[attr-defined]
    proc = subprocess.Popen([*RPMSG, "dump", "--follow", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for i in range(3):
            tap.message("tx", 0x400, 0x401, f"msg {i}".encode())
            tap.flush()  # type: ignore[attr-defined]
            line = proc.stdout.readline()
            if i == 0:
                assert line == "# link #0: loop:live\n"
                line = proc.stdout.readline()
            assert f"tx 0x400 -> 0x401 [5] {f'msg {i}'.encode().hex(' ')}" in line
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        tap.close()
    assert proc.returncode == 130  # stopped like Ctrl-C, no traceback


def test_stats_go_to_stderr_and_json_stays_clean(shm_url: str) -> None:
    remote = Remote(shm_url, "--stats", env=env_with())
    try:
        out = run("ping", shm_url, "--count", "15", "--interval", "0.1", "--json", "--stats",
                  env=env_with())
    finally:
        err = remote.stop()
    assert json.loads(out.stdout)["received"] == 15  # stdout is only the JSON document
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("rpmsg stats: ")]
    assert lines and "drops: none" in lines[-1] and "reconnects 0" in lines[-1]
    tx = re.search(r"tx (\d+) msg (\d+) B", lines[-1])
    assert tx is not None and int(tx[1]) >= 15 and int(tx[2]) >= 15 * 64  # pings (+ NS)
    remote_lines = [ln for ln in err.splitlines() if ln.startswith("rpmsg stats: ")]
    rx = re.search(r"rx (\d+) msg", remote_lines[-1]) if remote_lines else None
    assert rx is not None and int(rx[1]) >= 15


def test_wireshark_path_and_install(tmp_path: Path) -> None:
    assert run("wireshark", "--path").stdout.strip() == str(plugin_path())
    assert plugin_path().read_text().startswith("-- rpmsg.lua")
    target = tmp_path / "plugins"
    target.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (target / "rpmsg.lua").symlink_to(victim)  # replaced, never written through
    out = run("wireshark", "--install", "--dir", str(target))
    dest = Path(out.stdout.strip())
    assert dest == target / "rpmsg.lua" and not dest.is_symlink()
    assert dest.read_bytes() == plugin_path().read_bytes()
    assert victim.read_text() == "keep"


@pytest.mark.skipif(TSHARK is None, reason="tshark missing: run scripts/test")
def test_shm_ring_events_at_frame_level(tmp_path: Path, shm_url: str) -> None:
    """``capture_level=frames`` on a virtio link adds its ring events (descriptors pushed
    and popped, notifications) next to the messages, decoded by tshark."""
    path = tmp_path / "ring.pcapng"
    remote = Remote(shm_url, env=env_with())
    try:
        run("ping", shm_url, "--count", "5", "--size", "60",
            env=env_with(RPMSG_CAPTURE=str(path), RPMSG_CAPTURE_LEVEL="frames"))
    finally:
        remote.stop()
    rows = tshark_fields(path, "rpmsg.direction", "rpmsg.ring.event", "rpmsg.ring.queue",
                         "rpmsg.ring.id", "rpmsg.ring.len", display_filter="rpmsg.ring.event")
    events = {(r[0], r[1]) for r in rows}
    assert {("tx", "push"), ("rx", "pop"), ("tx", "notify")} <= events
    pushes = [r for r in rows if r[1] == "push" and r[4] == str(16 + 60)]
    assert len(pushes) == 5  # one descriptor per ping: header + payload
    assert all(r[3].isdigit() for r in pushes)
    pings = [r for r in read_capture(str(path))
             if isinstance(r, CapturedMessage) and r.direction == "tx" and r.dst != NS_ADDR]
    assert len(pings) == 5


def test_replay_of_a_capture_cut_by_a_crash_sends_what_is_whole(tmp_path: Path,
                                                                 shm_url: str) -> None:
    """A capture whose program was killed mid-write ends inside a block: replay says so on
    stderr and sends the messages before the cut (it failed with TruncatedCaptureError)."""
    host = tmp_path / "host.pcapng"
    remote = Remote(shm_url, env=env_with())
    try:
        run("ping", shm_url, "--count", "10", "--size", "100",
            env=env_with(RPMSG_CAPTURE=str(host)))
    finally:
        remote.stop()
    whole = payloads(host, "tx")
    assert len(whole) == 10
    data = host.read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[:-10])  # into the last block (the link-down event or the last reply)
    url2 = shm_url + "-2"
    remote = Remote(url2, env=env_with())
    try:
        out = run("replay", str(cut), url2, "--speed", "max", "--json", env=env_with())
    finally:
        remote.stop()
        for leftover in Path("/dev/shm").glob(url2.split(":")[1] + "*"):
            leftover.unlink()
    assert "ends inside a block" in out.stderr
    assert json.loads(out.stdout)["sent"] == 10
