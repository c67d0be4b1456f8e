"""Our version of the Linux kernel's rpmsg_client_sample, in userspace, over any transport.

The kernel module (``samples/rpmsg/rpmsg_client_sample.c``) binds to the channel
``rpmsg-client-sample``, sends "hello world!" and answers each reply with the same message until
it has received ``count`` (100) replies. This script does the same through the endpoint API, so
the remote firmware that the module talks to can be exercised from a PC or over a cable:

    rpmsg remote shm:lab --echo rpmsg-client-sample     # a remote that echoes
    python rpmsg_client_sample.py shm:lab
"""

from __future__ import annotations

import argparse
import sys

import rpmsg

SERVICE = "rpmsg-client-sample"
MSG = b"hello world!"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="transport URL, e.g. shm:lab or linux:?service=" + SERVICE)
    parser.add_argument("--count", type=int, default=100, help="replies to wait for (100)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per wait (10)")
    args = parser.parse_args()

    with rpmsg.open(args.url, timeout=args.timeout) as dev:
        ept = dev.create_endpoint(SERVICE)
        dst = ept.wait_bound(timeout=args.timeout)
        print(f"new channel: {ept.addr:#x} -> {dst:#x}!")
        ept.send(MSG, timeout=args.timeout)
        for rx_count in range(1, args.count + 1):
            msg = ept.recv_message(timeout=args.timeout)
            print(f"incoming msg {rx_count} (src: {msg.src:#x}): {msg.data!r}")
            if rx_count < args.count:
                ept.send(MSG, timeout=args.timeout)
    print("goodbye!")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except rpmsg.RpmsgError as exc:  # every library error: one line, exit 1
        sys.exit(f"rpmsg client sample: {exc}")
