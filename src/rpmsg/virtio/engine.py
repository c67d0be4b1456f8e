"""What the RPMsg-over-virtio driver and device engines share: sending, waiting, failing.

An engine moves RPMsg messages through two split rings in one role. Sending (copy, batched,
zero-copy) and the wait for a free buffer are the same in both roles; the role supplies how a
transmit buffer is taken, committed and flushed, and how received buffers are scanned. The
engine does no I/O of its own: the peer is interrupted through a ``notify(queue_index)``
callable and the owner calls :meth:`RingEngine.kick` when the peer kicks.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rpmsg.errors import (
    ArgumentTypeError,
    InvalidArgumentError,
    MessageTooLargeError,
    NoBufferError,
    ProtocolError,
    RemoteDisconnectedError,
    RpmsgError,
    TransportBrokenError,
)
from rpmsg.tap import Direction, Tap
from rpmsg.transport import Deadline, Delivery, LinkSink, TxBuffer, batch_delivery
from rpmsg.virtio.memory import Memory
from rpmsg.virtio.vring import full_barrier
from rpmsg.wire.layout import Buffer
from rpmsg.wire.rpmsg import DEFAULT_BUFFER_SIZE, HEADER_SIZE, MIN_MTU, RPMSG_HEADER
from rpmsg.wire.virtio import VIRTIO_RPMSG_F_NS

log = logging.getLogger("rpmsg.virtio")

HDR = RPMSG_HEADER.struct
Notify = Callable[[int], None]
ErrorHandler = Callable[[TransportBrokenError], None]
#: Smallest buffer a link may use: the header plus a name-service message.
MIN_BUFFER_SIZE = HEADER_SIZE + MIN_MTU
#: Transmit buffers taken (and committed) per ring call by send_many.
TX_BATCH = 64
#: How long a sender looks for a returned buffer before it sleeps on a notification.
TX_SPIN = 50e-6
#: Longest single sleep while waiting for a transmit buffer; the ring is re-checked after it,
#: so a kick the peer never sends (or one lost in a race) costs at most this much.
TX_POLL_INTERVAL = 0.02


class RingEngine:
    """Base of :class:`~rpmsg.virtio.device.DeviceEngine` and the driver engine.

    Threads: :meth:`kick` and :meth:`poll` may be called from any thread, one scanner at a
    time (``scan_lock``), which delivers messages to the sink in ring order, a batch at a
    time (``deliver_many`` where the sink has it); :meth:`send`, :meth:`send_many` and
    :meth:`alloc_tx` may be called from any thread, including from inside the sink's
    delivery; a received buffer's ``release()`` from any thread.

    Locks (never taken in the reverse order, never held while calling the sink):

    * ``lock`` (and ``tx_cond`` on it) guards the transmit queue's ring state, the spare
      buffer list, ``running``/``generation``/``error`` and the transmit counters;
    * ``rx_lock`` guards the receive queue's ring indices, shared by the scanning thread and
      zero-copy receivers releasing buffers from other threads;
    * ``scan_lock`` makes one thread at a time scan the receive queue.

    Role hooks (a subclass supplies them; the lock each is called with is named):

    * transmit, ``lock`` held: :meth:`_take_tx`, :meth:`_take_tx_many`, :meth:`_give_back_tx`,
      :meth:`_commit_tx`, :meth:`_commit_tx_many`, :meth:`_flush_tx`, :meth:`_tx_wakeups`;
    * receive: :meth:`_rx_take` (``scan_lock`` held; takes ``rx_lock`` for the ring),
      :meth:`_rx_recycle`, :meth:`_rx_publish` and :meth:`_rx_unpublished` (``rx_lock``
      held), :meth:`rx_pending` and :meth:`arm` (no lock).
    """

    role = ""
    #: Index of the queue this role transmits on (device: 0, driver: 1).
    tx_queue = 0
    #: Index of the queue this role receives on (device: 1, driver: 0).
    rx_queue = 1

    def __init__(self, memory: Memory, notify: Notify, *, sink: LinkSink | None = None,
                 on_error: ErrorHandler | None = None,
                 buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        if buffer_size < MIN_BUFFER_SIZE:
            raise ValueError(f"buffer size {buffer_size} is below {MIN_BUFFER_SIZE} "
                             f"({HEADER_SIZE}-byte header + a {MIN_MTU}-byte name-service "
                             "message)")
        self.memory = memory
        self.notify = notify
        self.sink = sink
        self.on_error = on_error
        self.buffer_size = buffer_size
        self.mtu = buffer_size - HEADER_SIZE
        self.features = 0
        self.lock = threading.Lock()
        self.tx_cond = threading.Condition(self.lock)
        self.rx_lock = threading.Lock()
        self.scan_lock = threading.Lock()
        self.running = False
        self.generation = 0
        self.error: TransportBrokenError | None = None
        #: The last protocol error seen, kept across sessions (for ``seen()``/``describe()``).
        self.last_error: str | None = None
        #: Whether link_up was reported and not yet followed by link_down or broken.
        self._up = False
        #: Frame-level observer (``capture_level=frames``): ring events; None costs a test.
        self.tap: Tap | None = None
        self.tx_waiters = 0
        #: Transmit buffers of TxBuffers dropped unsent, ``(generation, token, view)``:
        #: appended by their finalisers without a lock (one may run inside the cyclic GC on
        #: a thread holding ``lock``), given back when a sender finds no free buffer.
        self._tx_orphans: deque[tuple[int, Any, memoryview]] = deque()
        #: Transmit buffers taken from the ring but not sent (the role's ``_give_back_tx``
        #: puts them here and its ``_take_tx`` looks here first); reset with each session.
        self._spare: list[tuple[Any, memoryview]] = []
        self._batching = False
        #: Release callables by buffer token, made once per session; releases queued during
        #: a batch (recycled and published together by the scanner).
        self._releasers: dict[int, RxRelease] = {}
        self._released: list[RxRelease] = []
        #: The batch delivery of ``_delivery_for`` (see transport.batch_delivery).
        self._delivery: Callable[[Sequence[Delivery]], None] | None = None
        self._delivery_for: LinkSink | None = None
        self.counters: dict[str, int] = {
            "tx_messages": 0, "tx_bytes": 0, "rx_messages": 0, "rx_bytes": 0,
            "notifies": 0, "notifies_suppressed": 0, "kicks": 0, "tx_waits": 0,
        }

    # Configuration --------------------------------------------------------------------

    @property
    def ns_enabled(self) -> bool:
        """Whether ``VIRTIO_RPMSG_F_NS`` was negotiated."""
        return bool(self.features >> VIRTIO_RPMSG_F_NS & 1)

    def attach(self, sink: LinkSink) -> None:
        """Report link state and messages to ``sink`` from now on."""
        self.sink = sink

    def stats(self) -> dict[str, int]:
        return dict(self.counters)

    # Failure --------------------------------------------------------------------------

    def fail(self, message: str) -> TransportBrokenError:
        """The peer broke the protocol: stop using the rings and report it (once).

        With ``on_error`` the failure ends only this session: ``on_error(error)`` is called and
        senders see the link down (:class:`~rpmsg.errors.RemoteDisconnectedError`) until the
        owner stops the engine (reporting ``link_down``) and starts a new session. Without it
        the engine is broken for good: ``sink.broken(error)``.
        """
        with self.lock:
            first = self.error is None
            if first:
                self.error = TransportBrokenError(f"virtio {self.role}: {message}")
                self.last_error = str(self.error)
            self.running = False
            self.tx_cond.notify_all()
            error = self.error
        assert error is not None
        if first:
            log.error("%s", error)
            if self.on_error is not None:
                self.on_error(error)
            else:
                self._up = False  # broken, not down: no link_down after this
                if self.sink is not None:
                    self.sink.broken(error)
        return error

    def forked(self) -> None:
        """In a ``fork()`` child: let go of the rings without touching them (they are the
        parent's). Releases and transmit buffers of every session become no-ops; the locks
        are new (a parent thread may have held one at the fork)."""
        self.lock = threading.Lock()
        self.tx_cond = threading.Condition(self.lock)
        self.rx_lock = threading.Lock()
        self.scan_lock = threading.Lock()
        self.generation += 1
        self.running = False
        self._up = False
        self.sink = None
        self.notify = _no_notify
        self._releasers = {}
        self._released = []
        self._spare = []
        self._tx_orphans.clear()

    def _check_locked(self) -> None:
        if self.error is not None:
            if self.on_error is not None:  # only this session failed
                raise RemoteDisconnectedError(
                    f"virtio {self.role}: the session was dropped: {self.error}")
            raise TransportBrokenError(str(self.error)) from self.error
        if not self.running:
            raise RemoteDisconnectedError(f"virtio {self.role}: the link is down")

    def _notify(self, queue: int, wanted: bool) -> None:
        if wanted:
            self.counters["notifies"] += 1
            if self.tap is not None:
                self.tap.frame("tx", "ring", b"", {"event": "notify", "queue": queue})
            self.notify(queue)
        else:
            self.counters["notifies_suppressed"] += 1

    def _ring_event(self, direction: Direction, event: str, queue: int, head: int,
                    length: int) -> None:
        """Report a descriptor taken (``pop``) or given (``push``) to the frame-level tap."""
        if self.tap is not None:
            self.tap.frame(direction, "ring", b"",
                           {"event": event, "queue": queue, "id": head, "len": length})

    def use_memory(self, memory: Memory) -> None:
        """Serve the next session on ``memory`` (while stopped; e.g. a fresh sealed memfd)."""
        with self.lock, self.rx_lock:
            if self.running:
                raise RuntimeError("the engine is running; stop() it before changing memory")
            self.memory = memory

    def _report_down(self, reason: str) -> None:
        """Report link_down if link_up was reported and not followed by a down or broken."""
        if self._up:
            self._up = False
            if self.sink is not None:
                self.sink.link_down(reason)

    def stop(self, reason: str) -> object:
        """Stop using the rings and report ``link_down(reason)`` if the link was up."""
        raise NotImplementedError

    # Role hooks: transmit (self.lock held) --------------------------------------------

    def _take_tx(self) -> tuple[Any, memoryview] | None:
        """A free transmit buffer (token, whole-buffer view), or None if none right now."""
        raise NotImplementedError

    def _take_tx_many(self, limit: int) -> list[tuple[Any, memoryview]]:
        """Up to ``limit`` free transmit buffers at once ([] if none right now)."""
        raise NotImplementedError

    def _give_back_tx(self, token: Any, view: memoryview) -> None:
        """Keep a taken but unsent buffer for the next send."""
        raise NotImplementedError

    def _commit_tx(self, token: Any, length: int) -> int:
        """Queue buffer ``token`` holding ``length`` bytes (header included), not visible yet;
        returns its descriptor id."""
        raise NotImplementedError

    def _commit_tx_many(self, items: list[tuple[Any, int]]) -> list[int]:
        """:meth:`_commit_tx` for each ``(token, length)``, in order, in one ring call;
        returns the descriptor ids."""
        raise NotImplementedError

    def _flush_tx(self) -> bool:
        """Publish queued buffers; True if the peer wants a notification."""
        raise NotImplementedError

    def _tx_wakeups(self, enabled: bool) -> None:
        """Ask the peer to notify us when transmit buffers come back (or stop asking)."""
        raise NotImplementedError

    # Role hooks: receive ----------------------------------------------------------------

    def _rx_take(self) -> list[tuple[int, memoryview, int, int]]:
        """Take what arrived, with the peer's receive notifications suppressed meanwhile:
        ``(token, view, offset, length)`` each, the buffer being ``view[offset:offset +
        length]``, ``length`` checked to hold at least the header and to lie within the
        buffer; [] when nothing is pending. ``scan_lock`` held."""
        raise NotImplementedError

    def _rx_recycle(self, token: int) -> int:
        """Give received buffer ``token`` back to the ring (not yet published); returns the
        descriptor id used, or -1 if it was given back already. ``rx_lock`` held."""
        raise NotImplementedError

    def _rx_recycle_many(self, tokens: list[int]) -> None:
        """:meth:`_rx_recycle` for each token, in one ring call. ``rx_lock`` held."""
        raise NotImplementedError

    def _rx_publish(self) -> bool:
        """Publish recycled buffers; True if the peer wants a notification. ``rx_lock`` held."""
        raise NotImplementedError

    def _rx_unpublished(self) -> bool:
        """Whether recycled buffers wait for :meth:`_rx_publish`. ``rx_lock`` held."""
        raise NotImplementedError

    def arm(self) -> bool:
        """Re-enable the peer's notifications and re-check; True if nothing is pending."""
        raise NotImplementedError

    def rx_pending(self) -> bool:
        """Cheap check: is there anything for :meth:`kick` to do on the receive ring?"""
        raise NotImplementedError

    # Sending --------------------------------------------------------------------------

    def _wait_tx(self, deadline: Deadline | None, timeout: float | None,
                 pending: bool) -> tuple[Any, memoryview]:
        """A transmit buffer, waiting per ``timeout``; lock held. ``pending``: unpublished
        buffers exist and must be flushed before sleeping (else the peer cannot free any)."""
        while True:
            self._check_locked()
            got = self._take_tx()
            if got is not None:
                return got
            if self._tx_orphans and self._reap_tx_orphans():
                continue
            if pending:
                if self._flush_tx():
                    self._notify(self.tx_queue, True)
                pending = False
                continue
            if timeout == 0:
                raise NoBufferError(f"virtio {self.role}: no free transmit buffer")
            if deadline is None:
                deadline = Deadline(timeout)
            got = self._poll_tx()
            if got is not None:
                return got
            self._tx_wakeups(True)
            full_barrier()
            got = self._take_tx()
            if got is not None:
                self._tx_wakeups(False)
                return got
            remaining = deadline.remaining()
            if remaining is not None and remaining <= 0:
                self._tx_wakeups(False)
                raise deadline.timeout_error(f"virtio {self.role}: waiting for a transmit buffer")
            self.counters["tx_waits"] += 1
            self.tx_waiters += 1
            try:
                self.tx_cond.wait(TX_POLL_INTERVAL if remaining is None
                                  else min(remaining, TX_POLL_INTERVAL))
            finally:
                self.tx_waiters -= 1
                self._tx_wakeups(False)

    def _reap_tx_orphans(self) -> bool:
        """Give back the buffers of TxBuffers dropped unsent in this session (lock held);
        True if any came back. Those of an earlier session are forgotten."""
        orphans = self._tx_orphans
        generation = self.generation
        found = False
        while orphans:
            gen, token, view = orphans.popleft()
            if gen == generation:
                self._give_back_tx(token, view)
                found = True
        return found

    def _commit_and_tap(self, items: list[tuple[Any, int]]) -> list[int]:
        """:meth:`_commit_tx_many` reporting each descriptor to the frame-level tap."""
        heads = self._commit_tx_many(items)
        for head, (_token, length) in zip(heads, items, strict=True):
            self._ring_event("tx", "push", self.tx_queue, head, length)
        return heads

    def _poll_tx(self) -> tuple[Any, memoryview] | None:
        """Look for a returned buffer for up to :data:`TX_SPIN` before sleeping (lock held,
        released between looks): a peer busy returning buffers refills the ring within
        microseconds, sooner than a wake-up by notification would arrive."""
        until = time.perf_counter() + TX_SPIN
        lock = self.lock
        while time.perf_counter() < until:
            lock.release()
            try:
                os.sched_yield()
            finally:
                lock.acquire()
            self._check_locked()
            got = self._take_tx()
            if got is not None:
                return got
        return None

    def _fill(self, token: Any, view: memoryview, src: int, dst: int, payload: Buffer) -> int:
        """Write header and payload into a taken buffer; on any failure the buffer goes back
        (lock held)."""
        try:
            size = len(payload)
            if size > len(view) - HEADER_SIZE:
                raise MessageTooLargeError(size, len(view) - HEADER_SIZE)
            HDR.pack_into(view, 0, src, dst, 0, size, 0)
            view[HEADER_SIZE : HEADER_SIZE + size] = payload
        except BaseException as exc:
            self._give_back_tx(token, view)
            raise self._send_error(exc, src, dst) from None
        return size

    def _send_error(self, exc: BaseException, src: object, dst: object) -> BaseException:
        """What a failed fill raises: a payload or address the header cannot hold is an
        InvalidArgumentError (the runtime checks arguments first; this keeps direct callers
        typed), anything else unchanged."""
        if isinstance(exc, RpmsgError):
            return exc
        what = f"virtio {self.role}: cannot send from {src!r} to {dst!r}: {exc}"
        if isinstance(exc, TypeError):
            return ArgumentTypeError(what)
        if isinstance(exc, struct.error | ValueError):
            return InvalidArgumentError(what)
        return exc

    def send(self, src: int, dst: int, payload: Buffer, timeout: float | None) -> None:
        """Copy one message into a transmit buffer and notify the peer if it wants it."""
        size = len(payload)
        if size > self.mtu:
            raise MessageTooLargeError(size, self.mtu)
        try:
            with self.lock:
                token, view = self._wait_tx(None, timeout, False)
                size = self._fill(token, view, src, dst, payload)
                head = self._commit_tx(token, HEADER_SIZE + size)
                if self.tap is not None:
                    self._ring_event("tx", "push", self.tx_queue, head, HEADER_SIZE + size)
                wanted = self._flush_tx()
                self.counters["tx_messages"] += 1
                self.counters["tx_bytes"] += size
        except ProtocolError as exc:
            if isinstance(exc, TransportBrokenError):
                raise
            raise self.fail(str(exc)) from None
        self._notify(self.tx_queue, wanted)

    def send_many(self, messages: Iterable[tuple[int, int, Buffer]],
                  timeout: float | None) -> int:
        """Copy a burst into the ring and notify once at the end (or when the ring fills).

        Buffers are taken and committed :data:`TX_BATCH` at a time (one ring call each way
        instead of one per message); a message that cannot be written gives its buffer back.
        With a frame-level tap each descriptor is reported as it is committed. The lock is
        let go while ``messages`` produces the next message, and the buffers taken ahead
        wait in the spare list, where any sender finds them: a slow iterator (the caller's
        generator) holds up neither other senders (``timeout=0`` name-service sends
        included) nor the worker. The link may go down meanwhile, which ends the batch.
        """
        deadline = Deadline(timeout) if timeout else None
        count = 0
        nbytes = 0
        mtu = self.mtu
        take_many = self._take_tx_many
        commit_many = self._commit_and_tap if self.tap is not None else self._commit_tx_many
        pack_hdr = HDR.pack_into
        filled: list[tuple[Any, int]] = []
        committed = False
        source = iter(messages)
        lock = self.lock
        try:
            with lock:
                self._check_locked()
                generation = self.generation
                try:
                    while True:
                        lock.release()
                        try:
                            item = next(source, None)
                        finally:
                            lock.acquire()
                        if self.generation != generation or not self.running:
                            filled.clear()  # a session that ended took its buffers with it
                            self._check_locked()
                            raise RemoteDisconnectedError(
                                f"virtio {self.role}: the link was reset during send_many")
                        if item is None:
                            break
                        src, dst, payload = item
                        size = len(payload)
                        if size > mtu:
                            raise MessageTooLargeError(size, mtu)
                        spare = self._spare
                        if spare:
                            token, view = spare.pop()
                        else:
                            if filled:
                                commit_many(filled)
                                filled.clear()
                                committed = True
                            ahead = take_many(TX_BATCH)
                            if ahead:
                                token, view = ahead.pop()
                                spare.extend(ahead)
                            else:
                                token, view = self._wait_tx(deadline, timeout, committed)
                                if self.generation != generation:  # reset while waiting
                                    self._give_back_tx(token, view)  # the new session's
                                    filled.clear()  # the old ring's
                                    raise RemoteDisconnectedError(
                                        f"virtio {self.role}: the link was reset during "
                                        "send_many")
                        try:
                            if size > len(view) - HEADER_SIZE:
                                raise MessageTooLargeError(size, len(view) - HEADER_SIZE)
                            pack_hdr(view, 0, src, dst, 0, size, 0)
                            view[HEADER_SIZE : HEADER_SIZE + size] = payload
                        except BaseException as exc:
                            self._give_back_tx(token, view)
                            raise self._send_error(exc, src, dst) from None
                        filled.append((token, HEADER_SIZE + size))
                        count += 1
                        nbytes += size
                finally:
                    if filled:
                        commit_many(filled)
                    wanted = self._flush_tx() if count and self.running else False
                    self.counters["tx_messages"] += count
                    self.counters["tx_bytes"] += nbytes
                    if wanted:
                        self._notify(self.tx_queue, True)
        except ProtocolError as exc:
            if isinstance(exc, TransportBrokenError):
                raise
            raise self.fail(str(exc)) from None
        return count

    def alloc_tx(self, timeout: float | None) -> TxBuffer:
        """A transmit buffer whose payload area is written in place (zero-copy send)."""
        try:
            with self.lock:
                token, view = self._wait_tx(None, timeout, False)
        except ProtocolError as exc:
            if isinstance(exc, TransportBrokenError):
                raise
            raise self.fail(str(exc)) from None
        generation = self.generation

        def commit(src: int, dst: int, length: int) -> None:
            with self.lock:
                if generation != self.generation:
                    raise RemoteDisconnectedError(
                        f"virtio {self.role}: the link was reset before the buffer was sent")
                try:
                    self._check_locked()
                    HDR.pack_into(view, 0, src, dst, 0, length, 0)
                except BaseException as exc:
                    self._give_back_tx(token, view)
                    raise self._send_error(exc, src, dst) from None
                head = self._commit_tx(token, HEADER_SIZE + length)
                if self.tap is not None:
                    self._ring_event("tx", "push", self.tx_queue, head, HEADER_SIZE + length)
                wanted = self._flush_tx()
                self.counters["tx_messages"] += 1
                self.counters["tx_bytes"] += length
            self._notify(self.tx_queue, wanted)

        def release() -> None:
            with self.lock:
                if generation == self.generation:
                    self._give_back_tx(token, view)

        def orphan() -> None:  # from the finaliser: no lock (see _tx_orphans)
            if generation == self.generation:
                self._tx_orphans.append((generation, token, view))

        return TxBuffer(view[HEADER_SIZE:], commit, release, orphan)

    # Receiving ------------------------------------------------------------------------

    def kick(self, rearm: bool = True, queue: int = -1) -> int:
        """The peer kicked (``queue``, or -1: any): deliver what arrived and wake blocked senders.

        Returns the number of messages delivered. With ``rearm`` (the default) the peer's
        notifications are re-enabled once the ring is empty, so the caller may block on its
        kick source; with ``rearm=False`` they stay suppressed until :meth:`arm`. A protocol
        violation found in the rings marks the engine broken (reported through ``on_error`` or
        ``sink.broken``).
        """
        self.counters["kicks"] += 1
        if self.tap is not None:
            self.tap.frame("rx", "ring", b"", {"event": "kick"} if queue < 0
                           else {"event": "kick", "queue": queue})
        if self.tx_waiters:
            with self.lock:
                self.tx_cond.notify_all()
        if not self.running:
            return 0
        return self._scan(rearm)

    def poll(self) -> int:
        """Deliver what is waiting on the receive ring from the calling thread.

        Returns 0 at once when nothing is pending or another thread is already scanning (it
        delivers). Ends with the peer's notifications re-enabled, so a worker blocked on its
        kick source is not left behind suppressed notifications.
        """
        if not self.running:
            return 0
        try:
            if not self.rx_pending():
                return 0
        except ProtocolError as exc:  # the peer corrupted the ring index
            self.fail(str(exc))
            return 0
        return self._scan(True)

    def _scan(self, rearm: bool) -> int:
        if not self.scan_lock.acquire(blocking=False):
            return 0  # another thread is scanning; a worker that skips re-checks before sleeping
        try:
            return self._scan_rx(rearm)
        except ProtocolError as exc:
            self.fail(str(exc))
            return 0
        finally:
            self.scan_lock.release()

    def _scan_rx(self, rearm: bool = True) -> int:
        """Deliver everything received, batch by batch, in ring order (both roles).

        Each batch's buffers are published back to the peer once the batch is delivered
        (those a zero-copy receiver keeps follow when it releases them). If checking or
        delivering raises, the buffers of the batch the sink never got are given back before
        the error propagates (one the sink got is the sink's to release).
        """
        sink = self.sink
        deliver_many = None
        if sink is not None:
            if self._delivery_for is not sink:  # made once per sink, not per scan
                self._delivery, self._delivery_for = batch_delivery(sink), sink
            deliver_many = self._delivery
        releasers = self._releasers
        new_releaser = self._new_releaser
        unpack_hdr = HDR.unpack_from
        take = self._rx_take
        delivered = 0
        nbytes = 0
        self._batching = True
        try:
            while True:
                batch = take()
                if not batch:
                    if not rearm or self.arm():
                        break
                    continue
                handed = 0  # buffers of this batch the sink got (with their release)
                try:
                    items: list[Delivery] = []
                    append = items.append
                    bad: ProtocolError | None = None
                    for token, view, off, length in batch:
                        src, dst, _res, size, _flags = unpack_hdr(view, off)
                        if size > length - HEADER_SIZE:
                            bad = self._rx_bad_len(token, size, length)
                            break
                        nbytes += size
                        off += HEADER_SIZE
                        append((src, dst, view[off : off + size],
                                releasers.get(token) or new_releaser(token)))
                    handed = len(items)  # the sink owns their releases from here
                    if deliver_many is not None:
                        if items:
                            deliver_many(items)
                    else:
                        for item in items:
                            item[3]()  # type: ignore[misc]
                    if bad is not None:  # what came before it was delivered, in order
                        raise bad
                finally:
                    delivered += handed
                    for token, _view, _off, _length in batch[handed:]:  # only after an error
                        (releasers.get(token) or new_releaser(token))()
                self._flush_rx()  # return this batch's buffers before looking for more
        finally:
            self._batching = False
            self.counters["rx_messages"] += delivered
            self.counters["rx_bytes"] += nbytes
            self._flush_rx()
        return delivered

    def _new_releaser(self, token: int) -> RxRelease:
        """The release callable of receive buffer ``token`` in this session (made once)."""
        rel = RxRelease(self, self.generation, token)
        if rel.generation == self.generation:
            self._releasers[token] = rel
        return rel

    def _reset_rx(self) -> None:
        """A new session (or none): forget releases of the old one (rx_lock held)."""
        self._releasers = {}
        self._released = []

    def _rx_bad_len(self, token: int, size: int, length: int) -> ProtocolError:
        """The error for a received header whose len exceeds the buffer (role: names it)."""
        raise NotImplementedError

    def _release_rx(self, rel: RxRelease) -> None:
        """Give a received buffer back: queued during a batch (the scanner publishes the
        batch's buffers together), else recycled and published at once. Idempotent."""
        released = self._released
        released.append(rel)
        if not self._batching:
            self._flush_rx()

    def _flush_rx(self) -> None:
        """Recycle the queued releases of this session and publish what is unpublished."""
        with self.rx_lock:
            released = self._released
            if released:
                generation = self.generation
                tokens = []
                while released:  # pop, not swap: other threads may append meanwhile
                    rel = released.pop()
                    if rel.generation == generation:
                        tokens.append(rel.token)
                if self.tap is None:
                    self._rx_recycle_many(tokens)
                else:
                    for token in tokens:
                        head = self._rx_recycle(token)
                        if head >= 0:
                            self._ring_event("tx", "push", self.rx_queue, head,
                                             self.buffer_size)
            if not self.running or not self._rx_unpublished():
                return
            wanted = self._rx_publish()
        try:
            self._notify(self.rx_queue, wanted)
        except RemoteDisconnectedError:
            # The peer is gone (EPIPE on the kick): the worker ends the session when it sees
            # it. A release, which may run on any thread, must not raise for that.
            pass


def _no_notify(_queue: int) -> None:
    return None


class RxRelease:
    """The release callable of one receive buffer in one session (made once, reused).

    Calling it gives the buffer back to the ring (see :meth:`RingEngine._release_rx`); a
    call after the session ended does nothing.
    """

    __slots__ = ("engine", "generation", "token")

    def __init__(self, engine: RingEngine, generation: int, token: int) -> None:
        self.engine = engine
        self.generation = generation
        self.token = token

    def __call__(self) -> None:
        engine = self.engine  # RingEngine._release_rx, inlined: this runs once per message
        if self.generation == engine.generation:
            engine._released.append(self)
            if not engine._batching:
                engine._flush_rx()
