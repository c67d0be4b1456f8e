"""``rpmsg term URL NAME``: an interactive terminal on one endpoint, line by line.

Each line typed goes out as one message (without its newline); each message received is
printed on its own line. NAME binds to the service the remote announced under that name (or
announces it); ``-`` uses the endpoint a ``linux:/dev/rpmsgN`` URL already is. Ctrl-] or
end of input leaves. For a NuttX shell (a byte stream with its own echo) use ``rpmsg
console`` instead.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any

import rpmsg
from rpmsg.cli.args import seconds
from rpmsg.cli.terminal import Terminal, waiting
from rpmsg.endpoint import Endpoint
from rpmsg.errors import (
    EndpointClosedError,
    MessageTooLargeError,
    RemoteDisconnectedError,
    RpmsgError,
)
from rpmsg.registry import require_other_process


def register(sub: Any) -> None:
    p = sub.add_parser(
        "term", help="interactive terminal: lines typed go out as messages",
        description="Send each line typed as one message to NAME on URL and print every "
        "message received. Ctrl-] (or end of input) leaves.")
    p.add_argument("url", help="transport URL, e.g. shm:demo or linux:/dev/rpmsg0")
    p.add_argument("name", help="endpoint/service name; '-' for the endpoint a "
                   "linux:/dev/rpmsgN URL is")
    p.add_argument("--timeout", type=seconds, default=30.0, metavar="S",
                   help="seconds to wait for the peer and the binding, the open included, "
                   "and for each send (default 30)")
    p.add_argument("--policy", choices=["linux", "openamp", "nuttx"],
                   help="peer behaviour preset (default: the transport's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require_other_process(args.url, "`rpmsg term`")
    with rpmsg.open(args.url, policy=args.policy, timeout=args.timeout) as device:
        ept = device.create_endpoint() if args.name == "-" else device.create_endpoint(
            args.name)
        try:
            with waiting(f"{args.name!r} to be bound on {args.url} (the remote must serve "
                         "or announce it)"):
                ept.wait_bound(args.timeout)
            holder: list[Terminal] = []

            def send(line: bytes) -> None:
                try:
                    ept.send(line, timeout=args.timeout)
                except MessageTooLargeError as exc:  # say so and keep the session
                    holder[0].note(f"rpmsg term: line not sent: {exc}")

            term = Terminal(send, mode="line")
            holder.append(term)
            reader = threading.Thread(target=_receive, args=(ept, term), daemon=True,
                                      name="term-rx")
            reader.start()
            code = term.run()
            return code
        finally:
            ept.close()


def _receive(ept: Endpoint, term: Terminal) -> None:
    while True:
        try:
            term.message(ept.recv())
        except EndpointClosedError:
            return
        except RemoteDisconnectedError as exc:
            term.note(f"rpmsg term: {exc}")
            term.stop()
            return
        except RpmsgError as exc:
            print(f"rpmsg: error: {exc}", file=sys.stderr)
            term.stop()
            return


__all__ = ["register", "run"]
