"""A wire between two UART ptys, with a tap for a sniffer: copies every byte between the
ptys of two RPMsg Port processes and a copy of each direction into a pty of its own, which
``rpmsg sniff`` reads. Optionally injects one frame with a wrong CRC into the A->B direction
(between frames, after a number of frames went by), as line noise would.

Usage: ``python uart_relay.py PTY_A PTY_B PROTOCOL INJECT_AFTER [ab|ba] [SNIFF]``: the bad
frame goes A->B (default) or B->A after that many frames in that direction (-1: never);
SNIFF 0 makes no copies. Prints ``sniff <tx pty> <rx pty>``, waits for ``go`` on stdin,
relays until stdin closes, then prints ``injected N`` and ``sniffer-wrote N`` (bytes the
sniffer sent: must be 0).
"""

from __future__ import annotations

import os
import select
import sys
import threading
import tty

from rpmsg.port.uart.framer import FrameEncoder, get_protocol
from rpmsg.wire.port import PORT_HEADER
from rpmsg.wire.rpmsg import encode_message

#: The frame injected into A->B: a message to an unused address with a wrong CRC.
BAD_PAYLOAD = b"corrupted on the line"


def bad_frame(protocol_name: str) -> bytes:
    msg = encode_message(0x777, 0x778, BAD_PAYLOAD)
    frame = PORT_HEADER.pack(0xBEEF, 0, 0, PORT_HEADER.size + len(msg)) + msg
    return FrameEncoder(get_protocol(protocol_name), crc="none").encode(frame)


def open_raw(path: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    return fd


def new_pty() -> tuple[int, int, str]:
    master, slave = os.openpty()
    tty.setraw(slave)
    return master, slave, os.ttyname(slave)


def put(fd: int, data: bytes) -> None:
    """Write all of ``data``; a side that went away (EIO) just loses it."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        pass


class Direction:
    """One direction of the wire: where its bytes go, and where it is between frames."""

    def __init__(self, dest: int, copy: int | None, start: bytes, end: bytes) -> None:
        self.dest, self.copy, self.start, self.end = dest, copy, start, end
        self.frames = 0
        self.in_frame = False

    def carry(self, data: bytes) -> None:
        put(self.dest, data)
        if self.copy is not None:
            put(self.copy, data)
        self.frames += data.count(self.end)
        last_start, last_end = data.rfind(self.start), data.rfind(self.end)
        if last_start > last_end:
            self.in_frame = True
        elif last_end > last_start:
            self.in_frame = False


def main() -> None:
    path_a, path_b, proto_name, inject_after = sys.argv[1:5]
    inject_dir = sys.argv[5] if len(sys.argv) > 5 else "ab"
    sniff = sys.argv[6] != "0" if len(sys.argv) > 6 else True
    protocol = get_protocol(proto_name)
    a, b = open_raw(path_a), open_raw(path_b)
    tx_m, _tx_s, tx_path = new_pty()
    rx_m, _rx_s, rx_path = new_pty()
    print(f"sniff {tx_path} {rx_path}", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    start, end = bytes([protocol.start]), bytes([protocol.end])
    ab = Direction(b, tx_m if sniff else None, start, end)
    ba = Direction(a, rx_m if sniff else None, start, end)
    target = ab if inject_dir == "ab" else ba
    injected = 0
    sniffer_wrote = 0
    limit = int(inject_after)
    watch = [a, b, tx_m, rx_m]
    while not done.is_set():
        ready, _, _ = select.select(watch, [], [], 0.05)
        for fd in ready:
            try:
                data = os.read(fd, 4096)
            except OSError:  # the other end went away
                data = b""
            if not data:
                watch.remove(fd)
                continue
            if fd == a:
                ab.carry(data)
            elif fd == b:
                ba.carry(data)
            else:
                sniffer_wrote += len(data)
        if limit >= 0 and not injected and target.frames >= limit and not target.in_frame:
            target.carry(bad_frame(proto_name))
            injected = 1
    print(f"injected {injected}", flush=True)
    print(f"sniffer-wrote {sniffer_wrote}", flush=True)


if __name__ == "__main__":
    main()
