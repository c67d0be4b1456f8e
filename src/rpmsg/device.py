"""The runtime around the sans-IO core: one Device per link to one remote processor.

A :class:`Device` owns a :class:`~rpmsg.transport.Link` and a :class:`~rpmsg.core.RpmsgCore`;
it turns link callbacks into core calls, carries out the core's events (its own name-service
messages go through a :class:`~rpmsg.worker.DeviceWorker`, so no transport thread waits for a
buffer), hands messages to endpoints through :class:`~rpmsg.boundary.EndpointPeer` and serves
them as their :class:`~rpmsg.boundary.EndpointHost`. ``self.lock`` guards the core's state
and is never held while calling into the link, an endpoint or user code. Everything sent and
delivered is shown to the :class:`~rpmsg.tap.Tap`, if any; logs say what happened (INFO: link
up/down, name service, bindings; DEBUG: every drop and why).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, cast

from rpmsg import checks
from rpmsg.boundary import EndpointPeer, Taken
from rpmsg.core.core import (
    Bound,
    Dropped,
    EndpointRecord,
    Event,
    Note,
    NsReceived,
    RpmsgCore,
    Send,
    ServiceAnnounced,
    ServiceWithdrawn,
    Unbound,
)
from rpmsg.core.policy import Policy, get_policy
from rpmsg.endpoint import Endpoint, MessageCallback, StateCallback, check_callable
from rpmsg.errors import (
    ArgumentTypeError,
    EndpointClosedError,
    TransportBrokenError,
)
from rpmsg.rxqueue import DEFAULT_HOLD, DEFAULT_QUEUE
from rpmsg.tap import Tap, show_messages
from rpmsg.transport import Deadline, Delivery, Link, Release, TxBuffer, close_link
from rpmsg.wire.layout import Buffer
from rpmsg.wire.rpmsg import ADDR_ANY, NsFlags
from rpmsg.worker import DeviceWorker, DropKind, OwnMessage

log = logging.getLogger("rpmsg")

ServiceCallback = Callable[["Device", str, int], None]

#: Default budget of :meth:`Device.close` (NS DESTROY sends, flushing, joining threads).
CLOSE_TIMEOUT = 1.0
#: Share of the close budget the queued name-service messages may use; the rest is the link's.
CLOSE_FLUSH_SHARE = 0.5
#: Messages of a ``send_many`` shown to the tap at once (a virtio link's transmit batch).
TAP_BURST = 64
#: Seconds without a queue-full drop after which the next one is logged again (one line per
#: episode, not one per message).
FULL_EPISODE_GAP = 10.0
_OWN_DROP_COUNTERS: dict[DropKind, str] = {"refused": "ns_send_failures",
                                           "stale": "ns_dropped_link_down",
                                           "closed": "ns_dropped_at_close"}

_COPIED, _KEPT, _HOLD_STARTED = Taken.COPIED, Taken.KEPT, Taken.HOLD_STARTED
_time = time.time
_NOBODY = object()  # matches no endpoint record
_DROPPED_FULL = Taken.DROPPED_FULL
#: What one hold of the lock in :meth:`Device.deliver_many` dispatched (see _dispatch):
#: the first endpoint, its share and the rest (other shares, buffers to give back, the
#: message that ended the segment with its record, events and notes), None if nothing.
_Stop = tuple[Delivery, EndpointRecord | None, Sequence[Event], Sequence[Note]]
_Rest = tuple[dict[EndpointRecord, list[Delivery]] | None, list[Release] | None,
              _Stop | None]
_Segment = tuple[EndpointRecord | None, list[Delivery], _Rest | None]
_NS_NAMES = {NsFlags.CREATE: "CREATE", NsFlags.DESTROY: "DESTROY",
             NsFlags.CREATE_ACK: "CREATE_ACK"}


def call_user(fn: Callable[..., Any], *args: Any) -> None:
    """Run a user callback on a transport thread; an exception is logged, not fatal."""
    try:
        fn(*args)
    except Exception:
        log.exception("user callback %r raised; the transport keeps running", fn)


class Device:
    """An RPMsg device: the endpoints of this side on one link to one remote.

    Use :func:`rpmsg.open` to make one from a transport string. It is a context manager;
    :meth:`close` is idempotent and closes every endpoint and the link. ``name`` (the URL
    for :func:`rpmsg.open`) names it in logs and captures.
    """

    #: Seconds a receiver polls the transport itself (where the transport allows it) before
    #: sleeping; saves a thread wake-up per message on fast links. 0 turns it off.
    DEFAULT_RX_SPIN = 50e-6

    def __init__(self, link: Link, *, policy: Policy | str | None = None,
                 rx_spin: float = DEFAULT_RX_SPIN, tap: Tap | None = None,
                 name: str | None = None) -> None:
        self.link = link
        self.name = name or f"{type(link).__name__}({link.role})"
        #: Observer of this Device's traffic (capture, tracing); None costs one test.
        self.tap = tap
        self.rx_spin = rx_spin if link.can_poll else 0.0
        #: Whether the link's alloc_tx waits for a buffer (else its commit waits, see
        #: Link.alloc_tx): an endpoint then waits in steps it can end on close.
        self.alloc_waits = type(link).alloc_tx is not Link.alloc_tx
        self.policy = get_policy(policy) if policy is not None else link.default_policy
        self.core = RpmsgCore(self.policy, ns_enabled=link.ns_enabled)
        self.lock = threading.Lock()
        self._state = threading.Condition(self.lock)
        self._closed = False
        self._closing = False
        #: False once the Device is closing or broken (what endpoints test before a send).
        self.usable = True
        #: True in a fork() child of the process that opened it (see _inherited).
        self.inherited = False
        self._pid = os.getpid()
        _OPEN.add(self)
        self._broken: Exception | None = None
        self._service_handlers: list[tuple[str | None, ServiceCallback]] = []
        self._counters = {"dropped_queue_full": 0, "dropped_closed": 0, "ns_sent": 0,
                         "ns_send_failures": 0, "ns_dropped_link_down": 0,
                         "ns_dropped_at_close": 0, "link_ups": 0, "link_downs": 0}
        self._last_full_drop: dict[int, float] = {}  # endpoint address -> monotonic time
        self._worker = DeviceWorker(self.name, link.send, self._own_sent, self._own_dropped)
        if tap is not None:
            tap.event("open", self.name)
        link.start(self)

    # Properties -------------------------------------------------------------------------

    @property
    def mtu(self) -> int:
        """Largest payload one message can carry on this link."""
        return self.link.mtu

    @property
    def is_up(self) -> bool:
        """Whether the link to the remote is currently up (never once the device is closed)."""
        return self.core.link_up and not self._closed

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def ns_send_failures(self) -> int:
        """Name-service messages the link refused for good (not counting link-down drops)."""
        return self._counters["ns_send_failures"]

    @property
    def services(self) -> list[tuple[str, int]]:
        """Services the remote announced that no local endpoint has taken: (name, addr)."""
        with self.lock:
            return list(self.core.services)

    @property
    def endpoints(self) -> list[Endpoint]:
        with self.lock:
            return [r.owner for r in self.core.endpoints.values() if isinstance(r.owner, Endpoint)]

    def stats(self) -> dict[str, int]:
        """Counters of the core (drops by reason), of this runtime (queue-full and closing
        drops, name-service sends, link ups/downs) and of the transport (``link_*``)."""
        with self.lock:
            out = dict(vars(self.core.stats))
            out.update(self._counters)
        out["ns_queued"] = self._worker.queued
        for key, value in self.link.stats().items():
            out[f"link_{key}"] = value
        return out

    def seen(self) -> str:
        """What the link saw, in one phrase (for timeout messages)."""
        if self._broken is not None:
            state = f"the transport broke: {self._broken}"
        else:
            state = "link up" if self.core.link_up else "link down"
        return f"{state}; {self.link.seen()}"

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("up" if self.is_up else "down")
        return f"<rpmsg.Device {self.name} {self.policy.name} {state}>"

    # Endpoints --------------------------------------------------------------------------

    def create_endpoint(
        self,
        name: str = "",
        src: int = ADDR_ANY,
        dst: int = ADDR_ANY,
        *,
        announce: bool | None = None,
        callback: MessageCallback | None = None,
        on_bound: StateCallback | None = None,
        on_unbound: StateCallback | None = None,
        zero_copy: bool = False,
        queue: int = DEFAULT_QUEUE,
        hold: float | None = DEFAULT_HOLD,
    ) -> Endpoint:
        """Create a local endpoint.

        ``src`` ANY allocates an address; ``dst`` ANY waits for a binding (name service, or
        the first message received). A named endpoint is announced according to the policy,
        or as ``announce`` says. With ``callback`` messages go to ``callback(ept, data, src)``
        on the transport's thread instead of the receive queue. With ``zero_copy`` received
        messages stay in the transport's buffer until released (see :meth:`Endpoint.recv_buffer`).
        ``queue`` (default 256) bounds the receive queue: beyond it messages stay in the
        transport's buffers (back-pressure) for at most ``hold`` seconds (default 1; None:
        for ever), then they are dropped and counted so other endpoints keep receiving.
        """
        name = checks.name(name)
        src = checks.address(src, "src")
        dst = checks.address(dst, "dst")
        if announce is not None and not isinstance(announce, bool):
            raise ArgumentTypeError(f"announce must be a bool or None, not "
                                    f"{type(announce).__name__}")
        for what, fn in (("callback", callback), ("on_bound", on_bound),
                         ("on_unbound", on_unbound)):
            check_callable(fn, what)
        if not isinstance(zero_copy, bool):
            raise ArgumentTypeError(f"zero_copy must be a bool, not {type(zero_copy).__name__}")
        size = checks.count(queue, "queue")
        held = checks.timeout(hold, "hold")
        self._check_open()
        name = name or self.link.default_name
        src, dst = self.link.open_endpoint(name, src, dst)
        direct = callback is None and self.link.direct_receive
        try:
            with self.lock:
                rec = self.core.create(name, src, dst, announce)
                ept = Endpoint(self, rec, callback=callback, on_bound=on_bound,
                               on_unbound=on_unbound, zero_copy=bool(zero_copy),
                               queue=size, hold=held, direct=direct)
                rec.owner = ept
                events = self.core.take_events()
        except BaseException:
            self.link.close_endpoint(src)
            raise
        if direct:
            self.link.start_endpoint(rec.addr, direct=True)
        else:
            self.link.start_endpoint(rec.addr)
        log.debug("%s: endpoint %r created at %#x", self.name, name, rec.addr)
        self._run(events)
        return ept

    def on_service(self, name: str | None, handler: ServiceCallback) -> Callable[[], None]:
        """Call ``handler(device, name, addr)`` when the remote announces a service.

        ``name`` None matches every service. Services already announced are offered at once.
        The handler typically calls :meth:`create_endpoint` with the same name, which binds
        the new endpoint to the announced address (the OpenAMP ``ns_bind_cb`` pattern).
        Returns a function that removes the handler again (idempotent), for handlers that
        live shorter than the Device.
        """
        if name is not None:
            checks.name(name)
        if not callable(handler):
            raise ArgumentTypeError(f"handler must be callable, not {type(handler).__name__}")
        entry = (name, handler)
        with self.lock:
            self._service_handlers.append(entry)
            pending = [s for s in self.core.services if name is None or s[0] == name]
        for sname, addr in pending:
            call_user(handler, self, sname, addr)

        def remove() -> None:
            with self.lock:
                for i, known in enumerate(self._service_handlers):
                    if known is entry:
                        del self._service_handlers[i]
                        return

        return remove

    def wait_service(self, name: str, timeout: float | None = None) -> int:
        """Wait until the remote announced ``name``; return its address."""
        checks.name(name)
        deadline = Deadline(timeout)
        with self.lock:
            while True:
                for sname, addr in self.core.services:
                    if sname == name:
                        return addr
                self._check_open()
                if not self._state.wait(deadline.remaining()) and deadline.expired():
                    known = ", ".join(repr(n) for n, _ in self.core.services)
                    announced = f"announced: {known}" if known else "nothing announced"
                    raise deadline.timeout_error(f"waiting for service {name!r}",
                                                 f"{announced}; {self.seen()}")

    def wait_up(self, timeout: float | None = None) -> None:
        """Wait until the link to the remote is up."""
        deadline = Deadline(timeout)
        with self.lock:
            self._check_open()
            while not self.core.link_up:
                if not self._state.wait(deadline.remaining()) and deadline.expired():
                    raise deadline.timeout_error("waiting for the link", self.seen())
                self._check_open()

    # EndpointHost: what endpoints call --------------------------------------------------

    def check_not_broken(self) -> None:
        """Raise TransportBrokenError if the transport failed for good."""
        if self._broken is not None:
            raise TransportBrokenError(str(self._broken)) from self._broken

    def transmit(self, src: int, dst: int, payload: Buffer, timeout: float | None) -> None:
        self.link.send(src, dst, payload, timeout)
        tap = self.tap
        if tap is not None:
            tap.message("tx", src, dst, payload)

    def transmit_many(self, messages: Iterable[tuple[int, int, Buffer]],
                      timeout: float | None) -> int:
        tap = self.tap
        if tap is None:
            return self.link.send_many(messages, timeout)
        taken: list[tuple[int, int, Buffer]] = []
        shown = 0

        def noted() -> Iterator[tuple[int, int, Buffer]]:
            # Shown in bursts of TAP_BURST once the link asks for more (they went out),
            # so a long send_many is captured as it goes, not after its replies.
            nonlocal taken, shown
            for msg in messages:
                if len(taken) >= TAP_BURST:
                    show_messages(tap, "tx", taken)
                    shown += len(taken)
                    taken = []
                taken.append(msg)
                yield msg

        try:
            count = self.link.send_many(noted(), timeout)
        except BaseException:
            # Those the link asked for before the one it failed on went out.
            if len(taken) > 1:
                show_messages(tap, "tx", taken[:-1])
            raise
        if count > shown:
            show_messages(tap, "tx", taken[:count - shown])
        return count

    def alloc_tx(self, timeout: float | None) -> TxBuffer:
        return self.link.alloc_tx(timeout)

    def commit_tx(self, buf: TxBuffer, src: int, dst: int, length: int) -> None:
        tap = self.tap
        if tap is not None:  # shown before: once committed the buffer is the peer's
            tap.message("tx", src, dst, buf.payload[:length])
        buf.commit(src, dst, length)

    def poll(self) -> int:
        return self.link.poll()

    def read_direct(self, addr: int, timeout: float | None) -> tuple[int, bytes] | None:
        got = self.link.read_direct(addr, timeout)
        if got is not None:
            # Counted without the lock: this is the hot path of links whose receivers read
            # for themselves, and CPython 3.11 reads the clock (a system call without a
            # vDSO, e.g. on User-Mode Linux) on every Lock.acquire; two receivers counting
            # at the same instant may lose one count.
            stats = self.core.stats
            stats.rx_messages += 1
            stats.rx_bytes += len(got[1])
            tap = self.tap
            if tap is not None:
                tap.message("rx", got[0], addr, got[1])
        return got

    def rx_fileno(self, addr: int) -> int:
        return self.link.rx_fileno(addr)

    def remove_endpoint(self, rec: EndpointRecord) -> None:
        with self.lock:
            self.core.destroy(rec)
            events = self.core.take_events()
            self._last_full_drop.pop(rec.addr, None)
        if self._broken is None:
            self._run(events)
        try:
            self.link.close_endpoint(rec.addr)
        except Exception:
            log.exception("transport failed to release endpoint %#x", rec.addr)
        log.debug("%s: endpoint %r at %#x closed", self.name, rec.name, rec.addr)

    call_user = staticmethod(call_user)

    # Lifecycle --------------------------------------------------------------------------

    def close(self, timeout: float | None = CLOSE_TIMEOUT) -> None:
        """Close every endpoint (sending NS DESTROY where due), then the link. Idempotent.

        ``timeout`` is one budget for everything (None: no limit): the name-service messages
        still queued get up to half of it, the link's own ``close(timeout)`` what is left.
        Messages that could not be sent in time are counted (``ns_dropped_at_close``).
        """
        if self.inherited:  # the link is the parent's: nothing of it is touched here
            self._closing = self._closed = True
            for ept in self.endpoints:
                ept.close()
            return
        budget = Deadline(timeout)
        with self.lock:
            if self._closing:
                return
            self._closing = True
            self.usable = False
        for ept in self.endpoints:
            ept.close()
        share = budget.remaining()
        self._worker.flush(None if share is None else share * CLOSE_FLUSH_SHARE)
        with self.lock:
            self._closed = True
            self._state.notify_all()
            recs = list(self.core.endpoints.values())
        self._notify_endpoints(recs)
        left = self._worker.stop(budget.remaining())
        for msg in left:
            self._own_dropped(msg, "the device closed before a buffer came", "closed")
        if left:
            log.warning("%s: %d name-service message(s) not sent before close (no transmit "
                        "buffer within the close budget)", self.name, len(left))
        try:
            close_link(self.link, budget.remaining())
        finally:
            tap = self.tap
            if tap is not None:
                tap.event("close")
                tap.close()
        log.debug("%s: closed", self.name)

    def _inherited(self) -> None:
        """In the child of a ``fork()``: the link, its threads and buffers belong to the
        parent. A send or receive here would take the parent's messages or corrupt its
        rings (a send from the child broke the parent's shm link for good), a close would
        reset its session: the copy is broken with an error that says why, nothing of it
        reaches the peer, and close() only marks it closed."""
        self.lock = threading.Lock()
        self._state = threading.Condition(self.lock)
        self.inherited = True
        self.usable = False
        self.rx_spin = 0.0
        self._broken = TransportBrokenError(
            f"{self.name} was opened in process {self._pid}; this child of fork() cannot use "
            "it (open the device again in the child)")
        try:
            self.link.forked()
        except Exception:  # nothing may escape an at-fork handler
            log.exception("%s: the link failed to let go after fork()", self.name)
        for rec in list(self.core.endpoints.values()):
            if isinstance(rec.owner, Endpoint):
                rec.owner.forked()

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        self.check_not_broken()
        if self._closed or self._closing:
            raise EndpointClosedError("the device is closed")

    @property
    def broken_error(self) -> Exception | None:
        """The error that broke the transport, or None."""
        return self._broken

    # LinkSink: what the link calls ------------------------------------------------------

    def link_up(self, detail: str = "") -> None:
        log.info("%s: link up%s", self.name, f" ({detail})" if detail else "")
        tap = self.tap
        if tap is not None:
            tap.event("link-up", detail)
        with self.lock:
            self._counters["link_ups"] += 1
            self.core.set_link_up()
            events = self.core.take_events()
            self._state.notify_all()
        self._run(events)

    def link_down(self, reason: str, *, restart: bool = False) -> None:
        log.info("%s: link down: %s", self.name, reason)
        tap = self.tap
        if tap is not None:
            if restart:
                tap.event("restart", reason)
            tap.event("link-down", reason)
        with self.lock:
            self._counters["link_downs"] += 1
            self.core.set_link_down(reason)
            events = self.core.take_events()
            self._state.notify_all()
        self._worker.discard(f"link down: {reason}")
        self._run(events)

    def deliver(self, src: int, dst: int, payload: Buffer, release: Release | None = None) -> None:
        tap = self.tap
        if tap is not None:
            tap.message("rx", src, dst, payload)
        core = self.core
        with self.lock:
            rec = core.receive(src, dst, payload)
            if core.events or core.notes:
                events = core.take_events()
                self._note(core.take_notes())
            else:
                events = None
        if events:
            self._run(events)
        if rec is None:
            if release is not None:
                release()
            return
        # _hand, inlined: the single-message hot path (a call costs ~60 ns here).
        taken = rec.owner.receive(src, payload, release)
        if taken is _COPIED:
            if release is not None:
                release()
        elif taken is not _KEPT:
            self._taken(rec, taken, release)

    def deliver_many(self, batch: Sequence[Delivery]) -> None:
        """Several received messages in order (:class:`~rpmsg.transport.BatchSink`).

        The core dispatches them under one hold of the lock; each endpoint's share goes to
        its queue in one operation (one lock round, one wake-up; one clock read for the
        batch). A message with consequences (name service, binding, drop, a callback
        endpoint) ends a segment: the shares before it are handed on, its notes and
        events run, then it is handed on, and dispatch resumes; so everything happens in
        the order of one :meth:`deliver` per message (a message for an endpoint that an
        NS CREATE earlier in the batch made, through a service handler, reaches it). The
        tap sees the whole batch first, as it arrived (one call, one timestamp), then what
        its messages caused (drops, replies).
        """
        n = len(batch)
        if n == 1:  # the single-message path costs less than a batch's setup
            src, dst, payload, release = batch[0]
            self.deliver(src, dst, payload, release)
            return
        seen = [0]  # messages the core has dispatched (kept exact by _dispatch)
        try:
            tap = self.tap
            if tap is not None:  # the whole batch at once, as it arrived
                show_messages(tap, "rx", batch)
            stamp: float | None = None
            # A segment costs two calls more than when this was one function: nothing on a
            # burst to one or several queue endpoints or to callbacks, ~80 ns a segment
            # (~8%) on a burst alternating a queue and a callback endpoint (measured).
            while seen[0] < n:
                first, share, rest = self._dispatch(batch, seen)
                if rest is not None:
                    stamp = self._hand_on(first, share, rest, stamp)
                elif first is not None:  # the common case, inline: one endpoint's share
                    if stamp is None:
                        stamp = _time()
                    self._put_share(first, share, stamp)
        except BaseException:
            # Only after a bug: give back what the core never saw, then let it propagate.
            log.exception("%s: delivering a batch failed; %d message(s) released unread",
                          self.name, n - seen[0])
            for _src, _dst, _payload, unread in batch[seen[0]:]:
                if unread is not None:
                    unread()
            raise

    def _dispatch(self, batch: Sequence[Delivery], seen: list[int]) -> _Segment:
        """The core's dispatch of ``batch`` from ``seen[0]`` on, under one hold of the lock,
        up to a message with consequences or the end.

        Returns the first endpoint and its share, and the rest, None in the common case
        (nothing else): the other endpoints' shares, the buffers nobody took and the
        message that ended the segment with its record, events and notes (each None if
        there is none). A message for a callback endpoint with nothing dispatched before
        it is handed on at once, the lock let go meanwhile. This is the per-message loop
        of every burst: the common case (the same endpoint again) is one test. ``seen[0]``
        follows the core, even when something raises (a bug).
        """
        core = self.core
        receive = core.receive
        lock = self.lock
        n = len(batch)
        i = seen[0]
        first: EndpointRecord | None = None
        share: list[Delivery] = []
        others: dict[EndpointRecord, list[Delivery]] | None = None
        free: list[Release] | None = None
        lock.acquire()
        held = True
        try:
            while i < n:
                item = batch[i]
                i += 1
                rec = receive(item[0], item[1], item[2])
                if core.events or core.notes:
                    return first, share, (others, free, (item, rec, core.take_events(),
                                                         core.take_notes()))
                if rec is first:
                    if rec is not None:
                        share.append(item)
                        continue
                elif rec is not None:
                    if rec.owner.receive_many is not None:
                        if first is None:
                            first, share = rec, [item]
                        else:
                            others = others if others is not None else {}
                            others.setdefault(rec, []).append(item)
                        continue
                    if first is not None or free is not None:  # a callback, in order
                        return first, share, (others, free, (item, rec, (), ()))
                    lock.release()  # nothing before it pending: hand it on now
                    held = False
                    self._hand(rec, item[0], item[2], item[3])
                    lock.acquire()
                    held = True
                    continue
                if item[3] is not None:  # consumed without a note (capped): given back
                    free = free if free is not None else []
                    free.append(item[3])
            if others is None and free is None:
                return first, share, None
            return first, share, (others, free, None)
        finally:
            seen[0] = i
            if held:
                lock.release()

    def _hand_on(self, first: EndpointRecord | None, share: list[Delivery], rest: _Rest,
                 stamp: float | None) -> float | None:
        """What :meth:`_dispatch` dispatched besides the common case, outside the lock: the
        buffers nobody took given back, each endpoint's share queued, then the message
        that ended the segment. Returns the batch's timestamp (read once, when needed)."""
        others, free, stop = rest
        if free is not None:
            for release in free:
                release()
        if first is not None:
            if stamp is None:
                stamp = _time()
            self._put_share(first, share, stamp)
            if others is not None:
                for rec, items in others.items():
                    self._put_share(rec, items, stamp)
        if stop is not None:
            self._after_segment(*stop)
        return stamp

    def _after_segment(self, item: Delivery, rec: EndpointRecord | None,
                       events: Sequence[Event], notes: Sequence[Note]) -> None:
        """The message that ended a segment, as :meth:`deliver` does it: its notes and
        events, then the message to its endpoint (or its buffer back)."""
        if notes:
            self._note(notes)
        if events:
            self._run(events)
        if rec is not None:
            self._hand(rec, item[0], item[2], item[3])
        elif item[3] is not None:
            item[3]()

    def _put_share(self, rec: EndpointRecord, items: list[Delivery], stamp: float) -> None:
        """One endpoint's messages of a batch into its queue, in one operation."""
        peer: EndpointPeer = rec.owner
        many = peer.receive_many
        if many is None:  # a callback was set meanwhile: one by one
            for src, _dst, payload, release in items:
                self._hand(rec, src, payload, release)
            return
        full, closed, started = many(items, stamp)
        if started:
            self._worker.call_at(time.monotonic(), self._expiry(rec))
        if full:
            self._count_drop(rec, full, True)
        if closed:
            self._count_drop(rec, closed, False)

    def _hand(self, rec: EndpointRecord, src: int, payload: Buffer,
              release: Release | None) -> None:
        """One message to the endpoint the core dispatched it to; its buffer released,
        kept, held (the hold timer started) or dropped (counted) as the endpoint says."""
        peer: EndpointPeer = rec.owner
        taken = peer.receive(src, payload, release)
        if taken is _COPIED:
            if release is not None:
                release()
        elif taken is not _KEPT:
            self._taken(rec, taken, release)

    def _taken(self, rec: EndpointRecord, taken: Taken, release: Release | None) -> None:
        """A message the endpoint held (start the hold timer) or dropped (release, count)."""
        if taken is _HOLD_STARTED:
            self._worker.call_at(time.monotonic(), self._expiry(rec))
        else:
            if release is not None:
                release()
            self._count_drop(rec, 1, taken is _DROPPED_FULL)

    def broken(self, error: Exception) -> None:
        log.error("%s: transport broken: %s", self.name, error)
        tap = self.tap
        if tap is not None:
            tap.event("broken", str(error))
        with self.lock:
            if self._broken is None:
                self._broken = error
            self.usable = False
            recs = list(self.core.endpoints.values())
            self._state.notify_all()
        self._worker.discard(f"transport broken: {error}")
        self._notify_endpoints(recs)

    def _notify_endpoints(self, recs: list[EndpointRecord]) -> None:
        for rec in recs:
            if rec.owner is not None:
                cast(EndpointPeer, rec.owner).device_changed()

    # Drops ------------------------------------------------------------------------------

    def _expiry(self, rec: EndpointRecord) -> Callable[[float], float | None]:
        """The timer that ends a full endpoint's hold (runs on the worker)."""
        def expire(now: float) -> float | None:
            peer = rec.owner
            if peer is None:
                return None
            dropped, again = cast(EndpointPeer, peer).expire_held(now)
            if dropped:
                self._count_drop(rec, dropped, True)
            return again

        return expire

    def _count_drop(self, rec: EndpointRecord, count: int, full: bool) -> None:
        key = "dropped_queue_full" if full else "dropped_closed"
        with self.lock:
            self._counters[key] += count
            first = False
            if full:
                now = time.monotonic()
                last = self._last_full_drop.get(rec.addr)
                first = last is None or now - last > FULL_EPISODE_GAP
                self._last_full_drop[rec.addr] = now
        reason = (f"receive queue of {rec.name!r} at {rec.addr:#x} full" if full
                  else f"endpoint {rec.name!r} at {rec.addr:#x} closing")
        if first:
            log.warning("%s: %s: dropping messages until it is read (held beyond its "
                        "hold time); counted in stats()['dropped_queue_full']",
                        self.name, reason)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s: dropped %d message(s): %s", self.name, count, reason)
        tap = self.tap
        if tap is not None:
            for _ in range(count):
                tap.event("drop", reason)

    def _note(self, notes: Sequence[Note]) -> None:
        tap = self.tap
        for note in notes:
            if isinstance(note, Dropped):
                log.debug("%s: dropped a message from %#x to %#x: %s", self.name, note.src,
                          note.dst, note.reason)
                if tap is not None:
                    tap.event("drop", note.reason)
            elif isinstance(note, NsReceived):
                msg = note.message
                log.info("%s: received NS %s %r at %#x", self.name,
                         _NS_NAMES.get(msg.flags, str(int(msg.flags))), msg.name, msg.addr)

    # Own messages (name service) --------------------------------------------------------

    def _own_sent(self, msg: OwnMessage) -> None:
        with self.lock:
            self._counters["ns_sent"] += 1
        tap = self.tap
        if tap is not None:
            tap.message("tx", msg.src, msg.dst, msg.payload)
        log.info("%s: sent %s", self.name, msg.label or f"a message {msg.src:#x}->{msg.dst:#x}")

    def _own_dropped(self, msg: OwnMessage, reason: str, kind: DropKind) -> None:
        key = _OWN_DROP_COUNTERS[kind]
        with self.lock:
            self._counters[key] += 1
        if kind != "closed":  # close logs one line for all of them
            level = logging.DEBUG if kind == "stale" else logging.WARNING
            log.log(level, "%s: %s not sent: %s", self.name, msg.label or "a message", reason)
        tap = self.tap
        if tap is not None:
            tap.event("drop", f"{msg.label or 'message'} not sent: {reason}")

    # Events -----------------------------------------------------------------------------

    def _run(self, events: Sequence[Event]) -> None:
        """Carry out core events outside the lock, in order: NS messages to send go to the
        worker (consecutive ones together), the others to their handler."""
        own: list[OwnMessage] = []
        for ev in events:
            if isinstance(ev, Send):
                own.append(_own_message(ev))
                continue
            if own:
                self._worker.send(own)
                own = []
            _EVENT_HANDLERS[type(ev)](self, ev)
        if own:
            self._worker.send(own)

    def _on_bound(self, ev: Bound) -> None:
        rec = ev.endpoint
        log.info("%s: endpoint %r at %#x bound to %#x", self.name, rec.name, rec.addr, ev.dst)
        if rec.owner is not None:
            cast(EndpointPeer, rec.owner).binding_changed(True, "")

    def _on_unbound(self, ev: Unbound) -> None:
        rec = ev.endpoint
        log.info("%s: endpoint %r at %#x unbound: %s", self.name, rec.name, rec.addr,
                 ev.reason)
        if rec.owner is not None:
            cast(EndpointPeer, rec.owner).binding_changed(False, ev.reason)

    def _on_announced(self, ev: ServiceAnnounced) -> None:
        with self.lock:
            handlers = [h for n, h in self._service_handlers if n is None or n == ev.name]
            self._state.notify_all()
        for handler in handlers:
            call_user(handler, self, ev.name, ev.addr)

    def _on_withdrawn(self, ev: ServiceWithdrawn) -> None:
        with self.lock:
            self._state.notify_all()  # wait_service and friends look again

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(self.endpoints)


#: Devices open in this process, for the at-fork handler.
_OPEN: weakref.WeakSet[Device] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for dev in list(_OPEN):
        if not dev._closed:
            try:  # one Device that fails to let go must not leave the others usable
                dev._inherited()
            except Exception:  # nothing may escape an at-fork handler
                dev.inherited, dev.usable = True, False
                log.exception("%s: could not be marked inherited after fork()", dev.name)


os.register_at_fork(after_in_child=_after_fork_in_child)


def _own_message(ev: Send) -> OwnMessage:
    """A message the core wants sent, labelled for logs and drops (``NS CREATE 'x' at
    0x400``)."""
    ns = ev.ns
    label = (f"NS {_NS_NAMES.get(ns.flags, str(int(ns.flags)))} {ns.name!r} at {ns.addr:#x}"
             if ns is not None else "")
    return OwnMessage(ev.src, ev.dst, ev.payload, label)


#: The handler of each core event but Send (:meth:`Device._run`).
_EVENT_HANDLERS: dict[type, Callable[[Device, Any], None]] = {
    Bound: Device._on_bound, Unbound: Device._on_unbound,
    ServiceAnnounced: Device._on_announced, ServiceWithdrawn: Device._on_withdrawn,
}
