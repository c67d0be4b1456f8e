"""OpenAMP's echo demo, both halves, in Python (our own version, same wire behaviour).

The remote (the demo firmware) announces ``rpmsg-openamp-demo-channel``, sends every message
back to its sender and stops on the 4-byte shutdown word 0xEF56A55A (little-endian). The host
(OpenAMP's echo test) sends payloads of growing size, each carrying its number and size and a
fill pattern, checks every echo and ends with the shutdown word. Either half interoperates
with OpenAMP's C one; ``shm:`` alone is OpenAMP's ``openamp.shm`` and kick socket:

    python openamp_echo.py remote shm:        # in one terminal
    python openamp_echo.py host shm:          # in another
"""

from __future__ import annotations

import argparse
import struct
import sys

import rpmsg

SERVICE = "rpmsg-openamp-demo-channel"
SHUTDOWN_MSG = (0xEF56A55A).to_bytes(4, "little")
#: ``struct { unsigned long num; unsigned long size; unsigned char data[]; }`` on a 64-bit host.
PAYLOAD_HEADER = struct.Struct("<QQ")
FILL = 0xA5


def remote(url: str) -> int:
    with rpmsg.open(url, side="remote", policy="openamp") as dev:
        ept = dev.create_endpoint(SERVICE)
        print(f"openamp echo remote: serving {SERVICE!r} on {url}", flush=True)
        echoed = 0
        try:
            while (msg := ept.recv_message()).data != SHUTDOWN_MSG:
                ept.send_to(msg.src, msg.data)
                echoed += 1
        except KeyboardInterrupt:
            pass
    print(f"openamp echo remote: {echoed} messages echoed, shutting down")
    return 0


def host(url: str, timeout: float) -> int:
    with rpmsg.open(url, policy="openamp", timeout=timeout) as dev:
        ept = dev.create_endpoint(SERVICE)
        ept.wait_bound(timeout=timeout)
        largest = ept.mtu - PAYLOAD_HEADER.size
        for num, size in enumerate(range(1, largest + 1)):
            sent = PAYLOAD_HEADER.pack(num, size) + bytes([FILL]) * size
            ept.send(sent, timeout=timeout)
            if ept.recv(timeout=timeout) != sent:
                print(f"echo {num} of {size} data bytes differs", file=sys.stderr)
                return 1
        ept.send(SHUTDOWN_MSG, timeout=timeout)
    print(f"openamp echo host: {largest} payloads of 1..{largest} bytes echoed intact")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("half", choices=["remote", "host"])
    parser.add_argument("url", nargs="?", default="shm:", help="transport URL (shm:)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per wait (10)")
    args = parser.parse_args()
    return remote(args.url) if args.half == "remote" else host(args.url, args.timeout)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except rpmsg.RpmsgError as exc:  # every library error: one line, exit 1
        sys.exit(f"openamp echo: {exc}")
