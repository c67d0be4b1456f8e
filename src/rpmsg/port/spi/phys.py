"""The physical side of an RPMsg Port SPI link, behind one small interface.

A :class:`SpiPhys` exchanges one buffer full-duplex (the master clocks it; the slave queues its
buffer and learns when the master clocked), drives this side's request line (MREQ for the
master, SREQ for the slave) and reports active edges of the peer's line to
:class:`PhysEvents`. :mod:`rpmsg.port.spi.hardware` does it with Linux ``spidev`` and libgpiod
v2 lines; :mod:`rpmsg.port.spi.sim` simulates it between two processes.
"""

from __future__ import annotations

import abc
from typing import Any, Protocol

from rpmsg.errors import ProtocolError
from rpmsg.port.spi.proto import Role
from rpmsg.wire.layout import Buffer


class BusViolationError(ProtocolError):
    """The driver broke a bus rule: the master clocked without an SREQ edge, or the slave
    raised SREQ without a queued TX buffer (a bug on this side, never the peer's)."""


class PhysEvents(Protocol):
    """What the physical side reports to the driver, from its own thread or interrupt."""

    def peer_edge(self) -> None:
        """The peer's request line went active (rising edge, or falling when inverted)."""

    def transfer_done(self, rx: bytes) -> None:
        """Slave only: the master clocked the queued buffer; ``rx`` is what it sent."""

    def phys_error(self, error: Exception) -> None:
        """The physical side failed for good."""


class SpiPhys(abc.ABC):
    """One end of the SPI bus plus its two GPIO lines; ``role`` says which end."""

    role: Role
    buflen: int

    @abc.abstractmethod
    def start(self, events: PhysEvents) -> None:
        """Begin reporting edges (and slave completions) to ``events``."""

    @abc.abstractmethod
    def set_request(self, active: bool) -> None:
        """Drive this side's request line: MREQ (master) or SREQ (slave)."""

    @abc.abstractmethod
    def peer_active(self) -> bool:
        """Current level of the peer's request line (True = active)."""

    def transfer(self, tx: Buffer) -> bytes:
        """Master: clock one full-duplex exchange of ``buflen`` bytes; return what came in."""
        raise NotImplementedError("only the master clocks the bus")

    def queue_tx(self, tx: Buffer) -> None:
        """Slave: load ``tx`` into the controller; the result comes by ``transfer_done``."""
        raise NotImplementedError("only the slave queues a buffer for the master to clock")

    def cancel_tx(self) -> None:  # noqa: B027 - optional, a no-op by default
        """Slave: withdraw a queued buffer if the master has not clocked it yet."""

    @abc.abstractmethod
    def close(self, timeout: float = 1.0) -> None:
        """Release the bus and the lines within ``timeout`` seconds; idempotent."""

    def stats(self) -> dict[str, int]:
        return {}

    def describe(self) -> dict[str, Any]:
        return {"phys": type(self).__name__}


__all__ = ["BusViolationError", "PhysEvents", "SpiPhys"]
