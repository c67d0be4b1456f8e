"""A flood at an endpoint nobody reads keeps memory flat (issue 10.5).

200,000 messages of 496 bytes (99 MB) go to an unread endpoint. Its queue stops at 256, the
rest waits in the transport's buffers for the one-second hold and is then dropped and
counted; the receiving process's RSS stays within a few MiB of where it started (before the
fix it grew from 23 to 148 MiB). Over ``loop:`` in one process and over ``shm:`` between two.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import uuid

import pytest
from hostile_helpers import bind, rss_kib, wait_until

import rpmsg

COUNT = 200_000
SIZE = 496
#: How much the receiver's RSS may grow: the 256-message queue (126 KiB), allocator slack.
RSS_SLACK_KIB = 6 * 1024


def settle() -> int:
    gc.collect()
    return rss_kib()


@pytest.mark.slow
def test_loop_flood_at_unread_endpoint_keeps_rss_flat(loop_name: str) -> None:
    with rpmsg.open(f"loop:{loop_name}") as a, rpmsg.open(f"loop:{loop_name}") as b:
        client, server = bind(a, b)
        other_client, other_server = bind(a, b, "bystander")
        payload = bytes(SIZE)
        for _ in range(2000):  # warm up allocators and code paths before measuring
            client.send(payload, timeout=30)
        for _ in range(server.pending):
            server.recv(timeout=5)
        start = settle()
        peak = start
        for i in range(COUNT):
            client.send(payload, timeout=30)
            if i % 10_000 == 0:
                peak = max(peak, rss_kib())
        # The bystander on the same link still gets through.
        other_client.send(b"still here", timeout=30)
        assert other_server.recv(timeout=30) == b"still here"
        end = settle()
        stats = server.stats()
        assert stats["pending"] <= 256
        assert stats["dropped_queue_full"] > 0
        wait_until(lambda: server.stats()["rx_messages"] + server.stats()["dropped_queue_full"]
                   + server.stats()["held"] >= COUNT)
        assert b.stats()["dropped_queue_full"] == server.stats()["dropped_queue_full"]
        assert max(peak, end) - start < RSS_SLACK_KIB, (start, peak, end)


_FLOODER = """
import sys, rpmsg
count, size = int(sys.argv[2]), int(sys.argv[3])
with rpmsg.open(sys.argv[1] + "?timeout=30") as dev:
    dev.wait_service("hostile-svc", timeout=30)
    ept = dev.create_endpoint("hostile-svc")
    ept.wait_bound(timeout=30)
    ept.send(b"hello", timeout=30)
    payload = bytes(size)
    for _ in range(count):
        ept.send(payload, timeout=30)
    ept.send(b"done", timeout=30)
    print("sent", flush=True)
"""


@pytest.mark.slow
def test_shm_flood_from_another_process_keeps_rss_flat() -> None:
    name = f"rpmsg-flood-{uuid.uuid4().hex[:10]}"
    url = f"shm:{name}"
    dev = rpmsg.open(url, side="remote")
    try:
        server = dev.create_endpoint("hostile-svc")
        flooder = subprocess.Popen([sys.executable, "-c", _FLOODER, url, str(COUNT), str(SIZE)],
                                   stdout=subprocess.PIPE, text=True)
        try:
            assert server.recv(timeout=30) == b"hello"
            start = settle()
            peak = start
            assert flooder.stdout is not None
            while flooder.poll() is None:
                peak = max(peak, rss_kib())
                try:
                    flooder.wait(0.5)
                except subprocess.TimeoutExpired:
                    pass
            assert flooder.stdout.read().strip() == "sent"
            assert flooder.returncode == 0
        finally:
            if flooder.poll() is None:
                flooder.kill()
                flooder.wait(10)
        end = settle()
        stats = server.stats()
        assert stats["pending"] <= 256 + 256  # queue + what the ring can hold
        assert stats["dropped_queue_full"] > 0
        assert dev.stats()["dropped_queue_full"] == stats["dropped_queue_full"]
        assert max(peak, end) - start < RSS_SLACK_KIB, (start, peak, end)
    finally:
        dev.close()
        for leftover in (f"/dev/shm/{name}", f"/tmp/{name}.event.0"):
            if os.path.exists(leftover):
                os.unlink(leftover)
