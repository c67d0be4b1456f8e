"""RPMsg over virtio in the driver role (the Linux/OpenAMP host side), independent of transport.

:class:`DriverEngine` owns the buffers: all receive buffers are queued on vq0 (device-writable)
at start; transmit buffers are taken lazily in address order, then only reclaimed from vq1's
used ring, as Linux and OpenAMP do (spec §3.4, §4.4). ``VRING_AVAIL_F_NO_INTERRUPT`` is set on
vq1 except while a sender waits for a buffer. Received messages are checked with Linux's rule
(``used.len`` within the buffer, ``hdr.len <= used.len - 16``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rpmsg.errors import ProtocolError
from rpmsg.transport import LinkSink
from rpmsg.virtio.engine import ErrorHandler, Notify, RingEngine
from rpmsg.virtio.memory import FlatMemory, Memory
from rpmsg.virtio.vring import DriverRing, QueueAddrs, driver_ring, full_barrier
from rpmsg.wire.rpmsg import DEFAULT_BUFFER_SIZE, HEADER_SIZE
from rpmsg.wire.virtio import VIRTIO_RPMSG_F_NS, VRING_DESC_F_WRITE

#: How often a draining driver looks at the used ring.
DRAIN_POLL = 0.0005


class DriverEngine(RingEngine):
    """RPMsg-over-virtio driver: receives on queue 0, sends on queue 1."""

    role = "driver"
    tx_queue = 1
    rx_queue = 0

    def __init__(self, memory: Memory, notify: Notify, *, sink: LinkSink | None = None,
                 on_error: ErrorHandler | None = None,
                 buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        super().__init__(memory, notify, sink=sink, on_error=on_error, buffer_size=buffer_size)
        self.rxq: DriverRing | None = None
        self.txq: DriverRing | None = None
        self._rx_views: dict[int, memoryview] = {}
        self._rx_index: dict[int, int] = {}
        #: 1 for each receive buffer delivered and not yet given back.
        self._rx_out = bytearray()
        self._tx_views: dict[int, memoryview] = {}
        self._tx_fresh: list[int] = []
        self._tx_free: list[int] = []

    def start(self, queues: Sequence[QueueAddrs], rx_buffers: Sequence[int],
              tx_buffers: Sequence[int], *, features: int = 1 << VIRTIO_RPMSG_F_NS,
              report_up: bool = True) -> None:
        """Zero both rings, queue every receive buffer on vq0 and begin.

        ``rx_buffers``/``tx_buffers`` are guest addresses of ``buffer_size``-byte buffers
        (at most ``num`` of each are used). Write DRIVER_OK and kick the device afterwards.
        With ``report_up`` the sink is told ``link_up`` now; else call :meth:`report_up`.
        """
        if len(queues) != 2:
            raise ValueError("virtio-rpmsg has exactly two queues")
        size = self.buffer_size
        rxq = driver_ring("vq0 (device->driver)", self.memory, queues[0])
        txq = driver_ring("vq1 (driver->device)", self.memory, queues[1])
        rx = list(rx_buffers)[: rxq.num]
        tx = list(tx_buffers)[: txq.num]
        if not rx or not tx:
            raise ValueError("the driver needs at least one receive and one transmit buffer")
        with self.lock, self.rx_lock:
            if self.running:
                raise RuntimeError("the driver engine is already running; stop() it first")
            self.generation += 1
            self.error = None
            self.features = features
            self.rxq, self.txq = rxq, txq
            self._rx_views = {a: self.memory.view(a, size) for a in rx}
            self._rx_index = {a: i for i, a in enumerate(rx)}
            self._rx_out = bytearray(len(rx))
            self._reset_rx()
            self._tx_views = {a: self.memory.view(a, size) for a in tx}
            self._tx_fresh = tx[::-1]
            self._tx_free = []
            self._spare = []
            self._tx_orphans.clear()
            for addr in rx:
                self._rx_views[addr][:] = bytes(size)
                rxq.add(addr, size, VRING_DESC_F_WRITE)
            rxq.publish()
            txq.set_interrupts(False)
            self.running = True
        if report_up:
            self.report_up()

    def report_up(self) -> None:
        """Tell the sink the link is up (after DRIVER_OK is written and the peer is there)."""
        if self.running and not self._up:
            self._up = True
            if self.sink is not None:
                self.sink.link_up()

    def stop(self, reason: str = "virtio driver stopped") -> None:
        """Stop using the rings and report ``link_down``."""
        with self.lock, self.rx_lock:
            self.running = False
            self.error = None
            self.generation += 1
            self._reset_rx()
            # Drop every view of the session's memory, so its mapping can go at once.
            self._spare = []
            self._tx_orphans.clear()
            self.rxq = self.txq = None
            self._rx_views, self._tx_views = {}, {}
            self._tx_free, self._tx_fresh = [], []
            self.tx_cond.notify_all()
        self._report_down(reason)

    def drain_tx(self, timeout: float) -> bool:
        """Wait up to ``timeout`` until the device returned every transmit buffer in flight
        (it took every message sent); True if it did."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                ring = self.txq
                if ring is None or not self.running:
                    return False
                self._tx_free.extend(addr for _h, _l, _o, addr in ring.reap())
                if ring.num_free == ring.num:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(DRAIN_POLL)

    # Transmit hooks (lock held) ---------------------------------------------------------

    def _take_tx(self) -> tuple[Any, memoryview] | None:
        if self._spare:
            return self._spare.pop()
        free = self._tx_free
        ring = self.txq
        assert ring is not None
        if not free:
            for head, length, _offered, addr in ring.reap():
                free.append(addr)
                if self.tap is not None:
                    self._ring_event("rx", "pop", self.tx_queue, head, length)
        if free:
            addr = free.pop()
        elif self._tx_fresh:
            addr = self._tx_fresh.pop()
        else:
            return None
        return addr, self._tx_views[addr]

    def _take_tx_many(self, limit: int) -> list[tuple[Any, memoryview]]:
        out: list[tuple[Any, memoryview]] = []
        spare = self._spare
        while spare and len(out) < limit:
            out.append(spare.pop())
        free = self._tx_free
        if not free:
            ring = self.txq
            assert ring is not None
            free.extend(addr for _head, _len, _offered, addr in ring.reap())
        views = self._tx_views
        for source in (free, self._tx_fresh):
            want = limit - len(out)
            if want <= 0 or not source:
                continue
            chunk = source[-want:]
            del source[-want:]
            out.extend((addr, views[addr]) for addr in chunk)
        return out

    def _commit_tx_many(self, items: list[tuple[Any, int]]) -> list[int]:
        assert self.txq is not None
        return self.txq.add_many(items, 0)

    def _give_back_tx(self, token: Any, view: memoryview) -> None:
        self._spare.append((token, view))

    def _commit_tx(self, token: Any, length: int) -> int:
        assert self.txq is not None
        return self.txq.add(token, length, 0)

    def _flush_tx(self) -> bool:
        ring = self.txq
        assert ring is not None
        ring.publish()
        return ring.peer_wants_notify()

    def _tx_wakeups(self, enabled: bool) -> None:
        if self.txq is not None:
            self.txq.set_interrupts(enabled)

    # Receive ----------------------------------------------------------------------------

    def rx_pending(self) -> bool:
        ring = self.rxq
        return ring is not None and self.running and ring.used_pending()

    def arm(self) -> bool:
        """Ask the device to interrupt us for new messages, then re-check; True if idle."""
        ring = self.rxq
        if ring is None or not self.running:
            return True
        ring.set_interrupts(True)
        full_barrier()
        return not ring.used_pending()

    def _rx_take(self) -> list[tuple[int, memoryview, int, int]]:
        ring = self.rxq
        assert ring is not None
        with self.rx_lock:
            items = ring.reap()
        if not items:
            return []
        ring.set_interrupts(False)
        memory = self.memory
        # One flat memory: the buffer is an offset into it (no view per message).
        flat = memory if type(memory) is FlatMemory else None
        mv, base = (flat.mv, flat.base) if flat else (None, 0)
        views, out_flags, index = self._rx_views, self._rx_out, self._rx_index
        tap = self.tap
        out = []
        for head, used_len, offered, addr in items:
            if tap is not None:
                self._ring_event("rx", "pop", 0, head, used_len)
            if used_len > offered or used_len < HEADER_SIZE:
                raise ring.error(f"used len {used_len} for buffer {head} is outside "
                                 f"{HEADER_SIZE}..{offered} (inbound msg too big)")
            out_flags[index[addr]] = 1
            if mv is not None:
                out.append((addr, mv, addr - base, used_len))
            else:
                out.append((addr, views[addr], 0, used_len))
        return out

    def _rx_bad_len(self, token: int, size: int, length: int) -> ProtocolError:
        assert self.rxq is not None
        return self.rxq.error(f"buffer at {token:#x}: header len {size} exceeds used len "
                              f"{length} - {HEADER_SIZE}")

    def _rx_recycle(self, token: int) -> int:
        """Queue receive buffer ``token`` (its address) on vq0 again."""
        index = self._rx_index[token]
        if not self._rx_out[index]:
            return -1
        self._rx_out[index] = 0
        assert self.rxq is not None
        return self.rxq.add(token, self.buffer_size, VRING_DESC_F_WRITE)

    def _rx_recycle_many(self, tokens: list[int]) -> None:
        out, index, size = self._rx_out, self._rx_index, self.buffer_size
        items = []
        for addr in tokens:
            i = index[addr]
            if out[i]:
                out[i] = 0
                items.append((addr, size))
        assert self.rxq is not None
        self.rxq.add_many(items, VRING_DESC_F_WRITE)

    def _rx_publish(self) -> bool:
        ring = self.rxq
        assert ring is not None
        ring.publish()
        return ring.peer_wants_notify()

    def _rx_unpublished(self) -> bool:
        ring = self.rxq
        return ring is not None and ring.avail_idx != ring.read_avail_idx()


__all__ = ["DriverEngine"]
