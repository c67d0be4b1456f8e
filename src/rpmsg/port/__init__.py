"""NuttX RPMsg Port: the transport core (buffer queues, port header, dispatch) and backends.

* :mod:`rpmsg.port.core` — the backend-independent port (:class:`PortLink`, a
  :class:`~rpmsg.transport.Link`);
* :mod:`rpmsg.port.queues` — the TX/RX buffer pools with free and ready lists;
* :mod:`rpmsg.port.ops` — the two interfaces between core and backend;
* :mod:`rpmsg.port.crc` — the CRC-16 variants of the port header;
* :mod:`rpmsg.port.uart` and :mod:`rpmsg.port.spi` — one package per physical backend.

The port header layout is in :mod:`rpmsg.wire.port`. Facts: ``shared/spec/rpmsg-port.md``.
"""

from rpmsg.port.core import PortConfig, PortLink
from rpmsg.port.ops import PortBackend, PortCore
from rpmsg.port.queues import BufferQueue, PortBuffer

__all__ = ["BufferQueue", "PortBackend", "PortBuffer", "PortConfig", "PortCore", "PortLink"]
