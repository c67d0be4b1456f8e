"""The vhost-user back-end as an RPMsg link: the server plus the virtio device engine.

:class:`VhostUserLink` listens on a UNIX socket, serves one front-end (a VM or User-Mode Linux)
at a time with :class:`rpmsg.virtio.device.DeviceEngine` over the guest's memory, and reports to
the Device; ``rpmsg.transports.vhost_user`` is the URL adapter that makes one. Behaviour
(readiness, dropped front-ends, sealed memory, ``close``) is described there.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from rpmsg.core.policy import OPENAMP
from rpmsg.errors import (
    MessageTooLargeError,
    ProtocolError,
    RemoteDisconnectedError,
    TransportBrokenError,
)
from rpmsg.transport import Link, LinkSink, TxBuffer
from rpmsg.vhost_user.backend import (
    DEFAULT_FEATURES,
    DEFAULT_PROTOCOL_FEATURES,
    QueueConfig,
)
from rpmsg.vhost_user.memory import GuestMemory
from rpmsg.vhost_user.server import Notify, VhostUserServer
from rpmsg.virtio.device import DeviceEngine
from rpmsg.virtio.shm_files import DEFAULT_PERM
from rpmsg.virtio.vring import QueueAddrs
from rpmsg.wire.layout import Buffer
from rpmsg.wire.rpmsg import DEFAULT_BUFFER_SIZE, HEADER_SIZE
from rpmsg.wire.vhost_user import ProtocolFeature
from rpmsg.wire.virtio import VRING_AVAIL

log = logging.getLogger("rpmsg.vhost_user")


class _Armed:
    """Queues configured and enabled, waiting for the driver to be ready."""

    def __init__(self, engine: DeviceEngine, queues: list[QueueAddrs], features: int,
                 bases: tuple[int, int], memory: GuestMemory, deadline: float) -> None:
        self.engine = engine
        self.queues = queues
        self.features = features
        self.bases = bases
        self.memory = memory
        self.deadline = deadline

    def vq0_has_buffers(self) -> bool:
        q0 = self.queues[0]
        view = self.memory.view(q0.avail + VRING_AVAIL.offset("idx"), 2)
        return int.from_bytes(view, "little") != self.bases[0]


class VhostUserLink(Link):
    """The virtio-rpmsg device side of a vhost-user socket (see the module docstring)."""

    role = "device"
    default_policy = OPENAMP
    ns_enabled = True

    def __init__(self, path: str, *, buffer_size: int = DEFAULT_BUFFER_SIZE,
                 ready_timeout: float = 1.0, reply_ack: bool = True,
                 perm: int = DEFAULT_PERM) -> None:
        self.path = path
        self.buffer_size = buffer_size
        self.mtu = buffer_size - HEADER_SIZE
        self.ready_timeout = ready_timeout
        protocol = DEFAULT_PROTOCOL_FEATURES
        if not reply_ack:
            protocol &= ~(1 << ProtocolFeature.REPLY_ACK)
        self._sink: LinkSink | None = None
        self._lock = threading.Lock()
        self._engine: DeviceEngine | None = None
        self._armed: _Armed | None = None
        self._closed = False
        self._counters = {"sessions": 0, "links_up": 0, "links_up_on_kick": 0,
                          "links_up_on_timeout": 0, "ring_errors": 0}
        self._last_error: str | None = None
        self._engine_stats: dict[str, int] = {}
        self._server = VhostUserServer(path, self, features=DEFAULT_FEATURES,
                                       protocol_features=protocol, perm=perm)

    # Link -------------------------------------------------------------------------------

    def start(self, sink: LinkSink) -> None:
        self._sink = sink
        self._server.start()

    def _live_engine(self) -> DeviceEngine:
        engine = self._engine
        if engine is None:
            if self._closed:
                raise RemoteDisconnectedError("vhost-user: the link is closed")
            raise RemoteDisconnectedError(
                f"vhost-user: no front-end driver is connected and ready on {self.path}")
        return engine

    def send(self, src: int, dst: int, payload: Buffer, timeout: float | None) -> None:
        if len(payload) > self.mtu:
            raise MessageTooLargeError(len(payload), self.mtu)
        self._live_engine().send(src, dst, payload, timeout)

    def send_many(self, messages: Iterable[tuple[int, int, Buffer]],
                  timeout: float | None) -> int:
        return self._live_engine().send_many(messages, timeout)

    def alloc_tx(self, timeout: float | None) -> TxBuffer:
        return self._live_engine().alloc_tx(timeout)

    def disconnect(self, reason: str = "back-end dropped the front-end") -> None:
        """Drop the current front-end, as if this remote processor went away; the socket
        stays open and the next front-end is served."""
        self._server.drop(reason)

    def forked(self) -> None:
        """A ``fork()`` child: the socket, its path and the guest's rings are the parent's;
        this copy closes without touching them (see Link.forked)."""
        self._closed = True
        self._lock = threading.Lock()
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.forked()

    def close(self, timeout: float | None = None) -> None:
        """Drop the front-end and stop serving within ``timeout`` (default 5 s)."""
        if self._closed:
            return
        self._closed = True
        engine = self._engine
        if engine is not None:
            engine.sink = None  # the Device is closing: no link_down to it
            engine.stop("closed")  # wakes a send blocked for a buffer on the server thread
        self._server.close(timeout)

    def stats(self) -> dict[str, int]:
        out = {f"server_{k}": v for k, v in self._server.stats().items()}
        out.update(self._counters)
        engine = self._engine
        out.update(engine.stats() if engine is not None else self._engine_stats)
        return out

    def seen(self) -> str:
        engine = self._engine
        counts = engine.stats() if engine is not None else self._engine_stats
        if engine is not None:
            state = "a front-end's driver is up"
        elif self._armed is not None:
            state = "a front-end set up its queues; its driver is not ready yet"
        elif self._server.connected:
            state = "a front-end is connected; its queues are not set up yet"
        else:
            state = f"no front-end is connected on {self.path}"
        error = self._last_error or self._server.last_error
        tail = f"; last error: {error}" if error else ""
        return (f"{state}; {counts.get('rx_messages', 0)} messages received, "
                f"{counts.get('tx_messages', 0)} sent, {self._counters['sessions']} "
                f"session(s){tail}")

    def describe(self) -> dict[str, Any]:
        return {"role": self.role, "mtu": self.mtu, "socket": self.path,
                "connected": self._server.connected, "up": self._engine is not None,
                "last_error": self._last_error or self._server.last_error}

    # SessionHandler (called on the server thread) ---------------------------------------

    def session_start(self, memory: GuestMemory, queues: tuple[QueueConfig, ...],
                      features: int, notify: Notify) -> None:
        if len(queues) != 2:
            raise ProtocolError(f"virtio-rpmsg needs 2 queues, the front-end set up "
                                f"{len(queues)}")
        addrs = [QueueAddrs(q.num, q.desc, q.avail, q.used) for q in queues]
        for a in addrs:
            a.views(memory)  # ring outside the memory table: ProtocolError, peer dropped
        self._counters["sessions"] += 1
        engine = DeviceEngine(memory, notify, sink=self._sink, on_error=self._ring_error,
                              buffer_size=self.buffer_size)
        engine.tap = self.tap
        self._armed = _Armed(engine, addrs, features, (queues[0].base, queues[1].base),
                             memory, time.monotonic() + self.ready_timeout)

    def _go(self, why: str) -> None:
        armed = self._armed
        if armed is None:
            return
        self._armed = None
        self._engine = armed.engine
        self._counters["links_up"] += 1
        self._counters[f"links_up_on_{why}"] += 1
        log.info("vhost-user %s: driver ready (%s), link up", self.path, why)
        try:
            armed.engine.start(armed.queues, features=armed.features, bases=armed.bases)
        except BaseException:
            self._engine = None
            raise

    def session_kick(self, index: int) -> None:
        if self._armed is not None:
            self._go("kick")  # the driver kicks only once it is live (after DRIVER_OK)
            return
        engine = self._engine
        if engine is not None:
            engine.kick(queue=index)

    def session_idle(self) -> None:
        armed = self._armed
        if armed is not None and time.monotonic() >= armed.deadline and \
                armed.vq0_has_buffers():
            self._go("timeout")

    def session_stop(self, reason: str) -> dict[int, int]:
        armed, self._armed = self._armed, None
        if armed is not None:
            return {0: armed.bases[0], 1: armed.bases[1]}
        engine, self._engine = self._engine, None
        if engine is None:
            return {}
        self._engine_stats = engine.stats()
        base0, base1 = engine.stop(reason)  # reports link_down once, failed or not
        return {0: base0, 1: base1}

    def session_closed(self, reason: str) -> None:
        log.info("vhost-user %s: front-end gone (%s); waiting for the next one", self.path,
                 reason)

    def server_failed(self, error: Exception) -> None:
        sink = self._sink
        if sink is not None:
            sink.broken(error)

    def _ring_error(self, error: TransportBrokenError) -> None:
        """The driver corrupted a ring: drop this front-end, keep serving."""
        self._counters["ring_errors"] += 1
        self._last_error = str(error)
        self._server.drop(f"ring error: {error}")
