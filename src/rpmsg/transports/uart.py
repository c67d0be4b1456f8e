"""``uart:`` — NuttX RPMsg Port over a serial line (pyserial device path or URL, or a new pty).

``uart:/dev/ttyUSB0?baudrate=921600&protocol=current&crc=arc``. The path is any pyserial
port or URL (``socket://host:port``, ``loop://``), or ``pty`` to create a pseudo-terminal
whose other end (``describe()["pty"]``) another program opens. Options: ``baudrate``
(115200), ``rtscts`` (off), ``protocol`` (``current`` for NuttX >= 12.13, ``legacy`` for
12.7-12.12), ``crc`` (``none``, ``arc``, ``xmodem``; must match the peer's
``CONFIG_RPMSG_PORT_UART_CRC`` and version), ``crc_optional`` (off: with a CRC configured,
frames whose CRC field is 0 are dropped unless their computed CRC is 0 too; on accepts them,
for a peer that sends no CRC), ``staywake`` (on for current; the wake handshake before each
burst), ``txnum``/``rxnum`` (10) and ``txlen``/``rxlen`` (2048: NuttX sim values; at least
what leaves room for a name-service message). The link is symmetric, so the open side does not
matter. A device path is opened exclusively: a serial line has one owner.
"""

from __future__ import annotations

from rpmsg.errors import InvalidURLError
from rpmsg.port.core import PortConfig, PortLink, min_buffer_len
from rpmsg.port.uart.backend import make_uart_port
from rpmsg.port.uart.stream import PtyStream, Stream, open_serial
from rpmsg.registry import Connect, Opening, Transport
from rpmsg.url import TransportURL

_PROTOCOLS = {"current": "current", "legacy": "legacy"}
_CRCS = {"none": "none", "off": "none", "arc": "arc", "xmodem": "xmodem"}


def configure(url: TransportURL) -> Connect:
    """Check the options of ``uart:PATH?options``; the port is opened on connect."""
    path = url.path
    if not path:
        raise InvalidURLError("uart: needs a serial port, e.g. uart:/dev/ttyUSB0 or uart:pty")
    baudrate = url.get_int("baudrate", 115200, minimum=50, maximum=100_000_000)
    rtscts = url.get_bool("rtscts", False)
    protocol = url.get_choice("protocol", "current", _PROTOCOLS)
    crc = url.get_choice("crc", "none", _CRCS)
    crc_optional = url.get_bool("crc_optional", False)
    if crc_optional and crc == "none":
        raise InvalidURLError("uart: crc_optional=1 needs a crc (arc or xmodem)")
    staywake = url.get_bool("staywake", protocol == "current")
    if staywake and protocol == "legacy":
        raise InvalidURLError("uart: the legacy protocol has no STAYWAKE handshake")
    low = min_buffer_len(protocol)
    config = PortConfig(
        txnum=url.get_int("txnum", 10, minimum=1, maximum=4096),
        rxnum=url.get_int("rxnum", 10, minimum=1, maximum=4096),
        txlen=url.get_int("txlen", 2048, minimum=low, maximum=65535),
        rxlen=url.get_int("rxlen", 2048, minimum=low, maximum=65535),
        protocol=protocol)

    def connect(opening: Opening) -> PortLink:
        stream: Stream
        if path in ("pty", "pty:"):
            stream = PtyStream()
            name = stream.path
        else:
            stream = open_serial(path, baudrate=baudrate, rtscts=rtscts)
            name = path
        try:
            return make_uart_port(stream, config, crc=crc, crc_optional=crc_optional,
                                  staywake=staywake, name=name)
        except BaseException:
            stream.close()
            raise

    return connect


TRANSPORT = Transport(
    "uart", "NuttX RPMsg Port over a serial line (pyserial device path or URL)", configure)
