"""No call blocks past its timeout when the peer stops cooperating (issue 10, "must show").

The peer holds every buffer (a reader that never reads, with an endless hold): sends time
out, receives time out, waits for bindings and services time out, sync and asyncio alike,
each within its timeout plus scheduling slack, with the typed error naming what the link saw.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from hostile_helpers import SLACK, wait_until

import rpmsg
from rpmsg import NoBufferError, RpmsgTimeoutError, WouldBlockError

TIMEOUT = 0.3


def timed(call: Callable[[], Any], expected: type[BaseException]) -> float:
    t0 = time.monotonic()
    with pytest.raises(expected) as info:
        call()
    elapsed = time.monotonic() - t0
    assert isinstance(info.value, rpmsg.RpmsgError)
    return elapsed


def test_every_wait_keeps_its_timeout_against_a_peer_that_holds_everything(
        loop_name: str) -> None:
    url = f"loop:{loop_name}?buffers=4"
    with rpmsg.open(url) as a, rpmsg.open(url) as b:
        a.wait_up(timeout=5)
        b.wait_up(timeout=5)
        x = a.create_endpoint(src=0x40, dst=0x41)
        b.create_endpoint(src=0x41, queue=1, hold=None)  # never read, never drops
        for _ in range(5):
            x.send(b"fill", timeout=5)
        wait_until(lambda: a.link.stats()["tx_messages"] == 5)
        assert timed(lambda: x.send(b"x", timeout=TIMEOUT), RpmsgTimeoutError) \
            < TIMEOUT + SLACK
        assert timed(lambda: x.send(b"x", timeout=0), NoBufferError) < SLACK
        assert timed(lambda: x.send_many([b"x"], timeout=TIMEOUT), RpmsgTimeoutError) \
            < TIMEOUT + SLACK
        # loop: a transmit buffer is taken from the pool, as a vring's: the wait is here
        assert timed(lambda: x.get_tx_buffer(timeout=TIMEOUT), RpmsgTimeoutError) \
            < TIMEOUT + SLACK
        assert timed(lambda: x.get_tx_buffer(timeout=0), NoBufferError) < SLACK
        assert timed(lambda: x.recv(timeout=TIMEOUT), RpmsgTimeoutError) < TIMEOUT + SLACK
        assert timed(lambda: x.recv(timeout=0), WouldBlockError) < SLACK
        assert timed(lambda: x.recv_many(8, timeout=TIMEOUT), RpmsgTimeoutError) \
            < TIMEOUT + SLACK
        lone = a.create_endpoint("lone")
        assert timed(lambda: lone.wait_bound(timeout=TIMEOUT), RpmsgTimeoutError) \
            < TIMEOUT + SLACK
        assert timed(lambda: a.wait_service("absent", timeout=TIMEOUT), RpmsgTimeoutError) \
            < TIMEOUT + SLACK

        async def main() -> None:
            ax = x.as_async()
            loop = asyncio.get_running_loop()
            for call in (lambda: ax.send(b"x", timeout=TIMEOUT),
                         lambda: ax.recv(timeout=TIMEOUT),
                         lambda: ax.recv_many(4, timeout=TIMEOUT),
                         lambda: lone.as_async().wait_bound(timeout=TIMEOUT)):
                t0 = loop.time()
                with pytest.raises(RpmsgTimeoutError):
                    await call()
                assert loop.time() - t0 < TIMEOUT + SLACK

        asyncio.run(main())
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 2 * (1.0 + SLACK)  # both closes within their budget
