"""What the RPMsg-over-virtio driver and device engines share: sending, waiting, failing.

An engine moves RPMsg messages through two split rings in one role. Sending (copy, batched,
zero-copy) and the wait for a free buffer are the same in both roles; the role supplies how a
transmit buffer is taken, committed and flushed, and how received buffers are scanned. The
engine does no I/O of its own: the peer is interrupted through a ``notify(queue_index)``
callable and the owner calls :meth:`RingEngine.kick` when the peer kicks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from rpmsg.errors import (
    MessageTooLargeError,
    NoBufferError,
    ProtocolError,
    RemoteDisconnectedError,
    TransportBrokenError,
)
from rpmsg.transport import Deadline, LinkSink, TxBuffer
from rpmsg.virtio.memory import Memory
from rpmsg.virtio.vring import full_barrier
from rpmsg.wire.layout import Buffer
from rpmsg.wire.rpmsg import DEFAULT_BUFFER_SIZE, HEADER_SIZE, RPMSG_HEADER
from rpmsg.wire.virtio import VIRTIO_RPMSG_F_NS

log = logging.getLogger("rpmsg.virtio")

HDR = RPMSG_HEADER.struct
Notify = Callable[[int], None]
ErrorHandler = Callable[[TransportBrokenError], None]
#: Longest single sleep while waiting for a transmit buffer; the ring is re-checked after it,
#: so a kick the peer never sends (or one lost in a race) costs at most this much.
TX_POLL_INTERVAL = 0.02


class RingEngine:
    """Base of :class:`~rpmsg.virtio.device.DeviceEngine` and the driver engine.

    Thread rules: :meth:`kick` is called from one thread only (it delivers messages to the
    sink in ring order); :meth:`send`, :meth:`send_many` and :meth:`alloc_tx` may be called
    from any thread, including from inside ``sink.deliver``.
    """

    role = ""
    #: Index of the queue this role transmits on (device: 0, driver: 1).
    tx_queue = 0

    def __init__(self, memory: Memory, notify: Notify, *, sink: LinkSink | None = None,
                 on_error: ErrorHandler | None = None,
                 buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        if buffer_size <= HEADER_SIZE:
            raise ValueError(f"buffer size {buffer_size} leaves no room after the header")
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
        #: Held by whichever thread scans the receive ring (the transport's worker, or a
        #: receiver polling in Endpoint.recv), so messages are delivered once and in order.
        self.scan_lock = threading.Lock()
        self.running = False
        self.generation = 0
        self.error: TransportBrokenError | None = None
        self.tx_waiters = 0
        self._batching = False
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
        """Mark the engine broken (once) and report it; returns the error."""
        with self.lock:
            first = self.error is None
            if first:
                self.error = TransportBrokenError(f"virtio {self.role}: {message}")
            self.running = False
            self.tx_cond.notify_all()
            error = self.error
        assert error is not None
        if first:
            log.error("%s", error)
            if self.on_error is not None:
                self.on_error(error)
            elif self.sink is not None:
                self.sink.broken(error)
        return error

    def _check_locked(self) -> None:
        if self.error is not None:
            raise TransportBrokenError(str(self.error)) from self.error
        if not self.running:
            raise RemoteDisconnectedError(f"virtio {self.role}: the link is down")

    def _notify(self, queue: int, wanted: bool) -> None:
        if wanted:
            self.counters["notifies"] += 1
            self.notify(queue)
        else:
            self.counters["notifies_suppressed"] += 1

    def stop(self, reason: str) -> object:
        """Stop using the rings and report ``link_down(reason)`` if the link was up."""
        raise NotImplementedError

    # Role hooks (called with self.lock held) -------------------------------------------

    def _take_tx(self) -> tuple[Any, memoryview] | None:
        """A free transmit buffer (token, whole-buffer view), or None if none right now."""
        raise NotImplementedError

    def _give_back_tx(self, token: Any, view: memoryview) -> None:
        """Keep a taken but unsent buffer for the next send."""
        raise NotImplementedError

    def _commit_tx(self, token: Any, length: int) -> None:
        """Queue buffer ``token`` holding ``length`` bytes (header included); not visible yet."""
        raise NotImplementedError

    def _flush_tx(self) -> bool:
        """Publish queued buffers; True if the peer wants a notification."""
        raise NotImplementedError

    def _tx_wakeups(self, enabled: bool) -> None:
        """Ask the peer to notify us when transmit buffers come back (or stop asking)."""
        raise NotImplementedError

    def _scan_rx(self, rearm: bool = True) -> int:
        """Deliver everything received; called by :meth:`kick`. Returns messages delivered."""
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
            if pending:
                if self._flush_tx():
                    self._notify(self.tx_queue, True)
                pending = False
                continue
            if timeout == 0:
                raise NoBufferError(f"virtio {self.role}: no free transmit buffer")
            if deadline is None:
                deadline = Deadline(timeout)
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

    def _fill(self, view: memoryview, src: int, dst: int, payload: Buffer) -> int:
        size = len(payload)
        if size > len(view) - HEADER_SIZE:
            raise MessageTooLargeError(size, len(view) - HEADER_SIZE)
        HDR.pack_into(view, 0, src, dst, 0, size, 0)
        view[HEADER_SIZE : HEADER_SIZE + size] = payload
        return size

    def send(self, src: int, dst: int, payload: Buffer, timeout: float | None) -> None:
        """Copy one message into a transmit buffer and notify the peer if it wants it."""
        size = len(payload)
        if size > self.mtu:
            raise MessageTooLargeError(size, self.mtu)
        try:
            with self.lock:
                token, view = self._wait_tx(None, timeout, False)
                try:
                    self._fill(view, src, dst, payload)
                except MessageTooLargeError:
                    self._give_back_tx(token, view)
                    raise
                self._commit_tx(token, HEADER_SIZE + size)
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
        """Copy a burst into the ring and notify once at the end (or when the ring fills)."""
        deadline = Deadline(timeout) if timeout else None
        count = 0
        nbytes = 0
        pending = False
        mtu = self.mtu
        take = self._take_tx
        commit = self._commit_tx
        pack_hdr = HDR.pack_into
        try:
            with self.lock:
                self._check_locked()
                try:
                    for src, dst, payload in messages:
                        size = len(payload)
                        if size > mtu:
                            raise MessageTooLargeError(size, mtu)
                        got = take()
                        if got is None:
                            got = self._wait_tx(deadline, timeout, pending)
                        token, view = got
                        if size > len(view) - HEADER_SIZE:
                            self._give_back_tx(token, view)
                            raise MessageTooLargeError(size, len(view) - HEADER_SIZE)
                        pack_hdr(view, 0, src, dst, 0, size, 0)
                        view[HEADER_SIZE : HEADER_SIZE + size] = payload
                        commit(token, HEADER_SIZE + size)
                        pending = True
                        count += 1
                        nbytes += size
                finally:
                    wanted = self._flush_tx() if pending else False
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
                self._check_locked()
                HDR.pack_into(view, 0, src, dst, 0, length, 0)
                self._commit_tx(token, HEADER_SIZE + length)
                wanted = self._flush_tx()
                self.counters["tx_messages"] += 1
                self.counters["tx_bytes"] += length
            self._notify(self.tx_queue, wanted)

        def release() -> None:
            with self.lock:
                if generation == self.generation:
                    self._give_back_tx(token, view)

        return TxBuffer(view[HEADER_SIZE:], commit, release)

    # Receiving ------------------------------------------------------------------------

    def kick(self, rearm: bool = True) -> int:
        """The peer kicked (any queue): deliver what arrived and wake blocked senders.

        Returns the number of messages delivered. With ``rearm`` (the default) the peer's
        notifications are re-enabled once the ring is empty, so the caller may block on its
        kick source; with ``rearm=False`` they stay suppressed until :meth:`arm`. A protocol
        violation found in the rings marks the engine broken (reported through ``on_error`` or
        ``sink.broken``).
        """
        self.counters["kicks"] += 1
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
