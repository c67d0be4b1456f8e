"""A deterministic, thread-free model of two SPI sides around the sans-IO protocol.

Each side keeps the queue accounting of the port core (free RX buffers besides the posted
one, TX ready list, RX ready list) so tests can run exchanges step by step, restart a side at
any point, and check what was delivered.
"""

from __future__ import annotations

from collections import deque

from rpmsg.port.crc import CrcFunction
from rpmsg.port.spi.proto import Cmd, SpiFrame, SpiProtocol
from rpmsg.wire.port import PORT_HEADER
from rpmsg.wire.rpmsg import RPMSG_HEADER

BUFLEN = 128
DATA_OFF = 24


class Side:
    """One side: protocol + queue counts + what the application saw."""

    def __init__(self, role: str, *, rxnum: int = 4, name: str = "",
                 crc: CrcFunction | None = None) -> None:
        self.proto = SpiProtocol(role, buflen=BUFLEN, rxnum=rxnum, name=name,  # type: ignore[arg-type]
                                 crc=crc)
        self.free_rx = rxnum - 1
        self.tx: deque[bytes] = deque()
        self.ready: deque[SpiFrame] = deque()
        self.delivered: list[bytes] = []
        self.up = False
        self.ups = 0
        self.downs = 0
        self.local_name: str | None = None
        self._sent: Cmd | None = None

    def send(self, payload: bytes) -> None:
        if self.up:  # the port refuses sends while the link is down
            self.tx.append(payload)

    def frame(self) -> bytes:
        cmd = self.proto.choose(bool(self.tx))
        buf = bytearray(BUFLEN)
        if cmd is Cmd.DATA:
            payload = self.tx[0]
            PORT_HEADER.pack_into(buf, 0, 0, 0, 0, DATA_OFF + len(payload))
            RPMSG_HEADER.pack_into(buf, 8, 1024, 1024, 0, len(payload), 0)
            buf[DATA_OFF:DATA_OFF + len(payload)] = payload
        self.proto.seal(buf, cmd, self.free_rx)
        self._sent = cmd
        return bytes(buf)

    def complete(self, rx: bytes) -> None:
        if self._sent is Cmd.DATA:
            self.tx.popleft()
        self._sent = None
        out = self.proto.complete(rx, self.free_rx)
        if out.drop_tx:
            self.tx.clear()
        if out.drop_rx:
            self.free_rx += sum(1 for f in self.ready if f.cmd is Cmd.DATA)
            self.ready.clear()
        if out.queued is not None:
            f = out.queued
            if f.cmd is Cmd.DATA:
                self.free_rx -= 1
                assert self.free_rx >= 0
            self.ready.append(SpiFrame(f.cmd, f.avail, f.length, f.crc,
                                       memoryview(bytes(f.data)), f.name))

    def process(self) -> None:
        while self.ready:
            f = self.ready.popleft()
            p = self.proto.process(f)
            if p.link_down is not None and self.up:
                self.up = False
                self.downs += 1
                self.tx.clear()
            if p.link_up is not None:
                self.up = True
                self.ups += 1
                self.local_name = p.link_up
            if p.deliver is not None:
                n = RPMSG_HEADER.unpack(f.data, 8)[3]
                if self.up:
                    self.delivered.append(bytes(f.data[DATA_OFF:DATA_OFF + n]))
                self.free_rx += 1


def exchange(master: Side, slave: Side) -> None:
    """One full-duplex exchange: both frames are chosen before either completion."""
    fm, fs = master.frame(), slave.frame()
    master.complete(fs)
    slave.complete(fm)


def run(master: Side, slave: Side, steps: int, *, process_every: int = 1) -> None:
    for i in range(steps):
        exchange(master, slave)
        if (i + 1) % process_every == 0:
            master.process()
            slave.process()
