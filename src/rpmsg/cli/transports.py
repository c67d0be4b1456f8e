"""``rpmsg transports``: the transport schemes this installation knows."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rpmsg.registry import list_transports


def register(sub: Any) -> None:
    p = sub.add_parser("transports", help="list transport URL schemes",
                       description="List the transport URL schemes and what each is for.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    infos = list_transports()
    if args.json:
        print(json.dumps([{"scheme": t.scheme, "summary": t.summary} for t in infos], indent=2))
    else:
        for t in infos:
            print(f"{t.scheme + ':':12} {t.summary}")
    return 0
