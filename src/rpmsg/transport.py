"""The narrow interface between a transport and the RPMsg runtime.

A transport is a :class:`Link`: it moves whole RPMsg messages (src, dst, payload) and reports
link state to a :class:`LinkSink` (the :class:`~rpmsg.device.Device`). :class:`Deadline` is the
one rule for pyserial-style timeouts every wait uses. URLs are parsed in :mod:`rpmsg.url` and
schemes found in :mod:`rpmsg.registry`.
"""

from __future__ import annotations

import abc
import functools
import inspect
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from rpmsg import checks
from rpmsg.core.policy import OPENAMP, Policy
from rpmsg.errors import InvalidArgumentError, RpmsgError, RpmsgTimeoutError, WouldBlockError
from rpmsg.tap import Tap
from rpmsg.wire.layout import Buffer

_T = TypeVar("_T")
Release = Callable[[], None]
#: One received message as a transport hands it on: ``(src, dst, payload, release)``.
Delivery = tuple[int, int, Buffer, "Release | None"]


class LinkSink(Protocol):
    """What a link reports to; implemented by :class:`rpmsg.device.Device`."""

    def link_up(self, detail: str = "") -> None:
        """The remote is reachable: endpoints may be announced and messages sent.

        ``detail`` says how, for the INFO log line (e.g. "driver set DRIVER_OK").
        """

    def link_down(self, reason: str, *, restart: bool = False) -> None:
        """The remote went away or restarted; bindings are dropped, the link may come back.

        ``reason`` is logged at INFO; ``restart`` says the peer restarted while the link was
        up (UART CONNREQ while connected, SPI CONNECT, virtio reset), recorded as such.
        """

    def deliver(self, src: int, dst: int, payload: Buffer, release: Release | None = None) -> None:
        """One received message.

        Without ``release`` the payload is valid only during the call. With it, the payload
        stays valid until ``release()`` is called, exactly once, which returns the buffer to
        the transport (zero-copy receive, and back-pressure: an endpoint whose receive queue
        is full keeps the message in the transport's buffer until its reader catches up, or
        drops it after a bounded hold). Transports should pass ``release`` wherever they
        can: without it a message for a full queue can only be dropped (counted).
        ``release`` may be called later from any thread (a reader, the Device's worker); it
        must be thread-safe, must not block and must tolerate a link that closed meanwhile.
        If ``deliver`` raises, the transport calls ``release`` itself.
        """

    def broken(self, error: Exception) -> None:
        """The transport failed for good (corrupt ring, I/O error); no more messages."""

    # Optional: ``deliver_many(batch: Sequence[Delivery]) -> None``, the messages a
    # transport found together, in order, each ``(src, dst, payload, release)`` as for
    # :meth:`deliver`. A sink that has it hands a burst on with one lock round and one
    # wake-up per endpoint; links call it through :func:`batch_delivery`, which falls
    # back to :meth:`deliver` for sinks without it. See :class:`BatchSink`.


class BatchSink(LinkSink, Protocol):
    """A :class:`LinkSink` that also takes messages in batches (the Device does)."""

    def deliver_many(self, batch: Sequence[Delivery]) -> None:
        """The messages of ``batch``, in order, with exactly what :meth:`deliver` called
        once per message would do (endpoints, name service, drops, taps, callbacks).

        The sink owns every ``release`` of the batch from the call on: each is called
        exactly once, by the sink or later by whoever keeps the payload, also when this
        raises (then the messages not yet handed on are released before the error
        propagates); the transport releases none of them itself.
        """


def deliver_each(sink: LinkSink, batch: Sequence[Delivery]) -> None:
    """:meth:`BatchSink.deliver_many` for a sink that only has ``deliver``: one call per
    message; if one raises, its buffer and those of the messages after it are released
    (the ``deliver`` contract) and the error propagates."""
    deliver = sink.deliver
    k = 0
    try:
        for src, dst, payload, release in batch:
            deliver(src, dst, payload, release)
            k += 1
    except BaseException:
        for _src, _dst, _payload, rel in batch[k:]:
            if rel is not None:
                rel()
        raise


def batch_delivery(sink: LinkSink) -> Callable[[Sequence[Delivery]], None]:
    """What a link calls with each batch it received: the sink's own ``deliver_many`` if
    it has one, else :func:`deliver_each` (so links and sinks written before batches
    keep working). Look it up again whenever the sink changes."""
    many: Callable[[Sequence[Delivery]], None] | None = getattr(sink, "deliver_many", None)
    if many is not None and callable(many):
        return many
    return functools.partial(deliver_each, sink)


class TxBuffer:
    """A transmit buffer the payload is written into directly (zero-copy send).

    ``payload`` is a writable memoryview of ``capacity`` bytes. Pass the buffer to
    :meth:`rpmsg.endpoint.Endpoint.send_buffer` with the length used, or :meth:`release` it.
    One dropped unsent and unreleased is given back when collected, with a ResourceWarning
    (else the transport would lose it for good: after as many as the link has, every send
    would wait in vain).

    ``orphan`` is how the link takes back a buffer from the finaliser: it must neither block
    nor take a lock (the finaliser may run inside the cyclic GC on a thread that holds the
    link's lock), e.g. append to a list the link empties at a safe point (when a sender
    finds no free buffer). Without it the finaliser calls ``release``, which must then be
    safe there too (no lock, or a reentrant one).
    """

    __slots__ = ("_commit", "_orphan", "_release", "capacity", "done", "payload")

    def __init__(self, payload: memoryview, commit: Callable[[int, int, int], None],
                 release: Release, orphan: Release | None = None) -> None:
        self.payload = payload
        self.capacity = len(payload)
        self._commit = commit
        self._release = release
        self._orphan = orphan
        self.done = False

    def commit(self, src: int, dst: int, length: int) -> None:
        """Send ``length`` bytes of the payload from ``src`` to ``dst``; only once.

        ``payload`` is released then: a write after the send would land in a buffer the
        peer is reading, or that carries another sender's next message.
        """
        if self.done:
            raise InvalidArgumentError("this transmit buffer was already sent or released")
        if type(length) is not int or not 0 <= length <= self.capacity:
            raise InvalidArgumentError(f"length {length!r} outside 0..{self.capacity}")
        self.done = True
        try:
            self._commit(src, dst, length)
        finally:
            self._forget_payload()

    def release(self) -> None:
        """Give the buffer back unsent; does nothing if it was sent or released already."""
        if not self.done:
            self.done = True
            self._forget_payload()
            self._release()

    def _forget_payload(self) -> None:
        """Make ``payload`` unusable (views the program made of it stay its business)."""
        try:  # not contextlib.suppress: this runs on every zero-copy send (~0.3 us less)
            self.payload.release()
        except BufferError:
            pass

    def __enter__(self) -> TxBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            if self.done:
                return
            self.done = True
            self._forget_payload()
            (self._orphan or self._release)()
            warnings.warn(f"TxBuffer of {self.capacity} bytes dropped without being sent or "
                          "released; released now", ResourceWarning, stacklevel=2)
        except Exception:  # nothing may escape a finaliser (also at interpreter exit)
            pass


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
        :class:`~rpmsg.errors.RpmsgTimeoutError`); a send that raises either must have
        sent nothing of the message, since an endpoint waits in steps of
        :data:`~rpmsg.endpoint.CLOSE_CHECK` and sends it again after each. Raises
        :class:`~rpmsg.errors.RemoteDisconnectedError` while the link is down and
        :class:`~rpmsg.errors.TransportBrokenError` once broken.

        With ``timeout`` 0 it must never block (short internal locks aside): the Device sends
        its own messages (name service) that way from inside :class:`LinkSink` callbacks, on
        the transport's threads, and queues them for later when no buffer is free. Arguments
        arrive checked (``payload`` has ``len()`` in bytes and fits :attr:`mtu`); a buffer
        taken here goes back to the pool on any exception.
        """

    def send_many(self, messages: Iterable[tuple[int, int, Buffer]],
                  timeout: float | None) -> int:
        """Transmit several messages, notifying the peer as few times as the transport can.

        Returns how many were sent; the timeout applies to the whole batch.
        """
        deadline = Deadline(timeout)
        count = 0
        send = self.send
        remaining = deadline.remaining
        try:  # pass_on's rule, around the whole loop: no call or closure per message
            for src, dst, payload in messages:
                send(src, dst, payload, remaining())
                count += 1
        except WouldBlockError as exc:
            raise deadline.ran_out(exc, f"send_many: message {count + 1}", self.seen) from None
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

    def start_endpoint(self, addr: int, direct: bool = False) -> None:
        """Called once the endpoint at ``addr`` exists in the core: deliveries may begin.

        ``direct`` (only where :attr:`direct_receive`): the endpoint's messages are read by
        its receivers through :meth:`read_direct`, never delivered from a transport thread.
        """
        return None

    def close_endpoint(self, addr: int) -> None:
        """Called after the endpoint at ``addr`` was destroyed, or its creation failed."""
        return None

    #: Name a new endpoint gets when ``create_endpoint`` is given none (``linux:`` URLs that
    #: name a service or device).
    default_name: str = ""

    # Direct receive: where each endpoint has a descriptor of its own (linux:), its receiving
    # thread reads the next message itself, without a hand-off from a transport thread.

    #: Whether endpoints may be started ``direct`` (:meth:`read_direct`, :meth:`rx_fileno`).
    direct_receive: bool = False

    def read_direct(self, addr: int, timeout: float | None) -> tuple[int, bytes] | None:
        """The next message ``(src, payload)`` of direct endpoint ``addr``, read on the
        calling thread; None if none came within ``timeout`` (0: only what is there).

        Raises :class:`~rpmsg.errors.RemoteDisconnectedError` once the remote is gone (after
        reporting ``link_down``) and :class:`~rpmsg.errors.EndpointClosedError` when the
        endpoint is closed, which also wakes a caller blocked here.
        """
        raise NotImplementedError(f"{type(self).__name__} has no direct receive")

    def rx_fileno(self, addr: int) -> int:
        """A descriptor readable while direct endpoint ``addr`` has a message (or an error)
        for :meth:`read_direct`."""
        raise NotImplementedError(f"{type(self).__name__} has no direct receive")

    def forked(self) -> None:
        """Called in the child of a ``fork()`` for a link the parent opened: from now on
        nothing done here may reach the peer or the parent's state (no buffer release, ring
        write, notification, goodbye or file removal; :meth:`close` does nothing). The
        default does nothing (a link whose state is all in this process's memory)."""
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
    def close(self, timeout: float | None = None) -> None:
        """Stop threads and release resources; idempotent.

        ``timeout`` is the budget left of :meth:`rpmsg.device.Device.close` (None: no limit,
        as before): flush what was sent before the call (UART), join threads and return
        within it whatever the peer does; what could not be flushed in time is abandoned
        (and counted where the link counts drops). Links written before the budget existed
        may define ``close(self)``; the Device then calls them without it.
        """

    def stats(self) -> dict[str, int]:
        """Transport counters (frames, bytes, drops by reason); empty if none."""
        return {}

    def seen(self) -> str:
        """What the link saw, in one phrase, for timeout errors and "waiting" notices.

        E.g. "no frame passed the CRC: 37 dropped; check crc= on both sides" or "the link
        is up; 12 messages received". The default lists the non-zero :meth:`stats`;
        transports override it to say what their counters mean for the user.
        """
        counters = {k: v for k, v in self.stats().items() if v}
        if not counters:
            return "the link has carried nothing yet"
        return "link counters: " + ", ".join(f"{k}={v}" for k, v in sorted(counters.items()))

    def describe(self) -> dict[str, Any]:
        """Facts about the link for ``--json`` output and logs."""
        return {"role": self.role, "mtu": self.mtu}


#: Longest single sleep a Deadline hands out: a huge finite timeout is waited in slices the
#: OS accepts (``Condition.wait`` overflows past ``threading.TIMEOUT_MAX``).
MAX_WAIT_SLICE = 86400.0


class Deadline:
    """Turns a pyserial-style timeout (None, 0, seconds) into remaining time for each wait.

    The timeout is checked by :func:`rpmsg.checks.timeout`: NaN, negative and non-numbers raise
    :class:`~rpmsg.errors.InvalidArgumentError`, ``inf`` means no limit like None. Callers loop
    ``wait(remaining())`` until :meth:`expired`, so the slice cap is invisible to them.
    """

    __slots__ = ("deadline", "timeout")

    def __init__(self, timeout: float | None) -> None:
        self.timeout = checks.timeout(timeout)
        self.deadline = None if self.timeout is None else time.monotonic() + self.timeout

    def remaining(self) -> float | None:
        """Seconds left (never negative, at most a day per wait), or None for no limit."""
        if self.deadline is None:
            return None
        return min(MAX_WAIT_SLICE, max(0.0, self.deadline - time.monotonic()))

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def timeout_error(self, what: str, seen: str = "") -> RpmsgTimeoutError:
        """The error for a wait that ran out; ``seen`` says what the link saw meanwhile."""
        tail = f"; {seen}" if seen else ""
        return RpmsgTimeoutError(f"{what}: no result within {self.timeout} s{tail}")

    def pass_on(self, call: Callable[[float | None], _T], what: str,
                seen: Callable[[], str] | None = None) -> _T:
        """``call(self.remaining())``: hand the time left to a call that takes a timeout.

        Once the time is up that call gets 0, the pyserial "do not wait" value, and reports
        "nothing ready" (:class:`~rpmsg.errors.WouldBlockError`, e.g. ``NoBufferError``). For
        a non-zero timeout that is this deadline running out: :class:`RpmsgTimeoutError`
        naming ``what`` (and ``seen()``, what the link saw) instead. The one rule for every
        wait made of several timed calls (a batch of sends, a wait then a send).
        """
        try:
            return call(self.remaining())
        except WouldBlockError as exc:
            raise self.ran_out(exc, what, seen) from None

    def ran_out(self, exc: WouldBlockError, what: str,
                seen: Callable[[], str] | None = None) -> RpmsgError:
        """What ``exc``, met by a call given this deadline's time left, means (see
        :meth:`pass_on`): itself for a timeout of 0, else the deadline running out."""
        if self.timeout == 0:
            return exc
        return self.timeout_error(what, "" if seen is None else seen())


def close_link(link: Link, timeout: float | None) -> None:
    """``link.close(timeout)``, or ``link.close()`` for a link that takes no budget."""
    try:
        params = inspect.signature(link.close).parameters
    except (TypeError, ValueError):  # a builtin or C callable: no signature to read
        params = {}  # type: ignore[assignment]
    if "timeout" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        link.close(timeout=timeout)
    else:
        link.close()
