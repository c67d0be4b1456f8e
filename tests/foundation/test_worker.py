"""DeviceWorker: the runtime's own messages never wait on the caller's thread, keep their order,
are sent when buffers come and are never lost silently; timers run on the worker."""

from __future__ import annotations

import threading
import time

from foundation_helpers import wait_until

from rpmsg.errors import NoBufferError, ProtocolError, RemoteDisconnectedError
from rpmsg.worker import DeviceWorker, OwnMessage


class FlakyLink:
    """A send that has buffers only when the test says so; records what went out."""

    def __init__(self) -> None:
        self.buffers = 0
        self.cond = threading.Condition()
        self.sent: list[bytes] = []
        self.error: Exception | None = None
        self.waits: list[float | None] = []
        self.threads: set[str] = set()

    def send(self, src: int, dst: int, payload: bytes, timeout: float | None) -> None:
        self.threads.add(threading.current_thread().name)
        self.waits.append(timeout)
        with self.cond:
            if self.error is not None:
                raise self.error
            if not self.buffers and timeout:
                self.cond.wait(timeout)
            if not self.buffers:
                raise NoBufferError("no buffer")
            self.buffers -= 1
            self.sent.append(payload)

    def give(self, n: int) -> None:
        with self.cond:
            self.buffers += n
            self.cond.notify_all()


def make() -> tuple[DeviceWorker, FlakyLink, list[bytes], list[tuple[bytes, str, str]]]:
    link = FlakyLink()
    sent: list[bytes] = []
    dropped: list[tuple[bytes, str, str]] = []
    worker = DeviceWorker("t", link.send, lambda m: sent.append(m.payload),
                          lambda m, reason, kind: dropped.append((m.payload, reason, kind)))
    return worker, link, sent, dropped


def msgs(*payloads: bytes) -> list[OwnMessage]:
    return [OwnMessage(1, 53, p) for p in payloads]


def test_sent_at_once_when_buffers_are_free() -> None:
    worker, link, sent, _ = make()
    link.give(2)
    worker.send(msgs(b"a", b"b"))
    assert sent == [b"a", b"b"]
    assert link.waits == [0, 0]  # never waited on the caller's thread
    assert worker.stop(1) == []


def test_queued_without_blocking_then_sent_in_order() -> None:
    worker, link, sent, dropped = make()
    link.give(1)
    t0 = time.monotonic()
    worker.send(msgs(b"1", b"2", b"3"))
    worker.send(msgs(b"4"))  # behind the queued ones, even though it could try at once
    assert time.monotonic() - t0 < 1.0  # nothing waited for a buffer
    assert sent == [b"1"] and worker.queued == 3
    link.give(10)
    assert worker.flush(5)
    assert sent == [b"1", b"2", b"3", b"4"]
    assert dropped == []
    assert any(name.startswith("rpmsg-worker") for name in link.threads)
    worker.stop(1)


def test_link_down_drops_as_stale_and_refusal_as_failure() -> None:
    worker, link, _sent, dropped = make()
    worker.send(msgs(b"q1", b"q2"))
    assert worker.discard("link down: reset") == 2
    assert [(p, k) for p, _r, k in dropped] == [(b"q1", "stale"), (b"q2", "stale")]
    link.error = RemoteDisconnectedError("gone")
    worker.send(msgs(b"x"))
    link.error = ProtocolError("peer broke the rules")
    worker.send(msgs(b"y"))
    assert [(p, k) for p, _r, k in dropped[2:]] == [(b"x", "stale"), (b"y", "refused")]
    worker.stop(1)


def test_stop_returns_what_is_left_within_its_timeout() -> None:
    worker, _link, _sent, dropped = make()
    worker.send(msgs(b"never"))
    t0 = time.monotonic()
    left = worker.stop(0.5)
    assert time.monotonic() - t0 < 1.0
    assert [m.payload for m in left] == [b"never"]
    worker.send(msgs(b"after"))  # refused once stopped, reported
    assert dropped[-1][0] == b"after" and dropped[-1][2] == "closed"


def test_timers_run_on_the_worker_and_repeat() -> None:
    worker, _link, _sent, _dropped = make()
    runs: list[str] = []

    def tick(now: float) -> float | None:
        runs.append(threading.current_thread().name)
        return now + 0.01 if len(runs) < 3 else None

    worker.call_at(time.monotonic(), tick)
    wait_until(lambda: len(runs) == 3)
    assert all(n.startswith("rpmsg-worker") for n in runs)
    worker.stop(1)


def test_a_transport_bug_or_failing_timer_kills_no_thread() -> None:
    worker, link, sent, dropped = make()
    link.error = KeyError("bug in the transport")  # not an RpmsgError
    worker.send(msgs(b"a"))  # on the caller's thread: contained, reported
    assert dropped[-1][0] == b"a" and dropped[-1][2] == "refused"
    runs: list[float] = []

    def bad(now: float) -> float | None:
        raise RuntimeError("timer bug")

    worker.call_at(time.monotonic(), bad)
    worker.call_at(time.monotonic() + 0.01, lambda now: runs.append(now))  # type: ignore[func-returns-value]
    wait_until(lambda: len(runs) == 1)
    link.error = None
    link.give(1)
    worker.send(msgs(b"b"))
    assert sent == [b"b"]
    worker.stop(1)
