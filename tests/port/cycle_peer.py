"""The peer that restart tests kill: echoes on ``cycle`` and streams on ``feed``.

Usage: ``python cycle_peer.py URL SIDE INCARNATION`` (forked by ``zygote.py``). Echoes every
message received on the ``cycle`` endpoint back to its sender and sends ``(incarnation, n)``
for n = 0, 1, 2... on ``feed`` as fast as the link takes them. Runs until killed, or exits
by itself when its parent (the zygote) is gone.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import struct
import sys
import time

import rpmsg
from rpmsg.endpoint import Endpoint

FEED = struct.Struct("<II")


def main() -> None:
    faulthandler.register(signal.SIGUSR1)  # stacks on demand when a test fails
    url, side, incarnation = sys.argv[1], sys.argv[2], int(sys.argv[3])
    parent = os.getppid()
    dev = rpmsg.open(url, side=side)

    def echo(ept: Endpoint, data: bytes, src: int) -> None:
        try:
            ept.send_to(src, data, timeout=0.5)
        except rpmsg.RpmsgError:
            pass  # the link restarted; the test resends

    dev.create_endpoint("cycle", callback=echo)
    feed = dev.create_endpoint("feed")
    n = 0
    while os.getppid() == parent:
        try:
            if not feed.bound:
                feed.wait_bound(timeout=0.5)
            feed.send(FEED.pack(incarnation, n), timeout=0.5)
            n += 1
            time.sleep(0.001)
        except rpmsg.RpmsgError:
            time.sleep(0.01)
    dev.close()


if __name__ == "__main__":
    main()
