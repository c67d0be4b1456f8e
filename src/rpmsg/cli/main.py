"""Entry point of the ``rpmsg`` command: argument parsing, logging, error reporting.

Each command module offers ``register(subparsers)``; it adds its parser with
``set_defaults(func=...)`` where ``func(args) -> int`` returns the exit code. Library errors
are printed as one line without a traceback (exit 1); with ``--json`` that line is a JSON
object ``{"error": ..., "type": ...}``, on stderr too (stdout keeps only data). Ctrl-C exits
130. ``-v``/``-vv`` work before or after the subcommand. Waits the library announces on the
``rpmsg.wait`` logger (INFO) are shown on stderr even without ``-v``.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, TextIO, TypeVar

from rpmsg import __version__
from rpmsg.cli.args import OutputError
from rpmsg.cli.terminal import printable
from rpmsg.errors import AlreadyOpenError, RpmsgError

_T = TypeVar("_T")

#: Modules that add subcommands, in help order. Missing optional ones are skipped.
COMMAND_MODULES = (
    "rpmsg.cli.demo",
    "rpmsg.cli.remote",
    "rpmsg.cli.ping",
    "rpmsg.cli.tools",
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
        "See 'rpmsg transports'. Errors are one line on stderr (exit 1); with --json that "
        "line is a JSON object {\"error\": ..., \"type\": ...}. Ctrl-C exits 130.",
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
    seen: set[int] = set()
    for command in sub.choices.values():  # -v after the subcommand too (aliases: once)
        if id(command) not in seen and "-v" not in command._option_string_actions:
            seen.add(id(command))
            command.add_argument("-v", "--verbose", action="count", default=0,
                                 dest="verbose_after", help="more log output (-vv for debug)")
    return parser


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (a test may have replaced it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:
            self.handleError(record)


def show_waits() -> None:
    """Show the ``rpmsg.wait`` notices (INFO) as ``rpmsg: waiting for ...`` on stderr."""
    wait = logging.getLogger("rpmsg.wait")
    if not any(isinstance(h, _StderrHandler) for h in wait.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("rpmsg: %(message)s"))
        wait.addHandler(handler)
    wait.setLevel(logging.INFO)
    wait.propagate = False


def fold_positionals(parser: argparse.ArgumentParser, args: argparse.Namespace,
                     extra: list[str]) -> None:
    """Give positionals that came after an option (``send URL NAME --hex 'de ad'``) to the
    optional positionals left empty, for commands that list them in ``late_positionals``;
    argparse fills every ``nargs="?"`` positional from the first run of positionals. Anything
    else left over is the usual "unrecognized arguments" usage error."""
    empty = [d for d in getattr(args, "late_positionals", ()) if getattr(args, d) is None]
    if any(e.startswith("-") and e != "-" for e in extra) or len(extra) > len(empty):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    for dest, value in zip(empty, extra, strict=False):
        setattr(args, dest, value)


def error_text(exc: RpmsgError) -> str:
    """The one-line message of a library error, with a hint where a link has one owner."""
    text = str(exc)
    if isinstance(exc, AlreadyOpenError) and "capture" not in text:
        text += ("; a link has one owner: talk through that program (or stop it and use "
                 "`rpmsg term URL NAME`), or watch its traffic with capture=FILE on its URL")
    return text


class _Output:
    """``sys.stdout`` while a command runs: a failed write or flush is an
    :class:`OutputError` (one line, exit 1) instead of a traceback; a reader that left
    (``BrokenPipeError``) stays what it is (exit 141). Started with stdout closed (``>&-``:
    no ``sys.stdout``), the first use of the output is that error, as ``ls >&-`` says."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream

    def _closed(self) -> OutputError:
        return OutputError("cannot write the output: standard output is closed")

    def write(self, text: str) -> int:
        stream = self.stream
        if stream is None:
            raise self._closed()
        return self._guarded(lambda: stream.write(text))

    def flush(self) -> None:
        stream = self.stream
        if stream is not None:
            self._guarded(stream.flush)

    def _guarded(self, call: Callable[[], _T]) -> _T:
        """``call()``, a failed write made one OutputError (a broken pipe stays itself)."""
        try:
            return call()
        except BrokenPipeError:
            raise
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot write the output: {exc.strerror or exc}") from None

    def discard(self) -> None:
        """Point the file descriptor at /dev/null: what is left in the buffer goes there,
        so the interpreter's last flush at exit cannot fail again with a traceback."""
        if self.stream is None:
            return
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self.stream.fileno())
            finally:
                os.close(devnull)
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            pass  # not a file (a test's StringIO): nothing is flushed at exit

    def __getattr__(self, name: str) -> Any:
        if self.stream is None:
            raise self._closed()
        return getattr(self.stream, name)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    if sys.stderr is None:  # started with stderr closed (2>&-): print(file=None) would put
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115  # diagnostics into stdout's data
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        fold_positionals(parser, args, extra)
    verbose = args.verbose + getattr(args, "verbose_after", 0)
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    show_waits()
    if args.command is None:
        parser.print_help()
        return 2
    if argv is None:  # the real command: SIGTERM cleans up like Ctrl-C (library use: untouched)
        signal.signal(signal.SIGTERM, _terminate)
    output = _Output(sys.stdout)
    sys.stdout = output
    try:
        code: int = args.func(args)
        output.flush()  # a full disk is reported here, not by the interpreter's exit
        return code
    except RpmsgError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": error_text(exc), "type": type(exc).__name__}),
                  file=sys.stderr)
        else:
            # The text may quote a peer (a service name, what a link saw): escaped.
            print(f"rpmsg: error: {printable(error_text(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        output.discard()
        return 141
    finally:
        if sys.stdout is output:
            sys.stdout = output.stream


if __name__ == "__main__":
    sys.exit(main())
