"""The uart: transport under attack, over real ptys and other processes (issue 10).

A second process taking the line, garbage from another process, frames without CRC, a peer
that stops reading, closing with frames still queued, a receiver that does not read, and
every wrong argument of the API: each gives a typed error or a counted drop, never a crash,
a hang past a timeout, a leaked buffer or a dead thread, and the link works afterwards.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import rpmsg
from rpmsg.errors import InvalidArgumentError, InvalidURLError, RpmsgTimeoutError
from rpmsg.port.core import PortConfig, PortLink
from rpmsg.port.uart.framer import CURRENT, FrameEncoder
from rpmsg.port.uart.stream import open_serial
from rpmsg.wire.port import PORT_HEADER
from rpmsg.wire.rpmsg import NS_ADDR, RPMSG_HEADER, NsFlags, NsMessage

from .harness import SLACK, RecordingTap, api_abuse_checks, snapshot, wait_until

HERE = Path(__file__).parent
PEER = HERE / "uart_peer.py"
GARBAGE = HERE / "uart_garbage.py"
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
#: txlen/rxlen whose payload limit is 496 bytes, the MTU the shared API-abuse checks assume.
MTU_496 = "txlen=536&rxlen=536"


@contextmanager
def pty_pair(options: str = "", a_options: str = "",
             b_options: str = "") -> Iterator[tuple[rpmsg.Device, rpmsg.Device]]:
    """Two Devices in this process on both ends of one pty, link up."""
    qa = "&".join(o for o in (options, a_options) if o)
    qb = "&".join(o for o in ("baudrate=4000000", options, b_options) if o)
    a = rpmsg.open("uart:pty" + (f"?{qa}" if qa else ""))
    try:
        b = rpmsg.open(f"uart:{a.link.describe()['pty']}?{qb}")
        try:
            a.wait_up(10)
            b.wait_up(10)
            yield a, b
        finally:
            b.close()
    finally:
        a.close()


def bound_pair(a: rpmsg.Device, b: rpmsg.Device, name: str = "x",
               **server: Any) -> tuple[rpmsg.Endpoint, rpmsg.Endpoint]:
    srv = b.create_endpoint(name, **server)
    cli = a.create_endpoint(name)
    cli.wait_bound(10)
    srv.wait_bound(10)
    return cli, srv


def spawn(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=ENV)


def spawn_peer(path: str, options: str = "") -> subprocess.Popen[str]:
    proc = spawn(PEER, path, *([options] if options else []))
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    """End a child by closing its stdin; it must exit by itself, without a signal."""
    if proc.stdin is not None and not proc.stdin.closed:
        proc.stdin.close()
    assert proc.wait(20) == 0


def raw_frame(payload: bytes, src: int = 0x500, dst: int = 0x400) -> bytes:
    return (PORT_HEADER.pack(0, 0, 0, 24 + len(payload))
            + RPMSG_HEADER.pack(src, dst, 0, len(payload), 0) + payload)


# One owner per line -------------------------------------------------------------------------


def test_a_second_opener_gets_already_open_naming_the_owner() -> None:
    dev = rpmsg.open("uart:pty")
    path = dev.link.describe()["pty"]
    peer = spawn_peer(path)
    try:
        before = snapshot().fds
        with pytest.raises(rpmsg.AlreadyOpenError) as info:
            rpmsg.open(f"uart:{path}")
        message = str(info.value)
        assert f"pid {peer.pid}" in message and "uart_peer.py" in message
        assert "rpmsg term" in message and "capture" in message
        assert "\n" not in message  # one line for the CLI
        assert snapshot().fds == before  # nothing left open by the failed attempt
        dev.wait_up(10)  # the owner's link is not disturbed
    finally:
        stop(peer)
        dev.close()


def test_missing_and_forbidden_serial_ports_are_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(rpmsg.NotAvailableError, match="does-not-exist"):
        rpmsg.open("uart:/dev/does-not-exist-rpmsg")
    import serial

    def denied(*_args: object, **_kw: object) -> None:
        raise serial.SerialException(errno.EACCES, "could not open port: Permission denied")

    monkeypatch.setattr(serial, "serial_for_url", denied)
    with pytest.raises(rpmsg.AccessDeniedError, match="dialout") as info:
        open_serial("/dev/ttyS99")
    assert isinstance(info.value, PermissionError)


# Garbage on the line ------------------------------------------------------------------------


def test_garbage_from_another_process_is_counted_and_the_link_recovers() -> None:
    dev = rpmsg.open("uart:pty?crc=arc")
    path = dev.link.describe()["pty"]
    try:
        threads = threading.active_count()
        hostile = spawn(GARBAGE, path, 1, 20)
        written, _ = hostile.communicate(timeout=60)
        assert hostile.returncode == 0  # it wrote everything and exited by itself
        wait_until(lambda: dev.stats()["link_wire_rx_bytes"] >= int(written), 30,
                   "every garbage byte read")
        stats = dev.stats()
        framing = {k: v for k, v in stats.items() if k.startswith("link_framing_") and v}
        for reason in ("junk", "bad_crc", "too_long", "bad_escape", "unknown_control"):
            assert framing.get(f"link_framing_{reason}", 0) > 0, (reason, framing)
        assert dev.broken_error is None
        assert threading.active_count() == threads  # no thread died or was added
        # A real peer now connects and talks: the link recovered by itself.
        peer = spawn_peer(path, "crc=arc")
        try:
            echo = dev.create_endpoint("rpmsg-echo")
            echo.wait_bound(10)
            for n in (0, 1, 496, dev.mtu):
                data = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
                echo.send(data, timeout=10)
                assert echo.recv(timeout=10) == data
            # Garbage again, in the middle of a live session, from a second writer.
            hostile = spawn(GARBAGE, path, 2, 5)
            hostile.communicate(timeout=60)
            assert hostile.returncode == 0
            deadline = time.monotonic() + 30
            while True:  # garbage CONNREQ/POWEROFF bytes restart the link: wait it out
                try:
                    echo.wait_bound(5)
                    echo.send(b"after", timeout=5)
                    if echo.recv(timeout=2) == b"after":
                        break
                except rpmsg.RpmsgError:
                    if time.monotonic() > deadline:
                        raise
        finally:
            stop(peer)
        t0 = time.monotonic()
        dev.close()
        assert time.monotonic() - t0 < 1.0 + SLACK
    finally:
        dev.close()


@pytest.mark.parametrize("optional", [False, True])
def test_frames_without_crc_are_dropped_unless_crc_optional(optional: bool) -> None:
    query = "crc=arc" + ("&crc_optional=1" if optional else "")
    dev = rpmsg.open(f"uart:pty?{query}")
    path = dev.link.describe()["pty"]
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        ept = dev.create_endpoint("x", src=0x400)
        os.write(fd, bytes([CURRENT.connreq]))  # a raw peer: connect, then send frames
        dev.wait_up(10)
        plain, crc = FrameEncoder(CURRENT, "none"), FrameEncoder(CURRENT, "arc")
        for i in range(20):  # "corrupted" frames whose CRC field happens to read 0
            os.write(fd, plain.encode(raw_frame(b"no crc %d" % i)))
        os.write(fd, crc.encode(raw_frame(b"checked")))
        got = [ept.recv(timeout=10) for _ in range(21 if optional else 1)]
        if optional:
            assert got == [b"no crc %d" % i for i in range(20)] + [b"checked"]
        else:
            assert got == [b"checked"]
            assert dev.stats()["link_framing_no_crc"] == 20
            with pytest.raises(RpmsgTimeoutError):
                ept.recv(timeout=0.2)
    finally:
        os.close(fd)
        dev.close()


def test_a_crc_mismatch_is_named_in_timeout_errors() -> None:
    with pty_pair(a_options="crc=arc", b_options="crc=xmodem") as (a, b):
        b.create_endpoint("x")
        ept = a.create_endpoint("x")
        with pytest.raises(RpmsgTimeoutError) as info:
            ept.wait_bound(1.5)
        assert "no frame passed the CRC" in str(info.value)
        assert "check crc= on both sides" in str(info.value)


# Close and timeouts -------------------------------------------------------------------------


def test_close_flushes_what_was_sent_before_it_ns_destroy_included() -> None:
    with pty_pair(MTU_496) as (a, b):
        got: list[bytes] = []
        srv = b.create_endpoint("x", callback=lambda _e, data, _s: got.append(data))
        cli = a.create_endpoint("x")
        cli.wait_bound(10)
        srv.wait_bound(10)
        tap = RecordingTap()
        b.link.tap = tap  # type: ignore[assignment]
        sent = [i.to_bytes(4, "little") * 100 for i in range(200)]
        for m in sent:
            cli.send(m, timeout=10)
        a.close(timeout=30)  # b then sees the pty hang up: its link breaks, as if unplugged
        wait_until(lambda: len(got) == len(sent), 10,
                   f"every message queued before close ({a.stats()}, got {len(got)})")
        assert got == sent
        wait_until(lambda: not b.is_up, 10, "link down after POWEROFF")
        ns = [NsMessage.decode(d, 24) for d, _ in tap.of("rx", "port")
              if RPMSG_HEADER.unpack(d, 8)[1] == NS_ADDR]
        destroys = [m for m in ns if m.flags is NsFlags.DESTROY]
        assert destroys == [NsMessage("x", cli.addr, NsFlags.DESTROY)]  # it came too
        assert a.stats()["link_tx_dropped_close"] == 0


def test_close_and_sends_keep_their_budget_when_the_peer_stops_reading() -> None:
    dev = rpmsg.open("uart:pty?txnum=4")
    path = dev.link.describe()["pty"]
    peer = spawn_peer(path)
    try:
        echo = dev.create_endpoint("rpmsg-echo")
        echo.wait_bound(10)
        os.kill(peer.pid, signal.SIGSTOP)  # the peer stops reading (and acknowledging)
        big = bytes(dev.mtu)
        t0 = time.monotonic()
        with pytest.raises(RpmsgTimeoutError):
            for _ in range(1000):  # fills the pty, then the TX queue
                echo.send(big, timeout=0.3)
        assert time.monotonic() - t0 < 0.3 * 1000  # it ended on the first full wait
        t0 = time.monotonic()
        with pytest.raises(RpmsgTimeoutError):
            echo.send(big, timeout=0.3)
        assert time.monotonic() - t0 < 0.3 + SLACK
        t0 = time.monotonic()
        dev.close(timeout=0.5)  # the TX thread is blocked in a write nobody drains
        assert time.monotonic() - t0 < 0.5 + SLACK
    finally:
        os.kill(peer.pid, signal.SIGCONT)
        stop(peer)
        dev.close()


def test_link_up_with_more_announcements_than_transmit_buffers() -> None:
    # The Device announces from the RX thread (link up) with timeout 0 and queues what does
    # not fit; the RX thread must never wait for its own announcements to go out.
    a = rpmsg.open("uart:pty?txnum=2")
    try:
        names = [f"svc-{i}" for i in range(30)]
        for n in names:
            a.create_endpoint(n)
        with rpmsg.open(f"uart:{a.link.describe()['pty']}?rxnum=2") as b:
            for n in names:
                b.wait_service(n, timeout=20)
            assert a.stats()["ns_send_failures"] == 0
    finally:
        a.close()


# Back-pressure ------------------------------------------------------------------------------


def test_a_full_endpoint_queue_stops_the_reader_and_nothing_is_dropped() -> None:
    with pty_pair("rxnum=4") as (a, b):
        cli, srv = bound_pair(a, b, queue=2, hold=None)
        # 400 kB: more than the reader's bounded backlog and the pty's buffers together.
        sent = [i.to_bytes(4, "little") * 500 for i in range(200)]
        done = threading.Event()

        def sender() -> None:
            for m in sent:
                cli.send(m, timeout=60)
            done.set()

        t = threading.Thread(target=sender)
        t.start()
        # The queue holds 2, the port's 4 RX buffers stay with the Device: the reader stops
        # and the sender cannot finish.
        wait_until(lambda: b.link.rxq.navail() == 0, 10, "all RX buffers held")  # type: ignore[attr-defined]
        assert not done.wait(0.5)
        got = [srv.recv(timeout=10) for _ in sent]
        t.join(30)
        assert done.is_set() and got == sent
        stats = b.stats()
        assert stats["dropped_queue_full"] == 0
        assert stats["link_rx_buffer_waits"] > 0
        assert not {k: v for k, v in stats.items() if k.startswith("link_framing_") and v}


def test_a_flood_at_an_unread_endpoint_keeps_memory_flat() -> None:
    with pty_pair("rxnum=8") as (a, b):
        cli, _srv = bound_pair(a, b, hold=0.05)  # held briefly, then dropped and counted
        payload = bytes(496)
        for _ in range(2000):  # warm-up: allocator pools, queues at their steady size
            cli.send(payload, timeout=10)
        wait_until(lambda: b.stats()["dropped_queue_full"] > 0, 10, "drops")
        start = snapshot().rss_kib
        for _ in range(20000):
            cli.send(payload, timeout=10)
        wait_until(lambda: b.stats()["rx_messages"] >= 22000, 30, "the flood received")
        assert snapshot().rss_kib - start < 8 * 1024
        assert b.stats()["dropped_queue_full"] >= 22000 - 256 - 8


# Buffers and bugs ---------------------------------------------------------------------------


def test_link_level_failures_give_their_buffer_back() -> None:
    with pty_pair("txnum=3") as (a, b):
        cli, srv = bound_pair(a, b)
        link: PortLink = a.link  # type: ignore[assignment]
        for _ in range(10):  # more failures than the link has buffers
            with pytest.raises(TypeError):
                link.send(cli.addr, cli.dst, [1, 2, 3], 1)  # type: ignore[arg-type]
            with pytest.raises(InvalidArgumentError):
                link.send(-1, cli.dst, b"x", 1)
            with pytest.raises(InvalidArgumentError):
                link.send_many([(cli.addr, 2**32, b"x")], 1)
        wait_until(lambda: link.txq.navail() == 3, 10, "every TX buffer free")
        cli.send(b"still", timeout=10)
        assert srv.recv(timeout=10) == b"still"


def test_a_failing_receiver_costs_no_rx_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    with pty_pair("rxnum=3") as (a, b):
        cli, srv = bound_pair(a, b)
        deliver = b.deliver

        def broken(src: int, dst: int, payload: Any, release: Any = None) -> None:
            if bytes(payload).startswith(b"bad"):
                raise RuntimeError("a bug in the receiver")
            deliver(src, dst, payload, release)

        monkeypatch.setattr(b, "deliver", broken)
        monkeypatch.setattr(b.link, "_sink", b)  # the link calls the patched method
        for i in range(10):  # more than the 3 RX buffers
            cli.send(b"bad %d" % i, timeout=10)
        for i in range(3):
            cli.send(b"good %d" % i, timeout=10)
        assert [srv.recv(timeout=10) for _ in range(3)] == [b"good 0", b"good 1", b"good 2"]
        assert b.link.stats()["rx_deliver_errors"] == 10
        assert b.link.rxq.navail() == 3  # type: ignore[attr-defined]


# Frame level and logs -----------------------------------------------------------------------


def test_frame_tap_sees_frames_controls_and_the_frames_that_fail_the_crc(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    tap = RecordingTap()
    a = rpmsg.open("uart:pty?crc=arc")
    a.link.tap = tap  # type: ignore[assignment]
    path = a.link.describe()["pty"]
    try:
        with rpmsg.open(f"uart:{path}?crc=arc") as b:
            cli, srv = bound_pair(a, b)
            cli.send(b"\x70\x7c\x7f hello", timeout=10)
            assert srv.recv(timeout=10) == b"\x70\x7c\x7f hello"
            srv.send(b"back", timeout=10)
            assert cli.recv(timeout=10) == b"back"
            fd = os.open(path, os.O_WRONLY | os.O_NOCTTY)  # a corrupted frame into a
            try:
                wire = bytearray(FrameEncoder(CURRENT, "arc").encode(
                    raw_frame(b"bad", src=srv.addr, dst=cli.addr)))
                wire[-2] ^= 0x01  # a payload byte: the CRC no longer matches
                os.write(fd, bytes(wire))
            finally:
                os.close(fd)
            wait_until(lambda: any(i.get("crc") == "bad" for _, i in tap.of("rx", "port")))
    finally:
        a.close()
    tx = [(d, i) for d, i in tap.of("tx", "port") if d.endswith(b"\x70\x7c\x7f hello")]
    assert len(tx) == 1 and tx[0][1] == {"crc": "ok", "escapes": 3, "protocol": "current"}
    assert PORT_HEADER.unpack(tx[0][0])[3] == len(tx[0][0])  # unescaped, with its header
    rx_ok = [d for d, i in tap.of("rx", "port") if i["crc"] == "ok"]
    assert any(d.endswith(b"back") for d in rx_ok)
    (bad, info), = [(d, i) for d, i in tap.of("rx", "port") if i["crc"] == "bad"]
    assert bad[24:] == b"bae" and info["error"] == "bad_crc"  # as received, CRC and all
    names = {i["name"] for _, i in tap.of("rx", "uart-control")} | \
        {i["name"] for _, i in tap.of("tx", "uart-control")}
    assert {"CONNREQ", "CONNACK", "STAYWAKE1", "STAYWAKEACK1", "RELAXWAKE",
            "POWEROFF"} <= names
    messages = [r.getMessage() for r in caplog.records]
    assert any("CRC mismatch (bad_crc)" in m for m in messages)  # DEBUG: every drop
    assert any("link up (UART /dev/pts/" in m and "current protocol" in m for m in messages)


def test_peer_restart_is_logged_at_info_with_its_reason(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    dev = rpmsg.open("uart:pty")
    path = dev.link.describe()["pty"]
    peer = spawn_peer(path)
    try:
        dev.wait_up(10)
        peer.kill()
        peer.wait()
        peer = spawn_peer(path)
        wait_until(lambda: dev.stats()["link_peer_restarts"] == 1)
    finally:
        stop(peer)
        dev.close()
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("link down: the peer restarted (CONNREQ while connected)" in m for m in infos)


# Sizes and options --------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "ok"), [
    ("uart:pty?txlen=79", False),            # current: 40 bytes of overhead + 40 (NS)
    ("uart:pty?txlen=80", True),
    ("uart:pty?rxlen=79", False),
    ("uart:pty?protocol=legacy&staywake=0&txlen=63", False),  # legacy: 24 + 40
    ("uart:pty?protocol=legacy&staywake=0&txlen=64", True),
    ("uart:pty?txnum=0", False),
    ("uart:pty?crc_optional=1", False),      # needs a CRC to be optional
    ("uart:pty?crc=arc&crc_optional=1", True),
    ("uart:pty?txlen=80&txlen=81", False),   # duplicates
])
def test_sizes_derive_their_minimum_from_the_name_service_message(url: str, ok: bool) -> None:
    if not ok:
        with pytest.raises(InvalidURLError):
            rpmsg.open(url)
        return
    rpmsg.open(url).close()


def test_port_config_refuses_what_the_url_refuses() -> None:
    with pytest.raises(InvalidArgumentError, match="txlen"):
        PortConfig(txlen=79)
    with pytest.raises(InvalidArgumentError, match="rxnum"):
        PortConfig(rxnum=0)
    assert PortConfig(txlen=80).tx_payload_size == 40


# The API abuse suite of the runtime, over uart ---------------------------------------------


CHECKS = api_abuse_checks("uart_api_abuse")


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_api_abuse_over_uart(check: Callable[[Any], None]) -> None:
    with pty_pair(MTU_496) as pair:
        check(pair)
