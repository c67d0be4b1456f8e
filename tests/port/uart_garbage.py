"""A hostile process on a serial line: writes garbage of every kind, then exits by itself.

Usage: ``python uart_garbage.py PATH SEED ROUNDS``; prints how many bytes it wrote. Opens the
pty PATH without taking the line (no lock) and writes, ROUNDS times: random bytes, truncated
frames, escape storms, frames with a wrong CRC or length, frames longer than any buffer, and
every control value, as the current protocol would parse them.
"""

from __future__ import annotations

import os
import random
import sys

from rpmsg.port.uart.framer import CURRENT, FrameEncoder
from rpmsg.wire.port import PORT_HEADER
from rpmsg.wire.rpmsg import RPMSG_HEADER


def frame(rng: random.Random, size: int) -> bytes:
    payload = rng.randbytes(size)
    return (PORT_HEADER.pack(0, 0, 0, 24 + size)
            + RPMSG_HEADER.pack(0x500, 0x400, 0, size, 0) + payload)


def garbage(rng: random.Random) -> bytes:
    enc = FrameEncoder(CURRENT, "arc")
    good = enc.encode(frame(rng, rng.randint(0, 300)))
    bad_crc = bytearray(good)
    bad_crc[1] ^= 0x01 if bad_crc[1] not in range(0x70, 0x80) else 0
    pieces = [
        rng.randbytes(rng.randint(1, 2000)),                      # noise
        good[:rng.randint(1, len(good) - 1)],                     # truncated frame
        bytes([CURRENT.start]) + bytes([CURRENT.escape]) * 3000,  # escape storm
        bytes([CURRENT.escape, CURRENT.escape, CURRENT.end]),     # bad escapes
        bytes(bad_crc),                                           # wrong CRC
        b"\x7f" + PORT_HEADER.pack(0, 0, 0, 999) + b"abc\x70",    # wrong length
        b"\x7f" + b"A" * 70000 + b"\x70",                        # longer than any buffer
        bytes(range(0x70, 0x80)),                                 # every control value
        bytes([CURRENT.end]) * 50,                                # stray ENDs
    ]
    rng.shuffle(pieces)
    return b"".join(pieces)


def main() -> None:
    path, seed, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    fd = os.open(path, os.O_WRONLY | os.O_NOCTTY)
    total = 0
    try:
        for _ in range(rounds):
            data = garbage(rng)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            total += len(data)
    finally:
        os.close(fd)
    print(total, flush=True)


if __name__ == "__main__":
    main()
