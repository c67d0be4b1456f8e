"""Transport schemes: found through the ``rpmsg.transports`` entry-point group, opened in two steps.

A scheme is a :class:`Transport`. Built-in schemes register through the entry-point group in
``pyproject.toml`` exactly as third-party packages do (python-can's habit); entry points are
read lazily, on the first scheme not loaded yet or when listing, so ``import rpmsg`` stays
cheap. A transport opens in two steps: :attr:`Transport.configure` reads and checks every
option of the URL without any I/O and returns a *connect* callable; only once the whole URL
checked out (unknown options included) is ``connect(opening)`` called, with one
:class:`Opening` that carries the open's deadline and says what a long wait waits for.
"""

from __future__ import annotations

import logging
import os
import shlex
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rpmsg.core.policy import Policy, get_policy
from rpmsg.errors import (
    RESOURCE_LIMITS,
    ArgumentTypeError,
    InvalidURLError,
    NotAvailableError,
    ResourceLimitError,
    RpmsgError,
    RpmsgTimeoutError,
)
from rpmsg.transport import Deadline, Link
from rpmsg.url import TransportURL

if TYPE_CHECKING:  # importlib.metadata costs tens of ms: imported on the first lookup only
    from importlib.metadata import EntryPoint

log = logging.getLogger("rpmsg.registry")
#: Logger of "waiting for ..." notices; the CLI shows it on stderr even without ``-v``.
wait_log = logging.getLogger("rpmsg.wait")

ENTRY_POINT_GROUP = "rpmsg.transports"
#: Seconds a wait may last before it is announced (design: no silent waits over a second).
WAIT_NOTICE_AFTER = 1.0
#: How long :func:`rpmsg.open` waits for the peer when no ``timeout`` is given.
DEFAULT_OPEN_TIMEOUT = 30.0
#: Options :func:`prepare` takes for itself, whatever the scheme.
GENERIC_OPTIONS = ("policy", "timeout", "capture", "capture_level", "capture_max")
CAPTURE_LEVELS = ("messages", "frames")
#: ``capture=`` values that turn capture off for one link (an inherited RPMSG_CAPTURE too).
CAPTURE_OFF = ("", "off", "none", "0")


class Opening:
    """What a transport's connect step gets: the deadline of the whole open, and a voice.

    ``waiting(what, hint)`` is called from inside a wait loop; the first call after the open
    has lasted :data:`WAIT_NOTICE_AFTER` logs one INFO line on ``rpmsg.wait``, e.g. "waiting
    for a virtio device on shm:lab — start one with `rpmsg remote shm:lab`".
    """

    def __init__(self, url: str, timeout: float | None) -> None:
        self.url = url
        self.deadline = Deadline(timeout)
        self.started = time.monotonic()
        self._said: set[str] = set()

    @property
    def timeout(self) -> float | None:
        return self.deadline.timeout

    def remaining(self) -> float | None:
        return self.deadline.remaining()

    def expired(self) -> bool:
        return self.deadline.expired()

    def waiting(self, what: str, hint: str = "") -> None:
        """Say once (after a second) what this open waits for and how to provide it."""
        if what in self._said or time.monotonic() - self.started < WAIT_NOTICE_AFTER:
            return
        self._said.add(what)
        wait_log.info("waiting for %s on %s%s", what, self.url, f" — {hint}" if hint else "")

    def timeout_error(self, what: str, seen: str = "") -> RpmsgTimeoutError:
        """The error for an open that ran out of time; ``seen`` says what the link saw."""
        tail = f"; {seen}" if seen else ""
        return RpmsgTimeoutError(
            f"{self.url}: no {what} within {self.deadline.timeout} s{tail}")


Connect = Callable[[Opening], Link]
Configure = Callable[[TransportURL], Connect]


@dataclass(frozen=True)
class Transport:
    """One URL scheme: a one-line summary and how to configure it."""

    scheme: str
    summary: str
    #: Reads and checks the URL's options, without I/O; returns the connect step.
    configure: Configure
    #: Both ends live in one process (``loop:``): refused where another process must connect.
    in_process: bool = False


_REGISTRY: dict[str, Transport] = {}
_ENTRY_POINTS: dict[str, EntryPoint] | None = None
_LOCK = threading.RLock()


def register_transport(transport: Transport) -> None:
    """Make ``transport.scheme:`` URLs open with ``transport`` (replaces an earlier one)."""
    with _LOCK:
        _REGISTRY[transport.scheme.lower()] = transport


def _entry_points() -> dict[str, EntryPoint]:
    global _ENTRY_POINTS
    with _LOCK:
        if _ENTRY_POINTS is None:
            import importlib.metadata

            found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
            _ENTRY_POINTS = {ep.name.lower(): ep for ep in found}
        return _ENTRY_POINTS


def _load(scheme: str, ep: EntryPoint) -> Transport:
    try:
        obj = ep.load()
    except ImportError as exc:
        raise NotAvailableError(
            f"transport {scheme!r} ({ep.value}) cannot be loaded: {exc}") from exc
    if not isinstance(obj, Transport):
        raise NotAvailableError(
            f"entry point {ep.value} of {ENTRY_POINT_GROUP!r} is not an rpmsg Transport")
    register_transport(obj)
    return obj


def get_transport(scheme: str) -> Transport:
    """The transport for ``scheme``, loading its entry point on first use."""
    key = scheme.lower()
    with _LOCK:
        found = _REGISTRY.get(key)
        if found is not None:
            return found
        ep = _entry_points().get(key)
        if ep is not None:
            return _load(key, ep)
        known = ", ".join(sorted(set(_REGISTRY) | set(_entry_points())))
    raise InvalidURLError(f"unknown transport {scheme!r}; known: {known}")


def list_transports() -> list[Transport]:
    """Every known scheme (entry points loaded; one that fails to load is logged, skipped)."""
    with _LOCK:
        for scheme, ep in _entry_points().items():
            if scheme not in _REGISTRY:
                try:
                    _load(scheme, ep)
                except NotAvailableError as exc:
                    log.warning("%s", exc)
        return sorted(_REGISTRY.values(), key=lambda t: t.scheme)


@dataclass(frozen=True)
class CaptureOptions:
    """Where and how to capture a Device's traffic (see :mod:`rpmsg.capture`)."""

    path: str
    level: str = "messages"
    max_bytes: int | None = None
    #: Asked for by ``RPMSG_CAPTURE`` rather than the URL: a capture that cannot be opened
    #: (another process writes that file) is skipped with a warning, not the program's end.
    from_env: bool = False


@dataclass
class Prepared:
    """A URL whose every option checked out: what :func:`rpmsg.open` connects next."""

    url: TransportURL
    transport: Transport
    connect: Connect
    policy: Policy | None
    timeout: float | None
    capture: CaptureOptions | None

    def open_link(self) -> Link:
        """Connect, within the open's timeout. A system out of descriptors or memory is a
        :class:`ResourceLimitError` whatever transport asked for them."""
        try:
            return self.connect(Opening(self.url.text, self.timeout))
        except OSError as exc:
            if isinstance(exc, RpmsgError) or exc.errno not in RESOURCE_LIMITS:
                raise
            raise ResourceLimitError(exc.errno, f"{self.url.text}: {exc.strerror}") from exc


def prepare(url: str, options: Mapping[str, Any] | None = None, *, side: str = "host",
            environ: Mapping[str, str] | None = None) -> Prepared:
    """Check a whole transport URL (scheme, generic and transport options) without I/O.

    Generic options, taken here for every scheme: ``policy`` (``linux``/``openamp``/``nuttx``),
    ``timeout`` (seconds the open may wait for the peer; default 30, ``none`` for no limit),
    ``capture`` (pcapng path; env ``RPMSG_CAPTURE``; ``off`` or empty: not this link),
    ``capture_level`` (``messages`` or
    ``frames``; env ``RPMSG_CAPTURE_LEVEL``) and ``capture_max`` (bytes).
    """
    env = os.environ if environ is None else environ
    if options and "timeout" in options and options["timeout"] is None:
        # ``rpmsg.open(url, timeout=None)`` waits without limit, as every other timeout=None
        # of the API does (other options given as None are simply not given).
        options = {**options, "timeout": "none"}
    parsed = TransportURL.parse(url, options, side=side)
    policy_opt = parsed.take("policy")
    if "policy" in parsed.shadowed:  # the query's own value, replaced by a keyword
        get_policy(parsed.shadowed.pop("policy"))
    policy = None if policy_opt is None else get_policy(policy_opt)
    timeout = parsed.get_timeout("timeout", DEFAULT_OPEN_TIMEOUT)
    capture = _capture_options(parsed, env)
    transport = get_transport(parsed.scheme)
    connect = transport.configure(parsed)
    parsed.finish()
    return Prepared(parsed, transport, connect, policy, timeout, capture)


def open_link(url: str, options: Mapping[str, Any] | None = None, *,
              side: str = "host") -> Link:
    """Check a URL and connect its link, without a Device (tools and benchmarks).

    The generic options are checked but a capture is not opened: that is the Device's job.
    """
    return prepare(url, options, side=side).open_link()


def require_other_process(url: str, command: str) -> None:
    """Refuse a URL whose peer can only live in this process (``loop:``) for ``command``,
    which needs a peer in another process: an InvalidURLError saying what to use instead,
    at once, rather than a wait for a peer that can never come."""
    transport = get_transport(TransportURL.parse(url).scheme)
    if transport.in_process:
        raise InvalidURLError(
            f"{url}: both ends of a {transport.scheme}: link live in one process, so "
            f"{command} can have no peer there; use a URL another process can reach "
            f"(e.g. shm:NAME with `rpmsg remote shm:NAME`, uart:..., linux:...)")


def remote_command(url: str) -> str:
    """The shell command that starts the other end of ``url``: ``rpmsg remote`` with the
    transport's own options (not this side's timeout, policy or capture), quoted for a
    shell, for hints such as "start one with ..."."""
    try:
        parsed = TransportURL.parse(url)
    except RpmsgError:
        return "rpmsg remote URL"
    own = "&".join(f"{k}={v}" for k, v in parsed.params.items()
                   if k not in GENERIC_OPTIONS)
    target = f"{parsed.scheme}:{parsed.path}" + (f"?{own}" if own else "")
    return f"rpmsg remote {shlex.quote(target)}"


def _capture_options(url: TransportURL, env: Mapping[str, str]) -> CaptureOptions | None:
    path = url.take("capture")  # off in the URL wins over RPMSG_CAPTURE
    from_env = path is None
    if from_env:
        path = env.get("RPMSG_CAPTURE") or ""
    off = path is False or (isinstance(path, str) and path.strip().lower() in CAPTURE_OFF)
    level_default = env.get("RPMSG_CAPTURE_LEVEL") or "messages"
    level = url.get_choice("capture_level", level_default.lower(),
                           {lvl: lvl for lvl in CAPTURE_LEVELS})
    if level not in CAPTURE_LEVELS:
        raise InvalidURLError(f"RPMSG_CAPTURE_LEVEL={level_default!r} is not one of "
                              f"{', '.join(CAPTURE_LEVELS)}")
    max_bytes = url.get_int("capture_max", 0, minimum=0) or None  # 0: no cap
    if off:
        return None
    return CaptureOptions(_capture_path(path), level, max_bytes, from_env)


def _capture_path(path: object) -> str:
    """A capture path: a str or path-like the OS can take (no NUL, encodable)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(f"capture must be a file path, not {type(path).__name__}")
    text = os.fsdecode(os.fspath(path))
    if "\0" in text:
        raise InvalidURLError(f"capture path {text!r} contains a NUL character")
    try:
        os.fsencode(text)
    except UnicodeError:
        raise InvalidURLError(f"capture path {text!r} holds characters no encoding "
                              "can write (a lone surrogate)") from None
    return text


__all__ = [
    "DEFAULT_OPEN_TIMEOUT",
    "ENTRY_POINT_GROUP",
    "CaptureOptions",
    "Configure",
    "Connect",
    "Opening",
    "Prepared",
    "Transport",
    "get_transport",
    "list_transports",
    "open_link",
    "prepare",
    "register_transport",
    "require_other_process",
]
