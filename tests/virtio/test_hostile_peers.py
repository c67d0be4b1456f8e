"""Hostile and broken peers over real shared memory and real sockets (issue 10 items 1-3, 9).

Other processes truncate and scribble the shared memory during traffic, an orphaned driver
writes stale indices, a driver corrupts its ring under ``rpmsg remote``, peers stop answering,
bad arguments reach the link directly. Each case ends in a typed error or a dropped session,
no process dies of a signal, no call waits past its timeout, close() takes under a second, and
the link works again afterwards.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import struct
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

import rpmsg
from rpmsg.device import Device
from rpmsg.errors import (
    ArgumentTypeError,
    InvalidArgumentError,
    MessageTooLargeError,
    RemoteDisconnectedError,
    RpmsgTimeoutError,
)
from rpmsg.transport import Release
from rpmsg.virtio.layout import OPENAMP_LINUX
from rpmsg.virtio.shm_pair import pair
from rpmsg.wire.layout import Buffer

HERE = os.path.dirname(os.path.abspath(__file__))
HEAD = struct.Struct("<II")
U16 = struct.Struct("<H")
VQ1_AVAIL_IDX = OPENAMP_LINUX.queues()[1].avail + 2


@pytest.fixture
def name() -> Iterator[str]:
    n = f"rpmsg-hp-{uuid.uuid4().hex[:10]}"
    yield n
    for leftover in (f"/dev/shm/{n}", f"/tmp/{n}.event.0"):
        if os.path.lexists(leftover):
            os.unlink(leftover)


def wait_until(cond: Any, timeout: float = 20.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.01)


def timed_close(*devices: Device) -> None:
    for dev in devices:
        t0 = time.monotonic()
        dev.close()
        assert time.monotonic() - t0 < 1.0, "close() took a second or more"


def start_remote_echo(url: str) -> subprocess.Popen[bytes]:
    child = subprocess.Popen([sys.executable, os.path.join(HERE, "remote_echo.py"), url],
                             stdout=subprocess.PIPE)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == b"ready"
    return child


def finish(child: subprocess.Popen[bytes], code: int = 0) -> None:
    """The child must end by itself, with ``code`` (never a signal)."""
    try:
        assert child.wait(30) == code
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


def echo(ept: rpmsg.Endpoint, data: bytes = b"ping") -> None:
    ept.send(data, timeout=10)
    assert ept.recv(timeout=10) == data


def stream(check: rpmsg.Endpoint, start: int, count: int) -> None:
    """``count`` checked messages on the remote's ``check`` service, in bursts."""
    burst = []
    for seq in range(start, start + count):
        body = seq.to_bytes(4, "little") * (1 + seq % 16)
        burst.append(HEAD.pack(seq, zlib.crc32(body)) + body)
        if len(burst) == 100:
            assert check.send_many(burst, timeout=20) == 100
            burst.clear()
    if burst:
        check.send_many(burst, timeout=20)


# Item 1: truncation and scribbling by a third process ------------------------------------

SCRIBBLER = """
import os, random, sys, time
path, seconds = sys.argv[1], float(sys.argv[2])
end = time.monotonic() + seconds
rounds = 0
while time.monotonic() < end:
    fd = os.open(path, os.O_RDWR)
    os.ftruncate(fd, 4096)
    os.pwrite(fd, os.urandom(4096), 0)
    os.close(fd)
    rounds += 1
    time.sleep(0.002)
print(rounds)
"""


def test_truncating_the_named_file_cannot_hurt_two_rpmsg_processes(name: str) -> None:
    """Between rpmsg processes the rings live in a sealed memfd: a third process that cuts
    the named file to 4 KiB and fills it with noise during traffic changes nothing."""
    child = start_remote_echo(f"shm:{name}")
    try:
        host = rpmsg.open(f"shm:{name}?timeout=20")
        assert "sealed memfd" in host.link.describe()["memory"]
        ept = host.create_endpoint("echo")
        check = host.create_endpoint("check")
        ept.wait_bound(20)
        check.wait_bound(20)
        scribbler = subprocess.Popen([sys.executable, "-c", SCRIBBLER, f"/dev/shm/{name}",
                                      "1.5"], stdout=subprocess.PIPE, text=True)
        n = 0
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end:
            stream(check, n, 2000)
            n += 2000
            echo(ept)
        out, _ = scribbler.communicate(timeout=30)
        assert scribbler.returncode == 0 and int(out) > 10  # it really truncated, many times
        check.send(b"report")
        report = json.loads(check.recv(timeout=30))
        assert report == {"next": n, "bad_seq": 0, "bad_crc": 0, "count": n}
        assert host.is_up and child.poll() is None  # nobody died of SIGBUS
        timed_close(host)
    finally:
        finish(child)


def _session_memfd(pid: int) -> str:
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with_target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if "memfd:rpmsg-shm-session" in with_target:
            return f"/proc/{pid}/fd/{fd}"
    raise AssertionError("the device holds no session memfd")


def test_the_sealed_memfd_cannot_be_shrunk_and_scribbled_rings_drop_the_session(
        name: str) -> None:
    proc = start_rpmsg_remote(name)
    try:
        host = rpmsg.open(f"shm:{name}?timeout=20")
        ept = host.create_endpoint("echo")
        ept.wait_bound(20)
        echo(ept)
        fd = os.open(_session_memfd(proc.pid), os.O_RDWR)
        try:
            with pytest.raises(PermissionError):  # sealed: the kernel refuses
                os.ftruncate(fd, 4096)
            with pytest.raises(PermissionError):
                os.ftruncate(fd, 0)
            # Stale or hostile indices in the rings: the device drops the session, the
            # driver reconnects by itself (a fresh memfd), and the service binds again.
            idx = U16.unpack(os.pread(fd, 2, VQ1_AVAIL_IDX))[0]
            os.pwrite(fd, U16.pack((idx + 1000) & 0xFFFF), VQ1_AVAIL_IDX)
        finally:
            os.close(fd)
        wait_until(lambda: host.link.stats()["reconnects"] >= 1, what="reconnection")
        assert "went away" in host.link.seen()
        ept.wait_bound(20)  # the same endpoint, bound again by the re-announcement
        echo(ept, b"after the drop")
        assert proc.poll() is None
        timed_close(host)
    finally:
        stop_rpmsg_remote(proc)


def test_sharing_the_named_file_says_its_limit_once(name: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rpmsg.shm")
    remote = rpmsg.open(f"shm:{name}", side="remote")
    try:
        for _ in range(2):
            host = rpmsg.open(f"shm:{name}?memfd=0&timeout=20")
            assert host.link.describe()["memory"] == f"/dev/shm/{name}"
            timed_close(host)
    finally:
        timed_close(remote)
    said = [r for r in caplog.records if "SIGBUS" in r.getMessage()
            and f"/dev/shm/{name}" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO


# Item 9: an orphaned driver writing stale indices; rpmsg remote keeps serving -------------

ORPHAN = """
import mmap, os, random, struct, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 0x80000)
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    struct.pack_into("<H", m, int(sys.argv[3]), random.randrange(65536))
    time.sleep(0.005)
print("done")
"""


def test_orphaned_driver_writing_stale_indices_never_stops_the_device(name: str) -> None:
    remote = rpmsg.open(f"shm:{name}", side="remote")
    remote.create_endpoint("echo", callback=lambda ept, data, src: ept.send_to(src, data))
    host = rpmsg.open(f"shm:{name}?memfd=0&timeout=20")  # the named file: the orphan's too
    try:
        ept = host.create_endpoint("echo")
        ept.wait_bound(20)
        echo(ept)
        orphan = subprocess.run([sys.executable, "-c", ORPHAN, f"/dev/shm/{name}", "1.0",
                                 str(VQ1_AVAIL_IDX)], capture_output=True, text=True,
                                timeout=60)
        assert orphan.returncode == 0, orphan.stderr
        wait_until(lambda: remote.link.stats()["sessions_dropped"] >= 1, what="a drop")
        assert remote.broken_error is None and host.broken_error is None
        # The orphan is gone. The session it wrote into last may be poisoned beyond what a
        # device can see (an index that looks plausible stalls it silently, as it would on
        # Linux or OpenAMP), but the device serves the next driver on fresh rings.
        timed_close(host)
        host = rpmsg.open(f"shm:{name}?memfd=0&timeout=20")
        ept = host.create_endpoint("echo")
        ept.wait_bound(20)
        echo(ept, b"served again")
        assert remote.broken_error is None
    finally:
        timed_close(host, remote)


def start_rpmsg_remote(name: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "rpmsg", "remote", f"shm:{name}",
                             "--echo", "echo"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert "serving" in proc.stdout.readline()
    return proc


def stop_rpmsg_remote(proc: subprocess.Popen[str]) -> None:
    """Ctrl-C: it must end by itself with status 0 (never 1 for a peer's fault)."""
    try:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_rpmsg_remote_keeps_serving_after_a_driver_breaks_the_ring(name: str) -> None:
    proc = start_rpmsg_remote(name)
    try:
        host = rpmsg.open(f"shm:{name}?timeout=20")
        ept = host.create_endpoint("echo")
        ept.wait_bound(20)
        echo(ept)
        # This driver turns rogue: an avail index it never filled, in its session's memory.
        mem = host.link.memory.mv  # type: ignore[attr-defined]
        idx = U16.unpack_from(mem, VQ1_AVAIL_IDX)[0]
        U16.pack_into(mem, VQ1_AVAIL_IDX, (idx + 4000) & 0xFFFF)
        wait_until(lambda: host.link.stats()["reconnects"] >= 1, what="reconnection")
        assert proc.poll() is None  # still serving: a peer's fault is not the remote's
        ept.wait_bound(20)
        echo(ept, b"next session served")
        timed_close(host)
    finally:
        stop_rpmsg_remote(proc)


# Item 3: peers that stop answering -----------------------------------------------------

@pytest.mark.parametrize("stop", ["device", "driver"])
def test_close_within_a_second_when_the_peer_is_frozen(name: str, stop: str) -> None:
    script = os.path.join(HERE, "remote_echo.py")
    if stop == "device":
        child = start_remote_echo(f"shm:{name}")
        local = rpmsg.open(f"shm:{name}?timeout=20")
        ept = local.create_endpoint("echo")
        ept.wait_bound(20)
    else:
        local = rpmsg.open(f"shm:{name}", side="remote")
        local.create_endpoint("echo", callback=lambda e, d, s: None)
        child = subprocess.Popen([sys.executable, "-c", FROZEN_DRIVER, f"shm:{name}"],
                                 stdout=subprocess.PIPE)
        assert child.stdout is not None and child.stdout.readline().strip() == b"bound"
        ept = local.create_endpoint("to-driver", dst=1024)
    del script
    child.send_signal(signal.SIGSTOP)
    try:
        # Fill every buffer the frozen peer would have to return, then more: a send with a
        # timeout gives up in time, and close() does not wait for the peer at all.
        t0 = time.monotonic()
        with pytest.raises((RpmsgTimeoutError, RemoteDisconnectedError)):
            for _ in range(1000):
                ept.send(b"x" * 100, timeout=0.5)
        assert time.monotonic() - t0 < 10
        timed_close(local)
    finally:
        child.send_signal(signal.SIGCONT)
        child.kill()  # it was frozen on purpose; ending it is ours to do
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


FROZEN_DRIVER = """
import sys, rpmsg
dev = rpmsg.open(sys.argv[1] + "?timeout=20")
ept = dev.create_endpoint("echo")
ept.wait_bound(20)
print("bound", flush=True)
sys.stdin.read()
"""


# Item 2: bad arguments straight to the link never leak a buffer ---------------------------

class _Drain:
    """A sink that takes every message (and counts them)."""

    def __init__(self) -> None:
        self.count = 0

    def link_up(self, detail: str = "") -> None:
        pass

    def link_down(self, reason: str, restart: bool = False) -> None:
        pass

    def broken(self, error: Exception) -> None:
        raise AssertionError(f"broken: {error}")

    def deliver(self, src: int, dst: int, payload: Buffer, release: Release | None = None) -> None:
        self.count += 1
        if release is not None:
            release()


def test_bad_sends_on_the_link_never_leak_a_buffer() -> None:
    driver, device = pair()
    drain, host_drain = _Drain(), _Drain()
    device.start(drain)
    driver.start(host_drain)
    try:
        bad: list[tuple[Any, Any, Any, type[Exception]]] = [
            (1024, 1024, memoryview(bytes(400)).cast("I"), (InvalidArgumentError)),
            (-1, 1024, b"x", InvalidArgumentError),
            (1024, 2**32, b"x", InvalidArgumentError),
            (1024, 1024, "a", ArgumentTypeError),
            (1024, 1024, b"x" * 497, MessageTooLargeError),
        ]
        for src, dst, payload, error in bad:
            for _ in range(300):  # more than the 256 transmit buffers
                with pytest.raises(error):
                    driver.send(src, dst, payload, 1)
                with pytest.raises(error):
                    driver.send_many([(1024, 1024, b"ok"), (src, dst, payload)], 1)
            with driver.alloc_tx(1) as buf, pytest.raises(InvalidArgumentError):
                buf.commit(-5, 1024, 3)
        for i in range(600):
            driver.send(1024, 1024, b"%d" % i, 5)
        # The good first message of each failed burst went out, then 600 more: all arrive.
        assert driver.stats()["tx_messages"] == len(bad) * 300 + 600
        wait_until(lambda: drain.count == len(bad) * 300 + 600, what="all good messages")
        # The device role (the engine vhost-user serves too) gives its buffers back alike.
        for src, dst, payload, error in bad:
            for _ in range(300):
                with pytest.raises(error):
                    device.send(src, dst, payload, 1)
                with pytest.raises(error):
                    device.send_many([(src, dst, payload)], 1)
        for i in range(600):
            device.send(1024, 1024, b"%d" % i, 5)
        wait_until(lambda: host_drain.count == 600, what="the device's good messages")
    finally:
        driver.close(1)
        device.close(1)


# Item 11.2 and 12.1: waits say what they wait for; ring events for the frame tap ---------

def test_a_long_wait_says_what_it_waits_for(name: str,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rpmsg.wait")
    t0 = time.monotonic()
    with pytest.raises(RpmsgTimeoutError, match=rf"nothing listens on /tmp/{name}\.event\.0"):
        rpmsg.open(f"shm:{name}?timeout=1.5")
    assert time.monotonic() - t0 < 3
    said = [r.getMessage() for r in caplog.records if r.name == "rpmsg.wait"]
    # The hint is a command to paste: this side's timeout (or capture) is not the remote's.
    assert said == [f"waiting for a virtio device on shm:{name}?timeout=1.5 — start one with "
                    f"`rpmsg remote shm:{name}`"]


def test_the_hint_keeps_the_layout_and_quotes_it_for_a_shell() -> None:
    from rpmsg.registry import remote_command

    assert remote_command("shm:lab?buffers=64&capture=x.pcapng&timeout=1") == \
        "rpmsg remote 'shm:lab?buffers=64'"  # pasted unquoted, & sent it to the background
    assert remote_command("shm:lab?policy=nuttx") == "rpmsg remote shm:lab"


class _FrameTap:
    def __init__(self) -> None:
        self.frames: list[tuple[str, dict[str, Any]]] = []

    def message(self, *args: Any, **kw: Any) -> None:
        pass

    def event(self, *args: Any, **kw: Any) -> None:
        pass

    def frame(self, direction: str, kind: str, data: Buffer, info: Any) -> None:
        assert kind == "ring" and bytes(data) == b""
        self.frames.append((direction, dict(info)))

    def close(self) -> None:
        pass


def test_frame_tap_sees_ring_events() -> None:
    driver, device = pair()
    htap, rtap = _FrameTap(), _FrameTap()
    driver.tap, device.tap = htap, rtap  # as rpmsg.open does at capture_level=frames
    host, remote = Device(driver, tap=htap), Device(device, tap=rtap)
    try:
        r = remote.create_endpoint("svc")
        h = host.create_endpoint("svc")
        h.wait_bound(5)
        h.send(b"hello", timeout=5)
        assert r.recv(timeout=5) == b"hello"
        pushes = [i for d, i in htap.frames if i["event"] == "push" and i["queue"] == 1]
        pops = [i for d, i in rtap.frames if i["event"] == "pop" and i["queue"] == 1]
        assert pushes and pops
        # The device popped exactly the descriptor the driver pushed, with its length.
        last = pushes[-1]
        assert any(p["id"] == last["id"] and p["len"] == last["len"] == 16 + 5 for p in pops)
        assert {"tx"} == {d for d, i in htap.frames if i["event"] in ("push", "notify")}
        assert any(i["event"] == "kick" for _d, i in rtap.frames)
    finally:
        host.close()
        remote.close()
