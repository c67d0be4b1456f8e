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
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rpmsg import checks
from rpmsg.core.policy import NUTTX
from rpmsg.errors import (
    EndpointClosedError,
    InvalidArgumentError,
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
from rpmsg.wire.rpmsg import HEADER_SIZE, MIN_MTU, RPMSG_HEADER

log = logging.getLogger("rpmsg.port")

#: Bytes in front of every payload: port header + rpmsg header.
FRAME_HEADER_SIZE = PORT_HEADER_SIZE + HEADER_SIZE  # 24
#: Per-buffer overhead of the current protocol (headers + timestamp trailer) and of legacy.
OVERHEAD_CURRENT = FRAME_HEADER_SIZE + TIMESTAMP_TRAILER_SIZE  # 40
OVERHEAD_LEGACY = FRAME_HEADER_SIZE  # 24

_PORT = PORT_HEADER.struct
_RPMSG = RPMSG_HEADER.struct
_TRAILER = TIMESTAMP_TRAILER.struct
#: Budget of :meth:`PortLink.close` when the caller gives none (None): flushing and joining
#: must end some time even when the peer stopped reading.
DEFAULT_CLOSE_TIMEOUT = 1.0
PROTOCOLS = ("current", "legacy")


def overhead(protocol: str) -> int:
    """Bytes of each buffer payloads cannot use: 40 (current) or 24 (legacy)."""
    return OVERHEAD_CURRENT if protocol == "current" else OVERHEAD_LEGACY


def min_buffer_len(protocol: str) -> int:
    """Smallest port buffer (``txlen``/``rxlen``/SPI ``buflen``) a link may be configured
    with: one whose payload still holds a name-service message
    (:data:`rpmsg.wire.rpmsg.MIN_MTU`), else no endpoint could ever be announced."""
    return overhead(protocol) + MIN_MTU


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
        if self.protocol not in PROTOCOLS:
            raise InvalidArgumentError(
                f"protocol must be 'current' or 'legacy', not {self.protocol!r}")
        for name in ("txnum", "rxnum"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
                raise InvalidArgumentError(f"{name} must be an int in 1..4096, not {value!r}")
        low = min_buffer_len(self.protocol)
        for name in ("txlen", "rxlen"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not low <= value <= 0xFFFF:
                raise InvalidArgumentError(
                    f"{name} must be an int in {low}..65535 (the {self.protocol} protocol "
                    f"uses {self.overhead} bytes of each buffer and a name-service message "
                    f"needs {MIN_MTU}), not {value!r}")

    @property
    def overhead(self) -> int:
        """Bytes of each buffer payloads cannot use: 40 (current) or 24 (legacy)."""
        return overhead(self.protocol)

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
        self._forked = False  # in a fork() child (see forked)
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
        self._fill_and_commit(buf, src, dst, payload, size)

    def _fill_and_commit(self, buf: PortBuffer, src: int, dst: int, payload: Buffer,
                         size: int, notify: bool = True) -> None:
        """Copy the payload in and queue the buffer; on any failure the buffer goes back."""
        try:
            buf.view[FRAME_HEADER_SIZE:FRAME_HEADER_SIZE + size] = payload
        except BaseException:
            self.txq.return_buffer(buf)
            raise
        self._commit(buf, src, dst, size, notify)

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
                    buf = deadline.pass_on(self._get_tx, f"send_many: message {count + 1}",
                                           self.seen)
                self._fill_and_commit(buf, src, dst, payload, size, notify=False)
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

        return TxBuffer(payload, commit, lambda: self._return_tx(buf))

    def _return_tx(self, buf: PortBuffer) -> None:
        if not self._forked:
            self.txq.return_buffer(buf)

    def forked(self) -> None:
        """A ``fork()`` child: the line, the threads serving it and the buffer queues are the
        parent's (a queue lock may have been held at the fork); a buffer released here goes
        nowhere and close() touches nothing (see Link.forked)."""
        self._forked = self._closed = True

    def close(self, timeout: float | None = None) -> None:
        """Flush the frames queued before the call, stop the backend, wake every waiter.

        Returns within ``timeout`` seconds (:data:`DEFAULT_CLOSE_TIMEOUT` when None) whatever
        the peer does; frames that could not go out in time are dropped and counted.
        """
        if self._closed:
            return
        self._closed = True
        seconds = checks.timeout(timeout, "close timeout")
        try:
            # The backend still flushes ready TX frames (NS DESTROY) and keeps receiving
            # (wake acknowledgements) until its budget ends; it closes the queues itself
            # when it stops its threads.
            self.backend.close(DEFAULT_CLOSE_TIMEOUT if seconds is None else seconds)
        finally:
            self.rxq.close()
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
        try:
            _PORT.pack_into(view, 0, 0, 0, 0, length)
            _RPMSG.pack_into(view, PORT_HEADER_SIZE, src, dst, 0, size, 0)
        except struct.error as exc:  # an address outside u32: the caller skipped the checks
            self.txq.return_buffer(buf)
            raise InvalidArgumentError(f"RPMsg header not encodable: {exc}") from None
        except BaseException:
            self.txq.return_buffer(buf)
            raise
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

    def register(self, detail: str = "") -> None:
        """The backend connected (``detail`` says how, for the log): link up; the Device
        announces local endpoints."""
        with self._lock:
            if self._up or self._closed:
                return
            self._up = True
        self._stats.link_ups += 1
        if self._sink is not None:
            self._sink.link_up(detail)

    def unregister(self, reason: str, *, restart: bool = False) -> None:
        """The backend lost the peer (``restart``: it restarted while up): drop queued TX
        frames, link down, bindings dropped."""
        with self._lock:
            if not self._up:
                return
            self._up = False
        self.drop_packets(DROP_TX)
        self._stats.link_downs += 1
        if self._sink is not None and not self._closed:
            self._sink.link_down(reason, restart=restart)

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
        them); a bad frame is dropped, counted and logged at DEBUG. The buffer goes back to
        the free list when the receiver releases it: later than this call for zero-copy
        endpoints, and for an endpoint whose queue is full (back-pressure: the backend then
        finds no free RX buffer and stops receiving). Never raises; the buffer is never lost.
        """
        view = buf.view
        length = port_len(view)
        if length < FRAME_HEADER_SIZE:
            self._drop_rx(buf, "short", f"port length {length} < {FRAME_HEADER_SIZE}")
            return
        if length > len(view):
            self._drop_rx(buf, "bad_len", f"port length {length} > buffer {len(view)}")
            return
        src, dst, _reserved, size, _flags = _RPMSG.unpack_from(view, PORT_HEADER_SIZE)
        if FRAME_HEADER_SIZE + size > length:
            self._drop_rx(buf, "bad_rpmsg_len",
                          f"rpmsg length {size} overruns the {length}-byte frame")
            return
        sink = self._sink
        if sink is None or not self._up:
            self._drop_rx(buf, "down", "the link is down")
            return
        stats = self._stats
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

    def _drop_rx(self, buf: PortBuffer, reason: str, detail: str) -> None:
        counter = "rx_dropped_" + reason
        setattr(self._stats, counter, getattr(self._stats, counter) + 1)
        log.debug("%s: received frame dropped (%s): %s", self.role, reason, detail)
        self._free_rx(buf)

    def _free_rx(self, buf: PortBuffer) -> None:
        if self._forked:
            return
        self.rxq.return_buffer(buf)
        self.backend.notify_rx_free()

    # Diagnostics ---------------------------------------------------------------------------

    def seen(self) -> str:
        """What the link saw, for timeout errors: the backend's phrase plus the core's drops."""
        facts = [self.backend.seen()]
        st = self._stats
        bad = {k[len("rx_dropped_"):]: v for k, v in vars(st).items()
               if k.startswith("rx_dropped_") and v}
        if bad:
            facts.append("frames dropped by the port: "
                         + ", ".join(f"{n} {k}" for k, v in sorted(bad.items()) for n in [v]))
        if st.rx_frames or st.tx_frames:
            facts.append(f"{st.rx_frames} messages received, {st.tx_frames} sent")
        return "; ".join(f for f in facts if f)


__all__ = [
    "FRAME_HEADER_SIZE",
    "OVERHEAD_CURRENT",
    "OVERHEAD_LEGACY",
    "PortConfig",
    "PortLink",
    "port_len",
]
