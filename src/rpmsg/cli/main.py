"""Entry point of the ``rpmsg`` command: argument parsing, logging, error reporting.

Each command module offers ``register(subparsers)``; it adds its parser with
``set_defaults(func=...)`` where ``func(args) -> int`` returns the exit code. Library errors
are printed as one line without a traceback (exit 1); Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from rpmsg import __version__
from rpmsg.errors import RpmsgError

#: Modules that add subcommands, in help order. Missing optional ones are skipped.
COMMAND_MODULES = (
    "rpmsg.cli.demo",
    "rpmsg.cli.remote",
    "rpmsg.cli.ping",
    "rpmsg.cli.term",
    "rpmsg.cli.nuttx",
    "rpmsg.cli.bench",
    "rpmsg.cli.linux_cmds",
    "rpmsg.cli.transports",
    "rpmsg.cli.dump",
    "rpmsg.cli.replay",
    "rpmsg.cli.sniff",
    "rpmsg.cli.wireshark",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rpmsg",
        description="RPMsg between processors: Linux /dev/rpmsg*, virtio shared memory "
        "(OpenAMP-compatible) and NuttX RPMsg Port over UART and SPI.",
        epilog="Transports are URLs such as loop:NAME, shm:NAME, vhost-user:PATH, "
        "linux:/dev/rpmsg0, uart:/dev/ttyUSB0?baudrate=921600, spisim:PATH. "
        "See 'rpmsg transports'.",
    )
    parser.add_argument("--version", action="version", version=f"rpmsg {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    if argv is None:  # the real command: SIGTERM cleans up like Ctrl-C (library use: untouched)
        signal.signal(signal.SIGTERM, _terminate)
    try:
        code: int = args.func(args)
        return code
    except RpmsgError as exc:
        print(f"rpmsg: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 141


if __name__ == "__main__":
    sys.exit(main())
