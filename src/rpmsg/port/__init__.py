"""NuttX RPMsg Port: the transport core (buffer queues, port header, dispatch) and backends.

:mod:`rpmsg.port.core` is the backend-independent port (a :class:`~rpmsg.transport.Link`);
the UART backend lives in :mod:`rpmsg.port.uart_framer` (sans-IO byte framing),
:mod:`rpmsg.port.uart_link` (sans-IO connection and wake state machine) and
:mod:`rpmsg.port.uart` (the pyserial driver). Facts: ``shared/spec/rpmsg-port.md``.
"""

from rpmsg.port.core import PortBackend, PortConfig, PortLink
from rpmsg.port.queues import BufferQueue, PortBuffer

__all__ = ["BufferQueue", "PortBackend", "PortBuffer", "PortConfig", "PortLink"]
