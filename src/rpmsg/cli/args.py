"""Argument types and checks shared by the commands: seconds, counts, output files, policies.

Each is the :mod:`rpmsg.checks` rule turned into an ``argparse`` type, so a wrong value is a
usage error (exit 2) before anything is opened, never a wait or a traceback later.
"""

from __future__ import annotations

import argparse
import sys
from typing import IO, Any

from rpmsg import checks
from rpmsg.core.policy import PRESETS
from rpmsg.errors import InvalidArgumentError, RpmsgError
from rpmsg.url import TransportURL


def add_policy(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--policy``: one of the peer behaviour presets (:data:`rpmsg.core.policy.PRESETS`)."""
    what = default or "the transport's"
    parser.add_argument("--policy", choices=sorted(PRESETS), default=default,
                        help=f"peer behaviour preset (default: {what})")


def seconds(text: str) -> float | None:
    """Seconds: a number >= 0, or ``inf``/``none`` for no limit (None)."""
    if text.strip().lower() in ("none", "inf", "infinity"):
        return None
    try:
        return checks.timeout(float(text))
    except (ValueError, RpmsgError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds: {exc}") \
            from None


class Given(argparse.Action):
    """Stores the value and notes that the option was given (``args.<dest>_given``), for
    :func:`open_timeout`: a default must not override what the URL says."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, f"{self.dest}_given", True)


def open_timeout(args: argparse.Namespace, url: str, timeout: float | None
                 ) -> dict[str, Any]:
    """The ``timeout`` keyword for :func:`rpmsg.open`: ``--timeout`` if given, else the
    URL's own ``timeout=`` (the keyword would override it), else the command's default."""
    if getattr(args, "timeout_given", False) or not TransportURL.parse(url).has("timeout"):
        return {"timeout": timeout}
    return {}


def finite_seconds(text: str) -> float:
    """Seconds: a finite number >= 0, a pause that must end (:func:`rpmsg.checks.pause`)."""
    try:
        return checks.pause(float(text))
    except (ValueError, RpmsgError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of seconds: "
                                         f"{exc}") from None


def count(text: str) -> int:
    """A whole number >= 1 (``--count``)."""
    try:
        return checks.count(int(text), "count")
    except (ValueError, RpmsgError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count >= 1: {exc}") from None


def size(text: str) -> int:
    """A number of bytes >= 0 (``--size``)."""
    try:
        return checks.count(int(text), "size", minimum=0)
    except (ValueError, RpmsgError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of bytes >= 0: {exc}") \
            from None


def name(text: str) -> str:
    """An endpoint or service name (``NAME``, ``--service``, ``--echo``): checked before
    anything is opened, so that a name no peer can announce (empty, longer than 31 bytes, with
    a NUL) is a usage error at once rather than after a wait for the peer."""
    if not text:
        raise argparse.ArgumentTypeError("the name is empty (a service needs a name)")
    try:
        return checks.name(text, "name")
    except RpmsgError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class OutputError(RpmsgError):
    """An output cannot be written (a full disk, ``/dev/full``, an I/O error): one line,
    exit 1, where a traceback would otherwise end the command."""


def standard_input() -> IO[bytes]:
    """The bytes of standard input; a one-line error when the command was started without
    one (``<&-``: Python then has no ``sys.stdin`` at all)."""
    if sys.stdin is None:
        raise InvalidArgumentError("standard input is closed: give the input another way "
                                   "(e.g. < FILE or < /dev/null)")
    return sys.stdin.buffer


def open_output(path: str, what: str) -> IO[str]:
    """``path`` opened for appending text, line-buffered; a one-line error if it cannot be."""
    try:
        return open(path, "a", encoding="utf-8", buffering=1)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot write the {what} to {path!r}: "
                                   f"{exc.strerror or exc}") from None


__all__ = ["Given", "OutputError", "add_policy", "count", "finite_seconds", "name",
           "open_output", "open_timeout", "seconds", "size", "standard_input"]
