"""The far end of the sniffed UART session: an echo service on a new pty.

Usage: ``python uart_echo_peer.py PROTOCOL``; prints the pty path, serves ``rpmsg-echo`` until
stdin closes, then prints its statistics as JSON.
"""

from __future__ import annotations

import json
import sys

import rpmsg
from rpmsg.endpoint import Endpoint


def main() -> None:
    dev = rpmsg.open(f"uart:pty?crc=arc&protocol={sys.argv[1]}&baudrate=4000000")

    def echo(ept: Endpoint, data: bytes, src: int) -> None:
        ept.send_to(src, data, timeout=30)

    dev.create_endpoint("rpmsg-echo", callback=echo)
    print(dev.link.describe()["pty"], flush=True)
    sys.stdin.read()
    print(json.dumps(dev.stats()), flush=True)
    dev.close()


if __name__ == "__main__":
    main()
