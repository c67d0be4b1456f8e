"""The runtime around the sans-IO core: one Device per link to one remote processor.

A :class:`Device` owns a :class:`~rpmsg.transport.Link` and a :class:`~rpmsg.core.RpmsgCore`;
it turns link callbacks into core calls, executes the core's events (sending NS messages,
waking endpoints) and hands out :class:`~rpmsg.endpoint.Endpoint` objects. All core state is
guarded by one lock that is never held while calling into the link.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from rpmsg.core.core import (
    Bound,
    EndpointRecord,
    Event,
    RpmsgCore,
    Send,
    ServiceAnnounced,
    ServiceWithdrawn,
    Unbound,
)
from rpmsg.core.policy import Policy, get_policy
from rpmsg.endpoint import Endpoint, MessageCallback, StateCallback
from rpmsg.errors import EndpointClosedError, RpmsgError, TransportBrokenError
from rpmsg.tap import Tap
from rpmsg.transport import Deadline, Link, Release, close_link
from rpmsg.wire.layout import Buffer
from rpmsg.wire.rpmsg import ADDR_ANY

log = logging.getLogger("rpmsg")

ServiceCallback = Callable[["Device", str, int], None]

#: How long a name-service message may wait for a transmit buffer before it is counted lost.
NS_SEND_TIMEOUT = 15.0
#: How long closing (one endpoint, or a whole device) may wait for its NS DESTROY messages
#: to get a buffer: a stuck peer must not make close() hang (counted as ns_send_failures).
CLOSE_NS_TIMEOUT = 1.0


class Device:
    """An RPMsg device: the endpoints of this side on one link to one remote.

    Use :func:`rpmsg.open` to make one from a transport string. It is a context manager;
    :meth:`close` is idempotent and closes every endpoint and the link.
    """

    #: Seconds a receiver polls the transport itself (where the transport allows it) before
    #: sleeping; saves a thread wake-up per message on fast links. 0 turns it off.
    DEFAULT_RX_SPIN = 50e-6

    def __init__(self, link: Link, *, policy: Policy | str | None = None,
                 rx_spin: float = DEFAULT_RX_SPIN, tap: Tap | None = None) -> None:
        self.link = link
        #: Observer of this Device's traffic (capture, tracing); None costs one test.
        self.tap = tap
        self.rx_spin = rx_spin if link.can_poll else 0.0
        self.policy = get_policy(policy) if policy is not None else link.default_policy
        self.core = RpmsgCore(self.policy, ns_enabled=link.ns_enabled)
        self.lock = threading.Lock()
        self._state = threading.Condition(self.lock)
        self._closed = False
        self._close_deadline: Deadline | None = None
        self._broken: Exception | None = None
        self._service_handlers: list[tuple[str | None, ServiceCallback]] = []
        self.ns_send_failures = 0
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
    def services(self) -> list[tuple[str, int]]:
        """Services the remote announced that no local endpoint has taken: (name, addr)."""
        with self.lock:
            return list(self.core.services)

    @property
    def endpoints(self) -> list[Endpoint]:
        with self.lock:
            return [r.owner for r in self.core.endpoints.values() if isinstance(r.owner, Endpoint)]

    def stats(self) -> dict[str, int]:
        """Counters of the core (drops by reason) and of the transport."""
        with self.lock:
            out = dict(vars(self.core.stats))
        out["ns_send_failures"] = self.ns_send_failures
        for key, value in self.link.stats().items():
            out[f"link_{key}"] = value
        return out

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("up" if self.is_up else "down")
        return f"<rpmsg.Device {type(self.link).__name__} {self.policy.name} {state}>"

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
    ) -> Endpoint:
        """Create a local endpoint.

        ``src`` ANY allocates an address; ``dst`` ANY waits for a binding (name service, or
        the first message received). A named endpoint is announced according to the policy,
        or as ``announce`` says. With ``callback`` messages go to ``callback(ept, data, src)``
        on the transport's thread instead of the receive queue. With ``zero_copy`` received
        messages stay in the transport's buffer until released (see :meth:`Endpoint.recv_buffer`).
        """
        self._check_open()
        src, dst = self.link.open_endpoint(name, src, dst)
        try:
            with self.lock:
                rec = self.core.create(name, src, dst, announce)
                ept = Endpoint(self, rec, callback=callback, on_bound=on_bound,
                               on_unbound=on_unbound, zero_copy=zero_copy)
                rec.owner = ept
                events = self.core.take_events()
        except BaseException:
            self.link.close_endpoint(src)
            raise
        self.link.start_endpoint(rec.addr)
        self._run(events)
        return ept

    def _destroy_endpoint(self, rec: EndpointRecord) -> None:
        with self.lock:
            self.core.destroy(rec)
            events = self.core.take_events()
        if not self._closed and self._broken is None:
            deadline = self._close_deadline or Deadline(CLOSE_NS_TIMEOUT)
            self._run(events, deadline)
        try:
            self.link.close_endpoint(rec.addr)
        except Exception:
            log.exception("transport failed to release endpoint %#x", rec.addr)

    def on_service(self, name: str | None, handler: ServiceCallback) -> None:
        """Call ``handler(device, name, addr)`` when the remote announces a service.

        ``name`` None matches every service. Services already announced are offered at once.
        The handler typically calls :meth:`create_endpoint` with the same name, which binds
        the new endpoint to the announced address (the OpenAMP ``ns_bind_cb`` pattern).
        """
        with self.lock:
            self._service_handlers.append((name, handler))
            pending = [s for s in self.core.services if name is None or s[0] == name]
        for sname, addr in pending:
            self._call_service_handler(handler, sname, addr)

    def wait_service(self, name: str, timeout: float | None = None) -> int:
        """Wait until the remote announced ``name``; return its address."""
        deadline = Deadline(timeout)
        with self.lock:
            while True:
                for sname, addr in self.core.services:
                    if sname == name:
                        return addr
                self._check_open()
                if not self._state.wait(deadline.remaining()) and deadline.expired():
                    raise deadline.timeout_error(f"waiting for service {name!r}")

    def wait_up(self, timeout: float | None = None) -> None:
        """Wait until the link to the remote is up."""
        deadline = Deadline(timeout)
        with self.lock:
            self._check_open()
            while not self.core.link_up:
                if not self._state.wait(deadline.remaining()) and deadline.expired():
                    raise deadline.timeout_error("waiting for the link")
                self._check_open()

    # Lifecycle --------------------------------------------------------------------------

    def close(self, timeout: float | None = CLOSE_NS_TIMEOUT) -> None:
        """Close every endpoint (sending NS DESTROY where due), then the link. Idempotent.

        ``timeout`` is one budget for all of it; what is left of it goes to the link's own
        ``close(timeout)``.
        """
        if self._closed:
            return
        budget = Deadline(timeout)
        self._close_deadline = budget  # one budget for all endpoints
        for ept in self.endpoints:
            ept.close()
        with self.lock:
            self._closed = True
            self._state.notify_all()
        close_link(self.link, budget.remaining())
        if self.tap is not None:
            self.tap.event("close")
            self.tap.close()

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_not_broken(self) -> None:
        """Raise TransportBrokenError if the transport failed for good."""
        if self._broken is not None:
            raise TransportBrokenError(str(self._broken)) from self._broken

    def _check_open(self) -> None:
        self.check_not_broken()
        if self._closed:
            raise EndpointClosedError("the device is closed")

    @property
    def broken_error(self) -> Exception | None:
        """The error that broke the transport, or None."""
        return self._broken

    # LinkSink ---------------------------------------------------------------------------

    def link_up(self) -> None:
        if self.tap is not None:
            self.tap.event("link-up")
        with self.lock:
            self.core.set_link_up()
            events = self.core.take_events()
            self._state.notify_all()
        self._run(events)

    def link_down(self, reason: str) -> None:
        if self.tap is not None:
            self.tap.event("link-down", reason)
        with self.lock:
            self.core.set_link_down(reason)
            events = self.core.take_events()
            self._state.notify_all()
        self._run(events)

    def deliver(self, src: int, dst: int, payload: Buffer, release: Release | None = None) -> None:
        if self.tap is not None:
            self.tap.message("rx", src, dst, payload)
        with self.lock:
            rec = self.core.receive(src, dst, payload)
            events = self.core.take_events() if self.core.events else None
            ept = rec.owner if rec is not None else None
            if (isinstance(ept, Endpoint) and ept.callback is None
                    and ept._enqueue_locked(src, payload, release)):
                release = None
        if events:
            self._run(events)
        if isinstance(ept, Endpoint) and ept.callback is not None:
            self._safe_call(ept.callback, ept, bytes(payload), src)
        if release is not None:
            release()

    def broken(self, error: Exception) -> None:
        log.error("transport broken: %s", error)
        if self.tap is not None:
            self.tap.event("broken", str(error))
        with self.lock:
            if self._broken is None:
                self._broken = error
            recs = list(self.core.endpoints.values())
            self._state.notify_all()
            for rec in recs:
                if isinstance(rec.owner, Endpoint):
                    rec.owner._wake_locked()

    # Events -----------------------------------------------------------------------------

    def _run(self, events: list[Event], deadline: Deadline | None = None) -> None:
        """Carry out core events outside the lock: send NS messages, wake endpoints."""
        for ev in events:
            if isinstance(ev, Send):
                try:
                    timeout = NS_SEND_TIMEOUT if deadline is None else deadline.remaining()
                    self.link.send(ev.src, ev.dst, ev.payload, timeout)
                    if self.tap is not None:
                        self.tap.message("tx", ev.src, ev.dst, ev.payload)
                except RpmsgError as exc:
                    self.ns_send_failures += 1
                    log.warning("name-service message from %#x not sent: %s", ev.src, exc)
            elif isinstance(ev, Bound | Unbound):
                ept = ev.endpoint.owner
                if isinstance(ept, Endpoint):
                    ept._state_changed(ev)
            elif isinstance(ev, ServiceAnnounced):
                with self.lock:
                    handlers = [h for n, h in self._service_handlers
                                if n is None or n == ev.name]
                    self._state.notify_all()
                for handler in handlers:
                    self._call_service_handler(handler, ev.name, ev.addr)
            elif isinstance(ev, ServiceWithdrawn):
                with self.lock:
                    self._state.notify_all()

    def _call_service_handler(self, handler: ServiceCallback, name: str, addr: int) -> None:
        self._safe_call(handler, self, name, addr)

    @staticmethod
    def _safe_call(fn: Callable[..., Any], *args: Any) -> None:
        """Run a user callback on a transport thread; an exception is logged, not fatal."""
        try:
            fn(*args)
        except Exception:
            log.exception("user callback %r raised; the transport keeps running", fn)

    def __iter__(self) -> Iterator[Endpoint]:
        return iter(self.endpoints)
