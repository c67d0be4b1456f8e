"""RPMsg Port buffer queues: a fixed pool of equal buffers with a free list and a ready list.

One queue per direction, as in NuttX ``rpmsg_port_queue_s`` (spec ``rpmsg-port.md`` §1.2-1.3):
a sender pops a buffer from the free list (``get_available_buffer``), fills it and pushes it on
the ready list (``add_buffer``); the consumer pops it (``get_buffer``) and gives it back
(``return_buffer``). Waits take pyserial-style timeouts; a queue that is closed wakes every
waiter with :class:`~rpmsg.errors.EndpointClosedError`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from rpmsg.errors import EndpointClosedError, NoBufferError
from rpmsg.transport import Deadline

#: Called without the queue lock when a waiter finds no free buffer; returns True if it did
#: something that may have freed one (retry at once), False to block on the queue.
NoAvailHook = Callable[["BufferQueue"], bool]


class PortBuffer:
    """One buffer of a queue: ``view`` is a writable memoryview of ``len`` bytes."""

    __slots__ = ("index", "queue", "view")

    def __init__(self, queue: BufferQueue, index: int, view: memoryview) -> None:
        self.queue = queue
        self.index = index
        self.view = view

    def __repr__(self) -> str:
        return f"<PortBuffer {self.queue.name}[{self.index}]>"


class BufferQueue:
    """``num`` buffers of ``len`` bytes in one contiguous block, on a free or a ready list."""

    def __init__(self, name: str, num: int, length: int,
                 noavail: NoAvailHook | None = None) -> None:
        if num < 1:
            raise ValueError(f"{name} queue needs at least one buffer, not {num}")
        if not 0 < length <= 0xFFFF:
            raise ValueError(f"{name} buffer length {length} outside 1..65535 (u16 len field)")
        self.name = name
        self.num = num
        self.len = length
        self.memory = bytearray(num * length)
        whole = memoryview(self.memory)
        self.buffers = [PortBuffer(self, i, whole[i * length:(i + 1) * length])
                        for i in range(num)]
        self._free: deque[PortBuffer] = deque(self.buffers)
        self._ready: deque[PortBuffer] = deque()
        self._cond = threading.Condition()
        # Threads inside a wait on ``_cond``: producers notify only when there is one. A
        # waiter counts itself (under the lock) before it checks a list, and producers
        # change the list before they read the count, so no wake-up is missed.
        self._waiters = 0
        self._closed = False
        self.noavail = noavail
        #: Deepest the ready list has been, for statistics.
        self.max_ready = 0

    def __repr__(self) -> str:
        return (f"<BufferQueue {self.name} {self.num}x{self.len} free={len(self._free)} "
                f"ready={len(self._ready)}>")

    def _notify(self) -> None:
        if self._waiters:
            with self._cond:
                self._cond.notify_all()

    # Free list ---------------------------------------------------------------------------

    def get_available_buffer(self, timeout: float | None = None) -> PortBuffer:
        """Pop a free buffer, waiting up to ``timeout`` (None forever, 0 not at all).

        Raises NoBufferError for timeout 0, RpmsgTimeoutError when the wait expires and
        EndpointClosedError once the queue is closed.
        """
        if not self._closed:
            try:
                return self._free.popleft()  # the common case, without the lock
            except IndexError:
                pass
        deadline: Deadline | None = None
        cond = self._cond
        while True:
            with cond:
                if self._closed:
                    raise EndpointClosedError(f"{self.name} queue closed")
                if self._free:
                    return self._free.popleft()
                if timeout == 0:
                    raise NoBufferError(f"no free {self.name} buffer ({self.num} in use)")
            if deadline is None:
                deadline = Deadline(timeout)
            hook = self.noavail
            if hook is not None and hook(self):
                if deadline.expired():
                    raise deadline.timeout_error(f"waiting for a free {self.name} buffer")
                continue
            with cond:
                self._waiters += 1  # counted before the check (see __init__)
                try:
                    if self._free or self._closed:
                        continue
                    if not cond.wait(deadline.remaining()) and deadline.expired() \
                            and not self._free:
                        raise deadline.timeout_error(f"waiting for a free {self.name} buffer")
                finally:
                    self._waiters -= 1

    def return_buffer(self, buf: PortBuffer) -> None:
        """Put a buffer back on the free list and wake its waiters."""
        if buf.queue is not self:
            raise ValueError(f"{buf!r} does not belong to the {self.name} queue")
        self._free.append(buf)
        self._notify()

    # Ready list --------------------------------------------------------------------------

    def add_buffer(self, buf: PortBuffer) -> None:
        """Push a filled buffer on the ready list."""
        if buf.queue is not self:
            raise ValueError(f"{buf!r} does not belong to the {self.name} queue")
        ready = self._ready
        ready.append(buf)
        if len(ready) > self.max_ready:
            self.max_ready = len(ready)
        self._notify()

    def get_buffer(self, timeout: float | None = 0) -> PortBuffer | None:
        """Pop the oldest ready buffer, waiting up to ``timeout``; None if none came."""
        try:
            return self._ready.popleft()
        except IndexError:
            if timeout == 0:
                return None
        deadline: Deadline | None = None
        with self._cond:
            self._waiters += 1
            try:
                while not self._ready:
                    if self._closed:
                        return None
                    if deadline is None:
                        deadline = Deadline(timeout)
                    if not self._cond.wait(deadline.remaining()) and deadline.expired():
                        return None
                return self._ready.popleft()
            finally:
                self._waiters -= 1

    # Counts and housekeeping -------------------------------------------------------------

    def navail(self) -> int:
        """Buffers on the free list."""
        return len(self._free)

    def nused(self) -> int:
        """Buffers on the ready list."""
        return len(self._ready)

    def drop(self) -> int:
        """Move every ready buffer back to the free list (NuttX ``drop_packets``); count them.

        One buffer at a time, so a consumer popping the ready list meanwhile never gets a
        buffer that is also on the free list.
        """
        dropped = 0
        ready, free = self._ready, self._free
        while True:
            try:
                buf = ready.popleft()
            except IndexError:
                break
            free.append(buf)
            dropped += 1
        with self._cond:
            self._cond.notify_all()
        return dropped

    def close(self) -> None:
        """Wake every waiter; later waits fail with EndpointClosedError. Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def wait_available(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a free buffer (or close); True if one is free now."""
        with self._cond:
            self._waiters += 1  # counted before the check (see __init__)
            try:
                if not self._free and not self._closed:
                    self._cond.wait(timeout)
                return bool(self._free)
            finally:
                self._waiters -= 1

    def wake(self) -> None:
        """Wake waiters so that they re-check (after a hook's state changed)."""
        with self._cond:
            self._cond.notify_all()
