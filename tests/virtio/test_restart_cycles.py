"""Restart cycles on ``shm:``: 50 kill -9 of each side at random points (issue 10 item 9).

The surviving side lives in this process and is never reopened: the driver reconnects by
itself after each device restart, the device serves each new driver. Nothing is delivered
twice, and descriptors, threads and memory stay flat over the cycles.
"""

from __future__ import annotations

import collections
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

import rpmsg
from rpmsg.errors import RemoteDisconnectedError, RpmsgTimeoutError

CYCLES = 50

DRIVER = """
import sys, rpmsg
url, tag = sys.argv[1], sys.argv[2]
dev = rpmsg.open(url + "?timeout=30")
ept = dev.create_endpoint("sink")
ept.wait_bound(30)
print("bound", flush=True)
i = 0
while True:
    ept.send(f"{tag}:{i}".encode(), timeout=30)
    i += 1
"""


@pytest.fixture
def name() -> Iterator[str]:
    n = f"rpmsg-rc-{uuid.uuid4().hex[:10]}"
    yield n
    for leftover in (f"/dev/shm/{n}", f"/tmp/{n}.event.0"):
        if os.path.lexists(leftover):
            os.unlink(leftover)


def resources() -> tuple[int, int, int]:
    """(open descriptors, threads, RSS in KiB) of this process."""
    with open("/proc/self/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return len(os.listdir("/proc/self/fd")), threading.active_count(), rss


def settle(cond: object, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < end, "the surviving side did not settle"
        time.sleep(0.01)


def kill_at_random(proc: subprocess.Popen[bytes], rng: random.Random, latest: float) -> None:
    """SIGKILL ``proc`` at a random moment within ``latest`` seconds (startup, handshake,
    traffic, anything)."""
    time.sleep(rng.uniform(0, latest))
    proc.kill()
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def check_flat(before: tuple[int, int, int], after: tuple[int, int, int]) -> None:
    fds0, threads0, rss0 = before
    fds1, threads1, rss1 = after
    assert fds1 <= fds0 + 2, f"descriptors grew from {fds0} to {fds1}"
    assert threads1 <= threads0, f"threads grew from {threads0} to {threads1}"
    assert rss1 - rss0 < 8 * 1024, f"RSS grew by {(rss1 - rss0) // 1024} MiB"


@pytest.mark.slow
def test_device_killed_50_times_driver_reconnects_by_itself(name: str) -> None:
    rng = random.Random(0xD11CE)
    url = f"shm:{name}"
    argv = [sys.executable, "-m", "rpmsg", "remote", url, "--echo", "echo", "--quiet"]
    first = subprocess.Popen(argv)
    host = rpmsg.open(f"{url}?timeout=60")
    ept = host.create_endpoint("echo")
    replies: collections.Counter[bytes] = collections.Counter()
    baseline = None
    child = first
    try:
        for cycle in range(CYCLES):
            if cycle:
                child = subprocess.Popen(argv)
            if cycle % 5 == 4:
                # Killed while starting: before, during or just after the handshake.
                kill_at_random(child, rng, 0.6)
            else:
                ept.wait_bound(60)
                killer = threading.Thread(target=kill_at_random, args=(child, rng, 0.05))
                killer.start()
                i = 0
                try:
                    while True:  # traffic until the device dies under it
                        data = f"{cycle}:{i}".encode()
                        ept.send(data, timeout=10)
                        replies[ept.recv(timeout=10)] += 1
                        i += 1
                except (RemoteDisconnectedError, RpmsgTimeoutError):
                    pass
                killer.join()
            assert child.returncode == -9
            settle(lambda: not host.is_up)
            assert host.broken_error is None
            if cycle == 4:
                baseline = resources()
        # One more device: the same Device and endpoint, never reopened, work again.
        child = subprocess.Popen(argv)
        ept.wait_bound(60)
        ept.send(b"last", timeout=10)
        assert ept.recv(timeout=10) == b"last"
        assert host.link.stats()["reconnects"] >= CYCLES - CYCLES // 5
        assert not [r for r, n in replies.items() if n > 1], "a reply was delivered twice"
        assert sum(replies.values()) > CYCLES  # traffic really flowed in the cycles
        child.kill()
        child.wait()
        settle(lambda: not host.is_up)
        assert baseline is not None
        check_flat(baseline, resources())
    finally:
        t0 = time.monotonic()
        host.close()
        assert time.monotonic() - t0 < 1.0
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.mark.slow
def test_driver_killed_50_times_device_serves_the_next(name: str) -> None:
    rng = random.Random(0xD21CE)
    url = f"shm:{name}"
    remote = rpmsg.open(url, side="remote")
    # Per driver: the next sequence number expected (each driver counts up from 0), and
    # what broke the order: a number seen again (twice) or one skipped (lost).
    expected: dict[bytes, int] = collections.defaultdict(int)
    twice: list[bytes] = []
    lost: list[bytes] = []
    total = [0]

    def on_sink(ept: rpmsg.Endpoint, data: bytes, src: int) -> None:
        tag, _, seq = data.partition(b":")
        n = int(seq) if seq.isdigit() else -1
        if n < expected[tag]:
            twice.append(data)
        elif n > expected[tag]:
            lost.append(data)
        expected[tag] = max(expected[tag], n + 1)
        total[0] += 1

    remote.create_endpoint("sink", callback=on_sink)
    baseline = None
    try:
        for cycle in range(CYCLES):
            child = subprocess.Popen([sys.executable, "-c", DRIVER, url, str(cycle)],
                                     stdout=subprocess.PIPE)
            assert child.stdout is not None
            if cycle % 5 == 4:
                kill_at_random(child, rng, 0.8)  # while importing, connecting or binding
            else:
                assert child.stdout.readline().strip() == b"bound"
                kill_at_random(child, rng, 0.1)  # during traffic
            assert child.returncode == -9
            settle(lambda: not remote.is_up)
            assert remote.broken_error is None
            if cycle == 4:
                baseline = resources()
        # The next driver is served by the same Device.
        host = rpmsg.open(f"{url}?timeout=30")
        ept = host.create_endpoint("sink")
        ept.wait_bound(30)
        ept.send(b"last:0", timeout=10)
        settle(lambda: expected[b"last"] == 1)
        host.close()
        settle(lambda: not remote.is_up)
        assert not twice, f"delivered twice: {twice[:5]}"
        assert not lost, f"lost inside a session: {lost[:5]}"
        assert total[0] > CYCLES  # messages really flowed in the cycles
        assert remote.link.stats()["sessions"] >= CYCLES - CYCLES // 5
        assert baseline is not None
        check_flat(baseline, resources())
    finally:
        t0 = time.monotonic()
        remote.close()
        assert time.monotonic() - t0 < 1.0
