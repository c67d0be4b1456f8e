"""The RPMsg Port core as an rpmsg :class:`~rpmsg.transport.Link`: queues, headers, dispatch.

This is NuttX ``rpmsg_port.c`` (spec ``rpmsg-port.md`` §1.2-1.4, §2) without the physical
layer. A backend (:mod:`rpmsg.port.uart`, :mod:`rpmsg.port.spi`) moves whole port frames;
the two directions between core and backend are the interfaces of :mod:`rpmsg.port.ops`:
:class:`~rpmsg.port.ops.PortBackend` (what the core calls) and
:class:`~rpmsg.port.ops.PortCore` (what the backend calls, implemented by :class:`PortLink`).

Buffer layout: port header (8) + rpmsg header (16) + payload, then in the current protocol a
16-byte timestamp trailer that payloads may not use.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rpmsg.core.policy import NUTTX
from rpmsg.errors import (
    EndpointClosedError,
    MessageTooLargeError,
    NoBufferError,
    RemoteDisconnectedError,
    TransportBrokenError,
)
from rpmsg.port.ops import DROP_RX, DROP_TX, PortBackend
from rpmsg.port.queues import BufferQueue, PortBuffer
from rpmsg.transport import Deadline, Link, LinkSink, TxBuffer
from rpmsg.wire.layout import Buffer
from rpmsg.wire.port import (
    PORT_HEADER,
    PORT_HEADER_SIZE,
    TIMESTAMP_TRAILER,
    TIMESTAMP_TRAILER_SIZE,
)
from rpmsg.wire.rpmsg import HEADER_SIZE, RPMSG_HEADER

log = logging.getLogger("rpmsg.port")

#: Bytes in front of every payload: port header + rpmsg header.
FRAME_HEADER_SIZE = PORT_HEADER_SIZE + HEADER_SIZE  # 24
#: Per-buffer overhead of the current protocol (headers + timestamp trailer) and of legacy.
OVERHEAD_CURRENT = FRAME_HEADER_SIZE + TIMESTAMP_TRAILER_SIZE  # 40
OVERHEAD_LEGACY = FRAME_HEADER_SIZE  # 24

_PORT = PORT_HEADER.struct
_RPMSG = RPMSG_HEADER.struct
_TRAILER = TIMESTAMP_TRAILER.struct



def port_len(frame: Buffer) -> int:
    """The ``len`` field of the port header at the start of ``frame``."""
    return int(_PORT.unpack_from(frame, 0)[3])


@dataclass(frozen=True)
class PortConfig:
    """Queue geometry and protocol generation (NuttX ``rpmsg_port_config_s``).

    NuttX has no defaults; sim boards use 10/10/2048/2048, which these match.
    """

    txnum: int = 10
    rxnum: int = 10
    txlen: int = 2048
    rxlen: int = 2048
    #: ``current`` (NuttX >= 12.13: 16-byte timestamp trailer) or ``legacy`` (no trailer).
    protocol: str = "current"
    #: Name of the remote CPU, for descriptions (NuttX ``remotecpu``).
    remotecpu: str = ""

    def __post_init__(self) -> None:
        if self.protocol not in ("current", "legacy"):
            raise ValueError(f"protocol must be 'current' or 'legacy', not {self.protocol!r}")
        for name in ("txnum", "rxnum"):
            if not 1 <= getattr(self, name) <= 4096:
                raise ValueError(f"{name} must be 1..4096")
        for name in ("txlen", "rxlen"):
            if not self.overhead < getattr(self, name) <= 0xFFFF:
                raise ValueError(f"{name} must be {self.overhead + 1}..65535")

    @property
    def overhead(self) -> int:
        """Bytes of each buffer payloads cannot use: 40 (current) or 24 (legacy)."""
        return OVERHEAD_CURRENT if self.protocol == "current" else OVERHEAD_LEGACY

    @property
    def tx_payload_size(self) -> int:
        """Largest payload this side sends (``get_tx_payload_buffer``)."""
        return self.txlen - self.overhead

    @property
    def rx_payload_size(self) -> int:
        return self.rxlen - self.overhead


class _PortStats:
    """Counters of the port core; every dropped frame is counted under its reason."""

    def __init__(self) -> None:
        self.tx_frames = 0
        self.tx_bytes = 0
        self.rx_frames = 0
        self.rx_bytes = 0
        self.rx_dropped_short = 0
        self.rx_dropped_bad_len = 0
        self.rx_dropped_bad_rpmsg_len = 0
        self.rx_dropped_down = 0
        self.rx_deliver_errors = 0
        self.tx_dropped = 0
        self.rx_dropped = 0
        self.link_ups = 0
        self.link_downs = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


class PortLink(Link):
    """An RPMsg Port: TX/RX buffer queues and the rpmsg ops over a physical backend.

    Implements :class:`~rpmsg.port.ops.PortCore` for its backend.
    """

    default_policy = NUTTX
    ns_enabled = True

    def __init__(self, backend: PortBackend, config: PortConfig | None = None,
                 role: str = "port") -> None:
        self.config = config = config or PortConfig()
        self.backend = backend
        self.role = role
        self.mtu = config.tx_payload_size
        self.txq = BufferQueue("tx", config.txnum, config.txlen, noavail=self._noavail)
        self.rxq = BufferQueue("rx", config.rxnum, config.rxlen, noavail=self._noavail)
        self._stats = _PortStats()
        self._sink: LinkSink | None = None
        self._up = False
        self._closed = False
        self._broken: Exception | None = None
        self._lock = threading.Lock()
        self._trailer = config.protocol == "current"

    # Link interface ----------------------------------------------------------------------

    def start(self, sink: LinkSink) -> None:
        self._sink = sink
        self.backend.register_callback(self.rx_dispatch)
        self.backend.start()

    @property
    def is_up(self) -> bool:
        return self._up

    def send(self, src: int, dst: int, payload: Buffer, timeout: float | None) -> None:
        size = len(payload)
        if size > self.mtu:
            raise MessageTooLargeError(size, self.mtu)
        buf = self._get_tx(timeout)
        view = buf.view
        view[FRAME_HEADER_SIZE:FRAME_HEADER_SIZE + size] = payload
        self._commit(buf, src, dst, size)

    def send_many(self, messages: Iterable[tuple[int, int, Buffer]],
                  timeout: float | None) -> int:
        """Queue several frames and notify the backend once (or when a wait is needed)."""
        deadline = Deadline(timeout)
        count = 0
        pending = False
        try:
            for src, dst, payload in messages:
                size = len(payload)
                if size > self.mtu:
                    raise MessageTooLargeError(size, self.mtu)
                try:
                    buf = self._get_tx(0)
                except NoBufferError:
                    if pending:
                        self.backend.notify_tx_ready()
                        pending = False
                    if timeout == 0:
                        raise
                    buf = self._get_tx(deadline.remaining())
                buf.view[FRAME_HEADER_SIZE:FRAME_HEADER_SIZE + size] = payload
                self._commit(buf, src, dst, size, notify=False)
                pending = True
                count += 1
        finally:
            if pending:
                self.backend.notify_tx_ready()
        return count

    def alloc_tx(self, timeout: float | None) -> TxBuffer:
        """A TX buffer whose payload area is written in place (zero-copy send)."""
        buf = self._get_tx(timeout)
        payload = buf.view[FRAME_HEADER_SIZE:FRAME_HEADER_SIZE + self.mtu]

        def commit(src: int, dst: int, length: int) -> None:
            self._commit(buf, src, dst, length)

        return TxBuffer(payload, commit, lambda: self.txq.return_buffer(buf))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # RX waiters first; the backend may still flush ready TX frames (NS DESTROY) on close.
        self.rxq.close()
        self.backend.close()
        self.txq.close()

    def stats(self) -> dict[str, int]:
        out = self._stats.as_dict()
        out["tx_free"] = self.txq.navail()
        out["tx_ready"] = self.txq.nused()
        out["tx_ready_max"] = self.txq.max_ready
        out["rx_free"] = self.rxq.navail()
        out["rx_ready"] = self.rxq.nused()
        for key, value in self.backend.stats().items():
            out[key] = value
        return out

    def describe(self) -> dict[str, Any]:
        c = self.config
        out: dict[str, Any] = {"role": self.role, "mtu": self.mtu, "up": self._up,
                               "protocol": c.protocol, "txnum": c.txnum, "rxnum": c.rxnum,
                               "txlen": c.txlen, "rxlen": c.rxlen}
        if c.remotecpu:
            out["remotecpu"] = c.remotecpu
        out.update(self.backend.describe())
        return out

    # TX helpers --------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise TransportBrokenError(str(self._broken)) from self._broken
        if self._closed:
            raise EndpointClosedError("the port is closed")
        if not self._up:
            raise RemoteDisconnectedError("the RPMsg Port link is not connected")

    def _get_tx(self, timeout: float | None) -> PortBuffer:
        self._check_usable()
        buf = self.txq.get_available_buffer(timeout)
        if not self._up or self._broken is not None:
            self.txq.return_buffer(buf)
            self._check_usable()
        return buf

    def _commit(self, buf: PortBuffer, src: int, dst: int, size: int,
                notify: bool = True) -> None:
        """Fill both headers and queue the buffer (NuttX ``rpmsg_port_send_offchannel``)."""
        if not self._up:
            self.txq.return_buffer(buf)
            self._check_usable()
        length = FRAME_HEADER_SIZE + size
        view = buf.view
        _PORT.pack_into(view, 0, 0, 0, 0, length)
        _RPMSG.pack_into(view, PORT_HEADER_SIZE, src, dst, 0, size, 0)
        self._stats.tx_frames += 1
        self._stats.tx_bytes += size
        self.txq.add_buffer(buf)
        if notify:
            self.backend.notify_tx_ready()

    def _noavail(self, queue: BufferQueue) -> bool:
        if self._closed:
            return False
        return self.backend.notify_queue_noavail(queue)

    # Backend-facing operations -----------------------------------------------------------

    def tx_frame(self, buf: PortBuffer) -> memoryview:
        """The frame in a ready TX buffer: its first ``port_hdr.len`` bytes."""
        length = min(port_len(buf.view), len(buf.view))
        return buf.view[:length]

    def register(self) -> None:
        """The backend connected: link up; the Device announces local endpoints."""
        with self._lock:
            if self._up or self._closed:
                return
            self._up = True
        self._stats.link_ups += 1
        if self._sink is not None:
            self._sink.link_up()

    def unregister(self, reason: str) -> None:
        """The backend lost the peer: drop queued TX frames, link down, bindings dropped."""
        with self._lock:
            if not self._up:
                return
            self._up = False
        self.drop_packets(DROP_TX)
        self._stats.link_downs += 1
        if self._sink is not None and not self._closed:
            self._sink.link_down(reason)

    def drop_packets(self, mask: int) -> int:
        """Return ready buffers to their free lists (1 = TX, 2 = RX); count them as drops."""
        dropped = 0
        if mask & DROP_TX:
            n = self.txq.drop()
            self._stats.tx_dropped += n
            dropped += n
        if mask & DROP_RX:
            n = self.rxq.drop()
            self._stats.rx_dropped += n
            dropped += n
        return dropped

    def update_timestamp(self, buf: PortBuffer, rx: bool) -> None:
        """Write CLOCK_MONOTONIC ns into the trailer (current protocol; diagnostics only)."""
        if not self._trailer:
            return
        view = buf.view
        at = len(view) - TIMESTAMP_TRAILER_SIZE
        now = time.monotonic_ns()
        if not rx:
            tx_nsec, rx_nsec = _TRAILER.unpack_from(view, at)
            _TRAILER.pack_into(view, at, now, rx_nsec)
        elif port_len(view) <= at:
            tx_nsec, _ = _TRAILER.unpack_from(view, at)
            _TRAILER.pack_into(view, at, tx_nsec, now)

    def mark_broken(self, error: Exception) -> None:
        """The backend failed for good: report once to the sink; sends fail from now on."""
        with self._lock:
            if self._broken is not None:
                return
            self._broken = error
            self._up = False
        self.txq.close()
        if self._sink is not None:
            self._sink.broken(error)

    def rx_dispatch(self, buf: PortBuffer) -> None:
        """Deliver the frame in an RX buffer, then free it (NuttX ``rpmsg_port_rx_callback``).

        The port length and the rpmsg length are checked against the buffer (NuttX trusts
        them); a bad frame is dropped and counted. The buffer goes back to the free list when
        the receiver releases it, which for zero-copy endpoints may be later than this call.
        """
        view = buf.view
        stats = self._stats
        length = port_len(view)
        if length < FRAME_HEADER_SIZE:
            stats.rx_dropped_short += 1
            self._free_rx(buf)
            return
        if length > len(view):
            stats.rx_dropped_bad_len += 1
            self._free_rx(buf)
            return
        src, dst, _reserved, size, _flags = _RPMSG.unpack_from(view, PORT_HEADER_SIZE)
        if FRAME_HEADER_SIZE + size > length:
            stats.rx_dropped_bad_rpmsg_len += 1
            self._free_rx(buf)
            return
        sink = self._sink
        if sink is None or not self._up:
            stats.rx_dropped_down += 1
            self._free_rx(buf)
            return
        stats.rx_frames += 1
        stats.rx_bytes += size
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._free_rx(buf)

        try:
            sink.deliver(src, dst, view[FRAME_HEADER_SIZE:FRAME_HEADER_SIZE + size], release)
        except Exception:
            stats.rx_deliver_errors += 1
            log.exception("delivering a port frame failed")
            release()

    def _free_rx(self, buf: PortBuffer) -> None:
        self.rxq.return_buffer(buf)
        self.backend.notify_rx_free()


__all__ = [
    "FRAME_HEADER_SIZE",
    "OVERHEAD_CURRENT",
    "OVERHEAD_LEGACY",
    "PortConfig",
    "PortLink",
    "port_len",
]
