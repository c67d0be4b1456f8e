"""The narrow interface between a transport and the RPMsg runtime, URLs and the registry.

A transport is a :class:`Link`: it moves whole RPMsg messages (src, dst, payload) and reports
link state to a :class:`LinkSink` (the :class:`~rpmsg.device.Device`). Transports are chosen by
a URL-like string, ``scheme:path?key=value&...``, as pyserial and python-can do; each scheme is
registered here, built-in ones lazily so that importing ``rpmsg`` stays cheap.
"""

from __future__ import annotations

import abc
import importlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl

from rpmsg.core.policy import OPENAMP, Policy
from rpmsg.errors import InvalidURLError, RpmsgTimeoutError
from rpmsg.tap import Tap
from rpmsg.wire.layout import Buffer

Release = Callable[[], None]


class LinkSink(Protocol):
    """What a link reports to; implemented by :class:`rpmsg.device.Device`."""

    def link_up(self) -> None:
        """The remote is reachable: endpoints may be announced and messages sent."""

    def link_down(self, reason: str) -> None:
        """The remote went away or restarted; bindings are dropped, the link may come back."""

    def deliver(self, src: int, dst: int, payload: Buffer, release: Release | None = None) -> None:
        """One received message.

        Without ``release`` the payload is valid only during the call. With it, the payload
        stays valid until ``release()`` is called, exactly once, which returns the buffer to
        the transport (zero-copy receive).
        """

    def broken(self, error: Exception) -> None:
        """The transport failed for good (corrupt ring, I/O error); no more messages."""


class TxBuffer:
    """A transmit buffer the payload is written into directly (zero-copy send).

    ``payload`` is a writable memoryview of ``capacity`` bytes. Pass the buffer to
    :meth:`rpmsg.endpoint.Endpoint.send_buffer` with the length used, or :meth:`release` it.
    """

    def __init__(self, payload: memoryview, commit: Callable[[int, int, int], None],
                 release: Release) -> None:
        self.payload = payload
        self.capacity = len(payload)
        self._commit = commit
        self._release = release
        self.done = False

    def commit(self, src: int, dst: int, length: int) -> None:
        """Send ``length`` bytes of the payload from ``src`` to ``dst``; only once."""
        if self.done:
            raise ValueError("this transmit buffer was already sent or released")
        if not 0 <= length <= self.capacity:
            raise ValueError(f"length {length} outside 0..{self.capacity}")
        self.done = True
        self._commit(src, dst, length)

    def release(self) -> None:
        """Give the buffer back unsent; does nothing if it was sent or released already."""
        if not self.done:
            self.done = True
            self._release()

    def __enter__(self) -> TxBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Link(abc.ABC):
    """A transport's connection to one remote, as seen by the RPMsg runtime.

    Subclasses set :attr:`mtu` (largest payload), :attr:`default_policy` (the peer behaviour
    the transport usually meets) and :attr:`ns_enabled` (name service negotiated).
    """

    mtu: int = 496
    default_policy: Policy = OPENAMP
    ns_enabled: bool = True
    #: Short human-readable description of the role, e.g. ``"driver"`` or ``"device"``.
    role: str = ""
    #: Frame-level observer (``capture_level=frames``), set by the Device before
    #: :meth:`start`; None (the default) costs the data path one attribute test.
    tap: Tap | None = None

    @abc.abstractmethod
    def start(self, sink: LinkSink) -> None:
        """Begin reporting to ``sink``; called once, by the Device that owns the link."""

    @abc.abstractmethod
    def send(self, src: int, dst: int, payload: Buffer, timeout: float | None) -> None:
        """Transmit one message of at most :attr:`mtu` bytes.

        Waits for a free buffer: forever if ``timeout`` is None, not at all if 0 (raising
        :class:`~rpmsg.errors.NoBufferError`), else up to ``timeout`` seconds (raising
        :class:`~rpmsg.errors.RpmsgTimeoutError`). Raises
        :class:`~rpmsg.errors.RemoteDisconnectedError` while the link is down and
        :class:`~rpmsg.errors.TransportBrokenError` once broken.
        """

    def send_many(self, messages: Iterable[tuple[int, int, Buffer]],
                  timeout: float | None) -> int:
        """Transmit several messages, notifying the peer as few times as the transport can.

        Returns how many were sent; the timeout applies to the whole batch.
        """
        deadline = Deadline(timeout)
        count = 0
        for src, dst, payload in messages:
            self.send(src, dst, payload, deadline.remaining())
            count += 1
        return count

    def alloc_tx(self, timeout: float | None) -> TxBuffer:
        """A transmit buffer to fill in place; the default copies on commit."""
        buf = bytearray(self.mtu)

        def commit(src: int, dst: int, length: int) -> None:
            self.send(src, dst, memoryview(buf)[:length], timeout)

        return TxBuffer(memoryview(buf), commit, lambda: None)

    # Endpoint hooks: for transports whose peer owns the endpoints (linux: creates each one
    # in the kernel). The defaults do nothing, so other transports ignore them.

    def open_endpoint(self, name: str, src: int, dst: int) -> tuple[int, int]:
        """Called by ``Device.create_endpoint`` before the core creates the endpoint.

        Returns the (src, dst) the core should record; the default returns them unchanged.
        Messages for the endpoint must not be delivered before :meth:`start_endpoint`.
        """
        return src, dst

    def start_endpoint(self, addr: int) -> None:
        """Called once the endpoint at ``addr`` exists in the core: deliveries may begin."""
        return None

    def close_endpoint(self, addr: int) -> None:
        """Called after the endpoint at ``addr`` was destroyed, or its creation failed."""
        return None

    #: Whether :meth:`poll` can deliver messages on the caller's thread.
    can_poll: bool = False

    def poll(self) -> int:
        """Deliver pending received messages on the calling thread; return how many.

        Lets a receiver that is about to sleep drain the transport itself instead of waiting
        for the transport's thread to wake it (shared-memory rings). Returns 0 when nothing
        is pending or another thread is delivering; never blocks.
        """
        return 0

    @abc.abstractmethod
    def close(self) -> None:
        """Stop threads and release resources; idempotent."""

    def stats(self) -> dict[str, int]:
        """Transport counters (frames, bytes, drops by reason); empty if none."""
        return {}

    def describe(self) -> dict[str, Any]:
        """Facts about the link for ``--json`` output and logs."""
        return {"role": self.role, "mtu": self.mtu}


class Deadline:
    """Turns a pyserial-style timeout (None, 0, seconds) into remaining time for each wait."""

    __slots__ = ("deadline", "timeout")

    def __init__(self, timeout: float | None) -> None:
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be None or >= 0, not {timeout}")
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        """Seconds left (never negative), or None for no limit."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def timeout_error(self, what: str) -> RpmsgTimeoutError:
        return RpmsgTimeoutError(f"{what}: no result within {self.timeout} s")


# URLs --------------------------------------------------------------------------------------

T = TypeVar("T")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass
class TransportURL:
    """A parsed transport string: ``scheme:path?key=value&key=value``.

    The query starts at the last ``?`` so that paths such as pyserial's ``socket://h:p``
    survive. Keyword arguments given to :func:`open` are merged over the query parameters.
    Each transport reads its options through the typed getters, then calls :meth:`finish`,
    which rejects any option nobody used (so a typo is an error, not a silent default).
    """

    text: str
    scheme: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    #: Which end the caller wants to be when the URL leaves it open: ``host`` (virtio
    #: driver, the Linux side) or ``remote`` (virtio device, the co-processor side).
    #: Symmetric transports ignore it; an explicit ``role=`` option wins.
    side: str = "host"
    _used: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, text: str, overrides: Mapping[str, Any] | None = None,
              side: str = "host") -> TransportURL:
        scheme, sep, rest = text.partition(":")
        if not sep or not scheme or not scheme.replace("-", "").replace("_", "").isalnum():
            raise InvalidURLError(
                f"transport {text!r} is not of the form SCHEME:PATH (e.g. 'loop:', "
                "'shm:/name', 'uart:/dev/ttyUSB0?baudrate=921600')")
        path, qsep, query = rest.rpartition("?") if "?" in rest else (rest, "", "")
        params: dict[str, Any] = {}
        if qsep:
            for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
                params[key.replace("-", "_")] = value
        for key, value in (overrides or {}).items():
            if value is not None:
                params[key] = value
        if side not in ("host", "remote"):
            raise ValueError(f"side must be 'host' or 'remote', not {side!r}")
        return cls(text=text, scheme=scheme.lower(), path=path, params=params, side=side)

    def has(self, key: str) -> bool:
        return key in self.params

    def get_str(self, key: str, default: str) -> str:
        self._used.add(key)
        value = self.params.get(key, default)
        return str(value)

    def get_int(self, key: str, default: int, *, minimum: int | None = None,
                maximum: int | None = None) -> int:
        self._used.add(key)
        raw = self.params.get(key, default)
        try:
            value = int(raw, 0) if isinstance(raw, str) else int(raw)
        except ValueError:
            raise InvalidURLError(f"{self.scheme}: option {key}={raw!r} is not an integer") \
                from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise InvalidURLError(
                f"{self.scheme}: option {key}={value} outside {minimum}..{maximum}")
        return value

    def get_float(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        self._used.add(key)
        raw = self.params.get(key, default)
        try:
            value = float(raw)
        except ValueError:
            raise InvalidURLError(f"{self.scheme}: option {key}={raw!r} is not a number") \
                from None
        if value < minimum:
            raise InvalidURLError(f"{self.scheme}: option {key}={value} is below {minimum}")
        return value

    def get_bool(self, key: str, default: bool) -> bool:
        self._used.add(key)
        raw = self.params.get(key, default)
        if isinstance(raw, bool):
            return raw
        text = str(raw).lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise InvalidURLError(f"{self.scheme}: option {key}={raw!r} is not a boolean")

    def get_choice(self, key: str, default: T, choices: Mapping[str, T]) -> T:
        self._used.add(key)
        raw = self.params.get(key)
        if raw is None:
            return default
        try:
            return choices[str(raw).lower()]
        except KeyError:
            raise InvalidURLError(
                f"{self.scheme}: option {key}={raw!r}; choose one of {', '.join(choices)}"
            ) from None

    def take(self, key: str) -> Any:
        """Mark an option as used and return its raw value (None if absent)."""
        self._used.add(key)
        return self.params.get(key)

    def finish(self) -> None:
        """Reject options that no getter asked for."""
        unknown = sorted(set(self.params) - self._used)
        if unknown:
            raise InvalidURLError(
                f"{self.scheme}: unknown option(s) {', '.join(unknown)} in {self.text!r}")


# Registry ----------------------------------------------------------------------------------

LinkFactory = Callable[[TransportURL], Link]


@dataclass(frozen=True)
class TransportInfo:
    scheme: str
    summary: str
    module: str


_FACTORIES: dict[str, LinkFactory] = {}
_BUILTIN: dict[str, TransportInfo] = {}


def register_transport(scheme: str, factory: LinkFactory) -> None:
    """Make ``scheme:`` URLs open links made by ``factory(url)``."""
    _FACTORIES[scheme.lower()] = factory


def register_builtin(scheme: str, module: str, summary: str) -> None:
    """Declare a scheme whose module registers its factory when first imported."""
    _BUILTIN[scheme] = TransportInfo(scheme, summary, module)


def transports() -> list[TransportInfo]:
    """The known schemes with a one-line summary each."""
    return sorted(_BUILTIN.values(), key=lambda t: t.scheme)


def make_link(url: TransportURL) -> Link:
    """Build the link for a parsed URL (imports the scheme's module on first use)."""
    factory = _FACTORIES.get(url.scheme)
    if factory is None and url.scheme in _BUILTIN:
        importlib.import_module(_BUILTIN[url.scheme].module)
        factory = _FACTORIES.get(url.scheme)
    if factory is None:
        known = ", ".join(sorted(set(_BUILTIN) | set(_FACTORIES)))
        raise InvalidURLError(f"unknown transport {url.scheme!r} in {url.text!r}; known: {known}")
    return factory(url)


register_builtin("loop", "rpmsg.transports.loop",
                 "in-process loopback: two cores back to back (loop:NAME, two opens pair up)")
register_builtin("shm", "rpmsg.transports.shm",
                 "virtio rings in shared memory between two processes (OpenAMP-compatible)")
register_builtin("vhost-user", "rpmsg.transports.vhost_user",
                 "virtio-rpmsg device served over a vhost-user socket (e.g. to a UML/QEMU guest)")
register_builtin("linux", "rpmsg.transports.linux",
                 "Linux /dev/rpmsgN character devices (the kernel is the RPMsg core)")
register_builtin("uart", "rpmsg.transports.uart",
                 "NuttX RPMsg Port over a serial line (pyserial device path or URL)")
register_builtin("spi", "rpmsg.transports.spi",
                 "NuttX RPMsg Port over SPI with MREQ/SREQ GPIO lines (spidev, gpiod)")
register_builtin("spisim", "rpmsg.transports.spi",
                 "NuttX RPMsg Port over a simulated SPI bus between two processes")
