"""The uart: transport in one process over a pty: options, protocol variants, backpressure."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import rpmsg
from rpmsg.errors import InvalidURLError


@contextmanager
def pty_pair(options: str = "") -> Iterator[tuple[rpmsg.Device, rpmsg.Device]]:
    a = rpmsg.open("uart:pty" + (f"?{options}" if options else ""))
    try:
        path = a.link.describe()["pty"]
        b = rpmsg.open(f"uart:{path}?baudrate=4000000" + (f"&{options}" if options else ""))
        try:
            a.wait_up(10)
            b.wait_up(10)
            yield a, b
        finally:
            b.close()
    finally:
        a.close()


@pytest.mark.parametrize("options", [
    "",
    "crc=arc",
    "staywake=off",
    "protocol=legacy&crc=xmodem",
    "protocol=legacy&crc=arc&txlen=512&rxlen=512",
])
def test_variants_bind_and_echo(options: str) -> None:
    with pty_pair(options) as (a, b):
        b.create_endpoint("echo", callback=lambda e, d, s: e.send_to(s, d, timeout=5))
        ept = a.create_endpoint("echo")
        ept.wait_bound(10)
        expected_mtu = (512 if "txlen=512" in options else 2048) - (
            24 if "legacy" in options else 40)
        assert ept.mtu == expected_mtu
        messages = [bytes([0x70 + i % 16]) * (i * 37 % (ept.mtu + 1)) for i in range(60)]
        for m in messages:
            ept.send(m, timeout=5)
        assert [ept.recv(timeout=5) for _ in messages] == messages
        framing = {k: v for k, v in a.stats().items() if k.startswith("link_framing_") and v}
        assert framing == {}


def test_no_free_rx_buffer_stops_the_reader_and_loses_nothing() -> None:
    with pty_pair("rxnum=2") as (a, b):
        sink = b.create_endpoint("sink", zero_copy=True)
        src = a.create_endpoint("sink")
        src.wait_bound(10)
        messages = [i.to_bytes(4, "little") * 500 for i in range(300)]  # 600 kB in total
        done = threading.Event()

        def sender() -> None:
            for m in messages:
                src.send(m, timeout=30)
            done.set()

        t = threading.Thread(target=sender)
        t.start()
        held = [sink.recv_buffer(timeout=10), sink.recv_buffer(timeout=10)]
        # Both RX buffers are held: the reader stops, so the sender cannot finish.
        assert not done.wait(0.5)
        assert b.link.rxq.navail() == 0  # type: ignore[attr-defined]
        got = [bytes(h.data) for h in held]
        for h in held:
            h.release()
        while len(got) < len(messages):
            with sink.recv_buffer(timeout=10) as buf:
                got.append(bytes(buf.data))
        t.join(10)
        assert done.is_set()
        assert got == messages


def test_close_is_idempotent_and_peer_sees_link_down() -> None:
    a = rpmsg.open("uart:pty")
    path = a.link.describe()["pty"]
    b = rpmsg.open(f"uart:{path}")
    a.wait_up(10)
    b.wait_up(10)
    ept = a.create_endpoint("x")
    b.create_endpoint("x")
    ept.wait_bound(10)
    down = threading.Event()
    ept.on_unbound = lambda e: down.set()
    b.close()
    b.close()
    assert down.wait(5)  # POWEROFF from the closing side
    assert not a.is_up
    a.close()
    a.close()


@pytest.mark.parametrize("url", [
    "uart:",
    "uart:pty?protocol=ancient",
    "uart:pty?crc=crc32",
    "uart:pty?protocol=legacy&staywake=on",
    "uart:pty?txlen=10",
    "uart:pty?bogus=1",
])
def test_bad_urls(url: str) -> None:
    with pytest.raises(InvalidURLError):
        rpmsg.open(url)


def test_missing_device_is_not_available() -> None:
    with pytest.raises(rpmsg.NotAvailableError):
        rpmsg.open("uart:/dev/does-not-exist-rpmsg")
