"""``spi:`` and ``spisim:`` — NuttX RPMsg Port over SPI with MREQ/SREQ lines, real or simulated.

``spi:/dev/spidev0.0?mreq=gpiochip0:17&sreq=gpiochip0:27&role=master&buflen=512`` drives real
hardware (spidev + libgpiod, the ``spi`` extra); a GPIO is ``CHIP:OFFSET`` or
``CHIP:OFFSET:low`` for an active-low line. ``spisim:/tmp/bus.sock?role=slave`` joins a
simulated bus shared by two processes; the first to arrive creates it. Without ``role=`` the
side decides: ``host`` (``rpmsg.open`` default, ``rpmsg ping``) is the master and ``remote``
(``rpmsg remote``) the slave.

Common options: ``buflen`` (512, same on both chips; at least what leaves room for a
name-service message), ``txnum``/``rxnum`` (8), ``crc`` (none/arc/xmodem), ``crc_optional``
(off: with a CRC, frames whose CRC field is 0 are dropped unless their computed CRC is 0 too),
``protocol`` (current/legacy), ``remotecpu`` (the name sent in CONNECT), ``rx_threshold``
(50 %), ``connect_retry`` (1.0 s, 0 = never). ``spi:`` also takes ``mode`` (0), ``bits`` (8),
``hz`` (1000000) and ``arm_delay`` (0.001 s, slave); ``spisim:`` takes ``hz`` (10000000, the
simulated clock; 0 = unlimited) and ``perm`` (0600: the mode of the bus socket and lock file;
0660 shares the bus with the group). A bus has one master and one slave; a third end gets
:class:`~rpmsg.errors.AlreadyOpenError`.
"""

from __future__ import annotations

from collections.abc import Callable

from rpmsg.errors import InvalidURLError
from rpmsg.port.core import PortLink
from rpmsg.port.crc import get_crc
from rpmsg.port.spi.backend import open_spi_link
from rpmsg.port.spi.hardware import GpioSpec, HardwarePhys
from rpmsg.port.spi.phys import SpiPhys
from rpmsg.port.spi.proto import MIN_RXNUM, Role, min_buflen
from rpmsg.registry import Connect, Opening, Transport
from rpmsg.url import TransportURL

_ROLES: dict[str, Role] = {"master": "master", "slave": "slave"}
#: Reads the physical layer's options (no I/O) and returns what opens it.
PhysMaker = Callable[[TransportURL, Role, int], Callable[[], SpiPhys]]


def _role(url: TransportURL) -> Role:
    default: Role = "master" if url.side == "host" else "slave"
    return url.get_choice("role", default, _ROLES)


def _configure(url: TransportURL, make_phys: PhysMaker) -> Connect:
    role = _role(url)
    legacy = url.get_choice("protocol", False, {"current": False, "legacy": True})
    buflen = url.get_int("buflen", 512, minimum=min_buflen(legacy), maximum=0xFFFF)
    txnum = url.get_int("txnum", 8, minimum=1, maximum=4096)
    rxnum = url.get_int("rxnum", 8, minimum=MIN_RXNUM, maximum=4096)
    crc_name = url.get_choice("crc", "none", {"none": "none", "arc": "arc",
                                              "xmodem": "xmodem"})
    crc_optional = url.get_bool("crc_optional", False)
    if crc_optional and crc_name == "none":
        raise InvalidURLError(f"{url.scheme}: crc_optional=1 needs a crc (arc or xmodem)")
    remotecpu = url.get_str("remotecpu", "")
    if len(remotecpu.encode()) > 31:
        raise InvalidURLError(f"{url.scheme}: remotecpu {remotecpu!r} longer than 31 bytes")
    threshold = url.get_int("rx_threshold", 50, minimum=0, maximum=100)
    retry = url.get_float("connect_retry", 1.0)
    open_phys = make_phys(url, role, buflen)

    def connect(opening: Opening) -> PortLink:
        phys = open_phys()
        try:
            return open_spi_link(phys, txnum=txnum, rxnum=rxnum, remotecpu=remotecpu,
                                 legacy=legacy, crc=get_crc(crc_name),
                                 crc_optional=crc_optional, rx_threshold=threshold,
                                 connect_retry=retry)
        except BaseException:
            phys.close()
            raise

    return connect


def _hardware(url: TransportURL, role: Role, buflen: int) -> Callable[[], SpiPhys]:
    if not url.path:
        raise InvalidURLError("spi: needs a device path, e.g. spi:/dev/spidev0.0?mreq=...")
    mreq_text, sreq_text = url.take("mreq"), url.take("sreq")
    if not mreq_text or not sreq_text:
        raise InvalidURLError("spi: needs both GPIO lines: mreq=CHIP:OFFSET&sreq=CHIP:OFFSET")
    mode = url.get_int("mode", 0, minimum=0, maximum=3)
    bits = url.get_int("bits", 8, minimum=8, maximum=32)
    hz = url.get_int("hz", 1_000_000, minimum=1)
    arm_delay = url.get_float("arm_delay", 0.001)
    mreq = GpioSpec.parse(str(mreq_text), "mreq")
    sreq = GpioSpec.parse(str(sreq_text), "sreq")
    return lambda: HardwarePhys(url.path, role, buflen, mreq=mreq, sreq=sreq, mode=mode,
                                bits=bits, hz=hz, arm_delay=arm_delay)


def _simulated(url: TransportURL, role: Role, buflen: int) -> Callable[[], SpiPhys]:
    from rpmsg.port.spi.sim import SimBus

    if not url.path:
        raise InvalidURLError("spisim: needs a socket path, e.g. spisim:/tmp/bus.sock")
    hz = url.get_int("hz", 10_000_000, minimum=0)
    perm = _perm(url)
    return lambda: SimBus(url.path, role, buflen, hz=hz, perm=perm)


def _perm(url: TransportURL) -> int:
    """``perm``: octal file mode of the bus socket and lock file, 0600 by default."""
    raw = url.take("perm")
    if raw is None:
        return 0o600
    if isinstance(raw, int) and not isinstance(raw, bool):
        perm = raw
    else:
        text = str(raw).lower().removeprefix("0o")
        try:
            perm = int(text, 8)
        except ValueError:
            raise InvalidURLError(f"spisim: perm={raw!r} is not an octal mode such as 0660") \
                from None
    if not 0 <= perm <= 0o777 or perm & 0o600 != 0o600:
        raise InvalidURLError(f"spisim: perm={perm:#o} must be a mode in 0600..0777 that "
                              "keeps the owner's read and write bits (e.g. 0600 or 0660)")
    return perm


SPI = Transport(
    "spi", "NuttX RPMsg Port over SPI with MREQ/SREQ GPIO lines (spidev, gpiod)",
    lambda url: _configure(url, _hardware))
SPISIM = Transport(
    "spisim", "NuttX RPMsg Port over a simulated SPI bus between two processes",
    lambda url: _configure(url, _simulated))
