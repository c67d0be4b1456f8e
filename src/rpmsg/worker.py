"""A Device's own small thread: its name-service messages when buffers come, and its timers.

The runtime sends messages of its own (NS announcements, CREATE_ACKs, DESTROYs) from inside
transport callbacks, on transport threads that must never wait for a transmit buffer (the
buffers they would wait for come back through those very threads). :class:`DeviceWorker`
tries each such message at once without waiting and otherwise queues it, in order; its thread
(started on first need) sends the queue as buffers come. The same thread runs the Device's
timers (the bounded hold of a full receive queue). Nothing queued is lost silently: messages
the link refuses for good are reported to ``on_dropped`` with the reason.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from rpmsg.errors import (
    NoBufferError,
    RemoteDisconnectedError,
    RpmsgError,
    RpmsgTimeoutError,
    TransportBrokenError,
    WouldBlockError,
)

log = logging.getLogger("rpmsg")

#: Longest single wait for a buffer, so timers and stop requests are seen promptly.
SEND_SLICE = 0.05


@dataclass(eq=False)
class OwnMessage:
    """One message of the runtime's own, with a label for logs (``NS CREATE 'x' 0x401``)."""

    src: int
    dst: int
    payload: bytes
    label: str = ""
    queued_at: float = field(default_factory=time.monotonic)


Send = Callable[[int, int, bytes, "float | None"], None]
Sent = Callable[[OwnMessage], None]
#: Why a message was dropped: the link ``refused`` it for good, it went ``stale`` (the link
#: went down or broke: the core announces afresh on the next link-up), or the Device
#: ``closed`` first.
DropKind = Literal["refused", "stale", "closed"]
Dropped = Callable[[OwnMessage, str, DropKind], None]
Timer = Callable[[float], "float | None"]


class DeviceWorker:
    """The queue of the runtime's own messages and the timers of one Device.

    ``send(src, dst, payload, timeout)`` is the link's send; ``on_sent(msg)`` and
    ``on_dropped(msg, reason, kind)`` report the outcome of every message (called without locks
    held, on whichever thread sent or dropped it).
    """

    def __init__(self, name: str, send: Send, on_sent: Sent, on_dropped: Dropped) -> None:
        self.name = name
        self._send = send
        self._on_sent = on_sent
        self._on_dropped = on_dropped
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: deque[OwnMessage] = deque()
        self._generation = 0  # bumped when the queue is discarded
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._try_lock = threading.Lock()  # one immediate attempt at a time keeps the order

    # Messages ---------------------------------------------------------------------------

    def send(self, messages: list[OwnMessage]) -> None:
        """Send now what can go without waiting; queue the rest, in order. Never blocks."""
        if not messages:
            return
        with self._try_lock:
            with self._lock:
                if self._stopping:
                    dropped = list(messages)
                    messages = []
                elif self._queue:  # behind what is queued already
                    self._queue.extend(messages)
                    self._start_locked()
                    self._cond.notify_all()
                    return
                else:
                    dropped = []
            for i, msg in enumerate(messages):
                verdict = self._attempt(msg, 0)
                if verdict is None:
                    with self._lock:
                        self._queue.extend(messages[i:])
                        self._start_locked()
                        self._cond.notify_all()
                    break
        for msg in dropped:
            self._on_dropped(msg, "the device is closing", "closed")

    def _attempt(self, msg: OwnMessage, timeout: float | None) -> bool | None:
        """Try to send: True sent, False dropped (reported), None no buffer yet."""
        try:
            self._send(msg.src, msg.dst, msg.payload, timeout)
        except (NoBufferError, WouldBlockError, RpmsgTimeoutError):
            return None
        except (RemoteDisconnectedError, TransportBrokenError) as exc:
            self._on_dropped(msg, str(exc) or type(exc).__name__, "stale")
            return False
        except RpmsgError as exc:
            self._on_dropped(msg, str(exc) or type(exc).__name__, "refused")
            return False
        except Exception as exc:  # a transport bug must not kill the caller's thread or ours
            log.exception("%s: sending %s failed", self.name, msg.label or "a message")
            self._on_dropped(msg, f"{type(exc).__name__}: {exc}", "refused")
            return False
        self._on_sent(msg)
        return True

    def discard(self, reason: str) -> int:
        """Drop every queued message (the link went down: the core re-announces on up)."""
        with self._lock:
            dropped = list(self._queue)
            self._queue.clear()
            self._generation += 1
            self._cond.notify_all()
        for msg in dropped:
            self._on_dropped(msg, reason, "stale")
        return len(dropped)

    @property
    def queued(self) -> int:
        """Messages waiting for a buffer."""
        return len(self._queue)

    def flush(self, timeout: float | None) -> bool:
        """Wait until the queue is empty (True) or ``timeout`` passed (False)."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._queue:
                if end is None:
                    self._cond.wait()
                    continue
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 86400.0))
        return True

    # Timers -----------------------------------------------------------------------------

    def call_at(self, when: float, fn: Timer) -> None:
        """Run ``fn(now)`` on the worker at ``time.monotonic()`` >= ``when``; if it returns a
        time, it runs again then."""
        with self._lock:
            if self._stopping:
                return
            heapq.heappush(self._timers, (when, next(self._seq), fn))
            self._start_locked()
            self._cond.notify_all()

    # Thread -----------------------------------------------------------------------------

    def _start_locked(self) -> None:
        if self._thread is None and not self._stopping:
            self._thread = threading.Thread(target=self._run, name=f"rpmsg-worker-{self.name}",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None) -> list[OwnMessage]:
        """Stop the thread (within ``timeout``); return the messages still queued."""
        with self._lock:
            self._stopping = True
            left = list(self._queue)
            self._queue.clear()
            self._generation += 1
            self._timers.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        return left

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                now = time.monotonic()
                due: list[Timer] = []
                while self._timers and self._timers[0][0] <= now:
                    due.append(heapq.heappop(self._timers)[2])
                head = self._queue[0] if self._queue else None
                generation = self._generation
                if not due and head is None:
                    wait = self._timers[0][0] - now if self._timers else None
                    self._cond.wait(wait)
                    continue
                next_timer = self._timers[0][0] - now if self._timers else SEND_SLICE
            for fn in due:
                try:
                    again = fn(now)
                except Exception:  # the worker must outlive a failing timer
                    log.exception("%s: timer %r failed", self.name, fn)
                    continue
                if again is not None:
                    self.call_at(again, fn)
            if head is not None:
                self._send_head(head, generation, max(0.0, min(SEND_SLICE, next_timer)))

    def _send_head(self, head: OwnMessage, generation: int, timeout: float) -> None:
        started = time.monotonic()
        verdict = self._attempt(head, timeout)
        if verdict is None:
            # A link that refuses at once instead of waiting must not make this thread spin.
            rest = timeout - (time.monotonic() - started)
            if rest > 0.001:
                with self._lock:
                    if not self._stopping:
                        self._cond.wait(rest)
            return
        with self._lock:
            if self._generation == generation and self._queue and self._queue[0] is head:
                self._queue.popleft()
            self._cond.notify_all()


__all__ = ["DeviceWorker", "DropKind", "OwnMessage"]
