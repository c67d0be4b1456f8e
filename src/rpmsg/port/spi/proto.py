"""Sans-IO state machine of NuttX's RPMsg Port SPI protocol, for both the master and the slave.

Every SPI transaction is a full-duplex exchange of one whole buffer each way. This module
decides which frame to send (CONNECT, SHUTDOWN, DATA or AVAIL), stamps the port header
(command, credits, CRC), validates what came back and moves the connection state; the driver
in :mod:`rpmsg.port.spi.backend` does the I/O. Facts: ``shared/spec/rpmsg-port.md`` §4.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

from rpmsg.errors import DecodeError, InvalidArgumentError
from rpmsg.port.core import min_buffer_len
from rpmsg.port.crc import CrcFunction, frame_crc
from rpmsg.wire.layout import Buffer, decode_name
from rpmsg.wire.port import PORT_HEADER, PORT_HEADER_SIZE, TIMESTAMP_TRAILER_SIZE
from rpmsg.wire.rpmsg import HEADER_SIZE, NAME_SIZE, RPMSG_HEADER

Role = Literal["master", "slave"]


class Cmd(enum.IntEnum):
    """The ``cmd`` field of an SPI frame. Legacy builds (before 12.13) know only 1..3."""

    CONNECT = 1
    AVAIL = 2
    DATA = 3
    SUSPEND = 4
    RESUME = 5
    SHUTDOWN = 6


LEGACY_COMMANDS = frozenset({Cmd.CONNECT, Cmd.AVAIL, Cmd.DATA})


class State(enum.IntEnum):
    """Connection states, numbered as in NuttX's ``rpmsg_port_spi_state_e``."""

    UNCONNECTED = 1
    CONNECTING = 2
    RECONNECTING = 3
    DISCONNECTING = 4
    CONNECTED = 5


#: Fewest RX buffers: one posted, one for the DATA frame that crosses, one credit.
MIN_RXNUM = 3


def min_buflen(legacy: bool) -> int:
    """Smallest SPI buffer: the port's minimum buffer for the protocol (room for an NS
    message after the headers and, in the current protocol, the timestamp trailer)."""
    return min_buffer_len("legacy" if legacy else "current")


#: The CPU name of a CONNECT frame sits right after the port header, outside ``len``.
CONNECT_NAME_OFFSET = PORT_HEADER_SIZE
#: A DATA frame carries at least the port header and the RPMsg header.
DATA_HEADER_SIZE = PORT_HEADER_SIZE + HEADER_SIZE
_OFF_CRC = PORT_HEADER.offset("crc")


@dataclass(frozen=True, slots=True)
class SpiFrame:
    """A received frame that passed the bounds checks; ``data`` is the frame up to ``len``."""

    cmd: Cmd
    avail: int
    length: int
    crc: int
    data: memoryview
    #: The CPU name of a CONNECT frame (what the peer calls us); empty otherwise.
    name: str = ""


def parse_frame(buf: Buffer, *, legacy: bool = False) -> SpiFrame:
    """Decode and bounds-check one received SPI buffer; raises :class:`DecodeError` if invalid.

    ``buf`` is the whole exchanged buffer. Unknown commands, ``len`` outside the buffer, DATA
    frames too short for the RPMsg header and RPMsg lengths that overrun ``len`` are errors
    (NuttX trusts all of these; we do not).
    """
    view = memoryview(buf)
    crc, cmd, avail, length = PORT_HEADER.unpack(view)
    known = LEGACY_COMMANDS if legacy else Cmd.__members__.values()
    if cmd not in known:
        raise PORT_HEADER.error("cmd", f"unknown SPI command {cmd}")
    if length < PORT_HEADER_SIZE or length > len(view):
        raise PORT_HEADER.error("len", f"frame length {length} outside "
                                f"{PORT_HEADER_SIZE}..{len(view)}")
    command = Cmd(cmd)
    name = ""
    if command is Cmd.DATA:
        if length < DATA_HEADER_SIZE:
            raise PORT_HEADER.error("len", f"DATA frame of {length} bytes is shorter than the "
                                    f"{DATA_HEADER_SIZE}-byte headers")
        payload_len = RPMSG_HEADER.unpack(view, PORT_HEADER_SIZE)[3]
        if payload_len > length - DATA_HEADER_SIZE:
            raise RPMSG_HEADER.error("len", f"payload length {payload_len} exceeds the "
                                     f"{length - DATA_HEADER_SIZE} bytes of the frame",
                                     PORT_HEADER_SIZE)
    elif command is Cmd.CONNECT:
        raw = bytes(view[CONNECT_NAME_OFFSET:CONNECT_NAME_OFFSET + NAME_SIZE])
        name = decode_name(raw + b"\0") if raw else ""
    return SpiFrame(command, avail, length, crc, view[:length], name)


# Completion result -------------------------------------------------------------------------


@dataclass(slots=True)
class Completion:
    """What the driver must do after an exchange, as decided by :meth:`SpiProtocol.complete`."""

    #: A frame for the RX ready list (CONNECT, DATA, SHUTDOWN), processed in order later.
    queued: SpiFrame | None = None
    #: Return every TX buffer waiting on the ready list to the free list.
    drop_tx: bool = False
    #: Return every unprocessed RX frame on the ready list to the free list.
    drop_rx: bool = False
    #: The peer's RUNNING signal changed (SUSPEND/RESUME): new value, or None.
    running: bool | None = None
    #: Why the received frame was ignored (None when it was used).
    ignored: str | None = None
    #: Exchange again soon: the peer sent CONNECT while we did not, so ours must follow.
    request: bool = False


@dataclass(slots=True)
class Processed:
    """Outcome of :meth:`SpiProtocol.process` for one frame taken off the RX ready list."""

    #: Bring the link up with this local CPU name (the name the peer sent us).
    link_up: str | None = None
    #: Take the link down for this reason.
    link_down: str | None = None
    #: ... because the peer restarted while the link was up (its CONNECT).
    restart: bool = False
    #: Deliver this DATA frame to the port core's RX dispatch.
    deliver: SpiFrame | None = None
    #: Start a new connect (master: raise MREQ; slave: queue an exchange).
    request: bool = False
    #: Stop requesting exchanges (master: lower MREQ; slave: cancel a queued exchange).
    quiesce: bool = False


@dataclass
class SpiStats:
    """Counters of one side of the SPI protocol; every ignored frame is counted by reason."""

    exchanges: int = 0
    tx_data: int = 0
    tx_commands: int = 0
    rx_data: int = 0
    rx_commands: int = 0
    rx_bad_frame: int = 0
    rx_bad_crc: int = 0
    rx_no_crc: int = 0
    rx_ignored_state: int = 0
    rx_no_buffer: int = 0
    counts_by_cmd: dict[str, int] = field(default_factory=dict)


class SpiProtocol:
    """One side of the SPI link: frame choice, credits, CRC and the connection state.

    Not thread-safe: the driver serialises calls under its own lock. ``name`` is what this
    side sends in CONNECT, i.e. the *peer's* CPU name (NuttX's ``cfg.remotecpu``); the name
    the peer sends us becomes our local CPU name when the link comes up.
    """

    def __init__(self, role: Role, *, buflen: int, rxnum: int, name: str = "",
                 legacy: bool = False, crc: CrcFunction | None = None,
                 crc_optional: bool = False, rx_threshold: int = 50) -> None:
        if role not in ("master", "slave"):
            raise InvalidArgumentError(f"role must be 'master' or 'slave', not {role!r}")
        minimum = min_buflen(legacy)
        if not minimum <= buflen <= 0xFFFF:
            raise InvalidArgumentError(
                f"buflen {buflen} outside {minimum}..65535 (a DATA frame's headers"
                f"{'' if legacy else ' and timestamps'} plus a name-service message)")
        if rxnum < MIN_RXNUM:
            raise InvalidArgumentError(
                f"rxnum must be at least {MIN_RXNUM} (one posted buffer, one crossing frame "
                "and one credit)")
        if not 0 <= rx_threshold <= 100:
            raise InvalidArgumentError(f"rx_threshold {rx_threshold} outside 0..100 %")
        self.role: Role = role
        self.buflen = buflen
        self.rxnum = rxnum
        self.name = name
        self.name_bytes = name.encode("utf-8", "surrogateescape")[:NAME_SIZE - 1] + b"\0"
        self.legacy = legacy
        self.crc = crc
        #: Accept frames whose CRC field is 0 even when their computed CRC is not.
        self.crc_optional = crc_optional
        #: Freed RX buffers beyond the last advertisement that force an AVAIL exchange.
        self.rxthres = (rxnum - 1) * rx_threshold // 100
        self.state = State.UNCONNECTED
        #: The peer's latest credit value: how many DATA frames we may send.
        self.txavail = 0
        #: The credit value we advertised last.
        self.rxavail = 0
        self.shutdown_pending = False
        #: The peer's RUNNING signal (SUSPEND clears it, RESUME sets it).
        self.peer_running = True
        self.stats = SpiStats()
        self._last_sent: Cmd | None = None

    # Sizes -------------------------------------------------------------------------------

    @property
    def mtu(self) -> int:
        """Largest RPMsg payload of one DATA frame: buflen - 40 (legacy: - 24)."""
        trailer = 0 if self.legacy else TIMESTAMP_TRAILER_SIZE
        return self.buflen - DATA_HEADER_SIZE - trailer

    @property
    def connected(self) -> bool:
        return self.state is State.CONNECTED

    # Sending -----------------------------------------------------------------------------

    def choose(self, tx_ready: bool) -> Cmd:
        """The frame of the next exchange; first match wins (spec §4.2)."""
        if self.state is State.UNCONNECTED:
            return Cmd.CONNECT
        if self.shutdown_pending and not self.legacy:
            return Cmd.SHUTDOWN
        if self.txavail > 0 and tx_ready:
            return Cmd.DATA
        return Cmd.AVAIL

    def advertised(self, free_rx: int) -> int:
        """Credits we advertise: free RX buffers (posted one excluded) minus one, at least 0."""
        return min(max(free_rx - 1, 0), 0xFFFF)

    def seal(self, buf: bytearray | memoryview, cmd: Cmd, free_rx: int,
             now_ns: int | None = None) -> None:
        """Stamp the port header of the outgoing buffer ``buf`` (``buflen`` bytes).

        For DATA, ``buf`` already holds the port ``len`` and the RPMsg message. For commands
        the header (and CONNECT's name) is written here. Records the advertised credits.
        """
        view = memoryview(buf)
        if len(view) != self.buflen:
            raise ValueError(f"SPI buffer is {len(view)} bytes, expected {self.buflen}")
        avail = self.advertised(free_rx)
        if cmd is Cmd.DATA:
            length = PORT_HEADER.unpack(view)[3]
            if not DATA_HEADER_SIZE <= length <= self.buflen:
                raise ValueError(f"DATA frame length {length} outside "
                                 f"{DATA_HEADER_SIZE}..{self.buflen}")
            self.stats.tx_data += 1
        else:
            length = self.buflen if self.legacy else PORT_HEADER_SIZE
            if cmd is Cmd.CONNECT:
                end = CONNECT_NAME_OFFSET + len(self.name_bytes)
                view[CONNECT_NAME_OFFSET:end] = self.name_bytes
            self.stats.tx_commands += 1
        PORT_HEADER.pack_into(view, 0, 0, int(cmd), avail, length)
        if not self.legacy and now_ns is not None:
            # tx_nsec of the timestamp trailer (spec §2.5); diagnostics only.
            view[self.buflen - TIMESTAMP_TRAILER_SIZE:self.buflen - 8] = \
                (now_ns & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")
        if self.crc is not None:
            value = frame_crc(self.crc, view[:length])
            view[_OFF_CRC:_OFF_CRC + 2] = value.to_bytes(2, "little")
        self.rxavail = avail
        self._last_sent = cmd
        self.stats.exchanges += 1
        key = cmd.name
        self.stats.counts_by_cmd[key] = self.stats.counts_by_cmd.get(key, 0) + 1

    # Receiving (the completion, in NuttX's interrupt context) ---------------------------------

    def complete(self, rx: Buffer, free_rx: int) -> Completion:
        """Handle the buffer received in the exchange just finished (spec §4.3 completion).

        ``free_rx`` is how many RX buffers are free besides the posted one; a DATA frame that
        finds none (the peer ignored our credits) is dropped and counted.
        """
        out = Completion()
        sent = self._last_sent
        if sent is Cmd.SHUTDOWN:
            self.shutdown_pending = False
        self._last_sent = None
        try:
            frame = parse_frame(rx, legacy=self.legacy)
        except DecodeError as exc:
            self.stats.rx_bad_frame += 1
            out.ignored = f"bad frame: {exc}"
            return out
        crc_problem = self.check_crc(frame)
        if crc_problem is not None:
            out.ignored = crc_problem
            return out
        state = self.state
        cmd = frame.cmd
        if state is State.UNCONNECTED:
            if cmd is not Cmd.CONNECT:
                return self._ignore(out, "not connected")
            if sent is not Cmd.CONNECT:
                # Both sides must have sent CONNECT in the same exchange, or the peer never
                # sees ours (a frame armed before we dropped to UNCONNECTED went out
                # instead): stay, and exchange again with our CONNECT.
                out.request = True
                ours = sent.name if sent is not None else "nothing"
                return self._ignore(out, f"the peer's CONNECT met our {ours}")
            self.txavail = frame.avail
            self.state = State.CONNECTING
        elif state is State.CONNECTED:
            self.txavail = frame.avail
            if cmd is Cmd.CONNECT:
                self.state = State.RECONNECTING
                out.drop_tx = out.drop_rx = True
        elif cmd is Cmd.CONNECT:
            if state is State.DISCONNECTING:
                self.state = State.CONNECTING
            return self._ignore(out, f"CONNECT while {state.name}")
        if cmd is Cmd.AVAIL:
            self.stats.rx_commands += 1
            return out
        if cmd is Cmd.SUSPEND or cmd is Cmd.RESUME:
            self.stats.rx_commands += 1
            self.peer_running = out.running = cmd is Cmd.RESUME
            return out
        if cmd is Cmd.SHUTDOWN:
            self.state = State.DISCONNECTING
            out.drop_tx = out.drop_rx = True
        if cmd is Cmd.DATA:
            if free_rx <= 0 and not out.drop_rx:
                self.stats.rx_no_buffer += 1
                out.ignored = "no free RX buffer (peer exceeded its credits)"
                return out
            self.stats.rx_data += 1
        else:
            self.stats.rx_commands += 1
        out.queued = frame
        return out

    def crc_verdict(self, frame: SpiFrame) -> str:
        """``"ok"``, ``"none"`` (no CRC configured, or a CRC-less frame accepted under
        ``crc_optional``), ``"missing"`` (CRC field 0 while one is required) or ``"bad"``.

        With a CRC configured, a CRC field of 0 ("none" in NuttX) passes only if the
        computed CRC is 0 too, or with ``crc_optional``; any other value must match.
        """
        if self.crc is None:
            return "none"
        computed = frame_crc(self.crc, frame.data)
        if frame.crc == 0 and computed != 0:
            return "none" if self.crc_optional else "missing"
        return "ok" if computed == frame.crc else "bad"

    def check_crc(self, frame: SpiFrame) -> str | None:
        """Why ``frame`` fails the CRC rule (counted), or None if it passes."""
        verdict = self.crc_verdict(frame)
        if verdict == "missing":
            self.stats.rx_no_crc += 1
            return "CRC field 0 (peer sends no CRC?) while a CRC is configured"
        if verdict == "bad":
            self.stats.rx_bad_crc += 1
            return "CRC mismatch"
        return None

    def _ignore(self, out: Completion, reason: str) -> Completion:
        self.stats.rx_ignored_state += 1
        out.ignored = reason
        return out

    # Processing the RX ready list (NuttX's SPI thread) ------------------------------------------

    def process(self, frame: SpiFrame) -> Processed:
        """Act on a frame taken off the RX ready list, in arrival order (spec §4.3 thread)."""
        out = Processed()
        if frame.cmd is Cmd.DATA:
            out.deliver = frame
        elif frame.cmd is Cmd.CONNECT:
            if self.state is State.RECONNECTING:
                out.link_down = "the peer restarted (CONNECT while connected)"
                out.restart = True
                self.state = State.UNCONNECTED
                out.request = True
            elif self.state is State.DISCONNECTING:
                # A SHUTDOWN raced in behind the reconnect: wait for the peer to come back.
                out.link_down = "the peer shut down"
                self.state = State.UNCONNECTED
                out.quiesce = True
            elif self.state is State.CONNECTING:
                self.state = State.CONNECTED
                out.link_up = frame.name
        elif frame.cmd is Cmd.SHUTDOWN:
            out.link_down = "the peer shut down (SHUTDOWN)"
            if self.state is State.DISCONNECTING:
                self.state = State.UNCONNECTED
                out.quiesce = True
            elif self.state is State.CONNECTING:
                self.state = State.UNCONNECTED
                out.request = True
        return out

    # Requests ------------------------------------------------------------------------------

    def wants_credit_refresh(self, free_rx: int) -> bool:
        """Whether freeing RX buffers should force an AVAIL exchange (spec §4.4)."""
        return free_rx - self.rxavail >= self.rxthres and self.state is State.CONNECTED

    def should_continue(self, tx_ready: bool) -> bool:
        """After a completion: connected with credit and TX waiting means exchange again."""
        return self.state is State.CONNECTED and self.txavail > 0 and tx_ready

    def request_shutdown(self) -> bool:
        """Arrange for SHUTDOWN in the next exchange; False if there is no link to shut."""
        if self.legacy or self.state is not State.CONNECTED:
            return False
        self.shutdown_pending = True
        return True

    def reset(self) -> None:
        """Back to UNCONNECTED, as after a local restart (credits forgotten)."""
        self.state = State.UNCONNECTED
        self.txavail = 0
        self.rxavail = 0
        self.shutdown_pending = False
        self._last_sent = None
