"""Echo client: the host side, sending messages of every size and checking each echo.

    python echo_client.py shm:lab --count 1000

Exits 0 when every echo came back identical and in order, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import rpmsg


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="transport URL, e.g. shm:lab")
    parser.add_argument("--name", default="rpmsg-echo", help="service name (rpmsg-echo)")
    parser.add_argument("--count", type=int, default=100, help="messages to send (100)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per wait (10)")
    args = parser.parse_args()

    with rpmsg.open(args.url, timeout=args.timeout) as dev:
        ept = dev.create_endpoint(args.name)
        ept.wait_bound(timeout=args.timeout)
        start = time.perf_counter()
        nbytes = 0
        for n in range(args.count):
            data = os.urandom(1 + n % ept.mtu)      # every size from 1 byte to the MTU
            ept.send(data, timeout=args.timeout)
            if ept.recv(timeout=args.timeout) != data:
                print(f"echo client: message {n} came back different", file=sys.stderr)
                return 1
            nbytes += len(data)
        elapsed = time.perf_counter() - start
    print(f"echo client: {args.count} messages, {nbytes} bytes echoed in {elapsed:.3f} s "
          f"({args.count / elapsed:.0f} round trips/s)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except rpmsg.RpmsgError as exc:  # every library error: one line, exit 1
        sys.exit(f"echo client: {exc}")
