"""The simulated SPI bus under attack: other users' files, foreign connections, stopped peers,
frames without CRC, receivers that do not read, and every wrong argument (issue 10).

Each gives a typed error naming the path and the fix, or a counted drop; never a crash, a
removed file that was not ours, a hang past a timeout, a leaked buffer, and the bus works
afterwards.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import rpmsg
from rpmsg import Device
from rpmsg.errors import InvalidArgumentError, InvalidURLError, RpmsgTimeoutError
from rpmsg.port.core import PortLink
from rpmsg.port.crc import crc16_arc
from rpmsg.port.spi.backend import open_spi_link
from rpmsg.port.spi.proto import Cmd
from rpmsg.port.spi.sim import SimBus
from rpmsg.wire.port import PORT_HEADER

sys.path.insert(0, str(Path(__file__).parents[1]))
from port.harness import SLACK, RecordingTap, api_abuse_checks, snapshot, wait_until

PEER = Path(__file__).with_name("spi_peer.py")
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
#: buflen whose payload limit is 496 bytes, the MTU the shared API-abuse checks assume.
MTU_496 = "buflen=536"


@pytest.fixture
def bus() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="spih-")
    yield os.path.join(d, "bus.sock")
    for name in os.listdir(d):
        os.unlink(os.path.join(d, name))
    os.rmdir(d)


def pair(bus: str, query: str = "") -> tuple[Device, Device]:
    m = rpmsg.open(f"spisim:{bus}?hz=0{query}")
    s = rpmsg.open(f"spisim:{bus}?hz=0{query}", side="remote")
    m.wait_up(10)
    s.wait_up(10)
    return m, s


def bound(m: Device, s: Device, name: str = "x",
          **server: Any) -> tuple[rpmsg.Endpoint, rpmsg.Endpoint]:
    srv = s.create_endpoint(name, **server)
    cli = m.create_endpoint(name)
    cli.wait_bound(10)
    srv.wait_bound(10)
    return cli, srv


# Files and sockets --------------------------------------------------------------------------


def test_socket_and_lock_file_are_0600_even_under_umask_0(bus: str) -> None:
    old = os.umask(0)
    try:
        m, s = pair(bus)
    finally:
        os.umask(old)
    with m, s:
        assert stat.S_IMODE(os.stat(bus).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(bus + ".lock").st_mode) == 0o600
    assert os.listdir(os.path.dirname(bus)) == []


def test_perm_widens_the_socket_and_lock_file_on_purpose(bus: str) -> None:
    old = os.umask(0o077)
    try:
        m, s = pair(bus, "&perm=0660")
    finally:
        os.umask(old)
    with m, s:
        assert stat.S_IMODE(os.stat(bus).st_mode) == 0o660
        assert stat.S_IMODE(os.stat(bus + ".lock").st_mode) == 0o660


def test_a_regular_file_at_the_bus_path_is_refused_and_kept(bus: str) -> None:
    Path(bus).write_bytes(b"precious")
    with pytest.raises(rpmsg.AccessDeniedError, match="not a socket") as info:
        rpmsg.open(f"spisim:{bus}")
    assert bus in str(info.value) and isinstance(info.value, PermissionError)
    assert Path(bus).read_bytes() == b"precious"
    os.unlink(bus)


def test_a_symlinked_lock_file_is_refused_and_its_target_untouched(bus: str) -> None:
    target = Path(os.path.dirname(bus)) / "target"
    target.write_bytes(b"precious")
    os.symlink(target, bus + ".lock")
    with pytest.raises(rpmsg.AccessDeniedError, match="symbolic link"):
        rpmsg.open(f"spisim:{bus}")
    assert target.read_bytes() == b"precious" and os.path.islink(bus + ".lock")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_another_users_lock_file_is_refused_unless_the_bus_is_shared(bus: str) -> None:
    fd = os.open(bus + ".lock", os.O_CREAT | os.O_WRONLY, 0o666)
    os.fchown(fd, 65534, 65534)
    os.fchmod(fd, 0o666)
    os.close(fd)
    with pytest.raises(rpmsg.AccessDeniedError, match="uid 65534") as info:
        rpmsg.open(f"spisim:{bus}")
    assert "perm=0660" in str(info.value)
    rpmsg.open(f"spisim:{bus}?perm=0660").close()  # a shared bus accepts it on purpose


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a socket to another user")
def test_another_users_stale_socket_is_never_removed(bus: str) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(bus)
    stale.close()  # nobody listens: a dead owner's socket
    os.chown(bus, 65534, 65534)
    dev = rpmsg.open(f"spisim:{bus}")
    try:
        wait_until(lambda: dev.broken_error is not None, 10, "the refusal")
        assert "not a socket of ours" in str(dev.broken_error)
        assert os.stat(bus).st_uid == 65534  # still there
    finally:
        dev.close()
    os.unlink(bus)


def test_a_stale_socket_of_ours_is_taken_over(bus: str) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(bus)
    stale.close()
    m, s = pair(bus)
    with m, s:
        cli, srv = bound(m, s)
        cli.send(b"over", timeout=10)
        assert srv.recv(timeout=10) == b"over"
    assert os.listdir(os.path.dirname(bus)) == []


def test_the_last_end_removes_the_lock_file_whatever_the_order(bus: str) -> None:
    for first_closed in ("master", "slave"):
        m, s = pair(bus)
        (m if first_closed == "master" else s).close()
        assert os.path.exists(bus + ".lock")  # the other end still holds it
        (s if first_closed == "master" else m).close()
        assert os.listdir(os.path.dirname(bus)) == []


def test_a_connection_that_is_not_a_bus_is_dropped_and_the_bus_waits_on(bus: str) -> None:
    m = rpmsg.open(f"spisim:{bus}?hz=0")  # first: owns and listens
    try:
        wait_until(lambda: os.path.exists(bus), 10, "the listening socket")
        junk = subprocess.run(
            [sys.executable, "-c",
             "import socket, sys, os\n"
             "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.recv(4)\n"
             "s.sendall(b'J' + os.urandom(5000)); s.close()", bus], env=ENV, timeout=30)
        assert junk.returncode == 0
        wait_until(lambda: m.stats()["link_bus_bad_peers"] == 1, 10, "the junk dropped")
        assert m.broken_error is None
        with rpmsg.open(f"spisim:{bus}?hz=0", side="remote") as s:
            cli, srv = bound(m, s)
            cli.send(b"fine", timeout=10)
            assert srv.recv(timeout=10) == b"fine"
    finally:
        m.close()


# Budgets ------------------------------------------------------------------------------------


def spawn_slave(url: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, str(PEER), url], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_sends_and_close_keep_their_budget_when_the_peer_is_stopped(bus: str) -> None:
    url = f"spisim:{bus}?hz=0&txnum=4"
    slave = spawn_slave(url)
    dev = rpmsg.open(url)
    try:
        ept = dev.create_endpoint("spi-echo")
        ept.wait_bound(10)
        os.kill(slave.pid, signal.SIGSTOP)  # the slave process stops mid-session
        t0 = time.monotonic()
        with pytest.raises(RpmsgTimeoutError):
            for _ in range(1000):
                ept.send(bytes(dev.mtu), timeout=0.3)
        assert time.monotonic() - t0 < 1000 * 0.3
        t0 = time.monotonic()
        with pytest.raises(RpmsgTimeoutError):
            ept.send(b"x", timeout=0.3)
        assert time.monotonic() - t0 < 0.3 + SLACK
        t0 = time.monotonic()
        dev.close(timeout=0.5)  # frames queued, SHUTDOWN never clocked
        assert time.monotonic() - t0 < 0.5 + SLACK
    finally:
        os.kill(slave.pid, signal.SIGCONT)
        if slave.stdin is not None:
            slave.stdin.close()
        assert slave.wait(20) == 0  # it exits by itself
        dev.close()


def test_close_sends_queued_frames_and_shutdown_first(bus: str) -> None:
    m, s = pair(bus, "&txnum=4&rxnum=4")
    with s:
        got: list[bytes] = []
        srv = s.create_endpoint("x", callback=lambda _e, data, _s: got.append(data))
        cli = m.create_endpoint("x")
        cli.wait_bound(10)
        srv.wait_bound(10)
        sent = [b"%d" % i for i in range(50)]
        for d in sent:
            cli.send(d, timeout=10)
        m.close(timeout=30)
        wait_until(lambda: got == sent, 10, "every frame queued before close")
        wait_until(lambda: not s.is_up, 10, "the slave sees SHUTDOWN")
        assert m.stats()["link_tx_shutdown"] == 1
        assert s.stats().get("link_tx_shutdown", 0) == 0


def test_link_up_with_more_announcements_than_transmit_buffers(bus: str) -> None:
    m = rpmsg.open(f"spisim:{bus}?hz=0&txnum=2")
    try:
        names = [f"svc-{i}" for i in range(30)]
        for n in names:
            m.create_endpoint(n)
        with rpmsg.open(f"spisim:{bus}?hz=0", side="remote") as s:
            for n in names:
                s.wait_service(n, timeout=20)
            assert m.stats()["ns_send_failures"] == 0
    finally:
        m.close()


# Back-pressure and floods -------------------------------------------------------------------


def test_a_full_endpoint_queue_withdraws_credits_and_nothing_is_dropped(bus: str) -> None:
    m, s = pair(bus, "&rxnum=4")
    with m, s:
        cli, srv = bound(m, s, queue=2, hold=None)
        sent = [i.to_bytes(2, "little") * 200 for i in range(100)]
        done = threading.Event()

        def sender() -> None:
            for d in sent:
                cli.send(d, timeout=60)
            done.set()

        t = threading.Thread(target=sender)
        t.start()
        wait_until(lambda: s.link.rxq.navail() == 0, 10, "every RX buffer held")  # type: ignore[attr-defined]
        assert not done.wait(0.5)
        assert m.stats()["link_txavail"] == 0  # no credit left for the master
        got = [srv.recv(timeout=10) for _ in sent]
        t.join(30)
        assert done.is_set() and got == sent
        st = s.stats()
        assert st["dropped_queue_full"] == 0 and st["link_rx_no_buffer"] == 0


def test_a_flood_at_an_unread_endpoint_keeps_memory_flat(bus: str) -> None:
    m, s = pair(bus)
    with m, s:
        cli, _srv = bound(m, s, hold=0.05)
        payload = bytes(cli.mtu)
        for _ in range(2000):
            cli.send(payload, timeout=10)
        start = snapshot().rss_kib
        for _ in range(20000):
            cli.send(payload, timeout=10)
        wait_until(lambda: s.stats()["rx_messages"] >= 22000, 60, "the flood received")
        assert snapshot().rss_kib - start < 8 * 1024
        assert s.stats()["dropped_queue_full"] >= 22000 - 256 - 8


# CRC ----------------------------------------------------------------------------------------


class NoCrcBus(SimBus):
    """A slave end whose DATA frames go out with the CRC field zeroed, as a peer with the
    CRC off sends them (or a corruption that hit the CRC field)."""

    def queue_tx(self, tx: bytes | bytearray | memoryview) -> None:
        data = bytearray(tx)
        if PORT_HEADER.unpack(data)[1] == Cmd.DATA and data[24:26] == b"nc":
            data[0:2] = b"\0\0"
        super().queue_tx(data)


@pytest.mark.parametrize("optional", [False, True])
def test_frames_without_crc_are_dropped_unless_crc_optional(bus: str, optional: bool) -> None:
    mlink = open_spi_link(SimBus(bus, "master", 256, hz=0), crc=crc16_arc,
                          crc_optional=optional)
    slink = open_spi_link(NoCrcBus(bus, "slave", 256, hz=0), crc=crc16_arc)
    with Device(mlink) as m, Device(slink) as s:
        m.wait_up(10)
        cli, srv = bound(m, s)
        for i in range(10):
            srv.send(b"nc %d" % i, timeout=10)
        srv.send(b"checked", timeout=10)
        got = [cli.recv(timeout=10) for _ in range(11 if optional else 1)]
        if optional:
            assert got == [b"nc %d" % i for i in range(10)] + [b"checked"]
        else:
            assert got == [b"checked"]
            assert m.stats()["link_rx_no_crc"] == 10


def test_a_crc_mismatch_is_named_in_timeout_errors(bus: str) -> None:
    m = rpmsg.open(f"spisim:{bus}?hz=0&crc=arc")
    s = rpmsg.open(f"spisim:{bus}?hz=0&crc=xmodem", side="remote")
    with m, s:
        with pytest.raises(RpmsgTimeoutError) as info:
            m.wait_up(1.5)
        assert "no frame passed the CRC" in str(info.value)


# Buffers, frame level, logs ------------------------------------------------------------------


def test_link_level_failures_give_their_buffer_back(bus: str) -> None:
    m, s = pair(bus, "&txnum=3")
    with m, s:
        cli, srv = bound(m, s)
        link: PortLink = m.link  # type: ignore[assignment]
        for _ in range(10):
            with pytest.raises(TypeError):
                link.send(cli.addr, cli.dst, [1, 2, 3], 1)  # type: ignore[arg-type]
            with pytest.raises(InvalidArgumentError):
                link.send(cli.addr, 2**32, b"x", 1)
        wait_until(lambda: link.txq.navail() == 3, 10, "every TX buffer free")
        cli.send(b"still", timeout=10)
        assert srv.recv(timeout=10) == b"still"


class FailingBus(SimBus):
    """A master end whose transfers fail after a while (a broken controller)."""

    fail = False

    def transfer(self, tx: bytes | bytearray | memoryview) -> bytes:
        if self.fail:
            raise OSError("spidev went away")
        return super().transfer(tx)


def test_a_failing_bus_breaks_the_link_without_losing_a_buffer(bus: str) -> None:
    phys = FailingBus(bus, "master", 256, hz=0)
    with Device(open_spi_link(phys, txnum=3)) as m, \
            rpmsg.open(f"spisim:{bus}?hz=0&buflen=256", side="remote") as s:
        cli, _srv = bound(m, s)
        phys.fail = True
        with pytest.raises(rpmsg.RpmsgError):
            for _ in range(20):
                cli.send(b"x", timeout=5)
        wait_until(lambda: m.broken_error is not None, 10, "the link broken")
        assert "spidev went away" in str(m.broken_error)
        link: PortLink = m.link  # type: ignore[assignment]
        assert link.txq.navail() + link.txq.nused() == 3


def test_frame_tap_sees_every_exchange_with_its_crc_verdict(
        bus: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    class OneBadCrc(SimBus):
        n = 0

        def queue_tx(self, tx: bytes | bytearray | memoryview) -> None:
            data = bytearray(tx)
            if PORT_HEADER.unpack(data)[1] == Cmd.AVAIL and self.n < 3:
                self.n += 1
                data[0:2] = b"\x01\x00"  # wrong CRC
            super().queue_tx(data)

    tap = RecordingTap()
    mlink = open_spi_link(SimBus(bus, "master", 256, hz=0), crc=crc16_arc)
    mlink.tap = tap  # type: ignore[assignment]
    slink = open_spi_link(OneBadCrc(bus, "slave", 256, hz=0), crc=crc16_arc)
    with Device(mlink) as m:
        with Device(slink) as s:
            cli, srv = bound(m, s)
            cli.send(b"payload", timeout=10)
            assert srv.recv(timeout=10) == b"payload"
            srv.send(b"back", timeout=10)
            assert cli.recv(timeout=10) == b"back"
            wait_until(lambda: any(i["crc"] == "bad" for _, i in tap.of("rx", "spi")))
        # The slave closed first: its SHUTDOWN reaches the master at the master's next clock.
        wait_until(lambda: "SHUTDOWN" in {i["cmd"] for _, i in tap.of("rx", "spi")})
    tx, rx = tap.of("tx", "spi"), tap.of("rx", "spi")
    assert {i["cmd"] for _, i in tx} >= {"CONNECT", "AVAIL", "DATA"}
    assert all(i["crc"] == "ok" for _, i in tx)
    (data, info), = [(d, i) for d, i in tx if d.endswith(b"payload")]
    assert info["cmd"] == "DATA" and PORT_HEADER.unpack(data)[3] == len(data)
    assert isinstance(info["credits"], int)
    assert any(d.endswith(b"back") and i["cmd"] == "DATA" and i["crc"] == "ok" for d, i in rx)
    assert any(i["crc"] == "bad" and i["cmd"] == "AVAIL" for _, i in rx)
    messages = [r.getMessage() for r in caplog.records]
    assert any("received frame dropped: CRC mismatch" in t for t in messages)
    assert any("link up (SPI master" in t for t in messages)


def test_a_peer_restart_is_logged_at_info_with_its_reason(
        bus: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    m = rpmsg.open(f"spisim:{bus}?hz=0")
    try:
        s = spawn_slave(f"spisim:{bus}?hz=0")
        m.wait_up(10)
        s.kill()
        s.wait()
        s = spawn_slave(f"spisim:{bus}?hz=0")
        wait_until(lambda: m.stats()["link_link_downs"] >= 1 and m.is_up, 20, "the restart")
        if s.stdin is not None:
            s.stdin.close()
        assert s.wait(20) == 0
    finally:
        m.close()
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("link down: the peer restarted (CONNECT while connected)" in t for t in infos)


# Sizes and options --------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "ok"), [
    ("buflen=79", False),                  # current: 40 bytes of overhead + 40 (NS)
    ("buflen=80", True),
    ("protocol=legacy&buflen=63", False),  # legacy: 24 + 40
    ("protocol=legacy&buflen=64", True),
    ("rxnum=2", False),
    ("perm=0644", True),
    ("perm=0400", False),                  # the owner must keep read and write
    ("perm=1777", False),
    ("perm=rw", False),
    ("crc_optional=1", False),
    ("crc=arc&crc_optional=1", True),
    ("role=master&role=slave", False),
])
def test_sizes_and_options_are_checked_before_any_io(bus: str, query: str, ok: bool) -> None:
    url = f"spisim:{bus}?{query}"
    if not ok:
        with pytest.raises(InvalidURLError):
            rpmsg.open(url)
        assert os.listdir(os.path.dirname(bus)) == []  # nothing created
        return
    rpmsg.open(url).close()


# The API abuse suite of the runtime, over spisim -------------------------------------------


CHECKS = api_abuse_checks("spi_api_abuse")


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_api_abuse_over_spisim(bus: str, check: Callable[[Any], None]) -> None:
    m, s = pair(bus, f"&{MTU_496}")
    with m, s:
        check((m, s))
