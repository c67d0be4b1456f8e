"""A slave (or master) process for the two-process SPI tests: echoes on ``spi-echo``.

Usage: ``python spi_peer.py URL``; prints ``ready`` once the endpoint exists and runs until
stdin closes or the process is killed. Echoes from the transport thread (endpoint callback),
so nothing queued before a link restart is echoed into the next session.
"""

from __future__ import annotations

import sys

import rpmsg
from rpmsg.endpoint import Endpoint


def main() -> None:
    dev = rpmsg.open(sys.argv[1], side="remote")

    def echo(ept: Endpoint, data: bytes, src: int) -> None:
        try:
            ept.send(data, timeout=5)
        except rpmsg.RpmsgError:
            pass  # link went down: the client resends after the restart

    dev.create_endpoint("spi-echo", callback=echo)
    print("ready", flush=True)
    sys.stdin.read()
    dev.close()


if __name__ == "__main__":
    main()
