"""What a Device tells: INFO/DEBUG logs, the tap (every message and event), timeout messages
naming what the link saw, and receive timestamps (issue 12.6, 12.7)."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from foundation_helpers import wait_until

import rpmsg
from rpmsg.transport import Link
from rpmsg.wire import NS_ADDR, NsFlags, NsMessage

Pair = tuple[rpmsg.Device, rpmsg.Device]


class RecordingTap:
    """A Tap that records every call (thread-safe enough for list.append)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, int, int, bytes]] = []
        self.events: list[tuple[str, str]] = []
        self.closed = 0

    def message(self, direction: str, src: int, dst: int, payload: Any, flags: int = 0) -> None:
        self.messages.append((direction, src, dst, bytes(payload)))

    def event(self, kind: str, detail: str = "") -> None:
        self.events.append((kind, detail))

    def frame(self, direction: str, kind: str, data: Any, info: Any) -> None:
        pass

    def close(self) -> None:
        self.closed += 1


def tapped_pair(name: str) -> tuple[rpmsg.Device, rpmsg.Device, RecordingTap]:
    from rpmsg.transports.loop import pair

    la, lb = pair(name)
    tap = RecordingTap()
    a = rpmsg.Device(la, tap=tap, name=f"loop:{name}")  # type: ignore[arg-type]
    b = rpmsg.Device(lb, name=f"loop:{name}#b")
    return a, b, tap


def test_tap_sees_every_message_and_event(loop_name: str) -> None:
    a, b, tap = tapped_pair(loop_name)
    try:
        server = b.create_endpoint("svc")
        a.wait_service("svc", timeout=5)
        client = a.create_endpoint("svc", zero_copy=True)
        client.wait_bound(timeout=5)
        client.send(b"plain")
        client.send_to(server.addr, b"to")
        assert client.send_many([b"m1", b"m2"]) == 2
        buf = client.get_tx_buffer(timeout=5)
        buf.payload[:2] = b"zc"
        client.send_buffer(buf, 2)
        for _ in range(5):
            server.recv(timeout=5)
        server.send(b"back")
        assert client.recv(timeout=5) == b"back"
        a.create_endpoint("announced")  # an NS CREATE we send
    finally:
        a.close()
        b.close()
    tx = [(s, d, p) for direction, s, d, p in tap.messages if direction == "tx"]
    rx = [(s, d, p) for direction, s, d, p in tap.messages if direction == "rx"]
    user_tx = [p for s, d, p in tx if d != NS_ADDR]
    assert user_tx == [b"plain", b"to", b"m1", b"m2", b"zc"]
    assert (server.addr, client.addr, b"back") in rx
    assert any(d == NS_ADDR and NsMessage.decode(p).name == "svc" for s, d, p in rx)
    ns_tx = [NsMessage.decode(p) for s, d, p in tx if d == NS_ADDR]
    # OpenAMP policy: a named endpoint at a dynamic address sends DESTROY on close.
    assert [(m.name, m.flags) for m in ns_tx] == [("announced", NsFlags.CREATE),
                                                  ("svc", NsFlags.DESTROY),
                                                  ("announced", NsFlags.DESTROY)]
    kinds = [k for k, _ in tap.events]
    assert kinds[0] == "open" and "link-up" in kinds and kinds[-1] == "close"
    assert tap.closed == 1


def test_tap_sees_drops_and_link_down(loop_name: str) -> None:
    a, b, tap = tapped_pair(loop_name)
    try:
        a.wait_up(timeout=5)
        b.wait_up(timeout=5)
        x = b.create_endpoint(src=0x30)
        x.send_to(0x999, b"nobody")  # a's core drops it: unknown destination
        wait_until(lambda: ("drop", "unknown destination 0x999") in tap.events)
        b.close()
        wait_until(lambda: any(k == "link-down" for k, _ in tap.events))
    finally:
        a.close()
        b.close()


def test_logs_answer_questions(loop_name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="rpmsg")
    with rpmsg.open(f"loop:{loop_name}") as a, rpmsg.open(f"loop:{loop_name}") as b:
        server = b.create_endpoint("svc")
        a.wait_service("svc", timeout=5)
        client = a.create_endpoint("svc")
        client.wait_bound(timeout=5)
        client.send_to(0x999, b"to nobody")
        client.send_to(NS_ADDR, b"garbage")
        wait_until(lambda: b.stats()["ns_invalid"] == 1)
        server.close()
        wait_until(lambda: not client.bound)
    text = [r.getMessage() for r in caplog.records]
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]

    def has(lines: list[str], *parts: str) -> bool:
        return any(all(p in line for p in parts) for line in lines)

    assert has(info, f"loop:{loop_name}", "link up")
    assert has(info, "sent NS CREATE 'svc'")
    assert has(info, "received NS CREATE 'svc'")
    assert has(info, "bound to")
    assert has(info, "sent NS DESTROY 'svc'")
    assert has(info, "received NS DESTROY 'svc'")
    assert has(info, "unbound", "remote destroyed 'svc'")
    assert has(info, "link down")
    assert has(text, "dropped a message", "unknown destination 0x999")
    assert has(text, "dropped a message", "malformed name-service message")


def test_timeouts_say_what_the_link_saw(devices: Pair) -> None:
    a, _b = devices
    a.wait_up(timeout=5)
    ept = a.create_endpoint("lonely")
    with pytest.raises(rpmsg.RpmsgTimeoutError,
                       match=r"link up; the other end is open; \d+ message\(s\) sent"):
        ept.wait_bound(timeout=0.05)
    with pytest.raises(rpmsg.RpmsgTimeoutError, match=r"nothing announced; link up"):
        a.wait_service("never", timeout=0.05)
    x = a.create_endpoint(src=0x40, dst=0x41)
    with pytest.raises(rpmsg.RpmsgTimeoutError, match=r"recv on '': no message within 0\.05 s; "
                                                      r"link up"):
        x.recv(timeout=0.05)


def test_seen_defaults_to_nonzero_stats() -> None:
    class Quiet(Link):
        def start(self, sink: Any) -> None:
            pass

        def send(self, src: int, dst: int, payload: Any, timeout: float | None) -> None:
            pass

        def close(self, timeout: float | None = None) -> None:
            pass

        def stats(self) -> dict[str, int]:
            return {"crc_errors": 37, "rx_frames": 0}

    assert Quiet().seen() == "link counters: crc_errors=37"


def test_loop_says_when_the_other_end_is_missing(loop_name: str) -> None:
    missing = f"link down; the other end of loop:{loop_name} is not open"
    with rpmsg.open(f"loop:{loop_name}") as a, pytest.raises(rpmsg.RpmsgTimeoutError,
                                                             match=missing):
        a.wait_up(timeout=0.05)


def test_message_timestamp_is_the_receive_wall_clock(devices: Pair) -> None:
    a, b = devices
    a.wait_up(timeout=5)
    x = a.create_endpoint(src=0x40, dst=0x41)
    y = b.create_endpoint(src=0x41, zero_copy=True)
    before = time.time()
    x.send(b"when")
    x.send(b"zero-copy")
    msg = y.recv_message(timeout=5)
    after = time.time()
    assert msg.data == b"when" and before <= msg.timestamp <= after
    with y.recv_buffer(timeout=5) as buf:
        assert before <= buf.timestamp <= time.time()
