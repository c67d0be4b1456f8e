"""Sans-IO connection and wake state machine of the NuttX RPMsg Port UART link.

:class:`UartLinkMachine` takes control bytes received, the clock, and the TX side's wish to
send a burst; it answers with actions: bytes to write, link up/down, running state. It follows
spec ``rpmsg-port.md`` §3.4-3.9: CONNREQ once at start and again only after about 1 s without
CONNACK; a CONNREQ while connected means the peer restarted (link down, then up, CONNACK);
STAYWAKE 0x79/0x75 always answered with 0x78/0x74; before each TX burst the STAYWAKE ping-pong
(resent every 100 ms until acknowledged), RELAXWAKE after it; SUSPEND/RESUME toggle the
remote's running state; POWEROFF takes the link down until the next CONNREQ/CONNACK.

One addition to NuttX: a CONNREQ while connected is taken as a peer restart, but a CONNREQ
byte can also be line noise (or a stray write), after which this side has dropped its
bindings while the peer has not and would never announce again. So if no name-service
message (which a restarted peer sends at once) arrives within :attr:`reconnect_interval`
after such a CONNREQ, this side sends its own CONNREQ: a peer that did not restart takes it as
our restart and announces again, so both sides resynchronise whatever the cause.

The machine does no I/O and holds no lock; the driver serialises calls to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rpmsg.port.uart.framer import CURRENT, UartProtocol

#: Seconds without CONNACK before CONNREQ is sent again (each CONNREQ makes a connected NuttX
#: re-register, so not more often).
RECONNECT_INTERVAL = 1.0
#: Seconds between STAYWAKE repeats while waiting for the acknowledgement (NuttX: 100 ms).
STAYWAKE_INTERVAL = 0.1


# Actions ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Write:
    """Write these bytes to the line (control bytes; frames go through the TX queue)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class LinkUp:
    """The link is connected: register the port (endpoints announce)."""


@dataclass(frozen=True, slots=True)
class LinkDown:
    """The link was lost or the peer restarted: unregister, drop queued TX frames."""

    reason: str
    #: The peer restarted while the link was up (CONNREQ while connected).
    restart: bool = False


@dataclass(frozen=True, slots=True)
class Running:
    """The peer sent SUSPEND (False) or RESUME (True)."""

    running: bool


Action = Write | LinkUp | LinkDown | Running


class UartLinkMachine:
    """Link state of one UART RPMsg Port end."""

    def __init__(self, protocol: UartProtocol = CURRENT, *, staywake: bool = True,
                 reconnect_interval: float = RECONNECT_INTERVAL,
                 staywake_interval: float = STAYWAKE_INTERVAL) -> None:
        if staywake and not protocol.has_staywake:
            raise ValueError(f"the {protocol.name} UART protocol has no STAYWAKE handshake")
        self.protocol = protocol
        self.staywake = staywake
        self.reconnect_interval = reconnect_interval
        self.staywake_interval = staywake_interval
        self.connected = False
        #: Whether the remote reported itself running (SUSPEND clears, RESUME sets).
        self.remote_running = True
        self.waking = False
        self.waked = False
        self.tx_staywake = protocol.staywake1 if protocol.has_staywake else None
        self._connreq_at: float | None = None
        self._confirm_at: float | None = None
        self._staywake_at: float | None = None
        self._started = False
        self.counts = {"connreq_sent": 0, "connreq_received": 0, "connack_received": 0,
                       "peer_restarts": 0, "staywake_sent": 0, "staywake_answered": 0,
                       "staywakeack_ignored": 0, "poweroff_received": 0,
                       "restart_confirms": 0}
        p = protocol
        self._acks: dict[int, int] = {}
        if p.staywake1 is not None and p.staywakeack1 is not None:
            self._acks[p.staywake1] = p.staywakeack1
        if p.staywake2 is not None and p.staywakeack2 is not None:
            self._acks[p.staywake2] = p.staywakeack2
        self._handlers = self._build_handlers()

    # Connection ---------------------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """Begin connecting: send CONNREQ once."""
        self._started = True
        return self._connreq(now)

    def _connreq(self, now: float) -> list[Action]:
        self._connreq_at = now
        self.counts["connreq_sent"] += 1
        return [Write(bytes([self.protocol.connreq]))]

    def poll(self, now: float) -> list[Action]:
        """Timers: resend CONNREQ after :attr:`reconnect_interval` without CONNACK, and
        confirm a peer restart that announced nothing (see the module notes)."""
        if (self._started and not self.connected and self._connreq_at is not None
                and now - self._connreq_at >= self.reconnect_interval):
            return self._connreq(now)
        if self._confirm_at is not None and now >= self._confirm_at:
            self._confirm_at = None
            if self.connected:
                self.counts["restart_confirms"] += 1
                return [Write(bytes([self.protocol.connreq]))]
        return []

    @property
    def confirming(self) -> bool:
        """A peer restart awaits its first name-service message (see :meth:`peer_announced`)."""
        return self._confirm_at is not None

    def peer_announced(self) -> None:
        """A name-service message came from the peer: its restart is confirmed."""
        self._confirm_at = None

    def next_deadline(self) -> float | None:
        """When :meth:`poll` or :meth:`wake` next has something to do (monotonic seconds)."""
        deadlines = []
        if self._started and not self.connected and self._connreq_at is not None:
            deadlines.append(self._connreq_at + self.reconnect_interval)
        if self._confirm_at is not None:
            deadlines.append(self._confirm_at)
        if self.waking and self._staywake_at is not None:
            deadlines.append(self._staywake_at + self.staywake_interval)
        return min(deadlines) if deadlines else None

    def on_control(self, byte: int, now: float) -> list[Action]:
        """A control byte arrived (in or out of a frame; the framer already aborted it)."""
        handler = self._handlers.get(byte)
        # RELAXWAKE and anything unknown: nothing to do (no wakelock here).
        return [] if handler is None else handler(byte, now)

    def _build_handlers(self) -> dict[int, Callable[[int, float], list[Action]]]:
        """The dispatch table: control byte -> handler (absent bytes of a protocol skipped)."""
        p = self.protocol
        table: dict[int | None, Callable[[int, float], list[Action]]] = {
            p.connreq: self._on_connreq,
            p.connack: self._on_connack,
            p.staywakeack1: self._on_staywakeack,
            p.staywakeack2: self._on_staywakeack,
            p.poweroff: self._on_poweroff,
            p.suspend: self._on_running,
            p.resume: self._on_running,
        }
        for wake in self._acks:
            table[wake] = self._on_staywake
        return {byte: fn for byte, fn in table.items() if byte is not None}

    def _on_staywake(self, byte: int, now: float) -> list[Action]:
        """STAYWAKE1/2: always answered with the matching acknowledgement."""
        self.counts["staywake_answered"] += 1
        return [Write(bytes([self._acks[byte]]))]

    def _on_connreq(self, byte: int, now: float) -> list[Action]:
        """CONNREQ: connect and answer; while connected it means the peer restarted."""
        self.counts["connreq_received"] += 1
        out: list[Action] = []
        if self.connected:
            self.counts["peer_restarts"] += 1
            self._confirm_at = now + self.reconnect_interval
            out.append(LinkDown("the peer restarted (CONNREQ while connected)", restart=True))
        self.connected = True
        self._connreq_at = None
        out.append(Write(bytes([self.protocol.connack])))
        out.append(LinkUp())
        return out

    def _on_connack(self, byte: int, now: float) -> list[Action]:
        """CONNACK: the peer answered our CONNREQ (ignored when already connected)."""
        self.counts["connack_received"] += 1
        if self.connected:
            return []
        self.connected = True
        self._connreq_at = None
        return [LinkUp()]

    def _on_staywakeack(self, byte: int, now: float) -> list[Action]:
        """STAYWAKEACK1/2: ends our wake wait only if it answers the STAYWAKE we sent last."""
        if self.waking and self.tx_staywake is not None and byte == self.tx_staywake - 1:
            self.waking = False
            self.waked = True
            self._staywake_at = None
        else:
            self.counts["staywakeack_ignored"] += 1
        return []

    def _on_poweroff(self, byte: int, now: float) -> list[Action]:
        """POWEROFF: the peer goes away; the link is down until the next CONNREQ/CONNACK."""
        self.counts["poweroff_received"] += 1
        if self.waking:
            self.waking = False
            self.waked = True
        self._confirm_at = None
        if not self.connected:
            return []
        self.connected = False
        # Wait for the peer's CONNREQ, but also ask again now and then: harmless to a peer
        # that is not connected.
        self._connreq_at = now
        return [LinkDown("the peer powered off")]

    def _on_running(self, byte: int, now: float) -> list[Action]:
        """SUSPEND/RESUME: the peer's running state."""
        self.remote_running = byte == self.protocol.resume
        return [Running(self.remote_running)]

    def accept_frame(self) -> bool:
        """Whether a received frame is taken; frames are discarded while not connected."""
        return self.connected

    # TX bursts -----------------------------------------------------------------------------

    def wake(self, now: float) -> list[Action]:
        """Before a TX burst: the STAYWAKE to send now, if any. Ready when :attr:`ready`."""
        if not self.staywake:
            return []
        return self._staywake(now)

    def probe(self, now: float) -> list[Action]:
        """Closing: a STAYWAKE (resent like :meth:`wake`) whose acknowledgement proves the
        peer has read every byte sent before it; done when :attr:`probed`. Every peer of the
        current protocol answers STAYWAKE in any state, even with ``staywake`` off here."""
        if self.tx_staywake is None:
            return []
        return self._staywake(now)

    @property
    def probed(self) -> bool:
        """The peer acknowledged the :meth:`probe` (always False for the legacy protocol)."""
        return self.waked

    def _staywake(self, now: float) -> list[Action]:
        if self.waked:
            return []
        if self.waking and self._staywake_at is not None \
                and now - self._staywake_at < self.staywake_interval:
            return []
        self.waking = True
        self._staywake_at = now
        self.counts["staywake_sent"] += 1
        assert self.tx_staywake is not None
        return [Write(bytes([self.tx_staywake]))]

    @property
    def ready(self) -> bool:
        """Frames may be written: the peer acknowledged STAYWAKE, or no handshake is used."""
        return not self.staywake or self.waked

    def relax(self) -> list[Action]:
        """After a TX burst: RELAXWAKE if awake, and toggle STAYWAKE1/STAYWAKE2."""
        if not self.staywake:
            return []
        p = self.protocol
        out: list[Action] = []
        if self.waked and p.relaxwake is not None:
            out.append(Write(bytes([p.relaxwake])))
        self.waked = False
        self.waking = False
        self._staywake_at = None
        self.tx_staywake = p.staywake2 if self.tx_staywake == p.staywake1 else p.staywake1
        return out

    def poweroff(self) -> list[Action]:
        """Closing while connected: tell the peer (current protocol only)."""
        if self.connected and self.protocol.poweroff is not None:
            self.connected = False
            return [Write(bytes([self.protocol.poweroff]))]
        self.connected = False
        return []


__all__ = [
    "RECONNECT_INTERVAL",
    "STAYWAKE_INTERVAL",
    "Action",
    "LinkDown",
    "LinkUp",
    "Running",
    "UartLinkMachine",
    "Write",
]
