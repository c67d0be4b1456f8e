"""The RPMsg Port SPI backend: glue between the SPI state machine, a physical bus and the port.

:class:`SpiBackend` is a :class:`~rpmsg.port.ops.PortBackend`. The master's bus thread runs
the exchanges: it clocks once per SREQ edge and raises MREQ when it has something to say. The
slave arms its next buffer (queues it and raises SREQ) from its bus thread when idle, and
completes each transfer and re-arms right in the physical layer's completion callback, as
NuttX does in its interrupt context, so the master finds the next buffer armed without a
thread hand-off. The RX thread processes received frames in order (NuttX's ``rpmsg-spi``
thread): connect, shutdown, and DATA dispatch into the port core.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from rpmsg.errors import DecodeError, EndpointClosedError, NoBufferError
from rpmsg.port.core import PortConfig, PortLink
from rpmsg.port.crc import CrcFunction
from rpmsg.port.ops import DROP_TX, PortCore, RxCallback
from rpmsg.port.queues import BufferQueue, PortBuffer
from rpmsg.port.spi.phys import SpiPhys
from rpmsg.port.spi.proto import Cmd, SpiFrame, SpiProtocol, State, parse_frame
from rpmsg.tap import Direction
from rpmsg.wire.port import PORT_HEADER, PORT_HEADER_SIZE

log = logging.getLogger("rpmsg.port.spi")

#: Share of the close budget kept for stopping threads after queued frames and SHUTDOWN
#: went out (NuttX's reboot notifier waits about 1 s for SHUTDOWN).
CLOSE_JOIN_SHARE = 0.2


class SpiBackend:
    """One side (master or slave) of an RPMsg Port SPI link over a :class:`SpiPhys`.

    ``connect_retry`` (seconds) re-attempts the connect while unconnected and idle, so two
    sides that missed each other's CONNECT (e.g. one restarted mid-handshake) still meet;
    NuttX itself never retries. 0 disables it.
    """

    def __init__(self, phys: SpiPhys, *, rxnum: int, remotecpu: str = "",
                 legacy: bool = False, crc: CrcFunction | None = None,
                 crc_optional: bool = False, rx_threshold: int = 50,
                 connect_retry: float = 1.0) -> None:
        self.phys = phys
        self.role = phys.role
        self.proto = SpiProtocol(phys.role, buflen=phys.buflen, rxnum=rxnum, name=remotecpu,
                                 legacy=legacy, crc=crc, crc_optional=crc_optional,
                                 rx_threshold=rx_threshold)
        self.connect_retry = connect_retry
        self.port: PortCore | None = None
        self._rxcb: RxCallback | None = None
        self._cv = threading.Condition()
        self._edges = 0
        self._kick = False
        self._quiesce = False
        # Slave: a buffer is queued in the controller and SREQ is up (None when idle); the
        # DATA buffer in it goes back to the TX free list when the transfer completes.
        self._armed = False
        self._armed_buf: PortBuffer | None = None
        self._req_lock = threading.Lock()
        self._closing = False
        self._stopped = False
        self._posted: PortBuffer | None = None
        self._ready: deque[tuple[SpiFrame, PortBuffer | None]] = deque()
        self._cmdbuf = bytearray(phys.buflen)
        self._request_level = False
        self._threads: list[threading.Thread] = []
        self._last_activity = time.monotonic()
        self.local_cpuname = ""
        self._counters = {"rx_ready_dropped": 0, "link_ups": 0, "link_downs": 0,
                          "connect_retries": 0, "tx_dropped_close": 0}

    def attach(self, port: PortCore) -> None:
        """Bind to the port core that owns this backend (before it starts)."""
        self.port = port

    # PortBackend -----------------------------------------------------------------------------

    def register_callback(self, callback: RxCallback) -> None:
        self._rxcb = callback

    def start(self) -> None:
        self._posted = self._take_posted()
        self.phys.start(self)
        name = "rpmsg-spi" if self.role == "master" else "rpmsg-spi-slv"
        for target, suffix in ((self._bus_loop, ""), (self._rx_loop, "-rx")):
            t = threading.Thread(target=self._guard(target), name=name + suffix, daemon=True)
            self._threads.append(t)
            t.start()

    def notify_tx_ready(self) -> None:
        with self._cv:
            connected = self.proto.state is State.CONNECTED
            if connected:
                self._kick = True
                self._cv.notify_all()
        if not connected:
            self._port().drop_packets(DROP_TX)

    def notify_rx_free(self) -> None:
        port = self._port()
        with self._cv:
            if self.proto.wants_credit_refresh(port.rxq.navail()):
                self._kick = True
                self._cv.notify_all()

    def notify_queue_noavail(self, queue: BufferQueue) -> bool:
        return False

    def close(self, timeout: float) -> None:
        """Let queued frames and SHUTDOWN out within most of ``timeout``, then stop."""
        with self._cv:
            if self._stopped:
                return
            self._stopped = True
        now = time.monotonic()
        end = now + timeout
        port = self.port
        if port is not None and not self._closing:
            self._orderly_shutdown(port, now + timeout * (1 - CLOSE_JOIN_SHARE))
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        if port is not None:
            dropped = port.drop_packets(DROP_TX)
            if dropped:
                self._counters["tx_dropped_close"] += dropped
                log.info("SPI %s: %d frames not sent before the close budget ran out",
                         self.role, dropped)
        me = threading.current_thread()
        for t in self._threads:
            if t is not me:
                t.join(max(0.0, end - time.monotonic()) / 2)
        if self.role == "slave":
            self._disarm()
        try:
            self.phys.set_request(False)
        except Exception:
            pass
        self.phys.close(max(0.0, end - time.monotonic()))
        for t in self._threads:
            if t.is_alive() and t is not me:
                log.warning("SPI %s: %s still running at close (blocked in a callback?); "
                            "left behind as a daemon thread", self.role, t.name)

    def stats(self) -> dict[str, int]:
        with self._cv:
            s = self.proto.stats
            out = {k: v for k, v in vars(s).items() if isinstance(v, int)}
            for cmd, n in s.counts_by_cmd.items():
                out[f"tx_{cmd.lower()}"] = n
            out.update(self._counters)
            out["txavail"] = self.proto.txavail
        for key, value in self.phys.stats().items():
            out[f"bus_{key}"] = value
        return out

    def seen(self) -> str:
        """The bus's story in one phrase: state, exchanges, frames refused and why."""
        with self._cv:
            st = self.proto.stats
            state = self.proto.state
            facts = [f"SPI {self.role} {state.name.lower()} after {st.exchanges} exchanges"]
            crc = st.rx_bad_crc + st.rx_no_crc
            if crc and not (st.rx_data or st.rx_commands):
                facts.append(f"no frame passed the CRC: {crc} dropped; check crc= on both "
                             "sides")
            elif crc:
                facts.append(f"{crc} frames failed the CRC")
            if st.rx_bad_frame:
                facts.append(f"{st.rx_bad_frame} malformed frames")
            if st.rx_ignored_state and state is not State.CONNECTED:
                facts.append(f"{st.rx_ignored_state} frames ignored while not connected")
        bus = self.phys.stats()
        if bus.get("peer_connects") == 0:
            facts.append("no peer joined the bus yet")
        if bus.get("bad_peers"):
            facts.append(f"{bus['bad_peers']} connections that did not speak the bus "
                         "protocol were dropped")
        if bus.get("underruns"):
            facts.append(f"{bus['underruns']} transfers found no armed slave buffer")
        last = getattr(self.phys, "last_error", None)
        if last:
            facts.append(f"last peer dropped: {last}")
        return "; ".join(facts)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"spi_role": self.role, "buflen": self.phys.buflen,
                               "state": self.proto.state.name,
                               "legacy": self.proto.legacy, "crc": self.proto.crc is not None,
                               "local_cpuname": self.local_cpuname}
        out.update(self.phys.describe())
        return out

    # PhysEvents ------------------------------------------------------------------------------

    def peer_edge(self) -> None:
        with self._cv:
            self._edges += 1
            self._cv.notify_all()

    def transfer_done(self, rx: bytes) -> None:
        """Slave: the master clocked our armed buffer. Complete and re-arm here, on the
        physical layer's thread (NuttX's completion interrupt), without a hand-off."""
        port = self._port()
        with self._cv:
            if not self._armed:  # cancelled by close meanwhile
                return
            txbuf, self._armed_buf = self._armed_buf, None
        if txbuf is not None:
            port.txq.return_buffer(txbuf)
        self._set_request(False)
        if port.tap is not None:
            self._tap_exchange("rx", rx)
        # Still "armed" until the completion is done: the protocol remembers the one frame
        # it sealed last, so nobody may seal the next one before this exchange completes
        # (the slave loop re-arming in between made a SHUTDOWN look sent with a DATA's
        # completion, and the master never saw it).
        self._complete(rx)
        with self._cv:
            self._armed = False
            again = self._kick and not self._closing
            if again:
                self._kick = False
            self._cv.notify_all()
        if again:
            self._arm()

    def phys_error(self, error: Exception) -> None:
        self._fail(error)

    # Internals -------------------------------------------------------------------------------

    def _port(self) -> PortCore:
        if self.port is None:
            raise RuntimeError("SpiBackend used before attach(port)")
        return self.port

    def _guard(self, fn: Any) -> Any:
        def run() -> None:
            try:
                fn()
            except Exception as exc:  # a dying thread is reported, never silent
                if not self._closing:
                    log.exception("SPI %s thread failed", self.role)
                    self._fail(exc)
        return run

    def _fail(self, error: Exception) -> None:
        with self._cv:
            if self._closing:
                return
            self._closing = True
            self._cv.notify_all()
        if self.port is not None:
            self.port.mark_broken(error)

    def _orderly_shutdown(self, port: PortCore, deadline: float) -> None:
        """Let queued frames go out, then send SHUTDOWN (current protocol), by ``deadline``."""
        with self._cv:
            while port.txq.nused() and not self._closing and self.proto.connected:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cv.wait(min(left, 0.05))  # each completion notifies
            if not self.proto.request_shutdown():
                return
            self._kick = True
            self._cv.notify_all()
            while self.proto.shutdown_pending and not self._closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(left)

    def _set_request(self, active: bool) -> None:
        with self._req_lock:
            if active != self._request_level:
                self._request_level = active
                self.phys.set_request(active)

    # Bus thread ------------------------------------------------------------------------------

    def _bus_loop(self) -> None:
        if self.role == "master":
            self._master_loop()
        else:
            self._slave_loop()

    def _retry_due(self) -> bool:
        return (self.connect_retry > 0 and self.proto.state is State.UNCONNECTED
                and time.monotonic() - self._last_activity >= self.connect_retry)

    def _master_loop(self) -> None:
        phys = self.phys
        with self._cv:
            if phys.peer_active():
                self._edges = max(self._edges, 1)
            else:
                self._kick = True
        while True:
            with self._cv:
                while True:
                    if self._closing:
                        return
                    if self._edges and phys.peer_active():
                        self._edges = 0
                        action = "exchange"
                        break
                    self._edges = 0
                    if self._quiesce:
                        self._quiesce = self._kick = False
                        action = "lower"
                        break
                    if self._kick:
                        self._kick = False
                        action = "raise"
                        break
                    if self._retry_due():
                        action = "retry"
                        break
                    self._cv.wait(self.connect_retry or None)
            if action == "exchange":
                self._set_request(False)
                self._exchange()
            elif action == "lower":
                self._set_request(False)
            elif action == "raise":
                self._set_request(True)
            else:  # retry: make a fresh MREQ edge
                self._counters["connect_retries"] += 1
                self._last_activity = time.monotonic()
                self._set_request(False)
                self._set_request(True)

    def _slave_loop(self) -> None:
        """Arm a buffer when idle and asked to (a frame to send, credits to refresh, MREQ
        from the master, boot); an armed buffer re-arms from its own completion."""
        phys = self.phys
        with self._cv:
            self._kick = True  # boot: queue CONNECT and raise SREQ
        while True:
            with self._cv:
                while True:
                    if self._closing:
                        return
                    mreq = bool(self._edges) and phys.peer_active()
                    self._edges = 0
                    self._quiesce = False
                    if self._armed:  # the master will clock it; the completion re-arms
                        self._cv.wait(self.connect_retry or None)
                        continue
                    if self._kick or mreq:
                        self._kick = False
                        break
                    if self._retry_due():
                        self._counters["connect_retries"] += 1
                        break
                    self._cv.wait(self.connect_retry or None)
            self._arm()

    def _arm(self) -> None:
        """Slave: choose and seal the next frame, queue it and raise SREQ."""
        with self._cv:
            if self._armed or self._closing:
                return
            self._armed = True
        try:
            data, txbuf = self._prepare()
        except BaseException:
            with self._cv:
                self._armed = False
            raise
        with self._cv:
            self._armed_buf = txbuf
        if self._port().tap is not None:
            self._tap_exchange("tx", data)
        self._last_activity = time.monotonic()
        self.phys.queue_tx(data)
        self._set_request(True)

    def _disarm(self) -> None:
        """Slave, closing: withdraw an armed buffer the master did not clock."""
        with self._cv:
            if not self._armed:
                return
            txbuf, self._armed_buf = self._armed_buf, None
            self._armed = False
        self.phys.cancel_tx()
        if txbuf is not None:
            self._port().txq.return_buffer(txbuf)

    def _exchange(self) -> None:
        """Master: one full-duplex exchange and its completion (NuttX ``exchange`` +
        ``complete``)."""
        port = self._port()
        data, txbuf = self._prepare()
        if port.tap is not None:
            self._tap_exchange("tx", data)
        self._last_activity = time.monotonic()
        try:
            rx = self.phys.transfer(data)
        finally:
            if txbuf is not None:
                port.txq.return_buffer(txbuf)
        if port.tap is not None:
            self._tap_exchange("rx", rx)
        self._complete(rx)

    def _prepare(self) -> tuple[bytes, PortBuffer | None]:
        """The next frame to exchange, sealed (NuttX ``exchange``'s choice), and the DATA
        buffer it came from, which the caller gives back once it went out."""
        port = self._port()
        proto = self.proto
        txbuf: PortBuffer | None = None
        with self._cv:
            if self._posted is None:
                self._posted = self._take_posted()
            cmd = proto.choose(port.txq.nused() > 0)
            if cmd is Cmd.DATA:
                txbuf = port.txq.get_buffer(0)
                if txbuf is None:  # dropped meanwhile
                    cmd = proto.choose(False)
            try:
                if txbuf is not None:
                    port.update_timestamp(txbuf, rx=False)
                    frame = txbuf.view
                else:
                    frame = memoryview(self._cmdbuf)
                proto.seal(frame, cmd, port.rxq.navail())
                return bytes(frame), txbuf
            except BaseException:
                if txbuf is not None:
                    port.txq.return_buffer(txbuf)
                raise

    def _tap_exchange(self, direction: Direction, data: bytes) -> None:
        """Report one exchanged buffer to the frame tap: its frame up to ``len``."""
        tap = self._port().tap
        if tap is None:
            return
        crc, cmd, avail, length = PORT_HEADER.unpack(data)
        end = length if PORT_HEADER_SIZE <= length <= len(data) else PORT_HEADER_SIZE
        try:
            name = Cmd(cmd).name
        except ValueError:
            name = str(cmd)
        verdict = "none" if direction == "tx" and self.proto.crc is None else "ok"
        if direction == "rx":
            try:
                verdict = self.proto.crc_verdict(parse_frame(data, legacy=self.proto.legacy))
            except DecodeError:
                verdict = "bad" if self.proto.crc is not None and crc else "none"
        tap.frame(direction, "spi", data[:end], {"cmd": name, "credits": avail,
                                                 "crc": verdict})

    def _complete(self, rx: bytes) -> None:
        port = self._port()
        proto = self.proto
        with self._cv:
            if self._posted is None:
                self._posted = self._take_posted()
            out = proto.complete(rx, port.rxq.navail() if self._posted is not None else 0)
            if out.drop_tx:
                port.drop_packets(DROP_TX)
            if out.drop_rx:
                self._drop_ready()
            frame: SpiFrame | None = out.queued
            if frame is not None:
                item: PortBuffer | None = None
                posted = self._posted
                if frame.cmd is Cmd.DATA and posted is None:  # the port is closing
                    proto.stats.rx_no_buffer += 1
                    frame = None
                elif frame.cmd is Cmd.DATA and posted is not None:
                    posted.view[:] = rx
                    port.update_timestamp(posted, rx=True)
                    item = posted
                    frame = SpiFrame(frame.cmd, frame.avail, frame.length, frame.crc,
                                     posted.view[:frame.length])
                    self._posted = self._take_posted()
                else:
                    frame = SpiFrame(frame.cmd, frame.avail, frame.length, frame.crc,
                                     memoryview(bytes(frame.data)), frame.name)
                if frame is not None:
                    self._ready.append((frame, item))
            if out.ignored is not None:
                log.debug("SPI %s: received frame dropped: %s", self.role, out.ignored)
            if out.request or proto.should_continue(port.txq.nused() > 0):
                self._kick = True
            self._cv.notify_all()

    def _take_posted(self) -> PortBuffer | None:
        """A free RX buffer to receive the next DATA frame into (None if none or closed)."""
        try:
            return self._port().rxq.get_available_buffer(0)
        except (NoBufferError, EndpointClosedError):
            return None

    def _drop_ready(self) -> None:
        """Return every unprocessed received frame (lock held); NuttX ``drop_packets``."""
        port = self._port()
        while self._ready:
            _frame, buf = self._ready.popleft()
            if buf is not None:
                port.rxq.return_buffer(buf)
                self._counters["rx_ready_dropped"] += 1

    # RX thread -------------------------------------------------------------------------------

    def _rx_loop(self) -> None:
        port = self._port()
        while True:
            with self._cv:
                while not self._ready and not self._closing:
                    self._cv.wait()
                if self._closing:
                    return
                frame, buf = self._ready.popleft()
                result = self.proto.process(frame)
                if result.request:
                    self._kick = True
                if result.quiesce:
                    self._quiesce = True
                self._cv.notify_all()
            if result.link_down is not None and port.is_up:
                self._counters["link_downs"] += 1
                port.unregister(result.link_down, restart=result.restart)  # logged by the Device
            if result.link_up is not None:
                self.local_cpuname = result.link_up
                self._counters["link_ups"] += 1
                port.register(f"SPI {self.role}"
                              + (f", the peer calls us {result.link_up!r}" if result.link_up
                                 else ""))
            if result.deliver is not None and buf is not None:
                cb = self._rxcb
                if cb is not None:
                    cb(buf)
                else:
                    port.rxq.return_buffer(buf)


def open_spi_link(phys: SpiPhys, *, txnum: int = 8, rxnum: int = 8, remotecpu: str = "",
                  legacy: bool = False, crc: CrcFunction | None = None,
                  crc_optional: bool = False, rx_threshold: int = 50,
                  connect_retry: float = 1.0) -> PortLink:
    """A :class:`PortLink` over SPI: port core + :class:`SpiBackend` on ``phys``."""
    backend = SpiBackend(phys, rxnum=rxnum, remotecpu=remotecpu, legacy=legacy, crc=crc,
                         crc_optional=crc_optional, rx_threshold=rx_threshold,
                         connect_retry=connect_retry)
    config = PortConfig(txnum=txnum, rxnum=rxnum, txlen=phys.buflen, rxlen=phys.buflen,
                        protocol="legacy" if legacy else "current", remotecpu=remotecpu)
    port = PortLink(backend, config, role=f"spi-{phys.role}")
    backend.attach(port)
    return port
