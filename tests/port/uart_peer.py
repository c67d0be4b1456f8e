"""The other process of the two-process UART test: echo and ping-style responders on a pty.

Usage: ``python uart_peer.py /dev/pts/N [OPTIONS]`` (OPTIONS: more URL options, e.g.
``crc=arc``); runs until stdin is closed.
"""

from __future__ import annotations

import faulthandler
import signal
import sys

import rpmsg
from rpmsg.endpoint import Endpoint
from rpmsg.wire.ping import PING_ACK, PING_CMD_RSP, PING_HEADER


def main() -> None:
    faulthandler.register(signal.SIGUSR1)  # stacks on demand when a test hangs
    extra = f"&{sys.argv[2]}" if len(sys.argv) > 2 else ""
    dev = rpmsg.open(f"uart:{sys.argv[1]}?baudrate=4000000{extra}")

    def echo(ept: Endpoint, data: bytes, src: int) -> None:
        ept.send_to(src, data, timeout=30)

    def ping(ept: Endpoint, data: bytes, src: int) -> None:
        cmd, _length, cookie = PING_HEADER.unpack(data)
        if cmd & PING_ACK:
            reply = PING_HEADER.pack(PING_CMD_RSP, len(data), cookie) + data[PING_HEADER.size:]
            ept.send_to(src, reply, timeout=30)

    dev.create_endpoint("rpmsg-echo", callback=echo)
    dev.create_endpoint("ping-test", callback=ping)
    print("ready", flush=True)
    sys.stdin.read()
    dev.close()


if __name__ == "__main__":
    main()
