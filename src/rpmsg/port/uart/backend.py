"""The UART backend's I/O driver: a serial stream, an RX thread and a TX thread.

The RX thread reads, feeds the :class:`~rpmsg.port.uart.framer.FrameDecoder`, hands control
bytes to the :class:`~rpmsg.port.uart.machine.UartLinkMachine` and dispatches frames through the
port core; it never waits for a STAYWAKE acknowledgement and never writes (replies are handed
to the TX thread, so a full line in one direction cannot deadlock both sides). The TX thread
is the only writer: control bytes first, then bursts of frames behind the wake handshake.

Streams are in :mod:`rpmsg.port.uart.stream`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from rpmsg.errors import EndpointClosedError, TransportBrokenError
from rpmsg.port.core import PortConfig, PortLink
from rpmsg.port.ops import DROP_TX, PortCore, RxCallback
from rpmsg.port.queues import BufferQueue
from rpmsg.port.uart.framer import (
    Control,
    Event,
    Frame,
    FrameDecoder,
    FrameEncoder,
    FrameError,
    UartProtocol,
    get_protocol,
)
from rpmsg.port.uart.machine import Action, LinkDown, LinkUp, Running, UartLinkMachine, Write
from rpmsg.port.uart.stream import Stream

log = logging.getLogger("rpmsg.port.uart")

#: Bytes read per system call at most (NuttX reads 256; larger reads cost less in Python).
READ_SIZE = 65536
#: Bytes written per call; control bytes (acknowledgements) may go out between chunks.
WRITE_CHUNK = 4096
#: Encoded bytes gathered before a write during a burst.
BURST_BYTES = 16384
#: Seconds close() lets queued frames wait for the wake handshake before dropping them.
CLOSE_FLUSH_TIMEOUT = 0.5
#: Events parked by the RX thread while it waits for a TX buffer, before it stops reading.
DEFER_LIMIT = 4096


class UartBackend:
    """RPMsg Port UART backend (NuttX ``rpmsg_port_uart.c``) over a stream."""

    def __init__(self, stream: Stream, *, protocol: UartProtocol, crc: str = "none",
                 staywake: bool = True, rx_max_len: int = 2048, name: str = "") -> None:
        self.stream = stream
        self.name = name
        self.protocol = protocol
        self.encoder = FrameEncoder(protocol, crc)
        self.decoder = FrameDecoder(protocol, crc, max_len=rx_max_len)
        self.machine = UartLinkMachine(protocol, staywake=staywake)
        self.port: PortCore | None = None
        self._callback: RxCallback | None = None
        self._cond = threading.Condition()
        self._ctrl_out = bytearray()
        self._deferred: deque[Event] = deque()
        self._stopping = False
        self._stop_deadline = 0.0
        self._closed = False
        self._rx_thread: threading.Thread | None = None
        self._tx_thread: threading.Thread | None = None
        self.counts = {"wire_tx_bytes": 0, "wire_rx_bytes": 0, "wire_tx_frames": 0,
                       "rx_dropped_not_connected": 0, "tx_dropped_not_connected": 0,
                       "bursts": 0}
        self._immediate = frozenset(
            b for b in (protocol.staywake1, protocol.staywake2, protocol.staywakeack1,
                        protocol.staywakeack2) if b is not None)

    def attach(self, port: PortCore) -> None:
        """Give the backend its port (done by :func:`make_uart_port`)."""
        self.port = port

    # PortBackend ops -----------------------------------------------------------------------

    def register_callback(self, callback: RxCallback) -> None:
        self._callback = callback

    def start(self) -> None:
        if self.port is None:
            raise RuntimeError("UartBackend.attach(port) was not called")
        with self._cond:
            self._apply_locked(self.machine.start(time.monotonic()))
        self._rx_thread = threading.Thread(target=self._rx_main, daemon=True,
                                           name=f"rpmsg-uart-rx {self.name}")
        self._tx_thread = threading.Thread(target=self._tx_main, daemon=True,
                                           name=f"rpmsg-uart-tx {self.name}")
        self._rx_thread.start()
        self._tx_thread.start()

    def notify_tx_ready(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def notify_rx_free(self) -> None:
        """Nothing to do: the RX thread waits on the RX queue itself."""

    def notify_queue_noavail(self, queue: BufferQueue) -> bool:
        """The RX thread waits for a TX buffer (a reply sent from a callback): keep reading.

        Control bytes that the TX side needs (STAYWAKE and its acknowledgements) are handled
        at once; everything else is parked, in order, for the RX loop. Other callers block.
        """
        port = self.port
        if (port is None or queue is not port.txq or self._stopping
                or threading.current_thread() is not self._rx_thread):
            return False
        if len(self._deferred) < DEFER_LIMIT and self.stream.in_waiting:
            for ev in self.decoder.feed(self._read()):
                if isinstance(ev, Control) and ev.byte in self._immediate:
                    self._handle(ev)
                else:
                    self._deferred.append(ev)
            return True
        queue.wait_available(0.005)
        return True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._cond:
            # The TX thread sends what is queued (NS DESTROY), then POWEROFF, then exits.
            self._stop_deadline = time.monotonic() + CLOSE_FLUSH_TIMEOUT
            self._stopping = True
            self._cond.notify_all()
        me = threading.current_thread()
        if self._tx_thread is not None and self._tx_thread is not me:
            self._tx_thread.join(5)
        port = self.port
        if port is not None:
            port.rxq.close()
            port.txq.close()
        cancel = getattr(self.stream, "cancel_read", None)
        if cancel is not None:
            try:
                cancel()
            except Exception:  # best effort; the read timeout also ends it
                pass
        if self._rx_thread is not None and self._rx_thread is not me:
            self._rx_thread.join(5)
        try:
            self.stream.close()
        except Exception as exc:  # closing must not fail
            log.debug("closing the serial stream: %s", exc)

    def stats(self) -> dict[str, int]:
        out = dict(self.counts)
        for reason, n in self.decoder.errors.items():
            out[f"framing_{reason}"] = n
        out["wire_rx_frames"] = self.decoder.frames
        out["wire_rx_controls"] = self.decoder.controls
        out.update(self.machine.counts)
        out["connected"] = int(self.machine.connected)
        out["remote_running"] = int(self.machine.remote_running)
        return out

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": "uart", "device": self.name,
                               "uart_protocol": self.protocol.name,
                               "crc": self.encoder.crc_name, "staywake": self.machine.staywake,
                               "connected": self.machine.connected}
        path = getattr(self.stream, "path", None)
        if isinstance(path, str):
            out["pty"] = path
        return out

    # Actions -------------------------------------------------------------------------------

    def _apply_locked(self, actions: list[Action]) -> list[Action]:
        """Queue writes for the TX thread; return the link actions for the caller to run."""
        rest: list[Action] = []
        for act in actions:
            if isinstance(act, Write):
                self._ctrl_out += act.data
                self._cond.notify_all()
            else:
                rest.append(act)
        return rest

    def _run_link_actions(self, actions: list[Action]) -> None:
        port = self.port
        assert port is not None
        for act in actions:
            if isinstance(act, LinkDown):
                log.info("%s: link down: %s", self.name, act.reason)
                port.unregister(act.reason)
            elif isinstance(act, LinkUp):
                log.info("%s: link up", self.name)
                port.register()
            elif isinstance(act, Running):
                log.info("%s: remote %s", self.name, "resumed" if act.running else "suspended")

    # RX thread -----------------------------------------------------------------------------

    def _read(self) -> bytes:
        waiting = self.stream.in_waiting
        data = self.stream.read(min(max(waiting, 1), READ_SIZE))
        self.counts["wire_rx_bytes"] += len(data)
        return data

    def _rx_main(self) -> None:
        try:
            deferred = self._deferred
            while not self._stopping:
                if deferred:
                    self._handle(deferred.popleft())
                    continue
                data = self._read()
                if data:
                    deferred.extend(self.decoder.feed(data))
        except EndpointClosedError:
            pass
        except OSError as exc:  # pyserial's SerialException too: the line went away
            if not self._stopping:
                log.error("%s: UART line failed: %s", self.name, exc)
                self._fail(exc)
        except Exception as exc:  # a bug: keep the traceback, never die silently
            if not self._stopping:
                log.exception("%s: UART receive failed", self.name)
                self._fail(exc)

    def _handle(self, ev: Event) -> None:
        if isinstance(ev, Frame):
            self._receive_frame(ev.data)
        elif isinstance(ev, Control):
            with self._cond:
                actions = self._apply_locked(self.machine.on_control(ev.byte, time.monotonic()))
                self._cond.notify_all()  # an acknowledgement may have made the TX side ready
            if actions:
                self._run_link_actions(actions)
        elif isinstance(ev, FrameError):
            log.debug("%s: framing error %s (%d bytes)", self.name, ev.reason, ev.size)

    def _receive_frame(self, data: bytes) -> None:
        port = self.port
        assert port is not None and self._callback is not None
        if not self.machine.accept_frame():
            self.counts["rx_dropped_not_connected"] += 1
            return
        buf = port.rxq.get_available_buffer(None)  # no free buffer: stop reading
        buf.view[:len(data)] = data
        self._callback(buf)

    def _fail(self, exc: Exception) -> None:
        port = self.port
        if port is not None:
            port.mark_broken(TransportBrokenError(f"UART {self.name}: {exc}"))
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    # TX thread -----------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        self.stream.write(data)
        self.counts["wire_tx_bytes"] += len(data)

    def _take_ctrl_locked(self) -> bytes:
        out = bytes(self._ctrl_out)
        self._ctrl_out.clear()
        return out

    def _tx_main(self) -> None:
        port = self.port
        assert port is not None
        machine = self.machine
        try:
            while True:
                with self._cond:
                    while True:
                        now = time.monotonic()
                        self._apply_locked(machine.poll(now))
                        if self._ctrl_out or self._stopping:
                            break
                        if port.txq.nused():
                            break
                        deadline = machine.next_deadline()
                        self._cond.wait(None if deadline is None else max(0.0, deadline - now))
                    ctrl = self._take_ctrl_locked()
                    stopping = self._stopping
                if ctrl:
                    self._write(ctrl)
                if port.txq.nused():
                    self._burst(port)
                elif stopping:
                    with self._cond:
                        self._apply_locked(machine.poweroff())
                        ctrl = self._take_ctrl_locked()
                    if ctrl:
                        self._write(ctrl)
                    return
        except Exception as exc:
            if self._stopping:  # e.g. POWEROFF to a peer that already closed the line
                log.debug("%s: write while closing failed: %s", self.name, exc)
                return
            log.exception("%s: UART transmit failed", self.name)
            self._fail(exc)

    def _burst(self, port: PortCore) -> None:
        """Wake the peer, send every ready frame, relax (spec §3.5)."""
        machine = self.machine
        while True:
            with self._cond:
                if not machine.connected or (self._stopping and not machine.ready
                                             and time.monotonic() > self._stop_deadline):
                    dropped = port.drop_packets(DROP_TX)
                    self.counts["tx_dropped_not_connected"] += dropped
                    return
                self._apply_locked(machine.wake(time.monotonic()))
                ready = machine.ready
                ctrl = self._take_ctrl_locked()
                if not ready and not ctrl:
                    deadline = machine.next_deadline()
                    now = time.monotonic()
                    self._cond.wait(None if deadline is None else max(0.0, deadline - now))
                    continue
            if ctrl:
                self._write(ctrl)
            if ready:
                break
        self.counts["bursts"] += 1
        pending: list[bytes] = []
        size = 0
        txq = port.txq
        while True:
            buf = txq.get_buffer(0)
            if buf is None:
                break
            wire = self.encoder.encode(port.tx_frame(buf))
            txq.return_buffer(buf)
            pending.append(wire)
            size += len(wire)
            self.counts["wire_tx_frames"] += 1
            if size >= BURST_BYTES:
                self._send_chunks(b"".join(pending))
                pending, size = [], 0
        if pending:
            self._send_chunks(b"".join(pending))
        with self._cond:
            self._apply_locked(machine.relax())
            ctrl = self._take_ctrl_locked()
        if ctrl:
            self._write(ctrl)

    def _send_chunks(self, data: bytes) -> None:
        """Write ``data`` in chunks, letting queued control bytes out between them."""
        for i in range(0, len(data), WRITE_CHUNK):
            if self._ctrl_out:
                with self._cond:
                    ctrl = self._take_ctrl_locked()
                if ctrl:
                    self._write(ctrl)
            self._write(data[i:i + WRITE_CHUNK])


def make_uart_port(stream: Stream, config: PortConfig | None = None, *, crc: str = "none",
                   staywake: bool | None = None, name: str = "") -> PortLink:
    """A :class:`PortLink` over ``stream`` with the UART backend (not started yet)."""
    config = config or PortConfig()
    protocol = get_protocol(config.protocol)
    if staywake is None:
        staywake = protocol.has_staywake
    backend = UartBackend(stream, protocol=protocol, crc=crc, staywake=staywake,
                          rx_max_len=config.rxlen, name=name)
    link = PortLink(backend, config, role="uart")
    backend.attach(link)
    return link


__all__ = ["UartBackend", "make_uart_port"]
