"""Two processes over a real pty pair: connect, bind by name service, echo and ping traffic,
and a peer that is killed and restarted mid-session."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import rpmsg
from rpmsg.errors import RpmsgTimeoutError
from rpmsg.wire.ping import PING_ACK, PING_CMD_RSP, PING_HEADER

PEER = Path(__file__).with_name("uart_peer.py")


def spawn(path: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, str(PEER), path], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None and proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def echo_stream(ept: rpmsg.Endpoint, messages: list[bytes]) -> None:
    """Send every message from a thread while receiving here; echoes must match in order."""
    errors: list[BaseException] = []

    def sender() -> None:
        try:
            for m in messages:
                ept.send(m, timeout=30)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    t = threading.Thread(target=sender)
    t.start()
    for i, m in enumerate(messages):
        got = ept.recv(timeout=30)
        assert got == m, f"echo {i} differs"
    t.join(30)
    assert not errors


def ping_round_trips(ept: rpmsg.Endpoint, count: int, rng: random.Random) -> None:
    for cookie in range(count):
        data = rng.randbytes(rng.randint(1, ept.mtu - PING_HEADER.size))
        size = PING_HEADER.size + len(data)
        ept.send(PING_HEADER.pack(PING_ACK, size, cookie) + data, timeout=30)
        reply = ept.recv(timeout=30)
        assert PING_HEADER.unpack(reply) == (PING_CMD_RSP, size, cookie)
        assert reply[PING_HEADER.size:] == data


def random_messages(rng: random.Random, count: int, mtu: int) -> list[bytes]:
    return [i.to_bytes(4, "little") + rng.randbytes(rng.randint(0, mtu - 4))
            for i in range(count)]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_two_processes_echo_ping_and_peer_restart() -> None:
    rng = random.Random(20260)
    dev = rpmsg.open("uart:pty?baudrate=4000000")
    path = dev.link.describe()["pty"]
    peer = spawn(path)
    try:
        dev.wait_up(10)
        echo = dev.create_endpoint("rpmsg-echo")
        ping = dev.create_endpoint("ping-test")
        echo.wait_bound(10)
        ping.wait_bound(10)
        assert dev.mtu == 2048 - 40

        echo_stream(echo, random_messages(rng, 9_000, dev.mtu))
        ping_round_trips(ping, 1_000, rng)

        # The peer dies without a word, a new one starts on the same line: its CONNREQ
        # reaches a connected link, which drops every binding and rebinds by name service.
        peer.kill()
        peer.wait()
        peer = spawn(path)
        for _ in range(100):
            if dev.stats()["link_peer_restarts"] >= 1 and echo.bound and ping.bound:
                break
            threading.Event().wait(0.1)
        echo.wait_bound(10)
        ping.wait_bound(10)
        assert dev.stats()["link_peer_restarts"] == 1
        echo_stream(echo, random_messages(rng, 200, dev.mtu))
        ping_round_trips(ping, 20, rng)
        with pytest.raises(RpmsgTimeoutError):  # nothing delivered twice
            echo.recv(timeout=0.3)

        stats = dev.stats()
        framing = {k: v for k, v in stats.items() if k.startswith("link_framing_") and v}
        assert framing == {}
        assert stats["dropped_unknown_dst"] == 0
    finally:
        dev.close()
        stop(peer)
