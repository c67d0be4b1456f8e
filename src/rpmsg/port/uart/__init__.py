"""RPMsg Port over a serial line (NuttX ``rpmsg_port_uart.c``), current and legacy protocols.

* :mod:`~rpmsg.port.uart.framer` — sans-IO byte framing (escapes, START/END, CRC, controls);
* :mod:`~rpmsg.port.uart.machine` — sans-IO connection and wake handshake state machine;
* :mod:`~rpmsg.port.uart.stream` — the byte streams (pyserial ports and URLs, a new pty);
* :mod:`~rpmsg.port.uart.backend` — the RX and TX threads that drive a stream for the core.
"""

from rpmsg.port.uart.backend import UartBackend, make_uart_port
from rpmsg.port.uart.framer import CURRENT, LEGACY, FrameDecoder, FrameEncoder, UartProtocol
from rpmsg.port.uart.machine import UartLinkMachine
from rpmsg.port.uart.stream import PtyStream, Stream, open_serial

__all__ = ["CURRENT", "LEGACY", "FrameDecoder", "FrameEncoder", "PtyStream", "Stream",
           "UartBackend", "UartLinkMachine", "UartProtocol", "make_uart_port", "open_serial"]
