"""What both roles of a shared-memory virtio link share: the Link surface and the ring loop.

A :class:`ShmLink` drives one :class:`~rpmsg.virtio.engine.RingEngine` over memory both
processes map, with kicks on a :class:`~rpmsg.virtio.kick.KickChannel`. Its worker thread
runs :meth:`ShmLink._serve`: scan the rings, keep polling them for ``spin`` seconds after
work (the peer's kicks stay suppressed meanwhile), then re-arm and sleep on the channel. The
roles differ in how a session starts and ends: :class:`~rpmsg.virtio.shm_driver.ShmDriverLink`
and :class:`~rpmsg.virtio.shm_device.ShmDeviceLink`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rpmsg.core.policy import OPENAMP
from rpmsg.errors import ProtocolError
from rpmsg.transport import Link, LinkSink, TxBuffer
from rpmsg.virtio.engine import RingEngine
from rpmsg.virtio.kick import KickChannel
from rpmsg.virtio.layout import ShmLayout
from rpmsg.virtio.memory import FlatMemory
from rpmsg.virtio.vdev import VdevTable
from rpmsg.wire.layout import Buffer

log = logging.getLogger("rpmsg.shm")

#: How often an idle link re-reads the status byte and checks for close.
IDLE_CHECK = 0.1


@dataclass(frozen=True)
class ShmConfig:
    """Everything ``shm:`` options decide, checked before any I/O (see the transport)."""

    path: str
    socket: str
    layout: ShmLayout
    kick: str = "socket"
    spin: float = 50e-6


class SessionReset(Exception):
    """The peer reset the status byte: this session is over."""


class ShmLink(Link):
    """One side of a virtio-rpmsg link over shared memory (a role subclass is used)."""

    default_policy = OPENAMP
    engine: RingEngine

    def __init__(self, memory: FlatMemory, layout: ShmLayout, *,
                 channel: KickChannel | None = None, kick: str = "socket",
                 timeout: float = 30.0, spin: float = 50e-6, where: str = "memory") -> None:
        self.memory = memory
        self.layout = layout
        self.table = VdevTable(memory, layout)
        self.kick_kind = kick
        self.timeout = timeout
        self.spin = spin
        self.where = where
        self._channel = channel
        self._sink: LinkSink | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()

    # Link interface ---------------------------------------------------------------------

    def _notify(self, _queue: int) -> None:
        chan = self._channel
        if chan is not None:
            chan.notify()

    def start(self, sink: LinkSink) -> None:
        self._sink = sink
        self.engine.attach(sink)
        self._started()
        self._thread = threading.Thread(target=self._main, daemon=True,
                                        name=f"rpmsg-shm-{self.role}")
        self._thread.start()

    def _started(self) -> None:
        """Role hook: the sink is attached, the worker is about to start."""

    def send(self, src: int, dst: int, payload: Buffer, timeout: float | None) -> None:
        self.engine.send(src, dst, payload, timeout)

    def send_many(self, messages: Iterable[tuple[int, int, Buffer]],
                  timeout: float | None) -> int:
        return self.engine.send_many(messages, timeout)

    def alloc_tx(self, timeout: float | None) -> TxBuffer:
        return self.engine.alloc_tx(timeout)

    can_poll = True

    def poll(self) -> int:
        return self.engine.poll()

    def stats(self) -> dict[str, int]:
        return self.engine.stats()

    def describe(self) -> dict[str, Any]:
        return {"role": self.role, "mtu": self.mtu, "memory": self.where, "kick": self.kick_kind,
                "num": self.layout.num, "align": self.layout.align,
                "buffer_size": self.layout.buffer_size, "ns": self.engine.ns_enabled}

    def close(self, timeout: float | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        os.write(self._wake_w, b"x")
        self.engine.sink = None
        self._closing_session()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10 if timeout is None else timeout)
        self.engine.stop("closed")
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        self._release()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _closing_session(self) -> None:
        """Role hook: tell the peer this side is going (before the worker is joined)."""

    def _release(self) -> None:
        """Role hook: release what this side opened (after the worker ended)."""

    # Worker thread ----------------------------------------------------------------------

    def _main(self) -> None:
        try:
            self._run()
        except ProtocolError as exc:
            self.engine.fail(str(exc))
        except Exception as exc:  # never let the thread die silently
            log.exception("shm %s worker failed", self.role)
            self.engine.fail(f"internal error in the worker thread: {exc!r}")

    def _run(self) -> None:
        """Role hook: the worker's body."""
        raise NotImplementedError

    def _serve(self, chan: KickChannel, table: VdevTable | None) -> None:
        """Wait for kicks and process rings until the peer goes away or we close.

        With ``table`` the status byte is watched: DRIVER_OK cleared ends the session
        (:class:`SessionReset`).
        """
        engine = self.engine
        wake = self._wake_r
        spin = self.spin
        clock = time.perf_counter
        while not self._closed and engine.error is None:
            engine.kick(rearm=False)
            if spin:
                # Keep the peer's kicks suppressed while polling the ring for a short while:
                # a busy stream then costs neither side a wakeup per message. sched_yield
                # lets the peer run first when both share a CPU.
                until = clock() + spin
                while clock() < until:
                    if engine.rx_pending():
                        engine.kick(rearm=False)
                        until = clock() + spin
                    else:
                        os.sched_yield()
            if table is not None and not table.driver_ok():
                raise SessionReset("the driver reset the device (DRIVER_OK cleared)")
            if not engine.arm():
                continue
            chan.wait(IDLE_CHECK, wake)


__all__ = ["IDLE_CHECK", "SessionReset", "ShmConfig", "ShmLink"]
