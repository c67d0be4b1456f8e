"""What both roles of a shared-memory virtio link share: the Link surface and the ring loop.

A :class:`ShmLink` drives one :class:`~rpmsg.virtio.engine.RingEngine` over memory both
processes map, with kicks on a :class:`~rpmsg.virtio.kick.KickChannel`, one *session* at a
time: a session is one driver and one device sharing one memory (between two rpmsg processes a
fresh sealed memfd; with a C/OpenAMP peer the named file). Its worker thread runs
:meth:`ShmLink._serve`: scan the rings, keep polling them for ``spin`` seconds after work (the
peer's kicks stay suppressed meanwhile), then re-arm and sleep on the channel. A session ends
when the peer goes away, resets the status byte or breaks the protocol; the link reports
``link_down`` with the reason and the role starts the next session by itself
(:class:`~rpmsg.virtio.shm_driver.ShmDriverLink` reconnects,
:class:`~rpmsg.virtio.shm_device.ShmDeviceLink` serves the next driver).

Threads: the worker owns the session (channel, memory) and releases it; user threads only
send, poll and release buffers through the engine. :meth:`ShmLink.close` stops the engine
(waking blocked senders), wakes the worker through a pipe that is never drained, and waits for
it within its budget; whatever the worker still holds then is released by the worker itself.
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
from rpmsg.errors import TransportBrokenError
from rpmsg.transport import Deadline, Link, LinkSink, TxBuffer
from rpmsg.virtio.engine import RingEngine
from rpmsg.virtio.kick import EXTRA, KickChannel, PeerGone
from rpmsg.virtio.layout import ShmLayout
from rpmsg.virtio.memory import FlatMemory
from rpmsg.virtio.shm_files import DEFAULT_PERM
from rpmsg.virtio.vdev import VdevTable
from rpmsg.wire.layout import Buffer

log = logging.getLogger("rpmsg.shm")

#: How often an idle link re-reads the status byte and checks for close.
IDLE_CHECK = 0.1
#: close() budget when the caller gives none.
CLOSE_TIMEOUT = 5.0
#: A placeholder until the first session maps its memory: any access is a range error.
NO_MEMORY = FlatMemory(bytearray(0))
_said_named_limit: set[str] = set()


@dataclass(frozen=True)
class ShmConfig:
    """Everything ``shm:`` options decide, checked before any I/O (see the transport)."""

    path: str
    socket: str
    layout: ShmLayout
    kick: str = "socket"
    spin: float = 50e-6
    #: Mode of the files and sockets the device creates.
    perm: int = DEFAULT_PERM
    #: Accept files and sockets another user owns (e.g. a device run as root).
    allow_foreign: bool = False
    #: Between rpmsg processes, share a sealed memfd instead of the named file.
    memfd: bool = True
    #: The URL, for messages.
    url: str = "shm:"


class SessionReset(Exception):
    """The peer reset the status byte: this session is over."""


def say_named_limit(path: str) -> None:
    """Say once per file, at INFO, what sharing a named file cannot prevent."""
    if path in _said_named_limit:
        return
    _said_named_limit.add(path)
    log.info("shm: sharing the named file %s with the peer: any process that can write it "
             "can truncate it, and this process then dies of SIGBUS, which Python cannot "
             "catch (see docs/security.md; two rpmsg processes share a sealed memfd instead)",
             path)


class ShmLink(Link):
    """One side of a virtio-rpmsg link over shared memory (a role subclass is used)."""

    default_policy = OPENAMP
    can_poll = True
    engine: RingEngine

    def __init__(self, config: ShmConfig, *, channel: KickChannel | None = None,
                 memory: FlatMemory | None = None) -> None:
        self.config = config
        self.layout = config.layout
        self.spin = config.spin
        self.kick_kind = config.kick
        #: Sessions can be replaced (file-based); an in-process pair has exactly one.
        self.reconnects = memory is None
        self._channel = channel
        self.memory = memory if memory is not None else NO_MEMORY
        self.table: VdevTable | None = VdevTable(memory, self.layout) if memory else None
        self.where = config.path or "memory"
        self._sink: LinkSink | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._released = False
        #: Who releases the resources: close() after joining the worker, or the worker as
        #: it ends if close() gave up waiting for it (both decided under _release_lock).
        self._release_lock = threading.Lock()
        self._worker_done = False
        self._abandoned = False
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.counters = {"sessions": 0, "sessions_dropped": 0}
        #: What the link is doing, in words (for seen() and describe()).
        self.state = "starting"
        self.last_reason: str | None = None

    # Link interface ---------------------------------------------------------------------

    def _notify(self, _queue: int) -> None:
        chan = self._channel
        if chan is not None:
            chan.notify()

    def _on_error(self) -> Any:
        """The engine's ``on_error``: a failed session is dropped where another can follow."""
        return self._session_failed if self.reconnects else None

    def _session_failed(self, error: TransportBrokenError) -> None:
        """The peer broke the protocol: the worker ends the session (it sees the engine
        stopped within IDLE_CHECK) and the role starts the next one."""
        self.counters["sessions_dropped"] += 1

    def start(self, sink: LinkSink) -> None:
        self._sink = sink
        self.engine.attach(sink)
        self.engine.tap = self.tap
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

    def poll(self) -> int:
        return self.engine.poll()

    def stats(self) -> dict[str, int]:
        out = self.engine.stats()
        out.update(self.counters)
        return out

    def seen(self) -> str:
        c = self.engine.counters
        tail = f"; last session ended: {self.last_reason}" if self.last_reason else ""
        return (f"{self.state}; {c['rx_messages']} messages received, {c['tx_messages']} sent, "
                f"{self.counters['sessions']} session(s){tail}")

    def describe(self) -> dict[str, Any]:
        return {"role": self.role, "mtu": self.mtu, "memory": self.where, "kick": self.kick_kind,
                "num": self.layout.num, "align": self.layout.align,
                "buffer_size": self.layout.buffer_size, "ns": self.engine.ns_enabled,
                "state": self.state, "last_error": self.engine.last_error}

    def forked(self) -> None:
        """A ``fork()`` child: the memory, files and kick channel are the parent's; this
        copy closes without touching them (see Link.forked)."""
        self._closed = True
        self._released = True
        self.state = "inherited across fork()"
        self.engine.forked()

    def close(self, timeout: float | None = None) -> None:
        """Stop within ``timeout`` (default 5 s) whatever the peer does; idempotent."""
        if self._closed:
            return
        budget = Deadline(CLOSE_TIMEOUT if timeout is None else timeout)
        self._closed = True
        self.state = "closed"
        os.write(self._wake_w, b"x")  # never drained: every later wait returns at once
        self.engine.sink = None
        self._say_goodbye(budget)
        self.engine.stop("closed")  # wakes senders blocked for a buffer
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(budget.remaining())
        with self._release_lock:
            if thread is not None and not self._worker_done:
                self._abandoned = True
                if thread is not threading.current_thread():
                    log.warning("shm %s: the worker is still busy (a callback?); it releases "
                                "the link's resources when it ends", self.role)
                return
        self._release_all()

    def _say_goodbye(self, budget: Deadline) -> None:
        """Role hook: tell the peer this side is going, within ``budget``."""

    # Worker thread ----------------------------------------------------------------------

    def _main(self) -> None:
        try:
            self._run()
        except Exception as exc:  # never let the thread die silently
            if not self._closed:
                log.exception("shm %s worker failed", self.role)
                self.engine.on_error = None
                self.engine.fail(f"internal error in the worker thread: {exc!r}")
        finally:
            with self._release_lock:
                self._worker_done = True
                abandoned = self._abandoned
            if abandoned:
                self._release_all()

    def _run(self) -> None:
        """Role hook: the worker's body (sessions, one after the other)."""
        raise NotImplementedError

    def _extra_fds(self) -> tuple[int, ...]:
        """Descriptors the worker also waits on while serving (role may add its listener)."""
        return (self._wake_r,)

    def _on_extra(self) -> None:
        """Role hook: an extra descriptor was readable while serving."""

    def _serve(self, chan: KickChannel, table: VdevTable | None) -> None:
        """Wait for kicks and process rings until the session ends or we close.

        Returns when the engine stopped (closed, or the peer broke the protocol). Raises
        :class:`~rpmsg.virtio.kick.PeerGone` when the peer went away and
        :class:`SessionReset` when ``table``'s status lost DRIVER_OK, after delivering what
        the peer had published before it left (its memory is still mapped here).
        """
        try:
            self._serve_rings(chan, table)
        except (PeerGone, SessionReset):
            self.engine.kick(rearm=False)  # the peer's last messages (e.g. NS DESTROY)
            raise

    def _serve_rings(self, chan: KickChannel, table: VdevTable | None) -> None:
        engine = self.engine
        extra = self._extra_fds()
        spin = self.spin
        clock = time.perf_counter
        while not self._closed and engine.running:
            if engine.kick(rearm=False) and spin:
                # After messages, keep the peer's kicks suppressed while polling the ring for a
                # short while: a busy stream then costs neither side a wakeup per message.
                # sched_yield lets the peer run first when both share a CPU. (A wake-up that
                # brought no message, e.g. returned transmit buffers, goes back to sleep at
                # once instead of competing with this process's senders.)
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
            if chan.wait(IDLE_CHECK, extra) & EXTRA:
                self._on_extra()

    # Resources --------------------------------------------------------------------------

    def _release_all(self) -> None:
        """Release everything, once: by close() once the worker ended, or by the worker as it
        ends after close() stopped waiting for it (never both: see _release_lock)."""
        if self._released:
            return
        self._released = True
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        self._release()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _release(self) -> None:
        """Role hook: release what this side opened (the worker has ended)."""


__all__ = ["CLOSE_TIMEOUT", "IDLE_CHECK", "SessionReset", "ShmConfig", "ShmLink",
           "say_named_limit"]
