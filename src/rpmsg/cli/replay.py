"""``rpmsg replay FILE URL``: send a capture's messages of one direction to a new peer."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import rpmsg
from rpmsg.capture import TruncatedCaptureError, read_capture
from rpmsg.capture.replay import Replayer, plan_replay
from rpmsg.cli.args import Given, add_policy, finite_seconds, open_timeout, seconds
from rpmsg.cli.terminal import waiting
from rpmsg.registry import require_other_process


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"speed must be a factor or 'max', not {text!r}") \
            from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"speed must be > 0, not {text}")
    return value


def register(sub: Any) -> None:
    p = sub.add_parser(
        "replay", help="send the messages of a capture to a URL (like can.player)",
        description="Send the captured messages of one direction of FILE to URL: first bind "
        "to every service they belong to (by the capture's name-service messages), then send "
        "each payload with the original spacing (divided by --speed) or as fast as possible. "
        "Reproduces what a program sent without the program.")
    p.add_argument("file", help="capture file (pcapng)")
    p.add_argument("url", help="transport URL to send to, e.g. shm:demo")
    p.add_argument("--dir", choices=["tx", "rx"], default="tx",
                   help="which captured direction to send (default tx: what the captured "
                   "program sent)")
    p.add_argument("--speed", type=_speed, default=1.0, metavar="FACTOR|max",
                   help="timing: 2 = twice as fast, max = no waiting (default 1)")
    p.add_argument("--link", help="captured link (interface index or name) when the capture "
                   "holds several")
    p.add_argument("--side", choices=["host", "remote"], default="host",
                   help="which end of URL to be (default host)")
    add_policy(p)
    p.add_argument("--timeout", action=Given, type=seconds, default=10.0, metavar="S",
                   help="seconds to wait for the peer (the open), each binding and each "
                   "send (default 10)")
    p.add_argument("--linger", type=finite_seconds, default=1.0, metavar="S",
                   help="seconds to keep receiving replies after the last send (default 1)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require_other_process(args.url, "`rpmsg replay`")

    def say(text: str) -> None:
        print(f"rpmsg replay: {text}", file=sys.stderr, flush=True)

    try:
        records = read_capture(args.file)
    except TruncatedCaptureError as exc:  # its program was killed while it wrote
        records = list(exc.records)
        say(f"{args.file} ends inside a block ({exc}); replaying the {len(records)} "
            "record(s) before the cut")
    plan = plan_replay(records, args.dir, args.link)

    with rpmsg.open(args.url, policy=args.policy, side=args.side,
                    **open_timeout(args, args.url, args.timeout)) as device:
        replayer = Replayer(device, plan, speed=args.speed, timeout=args.timeout)
        try:
            replayer.bind(say)
            say(f"sending {len(plan.messages)} message(s) captured on {plan.interface.name}")
            result = replayer.run(say)
            with waiting(f"replies for {args.linger:g} s after the last send (--linger)"):
                time.sleep(args.linger)
        finally:
            replayer.close()
    if args.json:
        print(json.dumps(result.summary(), indent=2))
    else:
        binds = ", ".join(f"{name} {old:#x}->{new:#x}"
                          for name, (old, new) in result.bindings.items())
        print(f"replayed {result.sent} message(s), {result.bytes} bytes in "
              f"{result.seconds:.3f} s; {result.replies} repl(ies) received"
              + (f"; bound {binds}" if binds else ""))
    return 0
