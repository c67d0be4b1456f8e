"""Echo server: the remote side, answering every message on one named endpoint.

    python echo_server.py shm:lab                # a simulated co-processor over shared memory
    python echo_server.py uart:/dev/ttyUSB0?baudrate=921600

Runs until Ctrl-C. The endpoint is announced by the name service, so a client creating an
endpoint of the same name binds to it (see echo_client.py).
"""

from __future__ import annotations

import argparse
import sys

import rpmsg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="transport URL, e.g. shm:lab")
    parser.add_argument("--name", default="rpmsg-echo", help="service name (rpmsg-echo)")
    args = parser.parse_args()

    with rpmsg.open(args.url, side="remote") as dev:
        ept = dev.create_endpoint(args.name)
        print(f"echo server: {args.name!r} at {ept.addr:#x} on {args.url}", flush=True)
        try:
            while True:
                try:
                    msg = ept.recv_message()        # blocks; Ctrl-C interrupts
                except rpmsg.RemoteDisconnectedError:
                    print("echo server: the host went away; waiting for the next one")
                    ept.wait_bound()                # the next host binds with its first message
                    continue
                ept.send_to(msg.src, msg.data)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    try:
        main()
    except rpmsg.RpmsgError as exc:  # every library error: one line, exit 1
        sys.exit(f"echo server: {exc}")
