"""Wrong arguments, a thousand times each, on ``loop:`` and ``shm:`` (issue 10.2, 10.10, 10.12).

Every bad call raises a typed error (``InvalidArgumentError`` is a ``ValueError``,
``ArgumentTypeError`` a ``TypeError``, both ``RpmsgError``s) before any transmit buffer is
taken, so afterwards the link still sends, the name service still announces, and close()
keeps its budget. Before the fix, ``send_to(-1)`` leaked a ring buffer per call and the link
died after ``num`` (256) of them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pytest
from hostile_helpers import SLACK, bind

import rpmsg
from rpmsg import (
    ArgumentTypeError,
    InvalidArgumentError,
    MessageTooLargeError,
    NameTooLongError,
    RpmsgError,
)

CALLS = 1000

Pair = tuple[rpmsg.Device, rpmsg.Device]


def bad_calls(dev: rpmsg.Device, ept: rpmsg.Endpoint) -> list[tuple[str, Callable[[], Any],
                                                                     type[BaseException]]]:
    """(label, call, expected error) for every kind of wrong argument the API meets."""
    b = bytearray(500)
    return [
        ("send_to(-1)", lambda: ept.send_to(-1, b"x"), InvalidArgumentError),
        ("send_to(2**32)", lambda: ept.send_to(2**32, b"x"), InvalidArgumentError),
        ("send_to('a')", lambda: ept.send_to("a", b"x"), ArgumentTypeError),  # type: ignore[arg-type]
        ("send_to(1.5)", lambda: ept.send_to(1.5, b"x"), ArgumentTypeError),  # type: ignore[arg-type]
        ("send(cast('I') of 500 bytes)", lambda: ept.send(memoryview(b).cast("I")),
         MessageTooLargeError),
        ("send([1, 2, 3])", lambda: ept.send([1, 2, 3]), ArgumentTypeError),  # type: ignore[arg-type]
        ("send('text')", lambda: ept.send("text"), ArgumentTypeError),  # type: ignore[arg-type]
        ("send(non-contiguous)", lambda: ept.send(memoryview(bytes(20))[::2]),
         InvalidArgumentError),
        ("send(timeout=nan)", lambda: ept.send(b"x", timeout=math.nan), InvalidArgumentError),
        ("send(timeout=-1)", lambda: ept.send(b"x", timeout=-1), InvalidArgumentError),
        ("send(timeout='1')", lambda: ept.send(b"x", timeout="1"), ArgumentTypeError),  # type: ignore[arg-type]
        ("send_to(timeout=-0.5)", lambda: ept.send_to(ept.dst, b"x", timeout=-0.5),
         InvalidArgumentError),
        ("send_many([too big])", lambda: ept.send_many([bytes(497)]), MessageTooLargeError),
        ("send_many([[1]])", lambda: ept.send_many([[1]]), ArgumentTypeError),  # type: ignore[list-item]
        ("send_many(timeout=nan)", lambda: ept.send_many([b"x"], timeout=math.nan),
         InvalidArgumentError),
        ("recv(timeout=nan)", lambda: ept.recv(timeout=math.nan), InvalidArgumentError),
        ("recv(timeout=-1)", lambda: ept.recv(timeout=-1), InvalidArgumentError),
        ("recv(timeout=[])", lambda: ept.recv(timeout=[]), ArgumentTypeError),  # type: ignore[arg-type]
        ("recv(max_size=-1)", lambda: ept.recv(timeout=0, max_size=-1), InvalidArgumentError),
        ("recv_many(0)", lambda: ept.recv_many(0, timeout=0), InvalidArgumentError),
        ("wait_bound(timeout=nan)", lambda: ept.wait_bound(timeout=math.nan),
         InvalidArgumentError),
        ("get_tx_buffer(timeout=-1)", lambda: ept.get_tx_buffer(timeout=-1),
         InvalidArgumentError),
        ("create_endpoint(123)", lambda: dev.create_endpoint(123), ArgumentTypeError),  # type: ignore[arg-type]
        ("create_endpoint('a\\0b')", lambda: dev.create_endpoint("a\0b"), InvalidArgumentError),
        ("create_endpoint(32 bytes)", lambda: dev.create_endpoint("n" * 32), NameTooLongError),
        ("create_endpoint(src=-1)", lambda: dev.create_endpoint(src=-1), InvalidArgumentError),
        ("create_endpoint(dst=2**32)", lambda: dev.create_endpoint(dst=2**32),
         InvalidArgumentError),
        ("create_endpoint(src='x')", lambda: dev.create_endpoint(src="x"), ArgumentTypeError),  # type: ignore[arg-type]
        ("create_endpoint(queue=0)", lambda: dev.create_endpoint(queue=0), InvalidArgumentError),
        ("create_endpoint(queue='8')", lambda: dev.create_endpoint(queue="8"), ArgumentTypeError),  # type: ignore[arg-type]
        ("create_endpoint(hold=nan)", lambda: dev.create_endpoint(hold=math.nan),
         InvalidArgumentError),
        ("create_endpoint(callback=1)", lambda: dev.create_endpoint(callback=1), ArgumentTypeError),  # type: ignore[arg-type]
        ("wait_service(timeout=-1)", lambda: dev.wait_service("x", timeout=-1),
         InvalidArgumentError),
        ("wait_up(timeout=nan)", lambda: dev.wait_up(timeout=math.nan), InvalidArgumentError),
    ]


def test_thousand_bad_calls_of_each_kind_leave_the_link_usable(pair: Pair) -> None:
    host, remote = pair
    client, server = bind(host, remote)
    before = len(host.endpoints)
    for label, call, expected in bad_calls(host, client):
        for _ in range(CALLS):
            with pytest.raises(expected) as info:
                call()
            assert isinstance(info.value, RpmsgError), label
    assert isinstance(InvalidArgumentError("x"), ValueError)
    assert isinstance(ArgumentTypeError("x"), TypeError)
    assert len(host.endpoints) == before  # no half-made endpoint left behind
    # The link still sends, in both directions, and more messages than it has buffers.
    for i in range(600):
        client.send(i.to_bytes(2, "little"), timeout=20)
        assert server.recv(timeout=20) == i.to_bytes(2, "little")
    server.send(b"back", timeout=20)
    assert client.recv(timeout=20) == b"back"
    # The name service still goes out (it needs a transmit buffer too).
    late = host.create_endpoint("late-svc")
    assert remote.wait_service("late-svc", timeout=20) == late.addr


def test_thousand_failed_zero_copy_sends_return_their_buffers(pair: Pair) -> None:
    host, remote = pair
    client, server = bind(host, remote)
    for _ in range(CALLS):
        buf = client.get_tx_buffer(timeout=20)
        with pytest.raises(MessageTooLargeError):
            client.send_buffer(buf, buf.capacity + 1)
        buf = client.get_tx_buffer(timeout=20)
        with pytest.raises(InvalidArgumentError):
            client.send_buffer(buf, -1)
        buf = client.get_tx_buffer(timeout=20)
        with pytest.raises(ArgumentTypeError):
            client.send_buffer(buf, 1, dst="x")  # type: ignore[arg-type]
    buf = client.get_tx_buffer(timeout=20)
    buf.payload[:2] = b"ok"
    client.send_buffer(buf, 2)
    assert server.recv(timeout=20) == b"ok"


def test_payload_is_measured_in_bytes(pair: Pair) -> None:
    host, remote = pair
    client, server = bind(host, remote)
    words = memoryview(bytearray(range(256)) + bytearray(240)).cast("I")  # 124 items, 496 B
    client.send(words, timeout=20)
    assert server.recv(timeout=20) == bytes(words)
    client.send_many([words, memoryview(b"ab")], timeout=20)
    assert [server.recv(timeout=20) for _ in range(2)] == [bytes(words), b"ab"]


def test_infinite_and_huge_timeouts_wait_like_none(pair: Pair) -> None:
    host, remote = pair
    client, server = bind(host, remote)
    client.send(b"inf", timeout=math.inf)
    assert server.recv(timeout=math.inf) == b"inf"
    client.send(b"huge", timeout=1e12)
    assert server.recv(timeout=1e12) == b"huge"  # no OverflowError
    assert client.wait_bound(timeout=1e300) == server.addr


def test_close_within_budget_after_abuse(pair: Pair) -> None:
    host, remote = pair
    client, _server = bind(host, remote)
    for _label, call, _expected in bad_calls(host, client):
        for _ in range(50):
            try:
                call()
            except RpmsgError:
                pass
    t0 = time.monotonic()
    host.close(timeout=1.0)
    assert time.monotonic() - t0 < 1.0 + SLACK
