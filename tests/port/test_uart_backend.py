"""The UART backend's TX priority rules, on scripted streams (issue 10.13).

Acknowledgements and wake bytes must not wait behind bulk data: the TX thread writes queued
control bytes before each chunk of a burst, and on a real UART (a baud rate and an output
backlog to read) it keeps that backlog to a few milliseconds of line time, writing control
bytes while data waits. Deterministic: the streams block or report backlog on command.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from rpmsg.port.core import PortConfig, PortLink
from rpmsg.port.uart.backend import WRITE_CHUNK, make_uart_port
from rpmsg.wire.layout import Buffer

from .harness import wait_until

CONNREQ, CONNACK, STAYWAKE1, STAYWAKEACK1 = 0x7E, 0x7D, 0x79, 0x78


class Sink:
    """A LinkSink that only notes the link state."""

    def __init__(self) -> None:
        self.up = threading.Event()

    def link_up(self, detail: str = "") -> None:
        self.up.set()

    def link_down(self, reason: str, *, restart: bool = False) -> None:
        self.up.clear()

    def deliver(self, src: int, dst: int, payload: Buffer, release: Any = None) -> None:
        if release is not None:
            release()

    def broken(self, error: Exception) -> None:
        raise AssertionError(f"the link broke: {error}")


class ScriptedStream:
    """Input fed by the test; every write recorded; data writes can be held."""

    def __init__(self) -> None:
        self.input: deque[bytes] = deque()
        self.writes: list[bytes] = []
        self.cond = threading.Condition()
        self.hold_data = threading.Event()  # set: data writes block until cleared
        self.holding = threading.Event()  # a data write is blocked right now
        self.closed = False

    @property
    def in_waiting(self) -> int:
        with self.cond:
            return sum(map(len, self.input))

    def feed(self, data: bytes) -> None:
        with self.cond:
            self.input.append(data)
            self.cond.notify_all()

    def read(self, size: int = 1) -> bytes:
        with self.cond:
            if not self.input and not self.closed:
                self.cond.wait(0.05)
            return self.input.popleft() if self.input else b""

    def write(self, data: bytes, /) -> int:
        with self.cond:
            self.writes.append(bytes(data))  # on the line as soon as the call starts
        if len(data) > 1:
            while self.hold_data.is_set() and not self.closed:
                self.holding.set()
                threading.Event().wait(0.001)
            self.holding.clear()
        return len(data)

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.hold_data.clear()


class ScriptedSerial(ScriptedStream):
    """A real UART as pyserial shows it: a baud rate and an output backlog."""

    baudrate = 115200

    def __init__(self) -> None:
        super().__init__()
        self.backlog = 0

    @property
    def out_waiting(self) -> int:
        return self.backlog


def started(stream: ScriptedStream) -> tuple[PortLink, Sink]:
    link = make_uart_port(stream, PortConfig(txnum=16), staywake=False, name="scripted")
    sink = Sink()
    link.start(sink)
    stream.feed(bytes([CONNREQ]))  # the peer connects
    assert sink.up.wait(10)
    wait_until(lambda: bytes([CONNACK]) in stream.writes, 10, "CONNACK written")
    return link, sink


def test_an_acknowledgement_goes_out_at_the_next_chunk_of_a_burst() -> None:
    stream = ScriptedStream()
    link, _sink = started(stream)
    try:
        stream.hold_data.set()
        for i in range(10):  # 10 x 2008 B: five chunks of WRITE_CHUNK once encoded
            link.send(1024, 1024, bytes([i]) * 2000, timeout=10)
        assert stream.holding.wait(10)  # the TX thread is inside the first chunk's write
        first = len(stream.writes)
        stream.feed(bytes([STAYWAKE1]))  # the peer wants to send: ACK it now, not later
        wait_until(lambda: link.backend.machine.counts["staywake_answered"] == 1)  # type: ignore[attr-defined]
        stream.hold_data.clear()
        wait_until(lambda: link.txq.nused() == 0 and not stream.holding.is_set())
        encoded = 10 * (1 + 24 + 2000 + 1)  # START, headers, payload, END; nothing to escape
        wait_until(lambda: sum(len(w) for w in stream.writes[first - 1:] if len(w) > 1)
                   == encoded)
        later = stream.writes[first:]
        assert later[0] == bytes([STAYWAKEACK1])  # right after the chunk being written
        assert all(len(w) <= WRITE_CHUNK for w in later)
    finally:
        link.close(1.0)


def test_a_real_uarts_backlog_is_kept_short_and_control_bytes_pass_it() -> None:
    stream = ScriptedSerial()
    link, _sink = started(stream)
    try:
        stream.backlog = 100_000  # the UART still has ~9 s of data to shift out
        before = len(stream.writes)
        link.send(1024, 1024, bytes(2000), timeout=10)
        wait_until(lambda: link.txq.nused() == 0, 10, "the frame taken for the burst")
        stream.feed(bytes([STAYWAKE1]))
        wait_until(lambda: bytes([STAYWAKEACK1]) in stream.writes[before:], 10,
                   "the ACK written while data waits for the backlog")
        assert sum(len(w) for w in stream.writes[before:] if len(w) > 1) <= 115
        stream.backlog = 0  # it drained: the rest of the frame follows in small chunks
        wait_until(lambda: sum(len(w) for w in stream.writes[before:] if len(w) > 1) >= 2000)
        chunks = [len(w) for w in stream.writes[before:] if len(w) > 1]
        assert max(chunks) == 115  # ~10 ms of line at 115200 baud
    finally:
        link.close(1.0)
