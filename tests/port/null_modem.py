"""A null-modem cable between two pseudo-terminals, for tests where either end may restart.

Usage: ``python null_modem.py``; prints the two slave paths on one line, then copies bytes
between the two masters until stdin closes. It keeps both slaves open, so an end that dies
does not hang up the line; bytes for an end that is not reading are dropped once its buffer
is full, as on a cable nobody listens to (pyserial flushes them when the next end opens).
"""

from __future__ import annotations

import os
import select
import sys
import tty


def main() -> None:
    ends = []
    for _ in range(2):
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        ends.append((master, slave, os.ttyname(slave)))
    print(ends[0][2], ends[1][2], flush=True)
    peer = {ends[0][0]: ends[1][0], ends[1][0]: ends[0][0]}
    stdin = sys.stdin.fileno()
    while True:
        ready, _, _ = select.select([stdin, *peer], [], [])
        if stdin in ready and not os.read(stdin, 4096):
            return
        for fd in ready:
            if fd == stdin:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO without a slave: cannot happen, both are held open
                continue
            try:
                os.write(peer[fd], data)
            except BlockingIOError:
                pass  # the other end does not read: the bytes are lost, as on a cable


if __name__ == "__main__":
    main()
