"""The SPI backend over the simulated bus in one process: connect, binding, faults, credits.

Both ends run in this process (two Devices on one socket path); the bus rules are enforced
by the simulation, so a driver that clocked without an SREQ edge would break the link.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest

import rpmsg
from rpmsg import Device
from rpmsg.errors import InvalidURLError, NotAvailableError
from rpmsg.port.spi.backend import open_spi_link
from rpmsg.port.spi.proto import Cmd
from rpmsg.port.spi.sim import SimBus
from rpmsg.wire.port import PORT_HEADER


@pytest.fixture
def bus() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="spis-")
    yield os.path.join(d, "bus.sock")
    shutil.rmtree(d, ignore_errors=True)


def _pair(bus: str, query: str = "") -> tuple[Device, Device]:
    m = rpmsg.open(f"spisim:{bus}?hz=0{query}")
    s = rpmsg.open(f"spisim:{bus}?hz=0{query}", side="remote")
    m.wait_up(10)
    s.wait_up(10)
    return m, s


@pytest.mark.parametrize("query", ["", "&crc=arc", "&protocol=legacy&buflen=256"])
def test_connect_bind_and_echo_both_ways(bus: str, query: str) -> None:
    m, s = _pair(bus, query)
    with m, s:
        assert m.link.describe()["spi_role"] == "master"
        assert s.link.describe()["spi_role"] == "slave"
        server = s.create_endpoint("svc")
        client = m.create_endpoint("svc")
        client.wait_bound(timeout=10)
        server.wait_bound(timeout=10)
        for n in (0, 1, m.mtu):
            client.send(b"a" * n, timeout=10)
            assert server.recv(timeout=10) == b"a" * n
            server.send(b"b" * n, timeout=10)
            assert client.recv(timeout=10) == b"b" * n


def test_remotecpu_names_arrive_as_local_names(bus: str) -> None:
    m, s = _pair(bus, "&remotecpu=peer-x")
    with m, s:
        assert m.link.describe()["local_cpuname"] == "peer-x"
        assert s.link.describe()["local_cpuname"] == "peer-x"


def test_both_sides_full_no_deadlock_nothing_lost(bus: str) -> None:
    m, s = _pair(bus, "&txnum=4&rxnum=4")
    with m, s:
        # Endpoint queues hold every message: the port queues (4 buffers) are what fill.
        a = m.create_endpoint("both", queue=1024)
        b = s.create_endpoint("both", queue=1024)
        a.wait_bound(timeout=10)
        b.wait_bound(timeout=10)
        n = 300
        sender = threading.Thread(target=lambda: [b.send(b"s%d" % i, timeout=30)
                                                  for i in range(n)])
        sender.start()
        for i in range(n):  # both blast before anyone reads
            a.send(b"m%d" % i, timeout=30)
        sender.join(30)
        assert [b.recv(timeout=10) for _ in range(n)] == [b"m%d" % i for i in range(n)]
        assert [a.recv(timeout=10) for _ in range(n)] == [b"s%d" % i for i in range(n)]
        assert m.stats()["link_rx_no_buffer"] == s.stats()["link_rx_no_buffer"] == 0


class CorruptingBus(SimBus):
    """A slave end that corrupts some of its AVAIL frames in transit (garbage on MISO)."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.n = 0

    def queue_tx(self, tx: bytes | bytearray | memoryview) -> None:
        data = bytearray(tx)
        if PORT_HEADER.unpack(data)[1] == Cmd.AVAIL:
            self.n += 1
            kind = self.n % 8
            if kind == 1:
                data[:] = os.urandom(len(data))
                data[2:4] = b"\xee\xee"  # make sure the command is unknown
            elif kind == 3:
                data[2:4] = (9).to_bytes(2, "little")  # unknown command
            elif kind == 5:
                data[6:8] = (len(data) + 1).to_bytes(2, "little")  # longer than the buffer
            elif kind == 7:
                data[0:2] = b"\x01\x00"  # wrong CRC
        super().queue_tx(data)


def test_garbage_unknown_commands_long_frames_and_bad_crc_are_counted_link_survives(
        bus: str) -> None:
    from rpmsg.port.crc import crc16_arc

    mlink = open_spi_link(SimBus(bus, "master", 256, hz=0), crc=crc16_arc)
    slink = open_spi_link(CorruptingBus(bus, "slave", 256, hz=0), crc=crc16_arc)
    with Device(mlink) as m, Device(slink) as s:
        m.wait_up(10)
        client, server = m.create_endpoint("x"), s.create_endpoint("x")
        client.wait_bound(timeout=10)
        server.wait_bound(timeout=10)
        for i in range(200):
            client.send(b"%d" % i, timeout=10)
            assert server.recv(timeout=10) == b"%d" % i
        st = m.stats()
        assert st["link_rx_bad_frame"] >= 3 and st["link_rx_bad_crc"] >= 1
        assert st["link_link_downs"] == 0


def test_slave_restart_rebinds_endpoints(bus: str) -> None:
    m, s = _pair(bus)
    with m:
        client = m.create_endpoint("svc")
        with s:
            s.create_endpoint("svc")
            client.wait_bound(timeout=10)
        s2 = rpmsg.open(f"spisim:{bus}?hz=0", side="remote")
        with s2:
            server = s2.create_endpoint("svc")
            client.wait_bound(timeout=10)
            server.wait_bound(timeout=10)
            client.send(b"again", timeout=10)
            assert server.recv(timeout=10) == b"again"
            assert m.stats()["link_link_downs"] >= 1


def test_bad_urls_and_missing_hardware_modules() -> None:
    with pytest.raises(InvalidURLError):
        rpmsg.open("spisim:/tmp/x.sock?role=boss")
    with pytest.raises(InvalidURLError):
        rpmsg.open("spisim:/tmp/x.sock?rxnum=2")
    with pytest.raises(InvalidURLError):
        rpmsg.open("spi:/dev/spidev0.0?mreq=gpiochip0:17")
    with pytest.raises(InvalidURLError):
        rpmsg.open("spi:/dev/spidev0.0?mreq=gpiochip0:x&sreq=gpiochip0:27")
    try:
        import spidev  # noqa: F401
    except ImportError:
        with pytest.raises(NotAvailableError, match="spidev"):
            rpmsg.open("spi:/dev/spidev0.0?mreq=gpiochip0:17&sreq=gpiochip0:27")


@pytest.mark.parametrize(("role", "other"), [("master", "slave"), ("slave", "master")])
def test_a_second_end_of_the_same_role_is_refused_at_open(bus: str, role: str,
                                                          other: str) -> None:
    first = rpmsg.open(f"spisim:{bus}?hz=0&role={role}")
    with first:
        with pytest.raises(rpmsg.AlreadyOpenError, match=f"role={other}"):
            rpmsg.open(f"spisim:{bus}?hz=0&role={role}")
        peer = rpmsg.open(f"spisim:{bus}?hz=0&role={other}")  # the bus is not harmed
        with peer:
            first.wait_up(10)
            peer.wait_up(10)
    assert os.listdir(os.path.dirname(bus)) == []  # neither socket nor lock file left


def test_the_same_role_on_both_ends_of_a_socket_names_the_missing_role() -> None:
    # Without the lock file (a socket pair) the bus hello still catches it, with the hint
    # naming the role that is missing.
    a, b = socket.socketpair()
    la = open_spi_link(SimBus("pair", "slave", 256, hz=0, sock=a))
    lb = open_spi_link(SimBus("pair", "slave", 256, hz=0, sock=b))
    with Device(la) as da, Device(lb) as db:
        deadline = time.monotonic() + 10
        while da.broken_error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert da.broken_error is not None
        assert "role=master" in str(da.broken_error)
        assert db is not None
