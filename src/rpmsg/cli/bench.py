"""``rpmsg bench``: transport benchmarks printed as JSON, each with its floor measured alongside.

The engines live with their transports (``rpmsg.virtio.bench``, ``rpmsg.port.bench``,
``rpmsg.port.spi_bench``); each offers ``run(...) -> dict``.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
from typing import Any

from rpmsg.errors import NotAvailableError

ENGINES = {
    "shm": "rpmsg.virtio.bench",
    "uart": "rpmsg.port.bench",
    "spi": "rpmsg.port.spi_bench",
}
#: Smaller workloads for ``--quick`` where the engine has no ``quick`` parameter of its own.
QUICK = {
    "shm": {"rounds": 300, "count": 20_000},
    "uart": {"messages": 500, "frames": 300, "pings": 50},
}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "bench", help="benchmarks (JSON) against the floor of each mechanism",
        description="Run a transport benchmark: shm = two processes over shared memory "
        "(round-trip latency p50/p99, one-way streaming msgs/s and MB/s for 16 and 496 bytes, "
        "and the 1-byte kick ping-pong floor); uart = framing MB/s and goodput over a pty; "
        "spi = exchanges per message and goodput over the simulated bus.")
    p.add_argument("kind", nargs="?", choices=sorted(ENGINES), default="shm",
                   help="which benchmark (default shm)")
    p.add_argument("--quick", action="store_true", help="shorter run, noisier figures")
    p.add_argument("--json", action="store_true",
                   help="print only the JSON document (the default prints it indented too)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        engine = importlib.import_module(ENGINES[args.kind])
    except ImportError as exc:
        raise NotAvailableError(f"benchmark {args.kind!r} is not available: {exc}") from None
    kwargs: dict[str, Any] = {}
    if "quick" in inspect.signature(engine.run).parameters:
        kwargs["quick"] = args.quick
    elif args.quick:
        kwargs.update(QUICK.get(args.kind, {}))
    result = engine.run(**kwargs)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0
