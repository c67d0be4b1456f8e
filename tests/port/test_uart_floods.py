"""A UART peer that floods control bytes while our receive side is held up (outsider QA).

While the RX thread waits (a callback's reply waits for a transmit buffer, or no receive
buffer is free) it keeps reading and parks what it decodes, up to a byte budget, so that wake
bytes are still answered. Only frames counted against that budget: a peer that sent a
stream of control bytes (or broken frames) meanwhile grew the parked queue without bound
(3.7 MB of SUSPEND/RESUME bytes: 3.7 million events, 20 -> 227 MiB). Every parked event
counts now, so the RX thread stops reading and the line holds the peer back.
"""

from __future__ import annotations

import os
import select
import time
import tty

import rpmsg
from rpmsg.port.uart.backend import READ_SIZE, RX_BACKLOG_BYTES, UartBackend
from rpmsg.port.uart.framer import CURRENT, FrameEncoder
from rpmsg.wire.port import PORT_HEADER
from rpmsg.wire.rpmsg import RPMSG_HEADER

from .harness import wait_until

FLOOD = 4 << 20  # bytes of control bytes the peer tries to send


def _frame(encoder: FrameEncoder, src: int, dst: int, payload: bytes) -> bytes:
    body = (PORT_HEADER.pack(0, 0, 0, 24 + len(payload))
            + RPMSG_HEADER.pack(src, dst, 0, len(payload), 0) + payload)
    return encoder.encode(body)


def _flood(fd: int, data: bytes, total: int) -> int:
    """Write ``data`` repeatedly until ``total`` bytes went out or the line held us back
    for 2 s (what a receiver that cannot act on its input should do); bytes written."""
    os.set_blocking(fd, False)
    sent = 0
    blocked_since = None
    while sent < total:
        try:
            sent += os.write(fd, data)
            blocked_since = None
        except BlockingIOError:
            now = time.monotonic()
            blocked_since = blocked_since or now
            if now - blocked_since > 2.0:
                break
            select.select([], [fd], [], 0.1)
    return sent


def test_a_control_byte_flood_while_no_receive_buffer_is_free_is_held_back() -> None:
    dev = rpmsg.open("uart:pty?rxnum=2", policy="openamp")
    fd = -1
    try:
        backend = dev.link.backend  # type: ignore[attr-defined]
        assert isinstance(backend, UartBackend)
        # A reader that does not read: one message queued, the rest held in the port's
        # receive buffers for ever (pure back-pressure).
        ept = dev.create_endpoint("slow", src=0x400, queue=1, hold=None)
        fd = os.open(dev.link.describe()["pty"], os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        os.write(fd, bytes([CURRENT.connreq, CURRENT.connack]))
        dev.wait_up(10)
        encoder = FrameEncoder(CURRENT, "none")
        os.write(fd, b"".join(_frame(encoder, 0x401, ept.addr, b"x" * 100) for _ in range(5)))
        wait_until(lambda: backend.counts["rx_buffer_waits"] > 0, 10, "no free RX buffer")
        sent = _flood(fd, bytes([CURRENT.suspend, CURRENT.resume]) * 32768, FLOOD)
        assert sent < FLOOD, "the receiver read the whole flood while it could not act on it"
        parked = len(backend._deferred)
        assert parked <= RX_BACKLOG_BYTES + READ_SIZE, parked  # every event counts at least 1
        # The reader catches up: everything parked is handled, in order, and the link lives.
        got = [ept.recv(timeout=10) for _ in range(5)]
        assert got == [b"x" * 100] * 5
        wait_until(lambda: not backend._deferred, 30, "the parked input handled")
        assert dev.is_up and dev.broken_error is None
    finally:
        if fd >= 0:
            os.close(fd)
        t0 = time.monotonic()
        dev.close(timeout=1.0)
        assert time.monotonic() - t0 < 2.0
