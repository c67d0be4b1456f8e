"""RPMsg over virtio in the device role (the remote/firmware side), independent of transport.

:class:`DeviceEngine` is what both the ``shm:`` transport and the vhost-user backend drive.
Its whole interface:

* ``DeviceEngine(memory, notify, *, sink=None, on_error=None, buffer_size=512)``

  - ``memory``: any object with ``view(addr, length) -> memoryview`` (writable) that raises a
    :class:`~rpmsg.errors.ProtocolError` subclass (e.g.
    :class:`rpmsg.virtio.memory.MemoryRangeError`) when ``[addr, addr+length)`` is not shared
    memory. Descriptor addresses from the driver go through it on every message.
  - ``notify(queue_index)``: interrupt the driver for queue 0 or 1 (vhost-user: write the
    queue's call eventfd; shm: send one kick byte). Called without engine locks held.
  - ``sink``: the :class:`~rpmsg.transport.LinkSink` (a :class:`rpmsg.Device`) that gets
    ``link_up``, ``link_down``, ``deliver`` and ``broken``; settable later with ``attach``.
  - ``on_error(TransportBrokenError)``: if given, called instead of ``sink.broken`` when the
    driver corrupts a ring (a vhost-user backend may prefer to drop the front-end).
  - ``buffer_size``: the buffer size the link advertises (``mtu = buffer_size - 16``); each
    message is still checked against the actual descriptor length.

* ``start(queues, *, features=1, bases=(0, 0))``: ``queues`` is two
  :class:`~rpmsg.virtio.vring.QueueAddrs` (num, desc, avail, used guest addresses, given
  separately; ``QueueAddrs.from_layout(da, num, align)`` builds them for remoteproc layouts).
  Queue 0 carries device->driver messages (we pop empty buffers from its avail ring), queue 1
  carries driver->device messages. ``features`` is the negotiated feature set (bit 0 = NS).
  ``bases`` are the first avail indices to consume (vhost-user ``SET_VRING_BASE``; 0 for a
  fresh ring); the used index continues from what the ring memory holds. Reports
  ``sink.link_up()``, then processes anything already queued. Raises ``ProtocolError`` if a
  ring does not fit the memory. Calling ``start`` again after ``stop`` restarts cleanly.
* ``stop(reason) -> (base0, base1)``: stop using the rings, report ``sink.link_down(reason)``
  and return the next avail index of each queue (vhost-user ``GET_VRING_BASE``). Buffers held
  by zero-copy receivers or unsent zero-copy transmit buffers from before are forgotten.
* ``kick()``: call when the driver kicked any queue (vhost-user kick eventfd readable; shm
  kick byte). Delivers every received message to ``sink.deliver`` on the calling thread and
  wakes blocked senders. Call it from ONE thread. ``rx_pending()`` is a cheap "is there
  work" check for spinning before blocking.
* ``send``, ``send_many``, ``alloc_tx``: the :class:`~rpmsg.transport.Link` send methods, from
  any thread; they raise ``RemoteDisconnectedError`` while stopped and ``TransportBrokenError``
  once broken. ``running``, ``error``, ``ns_enabled``, ``mtu`` and ``stats()`` tell the state.

Ring behaviour follows OpenAMP's device role (spec §3.5): ``VRING_USED_F_NO_NOTIFY`` is set on
queue 0 (re-enabled only while a sender waits for a buffer), every buffer taken is returned
with exactly the head id it had, received buffers are returned with their descriptor length,
and the driver is interrupted only when its ``VRING_AVAIL_F_NO_INTERRUPT`` flag allows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rpmsg.errors import ProtocolError
from rpmsg.transport import LinkSink
from rpmsg.virtio.engine import ErrorHandler, Notify, RingEngine
from rpmsg.virtio.memory import Memory
from rpmsg.virtio.vring import DeviceRing, QueueAddrs, device_ring, full_barrier
from rpmsg.wire.rpmsg import DEFAULT_BUFFER_SIZE, HEADER_SIZE
from rpmsg.wire.virtio import VIRTIO_RPMSG_F_NS

__all__ = ["DeviceEngine", "QueueAddrs"]


class DeviceEngine(RingEngine):
    """RPMsg-over-virtio device: sends on queue 0, receives on queue 1 (see module doc)."""

    role = "device"
    tx_queue = 0
    rx_queue = 1

    def __init__(self, memory: Memory, notify: Notify, *, sink: LinkSink | None = None,
                 on_error: ErrorHandler | None = None,
                 buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        super().__init__(memory, notify, sink=sink, on_error=on_error, buffer_size=buffer_size)
        self.txq: DeviceRing | None = None
        self.rxq: DeviceRing | None = None

    # Lifecycle ------------------------------------------------------------------------

    def start(self, queues: Sequence[QueueAddrs], *, features: int = 1 << VIRTIO_RPMSG_F_NS,
              bases: Sequence[int] = (0, 0)) -> None:
        """Begin serving the two queues (see the module docstring)."""
        if len(queues) != 2 or len(bases) != 2:
            raise ValueError("virtio-rpmsg has exactly two queues")
        txq = device_ring("vq0 (device->driver)", self.memory, queues[0], bases[0])
        rxq = device_ring("vq1 (driver->device)", self.memory, queues[1], bases[1])
        with self.lock, self.rx_lock:
            if self.running:
                raise RuntimeError("the device engine is already running; stop() it first")
            self.txq, self.rxq = txq, rxq
            self._spare = []
            self._tx_orphans.clear()
            self._reset_rx()
            self.features = features
            self.generation += 1
            self.error = None
            txq.set_notifications(False)
            rxq.set_notifications(True)
            self.running = True
            self._up = True
        if self.sink is not None:
            self.sink.link_up()
        self.kick()

    def stop(self, reason: str = "virtio device stopped") -> tuple[int, int]:
        """Stop using the rings; returns each queue's next avail index (see module doc)."""
        with self.lock, self.rx_lock:
            self.running = False
            self.error = None
            self.generation += 1
            self._reset_rx()
            self._spare = []
            self._tx_orphans.clear()
            bases = (self.txq.last_avail if self.txq else 0,
                     self.rxq.last_avail if self.rxq else 0)
            self.txq = self.rxq = None  # no view of the session's memory outlives it
            self.tx_cond.notify_all()
        self._report_down(reason)
        return bases

    # Transmit hooks (lock held) ---------------------------------------------------------

    def _take_tx(self) -> tuple[Any, memoryview] | None:
        if self._spare:
            return self._spare.pop()
        ring = self.txq
        assert ring is not None
        if not ring.avail_pending():
            return None
        head, addr, length, _flags = ring.pop()
        if self.tap is not None:
            self._ring_event("rx", "pop", 0, head, length)
        if length < HEADER_SIZE:
            raise ring.error(f"desc[{head}].len = {length} is shorter than the "
                             f"{HEADER_SIZE}-byte rpmsg header")
        try:
            view = self.memory.view(addr, length)
        except ProtocolError as exc:
            raise ring.error(f"desc[{head}].addr = {addr:#x} len {length}: {exc}") from None
        return head, view

    def _take_tx_many(self, limit: int) -> list[tuple[Any, memoryview]]:
        out: list[tuple[Any, memoryview]] = []
        spare = self._spare
        while spare and len(out) < limit:
            out.append(spare.pop())
        ring = self.txq
        assert ring is not None
        count = min(limit - len(out), ring.avail_pending())
        if count > 0:
            out.extend((head, view[off : off + length]) for head, view, off, length
                       in ring.pop_views(count, self.memory, HEADER_SIZE))
        return out

    def _commit_tx_many(self, items: list[tuple[Any, int]]) -> list[int]:
        assert self.txq is not None
        # Linux checks used.len <= 512 and hdr.len <= used.len - 16 (spec §1.1).
        self.txq.push_many(items)
        return [head for head, _length in items]

    def _give_back_tx(self, token: Any, view: memoryview) -> None:
        self._spare.append((token, view))

    def _commit_tx(self, token: Any, length: int) -> int:
        assert self.txq is not None
        # Linux checks used.len <= 512 and hdr.len <= used.len - 16 (spec §1.1).
        self.txq.push(token, length)
        return int(token)

    def _flush_tx(self) -> bool:
        ring = self.txq
        assert ring is not None
        ring.publish()
        return ring.peer_wants_interrupt()

    def _tx_wakeups(self, enabled: bool) -> None:
        if self.txq is not None:
            self.txq.set_notifications(enabled)

    # Receive ----------------------------------------------------------------------------

    def rx_pending(self) -> bool:
        ring = self.rxq
        return ring is not None and self.running and ring.avail_pending() > 0

    def arm(self) -> bool:
        """Ask the driver to kick us for new buffers, then re-check; True if the ring is idle.

        :meth:`kick` does this itself unless called with ``rearm=False`` (a worker that spins
        on :meth:`rx_pending` first keeps kicks suppressed meanwhile, then arms).
        """
        ring = self.rxq
        if ring is None or not self.running:
            return True
        ring.set_notifications(True)
        full_barrier()
        return ring.avail_pending() == 0

    def _rx_take(self) -> list[tuple[int, memoryview, int, int]]:
        ring = self.rxq
        assert ring is not None
        pending = ring.avail_pending()
        if not pending:
            return []
        ring.set_notifications(False)
        with self.rx_lock:
            batch = ring.pop_views(pending, self.memory, HEADER_SIZE)
        if self.tap is not None:
            for head, _view, _off, length in batch:
                self._ring_event("rx", "pop", 1, head, length)
        return batch

    def _rx_bad_len(self, token: int, size: int, length: int) -> ProtocolError:
        assert self.rxq is not None
        return self.rxq.error(f"desc[{token}]: header len {size} exceeds the "
                              f"{length - HEADER_SIZE} bytes after the header")

    def _rx_recycle(self, token: int) -> int:
        """Return received buffer ``token`` (its head) on vq1's used ring."""
        assert self.rxq is not None
        return token if self.rxq.give_back(token) else -1

    def _rx_recycle_many(self, tokens: list[int]) -> None:
        assert self.rxq is not None
        self.rxq.give_back_many(tokens)

    def _rx_publish(self) -> bool:
        ring = self.rxq
        assert ring is not None
        ring.publish()
        return ring.peer_wants_interrupt()

    def _rx_unpublished(self) -> bool:
        ring = self.rxq
        return ring is not None and ring.used_idx != ring.read_used_idx()
