"""``rpmsg remote URL``: run a simulated remote processor serving echo, rpmsg-ping and
Linux's rpmsg-tty (``--tty``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import rpmsg
from rpmsg.cli.args import add_policy
from rpmsg.cli.args import name as name_arg
from rpmsg.cli.serve import serve_until_interrupted
from rpmsg.cli.stats import StatsReporter
from rpmsg.device import Device
from rpmsg.registry import require_other_process
from rpmsg.services import EchoService, PingService
from rpmsg.services.tty import LINUX_TTY_NAME, TtyService
from rpmsg.wire.ping import PING_NAME

DEFAULT_ECHO = "rpmsg-echo"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "remote", help="run a simulated remote processor (echo, rpmsg-ping)",
        description="Run the remote side of URL (the virtio device role where the transport "
        "has roles) until interrupted. Without --echo or --ping it serves "
        f"--echo {DEFAULT_ECHO} --ping.")
    p.add_argument("url", help="transport URL, e.g. shm:demo or vhost-user:/tmp/rpmsg.sock")
    p.add_argument("--echo", action="append", type=name_arg, default=[], metavar="NAME",
                   help="announce NAME and echo every message back to its sender (repeatable)")
    p.add_argument("--ping", action="store_true",
                   help="serve NuttX's rpmsg-ping service")
    p.add_argument("--tty", action="append", type=name_arg, default=[], metavar="NAME",
                   help=f"serve NAME for Linux's rpmsg_tty driver (it binds the exact name "
                   f"{LINUX_TTY_NAME!r}: /dev/ttyRPMSGn in the guest); echo unless --tty-exec")
    p.add_argument("--tty-exec", metavar="CMD",
                   help="connect each --tty to CMD's stdin/stdout instead of echoing")
    add_policy(p)
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing once serving")
    p.add_argument("--stats", action="store_true",
                   help="print the link counters once a second on stderr")
    p.set_defaults(func=run)


def serve(device: Device, echo: list[str], ping: bool) -> list[EchoService | PingService]:
    """Start the services on ``device``; they run on its transport thread."""
    services: list[EchoService | PingService] = [EchoService(device, n) for n in echo]
    if ping:
        services.append(PingService(device))
    return services


def _chosen(args: argparse.Namespace) -> tuple[list[str], bool, list[str]]:
    """The echo names, rpmsg-ping or not and the tty names asked for (the defaults when
    nothing is)."""
    echo, ping, ttys = list(args.echo), args.ping, list(args.tty)
    if args.tty_exec and not ttys:
        raise _usage("--tty-exec needs --tty NAME")
    if not echo and not ping and not ttys:
        echo, ping = [DEFAULT_ECHO], True
    names = [*echo, *([PING_NAME] if ping else []), *ttys]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # two services announced under one name: a host binds one of them
        raise _usage(f"each service needs a name of its own; given twice: "
                     f"{', '.join(map(repr, twice))}")
    return echo, ping, ttys


def _usage(message: str) -> SystemExit:
    """A usage error: one line on stderr, exit 2 (as argparse's own)."""
    print(f"rpmsg remote: error: {message}", file=sys.stderr)
    return SystemExit(2)


def _banner(args: argparse.Namespace, device: Device, echo: list[str], ping: bool,
            ttys: list[str]) -> str:
    tty_how = f" ({args.tty_exec})" if args.tty_exec else " (echo)"
    names = [f"echo {n!r}" for n in echo] + (["rpmsg-ping"] if ping else []) + [
        f"tty {n!r}{tty_how}" for n in ttys]
    return (f"rpmsg remote: serving {', '.join(names)} on {args.url} (mtu {device.mtu}); "
            "Ctrl-C to stop")


def run(args: argparse.Namespace) -> int:
    echo, ping, ttys = _chosen(args)
    require_other_process(args.url, "`rpmsg remote`")
    with rpmsg.open(args.url, policy=args.policy, side="remote") as device:
        services: list[EchoService | PingService | TtyService] = [
            *serve(device, echo, ping),
            *(TtyService(device, n, args.tty_exec) for n in ttys)]
        if not args.quiet:
            print(_banner(args, device, echo, ping, ttys), flush=True)
        reporter = StatsReporter(device.stats).start() if args.stats else None
        try:
            code = serve_until_interrupted(device)
        finally:
            if reporter is not None:
                reporter.stop()
        if code == 0:  # (after a break, closing the Device is all there is to do)
            for svc in services:
                svc.close()
    return code
