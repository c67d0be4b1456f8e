"""Shared pieces of the RPMsg Port hostile and restart tests (UART and SPI).

Processes: :class:`Zygote` forks pre-imported peers cheaply and :class:`NullModem` is a cable
between two ptys; both exit when the test closes their stdin (or dies). Measurements:
:func:`snapshot` (fds, threads, RSS). :class:`RecordingTap` keeps what a link reports at
frame level. :class:`RestartCycles` drives kill -9 cycles against a survivor Device in this
process and checks what the survivor received.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import rpmsg

HERE = Path(__file__).parent
ZYGOTE = HERE / "zygote.py"
NULL_MODEM = HERE / "null_modem.py"
CYCLE_PEER = HERE / "cycle_peer.py"
FEED = struct.Struct("<II")
TID = struct.Struct("<Q")
#: Pings the survivor keeps in flight.
WINDOW = 4
#: Slack on top of a time budget on a loaded two-core machine (scheduling, not work):
#: these checks catch a wait that ignores its budget (30 s, for ever), not slowness.
SLACK = 1.5


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


def wait_until(predicate: Callable[[], object], timeout: float = 10.0,
               what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            pytest.fail(f"{what} not reached within {timeout} s")
        time.sleep(0.005)


@dataclass(frozen=True)
class Snapshot:
    fds: int
    threads: int
    rss_kib: int


def snapshot() -> Snapshot:
    """Open descriptors, live threads and resident memory of this process."""
    rss = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return Snapshot(len(os.listdir("/proc/self/fd")), threading.active_count(), rss)


class Zygote:
    """A child process that forks peers (``zygote.py``); closed with :meth:`close`."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(ZYGOTE)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=_env())
        self.children: list[int] = []

    def spawn(self, script: Path, *args: object) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(" ".join([str(script), *map(str, args)]) + "\n")
        self.proc.stdin.flush()
        pid = int(self.proc.stdout.readline())
        self.children.append(pid)
        return pid

    @staticmethod
    def kill(pid: int) -> None:
        """SIGKILL and wait until the process is gone (reaped by the zygote)."""
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        wait_until(lambda: not _alive(pid), 10, f"death of pid {pid}")

    def close(self) -> None:
        """Close stdin: the zygote exits, its children notice and exit by themselves."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(10)
        for pid in self.children:
            wait_until(lambda p=pid: not _alive(p), 10, f"pid {pid} exiting by itself")  # type: ignore[misc]


def _alive(pid: int) -> bool:
    """Whether any thread of ``pid`` still runs; the zygote's children are reaped by the
    kernel once all their threads exited (the leader alone can be a zombie while other
    threads still hold the process's files and locks)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                if f.read().split(") ", 1)[1][:1] not in ("Z", "X"):
                    return True
        except (OSError, IndexError):
            continue
    return os.path.exists(f"/proc/{pid}")


class NullModem:
    """Two ptys joined like a cable (``null_modem.py``): :attr:`a` and :attr:`b` are paths."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(NULL_MODEM)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=_env())
        assert self.proc.stdout is not None
        self.a, self.b = self.proc.stdout.readline().split()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        assert self.proc.wait(10) == 0  # exited by itself, no signal


@contextmanager
def zygote() -> Iterator[Zygote]:
    z = Zygote()
    try:
        yield z
    finally:
        z.close()


class RecordingTap:
    """A Tap that keeps frame-level reports (and ignores messages and events)."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, str, bytes, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def message(self, direction: str, src: int, dst: int, payload: Any, flags: int = 0) -> None:
        pass

    def event(self, kind: str, detail: str = "") -> None:
        pass

    def frame(self, direction: str, kind: str, data: Any, info: Any) -> None:
        with self.lock:
            self.frames.append((direction, kind, bytes(data), dict(info)))

    def close(self) -> None:
        pass

    def of(self, direction: str, kind: str) -> list[tuple[bytes, dict[str, Any]]]:
        with self.lock:
            return [(d, i) for (dr, k, d, i) in self.frames if dr == direction and k == kind]


@dataclass
class Survivor:
    """What the Device that stays up saw: echoes of its own transmissions (``cycle``) and
    the victims' streams (``feed``)."""

    dev: rpmsg.Device
    cycle: rpmsg.Endpoint
    echoes: list[int] = field(default_factory=list)
    feeds: list[tuple[int, int]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @classmethod
    def start(cls, dev: rpmsg.Device) -> Survivor:
        cycle = dev.create_endpoint("cycle")
        self = cls(dev, cycle)
        lock = threading.Lock()

        def on_feed(_ept: rpmsg.Endpoint, data: bytes, _src: int) -> None:
            with lock:
                self.feeds.append(FEED.unpack(data))

        dev.create_endpoint("feed", callback=on_feed)
        self.thread = threading.Thread(target=self._client, name="survivor-client",
                                       daemon=True)
        self.thread.start()
        return self

    def _client(self) -> None:
        """Pings with a fresh transmission id each, up to WINDOW in flight (so this side
        has traffic queued when the peer dies); echoes are recorded."""
        tid = 0
        ept = self.cycle
        pad = bytes(random.Random(7).randbytes(100))
        outstanding: deque[int] = deque()
        try:
            while not self.stop.is_set():
                try:
                    if not ept.bound:
                        ept.wait_bound(timeout=0.5)
                    while len(outstanding) < WINDOW:
                        ept.send(TID.pack(tid) + pad, timeout=0.5)
                        outstanding.append(tid)
                        tid += 1
                    got = TID.unpack_from(ept.recv(timeout=0.5))[0]
                    self.echoes.append(got)
                    while outstanding and outstanding[0] <= got:
                        outstanding.popleft()
                except (rpmsg.RpmsgTimeoutError, rpmsg.RemoteDisconnectedError,
                        rpmsg.NotBoundError, rpmsg.WouldBlockError):
                    outstanding.clear()  # lost in a restart: go on with fresh ids
        except BaseException as exc:  # reported by check()
            self.errors.append(exc)

    def traffic_from(self, incarnation: int, since_echoes: int) -> bool:
        """Both directions carried traffic of this incarnation."""
        return (len(self.echoes) > since_echoes
                and any(inc == incarnation for inc, _ in self.feeds[-50:]))

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(10)

    def check(self) -> None:
        """Nothing delivered twice, nothing out of order, in either direction."""
        assert not self.errors, self.errors
        assert all(b > a for a, b in zip(self.echoes, self.echoes[1:], strict=False)), \
            "an echo came twice or out of order"
        last: dict[int, int] = {}
        for inc, n in self.feeds:
            assert n > last.get(inc, -1), f"feed ({inc}, {n}) delivered twice or out of order"
            last[inc] = n


def restart_cycles(dev: rpmsg.Device, spawn: Callable[[int], int], *, cycles: int = 50,
                   seed: int = 1) -> tuple[Survivor, Snapshot, Snapshot]:
    """Kill -9 a freshly spawned victim ``cycles`` times at random points; the survivor
    ``dev`` must recover by itself each time. Returns the survivor and the resource
    snapshots taken in the same state (traffic flowing, just before the kill) after the
    warm-up (cycle 5) and in the last cycle."""
    rng = random.Random(seed)
    survivor = Survivor.start(dev)
    warm = end = snapshot()
    try:
        for i in range(cycles + 1):
            since = len(survivor.echoes)
            pid = spawn(i)
            waits = i == cycles or i % 5 != 4
            if waits:
                # Recovery by itself: traffic flows both ways with the new incarnation.
                end_wait = time.monotonic() + 30
                while not survivor.traffic_from(i, since):
                    if time.monotonic() > end_wait:
                        if os.environ.get("RPMSG_TEST_STACKS"):  # debugging aid
                            import faulthandler
                            faulthandler.dump_traceback(all_threads=True)
                            os.kill(pid, signal.SIGUSR1)
                            time.sleep(0.5)
                            print("victim:", dev.link.describe(), file=sys.stderr)
                        stats = {k: v for k, v in dev.stats().items() if v}
                        pytest.fail(f"no traffic within 30 s after restart {i}: "
                                    f"{dev.seen()}; victim alive: {_alive(pid)}; "
                                    f"echoes {len(survivor.echoes) - since}, last feed "
                                    f"{survivor.feeds[-1:]}, cycle bound "
                                    f"{survivor.cycle.bound}; stats {stats}")
                    time.sleep(0.005)
                if i in (5, cycles):
                    gc.collect()
                    if i == 5:
                        warm = snapshot()
                    else:
                        end = snapshot()
                time.sleep(rng.uniform(0, 0.1))
            else:
                time.sleep(rng.uniform(0, 0.3))  # during the handshake, or just after
            Zygote.kill(pid)
    finally:
        survivor.close()
    survivor.check()
    return survivor, warm, end


def assert_flat(warm: Snapshot, end: Snapshot) -> None:
    """No descriptor or thread leaked over the cycles, memory did not grow."""
    assert end.fds <= warm.fds, (warm, end)
    assert end.threads <= warm.threads, (warm, end)
    assert end.rss_kib - warm.rss_kib < 8 * 1024, (warm, end)


def api_abuse_checks(module_name: str) -> list[Callable[[Any], None]]:
    """The runtime's API-abuse checks (``tests/hostile/test_api_abuse.py``), loaded under
    ``module_name`` so a transport's test file can run each of them over its own link."""
    hostile = Path(__file__).parents[1] / "hostile"
    if str(hostile) not in sys.path:
        sys.path.insert(0, str(hostile))
    spec = importlib.util.spec_from_file_location(module_name, hostile / "test_api_abuse.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [getattr(module, name) for name in sorted(dir(module)) if name.startswith("test_")]
