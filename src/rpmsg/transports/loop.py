"""``loop:`` — two RPMsg cores back to back in one process, for tests and examples.

``rpmsg.open("loop:NAME")`` twice gives the two ends of one loop (python-can's ``virtual``
habit); ``loop:`` alone uses the name ``default``. Each direction has a fixed pool of
``buffers`` buffers of ``buffer_size`` bytes, like a vring: a sender waits for a free buffer,
and a buffer is free again once the other side's delivery thread has handed the message on.
Closing one end takes the link down for the other for good; opening the name again
starts a new loop.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from rpmsg.core.policy import OPENAMP
from rpmsg.errors import (
    AlreadyOpenError,
    MessageTooLargeError,
    NoBufferError,
    RemoteDisconnectedError,
)
from rpmsg.registry import Connect, Opening, Transport
from rpmsg.transport import (
    Deadline,
    Delivery,
    Link,
    LinkSink,
    Release,
    TxBuffer,
    batch_delivery,
)
from rpmsg.url import TransportURL
from rpmsg.wire.layout import Buffer
from rpmsg.wire.rpmsg import DEFAULT_BUFFER_SIZE, HEADER_SIZE


class _Direction:
    """Messages in flight one way, bounded by the number of buffers.

    A buffer is in flight from the send until the receiving side releases it.
    """

    def __init__(self, buffers: int) -> None:
        self.capacity = buffers
        self.queue: deque[tuple[int, int, bytes]] = deque()
        self.in_flight = 0
        self.cond = threading.Condition()
        self.closed = False
        #: Releases of transmit buffers dropped unsent, appended by their finalisers
        #: without the lock (the cyclic GC may run one on a thread in the middle of
        #: updating ``in_flight``); run by the next sender that finds no free buffer.
        self.orphans: deque[Release] = deque()

    def releaser(self) -> Release:
        """A release for one delivered buffer: gives it back once, however often called."""
        done = False

        def release() -> None:
            nonlocal done
            if done:
                return
            done = True
            with self.cond:
                self.in_flight -= 1
                self.cond.notify_all()

        return release


class _Loop:
    """One named loop: two ends, one direction each way."""

    def __init__(self, name: str, buffers: int, buffer_size: int) -> None:
        self.name = name
        self.buffers = buffers
        self.buffer_size = buffer_size
        self.ends: list[LoopLink | None] = [None, None]
        self.dirs = (_Direction(buffers), _Direction(buffers))  # dirs[i]: into end i
        self.lock = threading.Lock()


log = logging.getLogger("rpmsg.loop")
#: Longest single sleep of a sender waiting for a loop buffer: how late it sees a buffer
#: that came back as an orphan (a TxBuffer dropped unsent), which nothing notifies.
ORPHAN_CHECK = 0.05

_LOOPS: dict[str, _Loop] = {}
_LOOPS_LOCK = threading.Lock()


class LoopLink(Link):
    """One end of an in-process loop."""

    role = "loop"
    default_policy = OPENAMP

    def __init__(self, loop: _Loop, side: int) -> None:
        self._loop = loop
        self.side = side
        self.mtu = loop.buffer_size - HEADER_SIZE
        self._inbox = loop.dirs[side]
        self._outbox = loop.dirs[1 - side]
        self._sink: LinkSink | None = None
        self._thread: threading.Thread | None = None
        self._up = False
        self._started = False
        self._closed = False
        self._stats = {"tx_messages": 0, "rx_messages": 0}

    def describe(self) -> dict[str, Any]:
        return {"role": self.role, "mtu": self.mtu, "loop": self._loop.name, "side": self.side,
                "buffers": self._loop.buffers, "buffer_size": self._loop.buffer_size}

    def stats(self) -> dict[str, int]:
        return dict(self._stats)

    def seen(self) -> str:
        other = ("the other end is open" if self._up else
                 f"the other end of loop:{self._loop.name} is not open (open it in this process)")
        return (f"{other}; {self._stats['tx_messages']} message(s) sent, "
                f"{self._stats['rx_messages']} received")

    @property
    def peer(self) -> LoopLink | None:
        return self._loop.ends[1 - self.side]

    def start(self, sink: LinkSink) -> None:
        self._sink = sink
        self._thread = threading.Thread(target=self._run, name=f"rpmsg-loop-{self._loop.name}"
                                        f"-{self.side}", daemon=True)
        self._thread.start()
        with self._loop.lock:
            self._started = True
            peer = self.peer
            both = peer is not None and peer._started and not peer._closed
        if both and peer is not None:
            self._set_up()
            peer._set_up()

    def _set_up(self) -> None:
        with self._inbox.cond:
            if self._up:
                return
            self._up = True
        if self._sink is not None:
            self._sink.link_up()

    def _run(self) -> None:
        inbox = self._inbox
        deliver_many: Callable[[Sequence[Delivery]], None] | None = None
        delivering_to: LinkSink | None = None
        while True:
            with inbox.cond:
                while not inbox.queue and not inbox.closed:
                    inbox.cond.wait()
                if inbox.closed:
                    return
                batch = list(inbox.queue)
                inbox.queue.clear()
            sink = self._sink
            self._stats["rx_messages"] += len(batch)
            # A buffer stays in flight until the receiver releases it, so a reader that
            # falls behind holds the sender back (back-pressure), as a vring does.
            releaser = inbox.releaser
            items: list[Delivery] = [(src, dst, data, releaser())
                                     for src, dst, data in batch]
            if sink is None:
                for item in items:
                    item[3]()  # type: ignore[misc]
                continue
            if deliver_many is None or sink is not delivering_to:
                deliver_many, delivering_to = batch_delivery(sink), sink
            try:
                deliver_many(items)
            except Exception:  # the delivery thread must survive whatever happens
                for item in items:  # idempotent: a buffer is never returned twice
                    item[3]()  # type: ignore[misc]
                log.exception("loop:%s: delivering messages failed", self._loop.name)

    def send(self, src: int, dst: int, payload: Buffer, timeout: float | None) -> None:
        size = len(payload)
        if size > self.mtu:
            raise MessageTooLargeError(size, self.mtu)
        out = self._outbox
        data = bytes(payload)
        with out.cond:
            self._take_buffer(out, timeout)
            out.queue.append((src, dst, data))
            out.cond.notify_all()
        self._stats["tx_messages"] += 1

    def _take_buffer(self, out: _Direction, timeout: float | None) -> None:
        """Take one of ``out``'s buffers, waiting per ``timeout`` (``out.cond`` held)."""
        deadline: Deadline | None = None
        while True:
            if out.closed or not self._up:
                raise RemoteDisconnectedError("the other end of the loop is not open")
            if out.in_flight < out.capacity:
                out.in_flight += 1
                return
            if out.orphans:
                out.orphans.popleft()()
                continue
            if timeout == 0:
                raise NoBufferError("all loop buffers are in flight")
            if deadline is None:
                deadline = Deadline(timeout)
            # In slices: a buffer dropped unsent comes back through ``orphans`` with no
            # notification (its finaliser cannot take the lock), so look again now and then.
            left = deadline.remaining()
            if left is not None and left <= 0:
                raise deadline.timeout_error("waiting for a free loop buffer")
            out.cond.wait(ORPHAN_CHECK if left is None else min(left, ORPHAN_CHECK))

    def alloc_tx(self, timeout: float | None) -> TxBuffer:
        """A transmit buffer taken now from the pool, as a vring's would be (the wait is
        here, not at the send); copied into the loop by the commit."""
        out = self._outbox
        with out.cond:
            self._take_buffer(out, timeout)
        data = bytearray(self.mtu)
        give_back = out.releaser()

        def commit(src: int, dst: int, length: int) -> None:
            with out.cond:
                if out.closed or not self._up:
                    give_back()
                    raise RemoteDisconnectedError("the other end of the loop is not open")
                out.queue.append((src, dst, bytes(data[:length])))
                out.cond.notify_all()
            self._stats["tx_messages"] += 1

        return TxBuffer(memoryview(data), commit, give_back,
                        lambda: out.orphans.append(give_back))

    def close(self, timeout: float | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        for d in (self._inbox, self._outbox):
            with d.cond:
                d.closed = True
                d.cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5 if timeout is None else timeout)
        peer = self.peer
        with _LOOPS_LOCK, self._loop.lock:
            self._loop.ends[self.side] = None
            if _LOOPS.get(self._loop.name) is self._loop:  # a later open starts a new loop
                del _LOOPS[self._loop.name]
        if peer is not None and peer._sink is not None and not peer._closed:
            peer._up = False
            peer._sink.link_down("the other end of the loop was closed")


def pair(name: str | None = None, *, buffers: int = 256,
         buffer_size: int = DEFAULT_BUFFER_SIZE) -> tuple[LoopLink, LoopLink]:
    """Both ends of a new loop as links (for tests that build Devices themselves)."""
    loop = _Loop(name or f"anon-{id(object()):x}", buffers, buffer_size)
    a, b = LoopLink(loop, 0), LoopLink(loop, 1)
    loop.ends = [a, b]
    return a, b


def configure(url: TransportURL) -> Connect:
    """``loop:NAME?buffers=N&buffer_size=N``: options checked here, the loop joined on connect."""
    name = url.path.strip("/") or "default"
    buffers = url.get_int("buffers", 256, minimum=1, maximum=65536)
    buffer_size = url.get_int("buffer_size", DEFAULT_BUFFER_SIZE, minimum=HEADER_SIZE + 1,
                              maximum=65535 + HEADER_SIZE)
    # A second end must match the first in what it states explicitly.
    stated = (url.has("buffers"), url.has("buffer_size"))

    def connect(opening: Opening) -> LoopLink:
        return _join(name, buffers, buffer_size, stated)

    return connect


def _join(name: str, buffers: int, buffer_size: int, stated: tuple[bool, bool]) -> LoopLink:
    with _LOOPS_LOCK:
        loop = _LOOPS.get(name)
        if loop is None:
            loop = _LOOPS[name] = _Loop(name, buffers, buffer_size)
        with loop.lock:
            if None not in loop.ends:
                raise AlreadyOpenError(f"both ends of loop:{name} are already open")
            side = loop.ends.index(None)
            if loop.ends[1 - side] is not None and (
                    (stated[0] and buffers != loop.buffers)
                    or (stated[1] and buffer_size != loop.buffer_size)):
                raise AlreadyOpenError(
                    f"loop:{name} is open with buffers={loop.buffers} "
                    f"buffer_size={loop.buffer_size}; the second end must match")
            link = LoopLink(loop, side)
            loop.ends[side] = link
    return link


TRANSPORT = Transport(
    "loop", "in-process loopback: two cores back to back (loop:NAME, two opens pair up)",
    configure, in_process=True)
