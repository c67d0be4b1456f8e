"""One endpoint's bounded receive queue: back-pressure instead of growth, and its wake-ups.

A queue holds at most ``capacity`` messages ready to read. A message that arrives while it is
full stays in the transport's buffer (the queue keeps the transport's ``release``), so ring
buffers stay with the reader and the peer has to wait: back-pressure, not memory growth. On
a link shared with other endpoints that would starve them, so a hold lasts at most ``hold``
seconds: then the held messages are dropped and counted, and so is every message that
arrives while the queue stays full, until the reader has emptied half of it (one log line
per episode, written by the Device). ``hold=None`` holds for ever (pure back-pressure, for a
link with one endpoint). A message that comes without ``release`` cannot be held and is
dropped at once when the queue is full.

The queue has its own lock; waiting readers are woken once per burst (only when one sleeps),
asyncio waiters through their loop, and an optional descriptor (:meth:`fileno`) is readable
while messages are pending or the endpoint has news (an error to report).
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rpmsg.boundary import Taken
from rpmsg.errors import BufferInUseError, EndpointClosedError, unavailable
from rpmsg.transport import Delivery, Release
from rpmsg.wire.layout import Buffer

if TYPE_CHECKING:
    import asyncio

#: Default number of messages an endpoint queues before it applies back-pressure.
DEFAULT_QUEUE = 256
#: Default seconds a full endpoint holds the transport's buffers before dropping.
DEFAULT_HOLD = 1.0

_time = time.time
_COPIED, _KEPT, _HOLD_STARTED = Taken.COPIED, Taken.KEPT, Taken.HOLD_STARTED
_DROPPED_FULL, _DROPPED_CLOSED = Taken.DROPPED_FULL, Taken.DROPPED_CLOSED
#: What a batch that fits leaves to :meth:`RxQueue.put_many`'s caller: nothing.
_NO_OVERFLOW: tuple[int, int, bool, list[Release]] = (0, 0, False, [])


class RxBuffer:
    """A received payload still in the transport's buffer (zero-copy receive).

    ``data`` is a read-only memoryview, valid until :meth:`release` (or the end of a
    ``with`` block) returns the buffer to the transport. Release exactly once; later
    releases are ignored; one dropped unreleased is released when collected (with a
    ResourceWarning). ``timestamp`` is the receive time (``time.time()`` seconds).
    """

    __slots__ = ("_release", "data", "dst", "src", "timestamp")

    def __init__(self, data: memoryview, src: int, dst: int, release: Release | None,
                 timestamp: float = 0.0) -> None:
        self.data = data
        self.src = src
        self.dst = dst
        self._release = release
        self.timestamp = timestamp

    def __len__(self) -> int:
        return len(self.data)

    def __bytes__(self) -> bytes:
        return bytes(self.data)

    def release(self) -> None:
        """Give the buffer back to the transport; ``data`` is unusable from then on.

        While views made from ``data`` still exist (``numpy.frombuffer``,
        ``struct.iter_unpack``...) the buffer is kept and
        :class:`~rpmsg.errors.BufferInUseError` says so: the transport would hand that memory
        to the next message under the views. Drop them and release again (a buffer
        collected unreleased goes back regardless).
        """
        release, self._release = self._release, None  # one caller gives it back
        if release is None:
            return
        try:
            self.data.release()
        except BufferError:
            self._release = release
            raise BufferInUseError(
                f"RxBuffer from {self.src:#x}: views of its data still exist; drop them "
                "before release() (the buffer is kept until then)") from None
        release()

    def __enter__(self) -> RxBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        # Dropped without release: give the buffer back, or the transport would lose it for
        # good (a ring stalls once all its buffers are lost). Said as a ResourceWarning, as
        # an unclosed file is. The cyclic GC may finalise on any thread, one that holds the
        # transport's lock included: then the release waits for a safe point (reap_orphans).
        release = self._release
        if release is None:
            return
        self._release = None
        try:
            # Views of ``data`` may outlive this object; the buffer goes back all the same
            # (the views are the program's leak; a lost buffer would stall the link).
            with contextlib.suppress(BufferError):
                self.data.release()
            if _gc_running:
                orphaned.append(release)
            else:
                release()
            warnings.warn(f"RxBuffer from {self.src:#x} dropped without release(); "
                          "released now", ResourceWarning, stacklevel=2)
        except Exception:  # nothing may escape a finaliser (also at interpreter exit)
            pass


#: Releases of unreleased buffers the cyclic GC finalised, run by :func:`reap_orphans`.
orphaned: deque[Release] = deque()
_gc_running = False
_gc_watched = False


def _gc_phase(phase: str, info: dict[str, int]) -> None:
    global _gc_running
    _gc_running = phase == "start"


def watch_gc() -> None:
    """Follow the cyclic GC's runs (once per process; only zero-copy users pay for it)."""
    global _gc_watched
    if not _gc_watched:
        _gc_watched = True
        gc.callbacks.append(_gc_phase)


def reap_orphans() -> None:
    """Give back the buffers of RxBuffers the cyclic GC finalised unreleased (called where
    no transport lock is held: a zero-copy receive, a close)."""
    while orphaned:
        try:
            release = orphaned.popleft()
        except IndexError:
            return
        try:
            release()
        except Exception:  # a link that closed meanwhile: nothing to give back
            pass


#: A queued message: (sender address, payload or zero-copy buffer, receive timestamp).
Item = tuple[int, "bytes | RxBuffer", float]
_Held = tuple[int, Buffer, Release, float]
Check = Callable[[], None]


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class RxQueue:
    """The bounded receive queue of one endpoint (see the module docstring)."""

    def __init__(self, addr: int, capacity: int = DEFAULT_QUEUE,
                 hold: float | None = DEFAULT_HOLD, *, zero_copy: bool = False) -> None:
        self.addr = addr
        self.capacity = capacity
        self.hold = hold
        self.zero_copy = zero_copy
        if zero_copy:
            watch_gc()
        self.lock = threading.Lock()
        self._cond = threading.Condition(self.lock)
        self._ready: deque[Item] = deque()
        self._held: deque[_Held] = deque()
        self._hold_until: float | None = None
        self._dropping = False
        self._releases: list[Release] = []  # run outside the lock, by whoever queued them
        self._sleepers = 0
        self._notified = False
        self._async: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._fds: tuple[int, int] | None = None  # (read, write); one eventfd twice
        self._fd_set = False
        #: Whether a reader has something to learn besides messages (closed, disconnected).
        self.alert = False
        self.closed = False
        self.received = 0
        self.dropped_full = 0
        self.dropped_closed = 0
        # Flags that keep the per-message paths to one test each (see _flags_locked).
        self._accepting = True  # not closed and nothing held: put may append if room
        self._wake_needed = False  # a sleeper to notify, async waiters or a descriptor to set
        self._pop_extra = False  # held to refill, dropping to end or a descriptor to clear

    def _flags_locked(self) -> None:
        """Recompute the fast-path flags after any change of the state they summarise."""
        self._accepting = not self.closed and not self._held
        self._wake_needed = bool((self._sleepers and not self._notified) or self._async
                                 or (self._fds is not None and not self._fd_set))
        self._pop_extra = bool(self._held or self._dropping or self._fd_set)

    # Transport side (the Device calls these on transport threads) ----------------------

    def put(self, src: int, payload: Buffer, release: Release | None,
            timestamp: float | None = None) -> Taken:
        """Queue one message; what happened to it says who releases its buffer.

        ``timestamp`` is the receive time; None (the Device's call) reads the clock here, so
        only queued messages pay for it.
        """
        if timestamp is None:
            timestamp = _time()
        with self.lock:
            ready = self._ready
            if not self._accepting or len(ready) >= self.capacity:
                return self._overflow_locked(src, payload, release, timestamp)
            if release is None or not self.zero_copy:
                ready.append((src, bytes(payload), timestamp))
                verdict = _COPIED
            else:
                ready.append((src, RxBuffer(memoryview(payload).toreadonly(), src, self.addr,
                                            release, timestamp), timestamp))
                verdict = _KEPT
            self.received += 1
            if self._wake_needed:
                self._signal_locked()
            return verdict

    def put_many(self, items: Sequence[Delivery], timestamp: float | None = None
                 ) -> tuple[int, int, bool]:
        """Queue a batch, in order, with one lock round and at most one wake-up.

        ``items`` are the transport's ``(src, dst, payload, release)`` tuples (``dst`` is
        this queue's). The releases of what was copied or dropped are called here, after
        the lock; what is kept (zero-copy, held) is released later as :meth:`put` would.
        Returns ``(dropped_full, dropped_closed, hold_started)`` for the Device to count
        and to start the hold timer. ``timestamp``: as for :meth:`put`.
        """
        if timestamp is None:
            timestamp = _time()
        count = len(items)
        with self.lock:
            room = self.capacity - len(self._ready) if self._accepting else 0
            taken = count if room >= count else max(room, 0)
            part = items if taken == count else items[:taken]
            if taken:
                self._append_locked(part, timestamp)
            full, closed, started, dropped = (_NO_OVERFLOW if taken == count else
                                              self._overflow_many_locked(items[taken:],
                                                                         timestamp))
        if taken and not self.zero_copy:  # copied: their buffers go back now
            for item in part:
                rel = item[3]
                if rel is not None:
                    rel()
        for rel in dropped:
            rel()
        return full, closed, started

    def _append_locked(self, part: Sequence[Delivery], timestamp: float) -> None:
        """The messages of a batch that fit, queued (copies, or zero-copy buffers where a
        release comes with them); one wake-up for all."""
        append = self._ready.append
        if not self.zero_copy:  # plain loops: cheaper than comprehensions here
            for src, _dst, payload, _rel in part:
                append((src, bytes(payload), timestamp))
        else:
            addr = self.addr
            for src, _dst, payload, rel in part:
                if rel is None:
                    append((src, bytes(payload), timestamp))
                else:
                    append((src, RxBuffer(memoryview(payload).toreadonly(), src, addr,
                                          rel, timestamp), timestamp))
        self.received += len(part)
        if self._wake_needed:
            self._signal_locked()

    def _overflow_many_locked(self, rest: Sequence[Delivery], timestamp: float
                              ) -> tuple[int, int, bool, list[Release]]:
        """The messages of a batch that did not fit, one by one as :meth:`put` takes them:
        (dropped full, dropped closed, hold started, the releases of the dropped)."""
        full = closed = 0
        started = False
        dropped: list[Release] = []
        for src, _dst, payload, rel in rest:
            verdict = self._overflow_locked(src, payload, rel, timestamp)
            if verdict is _HOLD_STARTED:
                started = True
            elif verdict is not _KEPT:
                if verdict is _DROPPED_FULL:
                    full += 1
                else:
                    closed += 1
                if rel is not None:
                    dropped.append(rel)
        return full, closed, started, dropped

    def _signal_locked(self) -> None:
        """A message is ready: wake one sleeper (once per burst), asyncio waiters, the fd."""
        if self._sleepers and not self._notified:
            self._notified = True
            self._cond.notify()
        if self._async:
            self._wake_async_locked()
        if self._fds is not None and not self._fd_set:
            self._set_fd_locked()
        self._flags_locked()

    def _overflow_locked(self, src: int, payload: Buffer, release: Release | None,
                         timestamp: float) -> Taken:
        if self.closed:
            self.dropped_closed += 1
            return _DROPPED_CLOSED
        if release is None or self._dropping or self.hold == 0:
            self.dropped_full += 1
            return _DROPPED_FULL
        self._held.append((src, payload, release, timestamp))
        self._accepting = False
        self._pop_extra = True
        if self._hold_until is None and self.hold is not None:
            self._hold_until = time.monotonic() + self.hold
            return _HOLD_STARTED
        return _KEPT

    def expire(self, now: float) -> tuple[int, float | None]:
        """Drop what has been held past the hold time: (how many, next expiry or None)."""
        with self.lock:
            until = self._hold_until
            if until is None or not self._held:
                return 0, None
            if now < until:
                return 0, until
            held = list(self._held)
            self._held.clear()
            self._hold_until = None
            self._dropping = True
            self.dropped_full += len(held)
            self._flags_locked()
        for _src, _payload, release, _ts in held:
            release()
        return len(held), None

    # Reader side ------------------------------------------------------------------------

    def get(self, timeout: float | None, check: Check) -> Item | None:
        """The next message, waiting up to ``timeout`` (None: for ever); None on timeout.

        ``check()`` runs (under the queue's lock, so it must only read state) whenever the
        queue is empty and raises if no message can come (closed, disconnected, broken).
        """
        with self.lock:
            item = self._pop_locked()
            if item is None:
                item = self._wait_locked(timeout, check)
        if self._releases:
            self._run_releases()
        return item

    def get_many(self, max_count: int, timeout: float | None, check: Check) -> list[Item]:
        """Up to ``max_count`` messages: waits for the first like :meth:`get`, not for more."""
        out: list[Item] = []
        with self.lock:
            item = self._pop_locked()
            if item is None:
                item = self._wait_locked(timeout, check)
            if item is not None:
                out.append(item)
                while len(out) < max_count:
                    item = self._pop_locked()
                    if item is None:
                        break
                    out.append(item)
        if self._releases:
            self._run_releases()
        return out

    def get_nowait(self) -> Item | None:
        """The next message if one is queued, else None; never waits, never checks."""
        with self.lock:
            item = self._pop_locked()
        if self._releases:
            self._run_releases()
        return item

    def _wait_locked(self, timeout: float | None, check: Check) -> Item | None:
        check()
        if timeout == 0:
            return None
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None
            if end is not None:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return None
                remaining = min(remaining, 86400.0)  # Condition.wait's limit, in slices
            self._sleepers += 1
            self._wake_needed = True
            try:
                self._cond.wait(remaining)
            finally:
                self._sleepers -= 1
                self._notified = False
                self._flags_locked()
            item = self._pop_locked()
            if item is not None:
                if self._ready and self._sleepers:  # more for the next sleeper
                    self._notified = True
                    self._cond.notify()
                    self._flags_locked()
                return item
            check()

    def _pop_locked(self) -> Item | None:
        ready = self._ready
        if not ready:
            return None
        item = ready.popleft()
        if self._pop_extra:
            if self._held:
                self._refill_locked()
            elif self._dropping and len(ready) <= self.capacity // 2:
                self._dropping = False
            if not ready and self._fd_set and not self.alert:
                self._clear_fd_locked()
            self._flags_locked()
        return item

    def _refill_locked(self) -> None:
        """Move held messages into the room the reader just made (copy, release later)."""
        ready, held = self._ready, self._held
        while held and len(ready) < self.capacity:
            src, payload, release, ts = held.popleft()
            if self.zero_copy:
                ready.append((src, RxBuffer(memoryview(payload).toreadonly(), src, self.addr,
                                            release, ts), ts))
            else:
                ready.append((src, bytes(payload), ts))
                self._releases.append(release)
            self.received += 1
        if not held:
            self._hold_until = None

    def _run_releases(self) -> None:
        with self.lock:
            releases, self._releases = self._releases, []
        for release in releases:
            release()

    @property
    def pending(self) -> int:
        """Messages ready to read plus those held in the transport's buffers."""
        return len(self._ready) + len(self._held)

    # Waking -----------------------------------------------------------------------------

    def wake(self, alert: bool) -> None:
        """State changed (bound, unbound, closed, broken): wake every waiter to re-check.

        ``alert`` says whether a reader now has an error to learn; it keeps :meth:`fileno`
        readable until the state is normal again.
        """
        with self.lock:
            self.alert = alert
            self._cond.notify_all()
            self._wake_async_locked()
            if self._fds is not None:
                if alert or self._ready:
                    self._set_fd_locked()
                else:
                    self._clear_fd_locked()
            self._flags_locked()

    def add_async_waiter(self, loop: asyncio.AbstractEventLoop,
                         fut: asyncio.Future[None]) -> None:
        """Resolve ``fut`` on ``loop`` at the next message or state change."""
        with self.lock:
            self._async.append((loop, fut))
            self._wake_needed = True

    def get_many_or_wait(self, max_count: int, loop: asyncio.AbstractEventLoop,
                         fut: asyncio.Future[None], check: Check) -> list[Item]:
        """Up to ``max_count`` messages now; if none, ``check()`` and park ``fut`` (resolved
        at the next message or state change), atomically so no wake-up is lost."""
        out: list[Item] = []
        with self.lock:
            while len(out) < max_count:
                item = self._pop_locked()
                if item is None:
                    break
                out.append(item)
            if not out:
                check()
                self._async.append((loop, fut))
                self._wake_needed = True
        if self._releases:
            self._run_releases()
        return out

    def remove_async_waiter(self, loop: asyncio.AbstractEventLoop,
                            fut: asyncio.Future[None]) -> None:
        with self.lock:
            try:
                self._async.remove((loop, fut))
            except ValueError:
                pass
            self._flags_locked()

    def _wake_async_locked(self) -> None:
        waiters, self._async = self._async, []
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:  # the loop is closed; nobody waits there any more
                pass

    def fileno(self) -> int:
        """A descriptor readable while messages are pending or :attr:`alert` is set.

        EndpointClosedError once closed (a descriptor made then would never be closed)."""
        with self.lock:
            if self.closed:
                raise EndpointClosedError("the receive queue is closed")
            if self._fds is None:
                self._fds = _make_fds()
                if self._ready or self.alert:
                    self._set_fd_locked()
                self._flags_locked()
            return self._fds[0]

    def _set_fd_locked(self) -> None:
        assert self._fds is not None
        self._fd_set = True
        try:
            os.write(self._fds[1], b"\1\0\0\0\0\0\0\0")
        except BlockingIOError:  # already readable
            pass

    def _clear_fd_locked(self) -> None:
        assert self._fds is not None
        self._fd_set = False
        try:
            while os.read(self._fds[0], 4096):
                pass
        except BlockingIOError:
            pass

    # Lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Drop everything queued or held (releasing the transport's buffers), wake all."""
        if orphaned:
            reap_orphans()
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.alert = True
            releases = self._releases
            self._releases = []
            for _src, item, _ts in self._ready:
                if isinstance(item, RxBuffer):
                    releases.append(item.release)
            releases.extend(release for _src, _p, release, _ts in self._held)
            self._ready.clear()
            self._held.clear()
            self._hold_until = None
            self._cond.notify_all()
            self._wake_async_locked()
            fds, self._fds = self._fds, None
            self._fd_set = False
            self._flags_locked()
        if fds is not None:
            try:
                os.write(fds[1], b"\1\0\0\0\0\0\0\0")  # wake a select() still watching it
            except BlockingIOError:
                pass
            for fd in set(fds):
                os.close(fd)
        for release in releases:
            release()

    def stats(self) -> dict[str, int]:
        """Counters of this queue."""
        with self.lock:
            return {"rx_messages": self.received, "pending": len(self._ready),
                    "held": len(self._held), "dropped_queue_full": self.dropped_full,
                    "dropped_closed": self.dropped_closed}


def _make_fds() -> tuple[int, int]:
    """A non-blocking wake-up descriptor: an eventfd where the OS has one, else a pipe."""
    make = getattr(os, "eventfd", None)
    try:
        if make is not None:
            fd: int = make(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            return fd, fd
        r, w = os.pipe()
    except OSError as exc:  # EMFILE, ENFILE
        raise unavailable(exc, f"no descriptor for the endpoint's fileno(): "
                          f"{exc.strerror}") from None
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    return r, w


__all__ = ["DEFAULT_HOLD", "DEFAULT_QUEUE", "Item", "RxBuffer", "RxQueue", "orphaned",
           "reap_orphans", "watch_gc"]
