"""``rpmsg ping URL``: round trips against an rpmsg-ping or echo service, NuttX-style output."""

from __future__ import annotations

import argparse
import json
from typing import Any

import rpmsg
from rpmsg.cli.args import Given, add_policy, count, finite_seconds, open_timeout, size
from rpmsg.cli.args import name as name_arg
from rpmsg.cli.stats import StatsReporter
from rpmsg.cli.terminal import waiting
from rpmsg.device import Device
from rpmsg.registry import require_other_process
from rpmsg.services.ping import PingInterrupted, PingResult, ping
from rpmsg.wire.ping import PING_NAME


def register(sub: Any) -> None:
    p = sub.add_parser(
        "ping", help="measure round trips to an rpmsg-ping or echo service",
        description="Send COUNT pings of SIZE bytes to SERVICE on URL and print count, sizes, "
        "min/avg/max latency and rate (like NuttX's 'rpmsg ping'). Exits 1 if any reply is "
        "missing or differs. Ctrl-C stops it early: the statistics so far are printed and "
        "the exit status is 130.")
    p.add_argument("url", help="transport URL, e.g. shm:demo")
    p.add_argument("--count", "-c", type=count, default=10, help="round trips (default 10)")
    p.add_argument("--size", "-s", type=size, default=64,
                   help="payload bytes per message, at most the MTU (default 64)")
    p.add_argument("--service", type=name_arg, default=PING_NAME,
                   help=f"service name (default {PING_NAME}; any other name is treated as echo)")
    p.add_argument("--protocol", choices=["auto", "ping", "echo"], default="auto",
                   help="rpmsg-ping payloads or plain echo (default: by service name)")
    p.add_argument("--random-size", action="store_true",
                   help="random sizes up to --size")
    p.add_argument("--interval", type=finite_seconds, default=0.0, metavar="S",
                   help="seconds between pings")
    p.add_argument("--timeout", action=Given, type=finite_seconds, default=5.0, metavar="S",
                   help="seconds to wait for the peer (the open), the binding and each reply "
                   "(default 5)")
    add_policy(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--stats", action="store_true",
                   help="print the link counters once a second on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require_other_process(args.url, "`rpmsg ping`")
    with rpmsg.open(args.url, policy=args.policy,
                    **open_timeout(args, args.url, args.timeout)) as device:
        if device.link.ns_enabled:  # the binding: say what we wait for after a second
            with waiting(f"the remote to announce {args.service!r} on {args.url}"):
                device.wait_service(args.service, args.timeout)
        result, interrupted = _measure(device, args)
    show(result, args.json, interrupted)
    if interrupted:
        return 130
    return 0 if result.ok else 1


def _measure(device: Device, args: argparse.Namespace) -> tuple[PingResult, bool]:
    """The round trips (the link counters on stderr with ``--stats``); True if Ctrl-C
    ended them, with the statistics so far, as ping(8) does."""
    reporter = StatsReporter(device.stats).start() if args.stats else None
    try:
        return ping(device, service=args.service, count=args.count, size=args.size,
                    timeout=args.timeout, protocol=args.protocol,
                    random_size=args.random_size, interval=args.interval), False
    except PingInterrupted as stop:
        return stop.result, True
    finally:
        if reporter is not None:
            reporter.stop()


def show(result: PingResult, as_json: bool, interrupted: bool = False) -> None:
    if as_json:
        print(json.dumps({**result.summary(), "interrupted": interrupted}, indent=2))
    else:
        print(("--- interrupted ---\n" if interrupted else "") + result.report())
