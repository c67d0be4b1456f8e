"""RPMsg Port over SPI with MREQ/SREQ request lines (NuttX ``rpmsg_port_spi*.c``).

* :mod:`~rpmsg.port.spi.proto` — sans-IO: frame choice, credits, CRC, connection states;
* :mod:`~rpmsg.port.spi.phys` — the physical interface (:class:`SpiPhys`, :class:`PhysEvents`);
* :mod:`~rpmsg.port.spi.hardware` — ``spidev`` + libgpiod (the ``spi`` extra);
* :mod:`~rpmsg.port.spi.sim` — a simulated bus between two processes (``spisim:``);
* :mod:`~rpmsg.port.spi.backend` — the threads that drive a phys for the port core.
"""

from rpmsg.port.spi.backend import SpiBackend, open_spi_link
from rpmsg.port.spi.phys import BusViolationError, PhysEvents, SpiPhys
from rpmsg.port.spi.proto import Cmd, Role, SpiProtocol, State

__all__ = ["BusViolationError", "Cmd", "PhysEvents", "Role", "SpiBackend", "SpiPhys",
           "SpiProtocol", "State", "open_spi_link"]
