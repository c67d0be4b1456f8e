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
from rpmsg.cli.args import Given, add_policy, open_timeout, seconds, standard_input
from rpmsg.cli.args import name as name_arg
from rpmsg.cli.terminal import Terminal, printable, waiting
from rpmsg.cli.tools import open_endpoint
from rpmsg.endpoint import Endpoint
from rpmsg.errors import (
    EndpointClosedError,
    MessageTooLargeError,
    RemoteDisconnectedError,
    RpmsgError,
)
from rpmsg.registry import require_other_process
from rpmsg.wire.rpmsg import ADDR_ANY


def register(sub: Any) -> None:
    p = sub.add_parser(
        "term", help="interactive terminal: lines typed go out as messages",
        description="Send each line typed as one message to NAME on URL and print every "
        "message received. Ctrl-] (or end of input) leaves.")
    p.add_argument("url", help="transport URL, e.g. shm:demo or linux:/dev/rpmsg0")
    p.add_argument("name", type=_name, help="endpoint/service name; '-' for the endpoint a "
                   "linux:/dev/rpmsgN URL is")
    p.add_argument("--timeout", action=Given, type=seconds, default=30.0, metavar="S",
                   help="seconds to wait for the peer and the binding, the open included, "
                   "and for each send (default 30)")
    add_policy(p)
    p.set_defaults(func=run)


def _name(text: str) -> str:
    """NAME: ``-`` or a name a peer can announce."""
    return text if text == "-" else name_arg(text)


def run(args: argparse.Namespace) -> int:
    require_other_process(args.url, "`rpmsg term`")
    standard_input()  # (none: said before the open, not after the wait for the peer)
    with rpmsg.open(args.url, policy=args.policy,
                    **open_timeout(args, args.url, args.timeout)) as device:
        ept = open_endpoint(device, args.name, ADDR_ANY, ADDR_ANY)
        try:
            with waiting(f"{args.name!r} to be bound on {args.url} (the remote must serve "
                         "or announce it)"):
                ept.wait_bound(args.timeout)
            return _session(ept, args.timeout)
        finally:
            ept.close()


def _session(ept: Endpoint, timeout: float | None) -> int:
    """The terminal on ``ept``: lines typed are sent, messages received printed (on a
    thread of their own) until Ctrl-], the end of input or the peer's leaving."""
    holder: list[Terminal] = []

    def send(line: bytes) -> None:
        try:
            ept.send(line, timeout=timeout)
        except MessageTooLargeError as exc:  # say so and keep the session
            holder[0].note(f"rpmsg term: line not sent: {exc}")

    term = Terminal(send, mode="line")
    holder.append(term)
    threading.Thread(target=_receive, args=(ept, term), daemon=True, name="term-rx").start()
    return term.run()


def _receive(ept: Endpoint, term: Terminal) -> None:
    while True:
        try:
            term.message(ept.recv())
        except EndpointClosedError:
            return
        except RemoteDisconnectedError as exc:
            term.note(printable(f"rpmsg term: {exc}"))
            term.stop()
            return
        except RpmsgError as exc:
            print(printable(f"rpmsg: error: {exc}"), file=sys.stderr)
            term.stop()
            return


__all__ = ["register", "run"]
