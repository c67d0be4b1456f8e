"""A peer that never gives a buffer back cannot stall a transport thread or close() (issue 10.3).

The runtime's own messages (NS announcements, CREATE_ACK, DESTROY) are tried without
waiting and otherwise queued; ``Device.close(timeout=1.0)`` is one budget for the DESTROYs,
the flush and the link's own close, whatever the peer does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import pytest
from hostile_helpers import SLACK, bind, wait_until

import rpmsg
from rpmsg.errors import RpmsgTimeoutError
from rpmsg.transport import Link, LinkSink
from rpmsg.wire import NS_ADDR, NsFlags, NsMessage


class StuckLink(Link):
    """A link whose peer never returns a buffer: send waits out its whole timeout."""

    role = "stuck"

    def __init__(self) -> None:
        self.sink: LinkSink | None = None
        self.close_budget: list[float | None] = []
        self.sent: list[bytes] = []

    def start(self, sink: LinkSink) -> None:
        self.sink = sink

    def send(self, src: int, dst: int, payload: Any, timeout: float | None) -> None:
        time.sleep(min(timeout if timeout is not None else 3600.0, 5.0))
        raise RpmsgTimeoutError("no buffer came")

    def close(self, timeout: float | None = None) -> None:
        self.close_budget.append(timeout)


class LegacyLink(StuckLink):
    """A third-party link written before close() took a budget."""

    def close(self) -> None:  # type: ignore[override]
        self.close_budget.append(-1.0)


def test_link_up_on_a_transport_thread_never_waits_for_a_buffer() -> None:
    link = StuckLink()
    dev = rpmsg.Device(link)
    try:
        for i in range(20):
            dev.create_endpoint(f"svc{i}")  # announced at link-up
        t0 = time.monotonic()
        thread = threading.Thread(target=dev.link_up)  # the transport's thread
        thread.start()
        thread.join(5)
        assert time.monotonic() - t0 < 0.5 + SLACK
        ack = NsMessage("svc0", 0x777, NsFlags.CREATE).encode()
        t0 = time.monotonic()
        dev.deliver(0x777, NS_ADDR, ack)  # binds; the policy may answer: never waits either
        assert time.monotonic() - t0 < 0.5 + SLACK
        assert dev.stats()["ns_queued"] >= 20
    finally:
        t0 = time.monotonic()
        dev.close(timeout=1.0)
        assert time.monotonic() - t0 < 1.0 + SLACK
    stats = dev.stats()
    assert stats["ns_dropped_at_close"] >= 20 + 20  # the CREATEs and every DESTROY: counted
    assert stats["ns_queued"] == 0
    assert len(link.close_budget) == 1
    budget = link.close_budget[0]
    assert budget is not None and 0 <= budget <= 1.0  # the link gets what is left


def test_close_with_no_budget_limit_passes_none_and_legacy_links_still_close() -> None:
    link = StuckLink()
    dev = rpmsg.Device(link)
    dev.close(timeout=None)  # nothing queued: returns at once
    assert link.close_budget == [None]
    legacy = LegacyLink()
    rpmsg.Device(legacy).close()
    assert legacy.close_budget == [-1.0]


def test_loop_peer_that_never_returns_buffers(loop_name: str) -> None:
    """The peer's delivery thread is stuck in a callback: no buffer ever comes back."""
    url = f"loop:{loop_name}?buffers=2"
    stuck = threading.Event()
    entered = threading.Event()

    def hang(ept: rpmsg.Endpoint, data: bytes, src: int) -> None:
        entered.set()
        stuck.wait(30)

    a = rpmsg.open(url)
    b = rpmsg.open(url)
    try:
        b.create_endpoint("sink", callback=hang)
        a.wait_service("sink", timeout=5)
        client = a.create_endpoint("sink")
        client.wait_bound(timeout=5)
        client.send(b"1", timeout=5)
        assert entered.wait(5)
        client.send(b"2", timeout=5)  # the last buffer
        for i in range(10):
            a.create_endpoint(f"more{i}")  # announcements queue; nothing blocks
        t0 = time.monotonic()
        a.close(timeout=1.0)
        assert time.monotonic() - t0 < 1.0 + SLACK
        assert a.stats()["ns_dropped_at_close"] >= 10
    finally:
        stuck.set()
        a.close()
        b.close()
    # The name is usable again afterwards.
    with rpmsg.open(f"loop:{loop_name}") as c, rpmsg.open(f"loop:{loop_name}") as d:
        x, y = bind(c, d)
        x.send(b"again", timeout=5)
        assert y.recv(timeout=5) == b"again"


_FROZEN_PEER = """
import sys, time, rpmsg
dev = rpmsg.open(sys.argv[1], side="remote")
ept = dev.create_endpoint("frozen")
ept.wait_bound(timeout=30)
print("ready", flush=True)
time.sleep(120)
"""


@pytest.mark.slow
def test_shm_peer_frozen_by_sigstop_close_keeps_its_budget() -> None:
    """The device process is stopped (SIGSTOP) with our messages in its ring: close() of the
    driver still returns within its one-second budget, and no thread is left behind."""
    name = f"rpmsg-frozen-{uuid.uuid4().hex[:10]}"
    url = f"shm:{name}"
    peer = subprocess.Popen([sys.executable, "-c", _FROZEN_PEER, url],
                            stdout=subprocess.PIPE, text=True)
    try:
        host = rpmsg.open(f"{url}?timeout=30")
        threads_before = threading.active_count()
        host.wait_service("frozen", timeout=30)
        ept = host.create_endpoint("frozen")
        ept.wait_bound(timeout=30)
        ept.send(b"bind", timeout=30)
        assert peer.stdout is not None and peer.stdout.readline().strip() == "ready"
        os.kill(peer.pid, signal.SIGSTOP)
        sent = 0
        try:
            while True:  # fill the ring: the frozen peer returns nothing
                ept.send(b"x" * 496, timeout=0.2)
                sent += 1
        except RpmsgTimeoutError:
            pass
        assert sent > 0
        for i in range(5):
            host.create_endpoint(f"late{i}")  # NS CREATEs queue, nothing blocks
        t0 = time.monotonic()
        host.close(timeout=1.0)
        assert time.monotonic() - t0 < 1.0 + SLACK
        wait_until(lambda: threading.active_count() <= threads_before, timeout=10)
    finally:
        os.kill(peer.pid, signal.SIGKILL)
        peer.wait(10)
        for leftover in (f"/dev/shm/{name}", f"/tmp/{name}.event.0"):
            if os.path.exists(leftover):
                os.unlink(leftover)
