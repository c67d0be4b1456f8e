"""The UART backend's I/O driver: a serial stream, an RX thread and a TX thread.

The RX thread reads, feeds the :class:`~rpmsg.port.uart.framer.FrameDecoder`, hands control
bytes to the :class:`~rpmsg.port.uart.machine.UartLinkMachine` and dispatches frames through
the port core; it never waits for a STAYWAKE acknowledgement and never writes (replies are
handed to the TX thread, so a full line in one direction cannot deadlock both sides). Wake
bytes (STAYWAKE and its acknowledgements) are handled as soon as they are read, ahead of the
frames read with them, which only affects the TX side.

Back-pressure: a frame needs a free RX buffer; when the receivers hold them all, the RX thread
keeps reading (and answering wake bytes) until :data:`RX_BACKLOG_BYTES` of decoded input wait,
then stops reading, so the line's buffers fill and the peer's writes block. It resumes when a
buffer comes back (``notify_rx_free``). Nothing is dropped for lack of a buffer.

The TX thread is the only writer: control bytes first (between chunks of a burst too, and a
real UART's output backlog is kept short, so acknowledgements are never queued behind seconds
of data), then bursts of frames behind the wake handshake. ``close(timeout)`` lets it flush
what was queued before the call (NS DESTROY included) while the RX thread still reads the
acknowledgements, then sends POWEROFF; whatever could not go out within the budget is dropped
and counted. Streams are in :mod:`rpmsg.port.uart.stream`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from rpmsg.errors import EndpointClosedError, NoBufferError, TransportBrokenError
from rpmsg.port.core import PortConfig, PortLink
from rpmsg.port.ops import DROP_TX, PortCore, RxCallback
from rpmsg.port.queues import BufferQueue
from rpmsg.port.uart.framer import (
    ERROR_TEXT,
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
from rpmsg.tap import Direction
from rpmsg.wire.port import PORT_HEADER_SIZE
from rpmsg.wire.rpmsg import NS_ADDR, RPMSG_HEADER

log = logging.getLogger("rpmsg.port.uart")

#: Bytes read per system call at most (NuttX reads 256; larger reads cost less in Python).
READ_SIZE = 65536
#: Bytes written per call; queued control bytes go out between chunks.
WRITE_CHUNK = 4096
#: Encoded bytes gathered before a write during a burst.
BURST_BYTES = 16384
#: Decoded input (bytes) the RX thread may hold while it waits for a buffer; past it, it
#: stops reading and the line applies the back-pressure.
RX_BACKLOG_BYTES = 64 * 1024
#: What a parked event other than a frame counts against that backlog besides its bytes
#: (about its size in memory): a flood of control bytes or broken frames from the peer is
#: held back by the line too, instead of growing the backlog without bound.
EVENT_COST = 64
#: Seconds of line time a real UART's output backlog may hold before more data is written,
#: so a control byte written next goes out within about this long.
TX_BACKLOG_SECONDS = 0.01
#: Share of the close budget kept for stopping threads after the flush.
CLOSE_JOIN_SHARE = 0.2
#: Where a frame's rpmsg ``dst`` sits, and the name service's address there.
_DST = PORT_HEADER_SIZE + RPMSG_HEADER.offset("dst")
_NS_DST = NS_ADDR.to_bytes(4, "little")


class UartBackend:
    """RPMsg Port UART backend (NuttX ``rpmsg_port_uart.c``) over a stream."""

    def __init__(self, stream: Stream, *, protocol: UartProtocol, crc: str = "none",
                 crc_optional: bool = False, staywake: bool = True, rx_max_len: int = 2048,
                 name: str = "") -> None:
        self.stream = stream
        self.name = name
        self.protocol = protocol
        self.encoder = FrameEncoder(protocol, crc)
        self.decoder = FrameDecoder(protocol, crc, max_len=rx_max_len,
                                    crc_optional=crc_optional)
        self.machine = UartLinkMachine(protocol, staywake=staywake)
        self.port: PortCore | None = None
        self._callback: RxCallback | None = None
        # Guards the machine, the control output and the stop flags.
        self._cond = threading.Condition()
        self._ctrl_out = bytearray()
        self._deferred: deque[Event] = deque()
        self._deferred_bytes = 0
        self._starving = False
        # The RX thread stopped reading with a full backlog: a STAYWAKE acknowledgement may
        # be in the unread input, so bursts do not wait for one (spec §3.5: a receiver never
        # requires STAYWAKE before data). Without this, a callback that sends from the RX
        # thread while the TX queue is full would deadlock on its own unread input.
        self._rx_stalled = False
        # The TX thread waits for work (notify_tx_ready must wake it); False while bursting.
        self._tx_idle = True
        # A peer was connected when close() began: worth confirming and draining for.
        self._peer_at_close = False
        self._tx_stop = False  # close(): flush until _flush_deadline, POWEROFF, exit
        self._rx_stop = False
        self._flush_deadline = 0.0
        self._closed = False
        self._rx_thread: threading.Thread | None = None
        self._tx_thread: threading.Thread | None = None
        self._names = protocol.control_names()
        # A real UART (a baud rate and an output backlog to read) gets chunks of about
        # TX_BACKLOG_SECONDS of line time, and no deeper backlog; other streams (ptys,
        # sockets) drain as fast as the reader reads and get WRITE_CHUNK.
        baudrate = getattr(stream, "baudrate", None)
        has_backlog = hasattr(type(stream), "out_waiting")
        self._line_rate = 0.0
        self._chunk = WRITE_CHUNK
        if isinstance(baudrate, int) and baudrate > 0 and has_backlog:
            self._line_rate = baudrate / 10  # bytes per second with 8N1 framing
            self._chunk = max(64, min(WRITE_CHUNK, int(self._line_rate * TX_BACKLOG_SECONDS)))
        self._immediate = frozenset(
            b for b in (protocol.staywake1, protocol.staywake2, protocol.staywakeack1,
                        protocol.staywakeack2) if b is not None)
        self.counts = {"wire_tx_bytes": 0, "wire_rx_bytes": 0, "wire_tx_frames": 0,
                       "rx_dropped_not_connected": 0, "tx_dropped_not_connected": 0,
                       "tx_dropped_close": 0, "bursts": 0, "rx_buffer_waits": 0,
                       "wake_skipped": 0}

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
        if self._tx_idle:  # a bursting TX thread looks at the ready list by itself
            with self._cond:
                self._cond.notify_all()

    def notify_rx_free(self) -> None:
        """A buffer came back: a starving RX thread stops its read wait and takes it."""
        if self._starving and not self._closed:
            self._cancel("cancel_read")

    def notify_queue_noavail(self, queue: BufferQueue) -> bool:
        """The RX thread waits for a TX buffer (a reply sent from a callback): keep reading.

        Wake bytes the TX side needs are handled at once; everything else is parked, in
        order, for the RX loop. Other callers block.
        """
        port = self.port
        if (port is None or queue is not port.txq or self._tx_stop
                or threading.current_thread() is not self._rx_thread):
            return False
        if self._deferred_bytes < RX_BACKLOG_BYTES:
            if self.stream.in_waiting:
                self._feed(self._read())
                return True
        else:
            self._stall()
        queue.wait_available(0.005)
        return True

    def close(self, timeout: float) -> None:
        """Flush queued frames within most of ``timeout``, POWEROFF, stop both threads."""
        if self._closed:
            return
        self._closed = True
        now = time.monotonic()
        end = now + timeout
        with self._cond:
            self._flush_deadline = now + timeout * (1 - CLOSE_JOIN_SHARE)
            self._tx_stop = True
            self._cond.notify_all()
        me = threading.current_thread()
        tx = self._tx_thread
        if tx is not None and tx is not me:
            tx.join(max(0.0, self._flush_deadline - time.monotonic()))
            if tx.is_alive():  # stuck in a write the peer does not drain
                self._cancel("cancel_write")
                tx.join(max(0.0, end - time.monotonic()) / 2)
        if self._peer_at_close:  # nobody reads the line otherwise
            self._drain_line(self._flush_deadline + (end - self._flush_deadline) / 2)
        self._rx_stop = True
        port = self.port
        if port is not None:  # wake an RX thread waiting for a buffer in a callback's send
            port.txq.close()
            port.rxq.close()
        self._cancel("cancel_read")
        rx = self._rx_thread
        if rx is not None and rx is not me:
            rx.join(max(0.0, end - time.monotonic()))
        for t in (tx, rx):
            if t is not None and t.is_alive() and t is not me:
                log.warning("%s: %s still running at close (blocked in a callback or a "
                            "write); left behind as a daemon thread", self.name, t.name)
        try:
            self.stream.close()
        except Exception as exc:  # closing must not fail
            log.debug("%s: closing the serial stream: %s", self.name, exc)

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

    def seen(self) -> str:
        """The line's story in one phrase: connect attempts, bytes, frames, CRC failures."""
        m = self.machine.counts
        errors = self.decoder.errors
        rx_bytes = self.counts["wire_rx_bytes"]
        if not self.machine.connected:
            if not rx_bytes:
                return (f"no byte from the peer on {self.name} ({m['connreq_sent']} CONNREQ "
                        "sent); is the other side running, on this line, at this baudrate?")
            if not (m["connreq_received"] or m["connack_received"]):
                return (f"{rx_bytes} bytes but no CONNREQ/CONNACK from the peer on "
                        f"{self.name}; check protocol= (current/legacy) and baudrate")
        facts = []
        crc_drops = errors["bad_crc"] + errors["no_crc"]
        if crc_drops and not self.decoder.frames:
            facts.append(f"no frame passed the CRC: {crc_drops} dropped; check crc= on both "
                         "sides")
        elif crc_drops:
            facts.append(f"{crc_drops} frames failed the CRC")
        other = {k: v for k, v in errors.items() if v and k not in ("bad_crc", "no_crc")}
        if other:
            facts.append("framing errors: " + ", ".join(f"{v} {k}" for k, v in other.items()))
        if not facts:
            facts.append(f"{self.decoder.frames} frames received on {self.name}")
        return "; ".join(facts)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": "uart", "device": self.name,
                               "uart_protocol": self.protocol.name,
                               "crc": self.encoder.crc_name, "staywake": self.machine.staywake,
                               "crc_optional": self.decoder.crc_optional,
                               "connected": self.machine.connected}
        path = getattr(self.stream, "path", None)
        if isinstance(path, str):
            out["pty"] = path
        return out

    def _drain_line(self, until: float) -> None:
        """Let what was written reach the peer before the stream closes, until ``until``.

        A pty discards what its other end did not read when the master closes; a real UART
        waits for its output on close, possibly for seconds: wait here within the budget,
        then discard the rest so the close itself cannot block.
        """
        stream = self.stream
        drain = getattr(stream, "drain", None)
        if drain is not None:
            if not drain(max(0.0, until - time.monotonic())):
                log.debug("%s: the peer did not read everything before close", self.name)
            return
        if not self._line_rate:
            return
        try:
            while int(getattr(stream, "out_waiting", 0)) and time.monotonic() < until:
                time.sleep(0.002)
            if int(getattr(stream, "out_waiting", 0)):
                reset = getattr(stream, "reset_output_buffer", None)
                if reset is not None:
                    reset()
        except (OSError, ValueError, TypeError) as exc:
            log.debug("%s: draining the line: %s", self.name, exc)

    # Helpers -------------------------------------------------------------------------------

    def _cancel(self, method: str) -> None:
        cancel = getattr(self.stream, method, None)
        if cancel is not None:
            try:
                cancel()
            except Exception:  # best effort; timeouts end the call too
                pass

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
            if isinstance(act, LinkDown):  # the Device logs it at INFO
                port.unregister(act.reason, restart=act.restart)
            elif isinstance(act, LinkUp):
                port.register(f"UART {self.name}, {self.protocol.name} protocol")
            elif isinstance(act, Running):
                log.info("%s: remote %s", self.name, "resumed" if act.running else "suspended")

    # RX thread -----------------------------------------------------------------------------

    def _stall(self) -> None:
        """The RX thread stops reading (its backlog is full): tell the TX thread, which then
        sends without waiting for wake acknowledgements it could not read."""
        if not self._rx_stalled:
            with self._cond:
                self._rx_stalled = True
                self._cond.notify_all()

    def _read(self) -> bytes:
        self._rx_stalled = False
        waiting = self.stream.in_waiting
        data = self.stream.read(min(max(waiting, 1), READ_SIZE))
        self.counts["wire_rx_bytes"] += len(data)
        return data

    def _feed(self, data: bytes) -> None:
        """Decode ``data``: wake bytes are handled now, everything else waits in order."""
        if not data:
            return
        port = self.port
        tap = port.tap if port is not None else None
        deferred = self._deferred
        immediate = self._immediate
        for ev in self.decoder.feed(data):
            if type(ev) is Control and ev.byte in immediate:
                if tap is not None:
                    self._tap_control("rx", ev.byte)
                self._handle_control(ev.byte)
                continue
            self._deferred_bytes += _cost(ev)
            deferred.append(ev)

    def _rx_main(self) -> None:
        try:
            deferred = self._deferred
            while not self._rx_stop:
                if deferred:
                    if not self._handle_next():
                        self._starve()
                    continue
                self._feed(self._read())
        except EndpointClosedError:
            pass
        except OSError as exc:  # pyserial's SerialException too: the line went away
            if not self._rx_stop:
                log.error("%s: UART line failed: %s", self.name, exc)
                self._fail(exc)
        except Exception as exc:  # a bug: keep the traceback, never die silently
            if not self._rx_stop:
                log.exception("%s: UART receive failed", self.name)
                self._fail(exc)

    def _handle_next(self) -> bool:
        """Handle the oldest parked event; False if it is a frame and no RX buffer is free."""
        ev = self._deferred[0]
        if type(ev) is Frame:
            return self._receive_frame(ev)
        self._deferred.popleft()
        self._deferred_bytes -= _cost(ev)
        if type(ev) is Control:
            if self.port is not None and self.port.tap is not None:
                self._tap_control("rx", ev.byte)
            self._handle_control(ev.byte)
        elif type(ev) is FrameError:
            self._framing_error(ev)
        return True

    def _handle_control(self, byte: int) -> None:
        with self._cond:
            actions = self._apply_locked(self.machine.on_control(byte, time.monotonic()))
            self._cond.notify_all()  # an acknowledgement may have made the TX side ready
        if actions:
            self._run_link_actions(actions)

    def _framing_error(self, ev: FrameError) -> None:
        if ev.data:
            port = self.port
            if port is not None and port.tap is not None:
                verdict = "bad" if ev.reason in ("bad_crc", "no_crc") else "none"
                port.tap.frame("rx", "port", ev.data,
                               {"crc": verdict, "escapes": ev.escapes,
                                "protocol": self.protocol.name, "error": ev.reason})
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: dropped %d bytes: %s (%s)", self.name, ev.size,
                      ERROR_TEXT.get(ev.reason, ev.reason), ev.reason)

    def _receive_frame(self, ev: Frame) -> bool:
        port = self.port
        assert port is not None and self._callback is not None
        if not self.machine.accept_frame():
            self._pop_frame(ev)
            self.counts["rx_dropped_not_connected"] += 1
            log.debug("%s: dropped a %d-byte frame: not connected yet", self.name,
                      len(ev.data))
            return True
        try:
            buf = port.rxq.get_available_buffer(0)
        except NoBufferError:
            return False
        self._pop_frame(ev)
        data = ev.data
        if self.machine.confirming and data[_DST:_DST + 4] == _NS_DST:
            with self._cond:
                self.machine.peer_announced()
        tap = port.tap
        if tap is not None:
            tap.frame("rx", "port", data, {"crc": ev.crc, "escapes": ev.escapes,
                                           "protocol": self.protocol.name})
        try:
            buf.view[:len(data)] = data
        except BaseException:
            port.rxq.return_buffer(buf)
            raise
        self._callback(buf)  # the core owns the buffer from here, whatever happens
        return True

    def _pop_frame(self, ev: Frame) -> None:
        self._deferred.popleft()
        self._deferred_bytes -= len(ev.data)

    def _starve(self) -> None:
        """No free RX buffer: keep reading while the backlog allows, else just wait."""
        port = self.port
        assert port is not None
        self.counts["rx_buffer_waits"] += 1
        self._starving = True
        try:
            if port.rxq.navail():
                return
            if self._deferred_bytes < RX_BACKLOG_BYTES:
                self._feed(self._read())  # notify_rx_free cuts this wait short
            else:
                self._stall()
                port.rxq.wait_available(0.1)
        finally:
            self._starving = False

    def _fail(self, exc: Exception) -> None:
        port = self.port
        if port is not None:
            port.mark_broken(TransportBrokenError(f"UART {self.name}: {exc}"))
        with self._cond:
            self._tx_stop = self._rx_stop = True
            self._flush_deadline = 0.0
            self._cond.notify_all()

    # TX thread -----------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        self.stream.write(data)
        self.counts["wire_tx_bytes"] += len(data)

    def _write_controls(self, ctrl: bytes) -> None:
        if not ctrl:
            return
        port = self.port
        if port is not None and port.tap is not None:
            for byte in ctrl:
                self._tap_control("tx", byte)
        self._write(ctrl)

    def _tap_control(self, direction: Direction, byte: int) -> None:
        tap = self.port.tap if self.port is not None else None
        if tap is not None:
            tap.frame(direction, "uart-control", bytes([byte]),
                      {"name": self._names.get(byte, f"0x{byte:02x}"), "byte": byte})

    def _take_ctrl_locked(self) -> bytes:
        out = bytes(self._ctrl_out)
        self._ctrl_out.clear()
        return out

    def _take_ctrl(self) -> bytes:
        with self._cond:
            return self._take_ctrl_locked()

    def _flush_expired(self) -> bool:
        return self._tx_stop and time.monotonic() >= self._flush_deadline

    def _tx_main(self) -> None:
        port = self.port
        assert port is not None
        machine = self.machine
        try:
            while True:
                with self._cond:
                    self._tx_idle = True  # set before the check: no notify is missed
                    while True:
                        now = time.monotonic()
                        self._apply_locked(machine.poll(now))
                        if self._ctrl_out or self._tx_stop or port.txq.nused():
                            break
                        deadline = machine.next_deadline()
                        self._cond.wait(None if deadline is None else max(0.0, deadline - now))
                    self._tx_idle = False
                    ctrl = self._take_ctrl_locked()
                    stopping = self._tx_stop
                self._write_controls(ctrl)
                if port.txq.nused() and not self._flush_expired():
                    self._burst(port)
                elif stopping:
                    self._drop_unsent(port)
                    with self._cond:
                        connected = machine.connected
                        self._apply_locked(machine.poweroff())
                        ctrl = self._take_ctrl_locked()
                    self._write_controls(ctrl)
                    self._peer_at_close = connected
                    if connected:  # a peer that is not connected would not answer
                        self._confirm_delivery()
                    return
        except Exception as exc:
            if self._tx_stop:  # e.g. POWEROFF to a peer that already closed the line
                log.debug("%s: write while closing failed: %s", self.name, exc)
                self._drop_unsent(port)
                return
            log.exception("%s: UART transmit failed", self.name)
            self._fail(exc)

    def _confirm_delivery(self) -> None:
        """Closing: wait (within the flush budget) until the peer acknowledges a STAYWAKE
        sent after everything else, proof that it read all of it; a pty discards what its
        other end did not read when the master closes."""
        machine = self.machine
        while True:
            with self._cond:
                if machine.tx_staywake is None or self._flush_expired():
                    return
                now = time.monotonic()
                self._apply_locked(machine.probe(now))
                if machine.probed:
                    return
                ctrl = self._take_ctrl_locked()
                if not ctrl:
                    deadline = machine.next_deadline()
                    until = self._flush_deadline if deadline is None \
                        else min(deadline, self._flush_deadline)
                    self._cond.wait(max(0.0, until - now))
            self._write_controls(ctrl)

    def _drop_unsent(self, port: PortCore) -> None:
        dropped = port.drop_packets(DROP_TX)
        if dropped:
            self.counts["tx_dropped_close"] += dropped
            log.info("%s: %d frames not sent before the close budget ran out", self.name,
                     dropped)

    def _wake_peer(self, port: PortCore) -> bool:
        """The wake handshake before a burst (spec §3.5); False to abandon the burst."""
        machine = self.machine
        while True:
            with self._cond:
                if not machine.connected:
                    dropped = port.drop_packets(DROP_TX)
                    self.counts["tx_dropped_not_connected"] += dropped
                    if dropped:
                        log.debug("%s: dropped %d frames: not connected", self.name, dropped)
                    return False
                if self._flush_expired():
                    return False
                now = time.monotonic()
                self._apply_locked(machine.wake(now))
                ready = machine.ready
                if not ready and self._rx_stalled:
                    ready = True
                    self.counts["wake_skipped"] += 1
                ctrl = self._take_ctrl_locked()
                if not ready and not ctrl:
                    deadline = machine.next_deadline()
                    if self._tx_stop:
                        deadline = self._flush_deadline if deadline is None \
                            else min(deadline, self._flush_deadline)
                    self._cond.wait(None if deadline is None else max(0.0, deadline - now))
                    continue
            self._write_controls(ctrl)
            if ready:
                return True

    def _burst(self, port: PortCore) -> None:
        """Wake the peer, send every ready frame, relax (spec §3.5)."""
        if not self._wake_peer(port):
            return
        self.counts["bursts"] += 1
        pending: list[bytes] = []
        size = 0
        txq = port.txq
        encoder = self.encoder
        while not self._flush_expired():
            buf = txq.get_buffer(0)
            if buf is None:
                break
            try:
                frame = port.tx_frame(buf)
                tap = port.tap
                if tap is None:
                    wire = encoder.encode(frame)
                else:
                    body = encoder.seal(frame)
                    wire = encoder.wrap(body)
                    tap.frame("tx", "port", body,
                              {"crc": "none" if encoder.crc_name == "none" else "ok",
                               "escapes": len(wire) - len(body) - 2,
                               "protocol": self.protocol.name})
            finally:
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
            self._apply_locked(self.machine.relax())
            ctrl = self._take_ctrl_locked()
        self._write_controls(ctrl)

    def _send_chunks(self, data: bytes) -> None:
        """Write ``data`` in chunks; queued control bytes go out before each chunk."""
        chunk = self._chunk
        for i in range(0, len(data), chunk):
            if self._ctrl_out:
                self._write_controls(self._take_ctrl())
            if self._line_rate:
                self._limit_backlog()
            self._write(data[i:i + chunk])

    def _limit_backlog(self) -> None:
        """On a real UART, wait while its output buffer holds more than a few ms of data,
        writing control bytes that come up meanwhile (they then go out next)."""
        rate = self._line_rate
        limit = self._chunk
        while True:
            try:
                backlog = int(getattr(self.stream, "out_waiting", 0))
            except (OSError, ValueError, TypeError):
                return
            if backlog <= limit or self._flush_expired():
                return
            with self._cond:
                if not self._ctrl_out:  # look again at least every TX_BACKLOG_SECONDS
                    self._cond.wait(min(TX_BACKLOG_SECONDS, (backlog - limit) / rate))
                ctrl = self._take_ctrl_locked()
            self._write_controls(ctrl)


def _cost(ev: Event) -> int:
    """What a parked event counts against :data:`RX_BACKLOG_BYTES`."""
    if type(ev) is Frame:
        return len(ev.data)
    if type(ev) is FrameError:
        return len(ev.data) + EVENT_COST
    return EVENT_COST


def make_uart_port(stream: Stream, config: PortConfig | None = None, *, crc: str = "none",
                   crc_optional: bool = False, staywake: bool | None = None,
                   name: str = "") -> PortLink:
    """A :class:`PortLink` over ``stream`` with the UART backend (not started yet)."""
    config = config or PortConfig()
    protocol = get_protocol(config.protocol)
    if staywake is None:
        staywake = protocol.has_staywake
    backend = UartBackend(stream, protocol=protocol, crc=crc, crc_optional=crc_optional,
                          staywake=staywake, rx_max_len=config.rxlen, name=name)
    link = PortLink(backend, config, role="uart")
    backend.attach(link)
    return link


__all__ = ["UartBackend", "make_uart_port"]
