"""``rpmsg remote URL``: run a simulated remote processor serving echo and rpmsg-ping."""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any

import rpmsg
from rpmsg.device import Device
from rpmsg.services import EchoService, PingService

DEFAULT_ECHO = "rpmsg-echo"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "remote", help="run a simulated remote processor (echo, rpmsg-ping)",
        description="Run the remote side of URL (the virtio device role where the transport "
        "has roles) until interrupted. Without --echo or --ping it serves "
        f"--echo {DEFAULT_ECHO} --ping.")
    p.add_argument("url", help="transport URL, e.g. shm:demo or vhost-user:/tmp/rpmsg.sock")
    p.add_argument("--echo", action="append", default=[], metavar="NAME",
                   help="announce NAME and echo every message back to its sender (repeatable)")
    p.add_argument("--ping", action="store_true",
                   help="serve NuttX's rpmsg-ping service")
    p.add_argument("--policy", choices=["linux", "openamp", "nuttx"],
                   help="peer behaviour preset (default: the transport's)")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing once serving")
    p.set_defaults(func=run)


def serve(device: Device, echo: list[str], ping: bool) -> list[EchoService | PingService]:
    """Start the services on ``device``; they run on its transport thread."""
    services: list[EchoService | PingService] = [EchoService(device, n) for n in echo]
    if ping:
        services.append(PingService(device))
    return services


def run(args: argparse.Namespace) -> int:
    echo, ping = list(args.echo), args.ping
    if not echo and not ping:
        echo, ping = [DEFAULT_ECHO], True
    stop = threading.Event()
    with rpmsg.open(args.url, policy=args.policy, side="remote") as device:
        services = serve(device, echo, ping)
        if not args.quiet:
            names = [f"echo {n!r}" for n in echo] + (["rpmsg-ping"] if ping else [])
            print(f"rpmsg remote: serving {', '.join(names)} on {args.url} "
                  f"(mtu {device.mtu}); Ctrl-C to stop", flush=True)
        try:
            while not stop.wait(0.2):
                if device.broken_error is not None:
                    print(f"rpmsg: error: transport broken: {device.broken_error}",
                          file=sys.stderr)
                    return 1
        except KeyboardInterrupt:
            pass
        for svc in services:
            svc.close()
    return 0
