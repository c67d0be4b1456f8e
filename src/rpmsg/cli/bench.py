"""``rpmsg bench``: transport benchmarks, each with its floor measured alongside.

A thin wrapper over :mod:`rpmsg.bench`: a human table by default, one JSON document with
``--json``.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from typing import Any

from rpmsg.bench import KINDS
from rpmsg.bench.report import dumps, render
from rpmsg.errors import NotAvailableError

#: Smaller workloads for ``--quick`` where the engine has no ``quick`` parameter of its own.
QUICK = {
    "uart": {"messages": 500, "frames": 300, "pings": 50},
}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "bench", help="benchmarks against the floor of each mechanism (table or JSON)",
        description="Run a transport benchmark: shm = two processes over shared memory, "
        "every pairing of our Python driver/device and a C reference of the same layout "
        "(built with the system cc; skipped without one): round trip p50/p99, pipelined echo "
        "with 1/16/64 in flight and one-way streams for 16 and 496 bytes, ratios to C<->C, "
        "and the 1-byte kick ping-pong floor; uart = framing MB/s and goodput over a pty; "
        "spi = exchanges per message and goodput over the simulated bus; capture = the CPU "
        "a pcapng capture adds per message, with and without it in the same run.")
    p.add_argument("kind", nargs="?", choices=sorted(KINDS), default="shm",
                   help="which benchmark (default shm)")
    p.add_argument("--quick", action="store_true", help="shorter run, noisier figures")
    p.add_argument("--json", action="store_true",
                   help="print one JSON document instead of the table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        engine = importlib.import_module(KINDS[args.kind])
    except ImportError as exc:
        raise NotAvailableError(f"benchmark {args.kind!r} is not available: {exc}") from None
    kwargs: dict[str, Any] = {}
    if "quick" in inspect.signature(engine.run).parameters:
        kwargs["quick"] = args.quick
    elif args.quick:
        kwargs.update(QUICK.get(args.kind, {}))
    print(f"rpmsg bench {args.kind}: running (this takes a while)...", file=sys.stderr)
    result = engine.run(**kwargs)
    if args.json:
        print(dumps(result))
    else:  # a module may condense its figures for people (shm: one row per pairing)
        summary = getattr(engine, "summary", None)
        print(render(summary(result) if summary else result))
    return 0
