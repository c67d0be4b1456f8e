"""RxQueue on its own: bound, back-pressure by holding releases, bounded hold, wake-ups, fileno."""

from __future__ import annotations

import asyncio
import os
import select
import threading
import time

import pytest
from foundation_helpers import wait_until

from rpmsg.boundary import Taken
from rpmsg.errors import EndpointClosedError
from rpmsg.rxqueue import RxBuffer, RxQueue


class Releases:
    """Records which buffers were given back, and how often."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, tag: int) -> object:
        return lambda: self.calls.append(tag)


def fill(q: RxQueue, rel: Releases, start: int, count: int) -> list[Taken]:
    return [q.put(0x40, bytes([i % 256]) * 4, rel(i), 1.0 + i)  # type: ignore[arg-type]
            for i in range(start, start + count)]


def never() -> None:
    return None


def test_copies_and_releases_while_room() -> None:
    rel = Releases()
    q = RxQueue(0x30, capacity=3, hold=1.0)
    assert fill(q, rel, 0, 3) == [Taken.COPIED] * 3  # the Device releases COPIED at once
    assert q.pending == 3
    src, data, ts = q.get(0, never)  # type: ignore[misc]
    assert (src, data, ts) == (0x40, b"\0\0\0\0", 1.0)


def test_full_queue_holds_the_transport_buffer() -> None:
    rel = Releases()
    q = RxQueue(0x30, capacity=2, hold=5.0)
    fill(q, rel, 0, 2)
    assert fill(q, rel, 2, 3) == [Taken.HOLD_STARTED, Taken.KEPT, Taken.KEPT]
    assert q.pending == 5
    assert rel.calls == []  # held: the peer cannot reuse them (back-pressure)
    # Reading makes room: the oldest held message moves in (copied, its buffer released).
    got = [q.get(0, never) for _ in range(5)]
    assert [g[1][0] for g in got if g is not None] == [0, 1, 2, 3, 4]  # order kept
    assert rel.calls == [2, 3, 4]
    assert q.stats()["rx_messages"] == 5 and q.stats()["dropped_queue_full"] == 0


def test_hold_expires_drops_and_counts_then_drops_at_once_until_half_read() -> None:
    rel = Releases()
    q = RxQueue(0x30, capacity=4, hold=5.0)
    fill(q, rel, 0, 4)
    fill(q, rel, 4, 3)
    now = time.monotonic()
    dropped, until = q.expire(now)  # not due yet: says when
    assert dropped == 0 and until is not None and now < until <= now + 5.0
    dropped, again = q.expire(now + 6.0)
    assert (dropped, again) == (3, None)
    assert sorted(rel.calls) == [4, 5, 6]
    # Still full: newcomers are dropped at once (not held again), the caller releases them.
    assert fill(q, rel, 7, 2) == [Taken.DROPPED_FULL] * 2
    assert q.stats()["dropped_queue_full"] == 5
    q.get(0, never)  # 3 left of 4: still dropping (hysteresis: until half is read)
    assert fill(q, rel, 9, 2) == [Taken.COPIED, Taken.DROPPED_FULL]
    q.get(0, never)
    q.get(0, never)  # 2 left: back to holding
    assert fill(q, rel, 11, 3) == [Taken.COPIED, Taken.COPIED, Taken.HOLD_STARTED]


def test_without_release_a_full_queue_drops_at_once() -> None:
    q = RxQueue(0x30, capacity=1, hold=10.0)
    assert q.put(1, b"a", None, 0.0) == Taken.COPIED
    assert q.put(1, b"b", None, 0.0) == Taken.DROPPED_FULL
    assert q.stats()["dropped_queue_full"] == 1


def test_hold_none_never_drops() -> None:
    rel = Releases()
    q = RxQueue(0x30, capacity=1, hold=None)
    fill(q, rel, 0, 1)
    assert fill(q, rel, 1, 3) == [Taken.KEPT] * 3
    assert q.expire(time.monotonic() + 1e6) == (0, None)
    assert rel.calls == []


def test_zero_copy_keeps_buffers_and_close_releases_everything() -> None:
    rel = Releases()
    q = RxQueue(0x30, capacity=2, hold=1.0, zero_copy=True)
    assert fill(q, rel, 0, 2) == [Taken.KEPT, Taken.KEPT]
    fill(q, rel, 2, 1)  # held
    item = q.get(0, never)
    assert item is not None and isinstance(item[1], RxBuffer)
    assert item[1].timestamp == 1.0 and item[1].data.readonly
    item[1].release()
    assert rel.calls == [0]
    q.close()
    assert sorted(rel.calls) == [0, 1, 2]
    assert q.put(1, b"late", rel(9), 0.0) == Taken.DROPPED_CLOSED
    assert q.stats()["dropped_closed"] == 1


def test_get_many_takes_what_is_queued_without_waiting_more() -> None:
    q = RxQueue(0x30, capacity=10)
    for i in range(5):
        q.put(1, bytes([i]), None, 0.0)
    assert [d for _s, d, _t in q.get_many(3, None, never)] == [b"\0", b"\1", b"\2"]
    assert [d for _s, d, _t in q.get_many(10, None, never)] == [b"\3", b"\4"]
    assert q.get_many(10, 0, never) == []


def test_waiting_reader_is_woken_and_check_raises() -> None:
    q = RxQueue(0x30, capacity=10)
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(q.get(None, never)))
    t.start()
    wait_until(lambda: q._sleepers == 1)
    q.put(7, b"x", None, 2.0)
    t.join(5)
    assert out == [(7, b"x", 2.0)]
    closed = False

    def check() -> None:
        if closed:
            raise EndpointClosedError("closed")

    errors: list[BaseException] = []

    def reader() -> None:
        try:
            q.get(None, check)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    wait_until(lambda: q._sleepers == 1)
    closed = True
    q.wake(alert=True)
    t.join(5)
    assert len(errors) == 1 and isinstance(errors[0], EndpointClosedError)


def test_two_sleepers_both_get_a_message() -> None:
    q = RxQueue(0x30, capacity=10)
    out: list[object] = []
    threads = [threading.Thread(target=lambda: out.append(q.get(5, never))) for _ in range(2)]
    for t in threads:
        t.start()
    wait_until(lambda: q._sleepers == 2)
    q.put(1, b"a", None, 0.0)
    q.put(1, b"b", None, 0.0)
    for t in threads:
        t.join(10)
    assert sorted(x[1] for x in out) == [b"a", b"b"]  # type: ignore[index]


def test_fileno_readable_while_pending_or_alert() -> None:
    q = RxQueue(0x30, capacity=10)
    fd = q.fileno()
    assert select.select([fd], [], [], 0)[0] == []
    q.put(1, b"a", None, 0.0)
    q.put(1, b"b", None, 0.0)
    assert select.select([fd], [], [], 0)[0] == [fd]
    q.get(0, never)
    assert select.select([fd], [], [], 0)[0] == [fd]  # one left
    q.get(0, never)
    assert select.select([fd], [], [], 0)[0] == []
    q.wake(alert=True)  # e.g. the remote went away: recv has an error to report
    assert select.select([fd], [], [], 0)[0] == [fd]
    q.wake(alert=False)
    assert select.select([fd], [], [], 0)[0] == []
    q.close()
    with pytest.raises(OSError):
        os.fstat(fd)  # closed with the queue


def test_async_waiter_resolved_by_put() -> None:
    q = RxQueue(0x30, capacity=10)

    async def main() -> list[object]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        assert q.get_many_or_wait(4, loop, fut, never) == []
        threading.Thread(target=q.put, args=(1, b"a", None, 0.0)).start()
        await asyncio.wait_for(fut, 5)
        return list(q.get_many(4, 0, never))

    assert asyncio.run(main()) == [(1, b"a", 0.0)]
