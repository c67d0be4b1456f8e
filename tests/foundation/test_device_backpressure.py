"""Bounded receive queues over ``loop:``: a slow reader holds the sender back, a full endpoint
does not starve the others for longer than its hold, and every drop is counted and logged once."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from foundation_helpers import wait_until

import rpmsg
from rpmsg import NoBufferError, RpmsgTimeoutError

Pair = tuple[rpmsg.Device, rpmsg.Device]


def bind(a: rpmsg.Device, b: rpmsg.Device, name: str, **kw: object) -> tuple[rpmsg.Endpoint,
                                                                            rpmsg.Endpoint]:
    server = b.create_endpoint(name, **kw)  # type: ignore[arg-type]
    a.wait_service(name, timeout=5)
    client = a.create_endpoint(name)
    client.wait_bound(timeout=5)
    return client, server


def test_queue_option_bounds_and_reader_holds_sender_back(loop_name: str) -> None:
    url = f"loop:{loop_name}?buffers=8"
    with rpmsg.open(url) as a, rpmsg.open(url) as b:
        client, server = bind(a, b, "slow", queue=4, hold=None)
        assert server.queue_size == 4
        for i in range(12):  # 4 queued + 8 held in the loop's buffers
            client.send(bytes([i]), timeout=5)
        wait_until(lambda: server.pending == 12)
        with pytest.raises(NoBufferError):
            client.send(b"no room", timeout=0)  # back-pressure reaches the sender
        with pytest.raises(RpmsgTimeoutError):
            client.send(b"no room", timeout=0.05)
        assert server.stats()["held"] == 8
        got = [server.recv(timeout=5)[0] for _ in range(12)]
        assert got == list(range(12))  # nothing lost, order kept
        client.send(b"room again", timeout=5)
        assert server.recv(timeout=5) == b"room again"
        assert server.stats()["dropped_queue_full"] == 0
        assert b.stats()["dropped_queue_full"] == 0


def test_full_endpoint_does_not_starve_others_beyond_its_hold(
        loop_name: str, caplog: pytest.LogCaptureFixture) -> None:
    url = f"loop:{loop_name}?buffers=8"
    caplog.set_level(logging.WARNING, logger="rpmsg")
    with rpmsg.open(url) as a, rpmsg.open(url) as b:
        c_full, s_full = bind(a, b, "full", queue=2, hold=0.2)
        c_other, s_other = bind(a, b, "other")
        t0 = time.monotonic()  # the hold starts after this
        for i in range(10):  # 2 queued, 8 held: every loop buffer is taken
            c_full.send(bytes([i]), timeout=5)
        late = a.create_endpoint("late")  # its NS CREATE waits in a's worker, never blocks
        # Blocks until the hold expires and the held messages are dropped.
        c_other.send(b"for the other one", timeout=10)
        assert s_other.recv(timeout=10) == b"for the other one"
        assert time.monotonic() - t0 >= 0.2  # not before the hold ended
        assert b.wait_service("late", timeout=10) == late.addr  # the name service got through
        # While the full one stays unread, its new messages are dropped at once.
        for _ in range(50):
            c_full.send(b"drop me", timeout=5)
        c_other.send(b"still flowing", timeout=5)
        assert s_other.recv(timeout=5) == b"still flowing"
        wait_until(lambda: s_full.stats()["dropped_queue_full"] == 58)
        assert b.stats()["dropped_queue_full"] == 58
        assert [s_full.recv(timeout=1) for _ in range(2)] == [b"\0", b"\1"]
        warnings = [r for r in caplog.records if "dropping messages" in r.getMessage()]
        assert len(warnings) == 1  # one line for the episode, not one per message
        assert "'full'" in warnings[0].getMessage()


def test_callback_endpoint_is_not_queued(devices: Pair) -> None:
    a, b = devices
    got: list[bytes] = []
    client, server = bind(a, b, "cb", callback=lambda e, d, s: got.append(d), queue=1)
    for i in range(20):
        client.send(bytes([i]), timeout=5)
    wait_until(lambda: len(got) == 20)
    assert server.stats()["rx_messages"] == 20 and server.stats()["dropped_queue_full"] == 0


def test_close_releases_held_buffers_to_the_sender(loop_name: str) -> None:
    url = f"loop:{loop_name}?buffers=4"
    with rpmsg.open(url) as a, rpmsg.open(url) as b:
        client, server = bind(a, b, "held", queue=1, hold=None)
        for i in range(5):
            client.send(bytes([i]), timeout=5)
        with pytest.raises(NoBufferError):
            client.send(b"x", timeout=0)
        other = b.create_endpoint(src=0x99)
        server.close()  # gives every held loop buffer back
        client.send_to(0x99, b"after close", timeout=5)
        assert other.recv(timeout=5) == b"after close"


def test_flood_from_a_thread_stays_bounded(loop_name: str) -> None:
    """Many more messages than buffers and queue at an endpoint read late: nothing is lost
    while the reader keeps up within the hold, and the queue never exceeds its bound."""
    with rpmsg.open(f"loop:{loop_name}") as a, rpmsg.open(f"loop:{loop_name}") as b:
        client, server = bind(a, b, "flood", queue=16, hold=None)
        n = 3000
        sender = threading.Thread(target=lambda: [client.send(b"%d" % i, timeout=30)
                                                  for i in range(n)])
        sender.start()
        wait_until(lambda: server.pending >= 16 + 200)
        assert server.stats()["pending"] <= 16
        got = [int(server.recv(timeout=10)) for _ in range(n)]
        sender.join(10)
        assert got == list(range(n))
