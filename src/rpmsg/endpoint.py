"""The endpoint API, the same over every transport.

An :class:`Endpoint` sends to its bound destination and receives into a bounded queue
(:class:`~rpmsg.rxqueue.RxQueue`); ``recv`` and ``send`` take pyserial-style timeouts (None
blocks, 0 polls, x seconds). Iteration yields received payloads until the endpoint is
closed; :meth:`Endpoint.fileno` serves ``select`` loops and :meth:`Endpoint.as_async` gives
the asyncio twin (:mod:`rpmsg.aio`, imported only then). Every argument is checked by
:mod:`rpmsg.checks` before anything is taken. The endpoint talks to its Device only through
:class:`~rpmsg.boundary.EndpointHost`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from rpmsg import checks
from rpmsg.boundary import EndpointHost, ReceiveMany, Taken
from rpmsg.errors import (
    ArgumentTypeError,
    EndpointClosedError,
    MessageTooLargeError,
    NoBufferError,
    NotBoundError,
    RemoteDisconnectedError,
    RpmsgTimeoutError,
    WouldBlockError,
)
from rpmsg.rxqueue import (
    DEFAULT_HOLD,
    DEFAULT_QUEUE,
    Item,
    RxBuffer,
    RxQueue,
    orphaned,
    reap_orphans,
)
from rpmsg.transport import Deadline, Release, TxBuffer
from rpmsg.wire.layout import Buffer
from rpmsg.wire.rpmsg import ADDR_ANY

if TYPE_CHECKING:
    from rpmsg.aio import AsyncEndpoint
    from rpmsg.core.core import EndpointRecord
    from rpmsg.device import Device

_T = TypeVar("_T")
MessageCallback = Callable[["Endpoint", bytes, int], None]
StateCallback = Callable[["Endpoint"], None]

_yield: Callable[[], None] = getattr(os, "sched_yield", lambda: time.sleep(0))
_now = time.time
_COPIED = Taken.COPIED
_DROPPED_CLOSED = Taken.DROPPED_CLOSED


_PLAIN = frozenset((int, float))
_DAY = 86400.0
#: Longest a send waits for a transmit buffer in one go before it looks whether its endpoint
#: (or device) was closed meanwhile by another thread: how late such a close ends the send.
CLOSE_CHECK = 0.25
check_timeout = checks.timeout
check_count = checks.count


@dataclass(frozen=True, slots=True)
class Message:
    """A received message: payload, the sender's address, ``dst`` (the local address) and
    ``timestamp``, the receive time in ``time.time()`` seconds (python-can's habit)."""

    data: bytes
    src: int
    dst: int
    timestamp: float = 0.0


class Endpoint:
    """A local RPMsg endpoint. Create with :meth:`rpmsg.device.Device.create_endpoint`."""

    def __init__(self, host: EndpointHost, rec: EndpointRecord, *,
                 callback: MessageCallback | None = None,
                 on_bound: StateCallback | None = None,
                 on_unbound: StateCallback | None = None, zero_copy: bool = False,
                 queue: int = DEFAULT_QUEUE, hold: float | None = DEFAULT_HOLD,
                 direct: bool = False) -> None:
        self._host = host
        #: Received by reading on the receiving thread (``host.read_direct``); nothing is
        #: ever queued for it (the transport keeps what nobody reads yet).
        self._direct = direct
        self._direct_received = 0
        self._rec = rec
        self._mtu = host.mtu  # fixed for a link's life; checked before every send
        self._on_bound = on_bound
        self._on_unbound = on_unbound
        self.zero_copy = zero_copy
        self._rx = RxQueue(rec.addr, queue, hold, zero_copy=zero_copy)
        self._queue_put = self._rx.put
        self._callback = callback
        #: What the Device calls for each message (see _receive_callback).
        self.receive: Callable[[int, Buffer, Release | None], Taken] = (
            self._queue_put if callback is None else self._receive_callback)
        #: What the Device calls for a batch of this endpoint's messages: the queue's own
        #: ``put_many``; None with a callback (each message is then handed on in order).
        self.receive_many: ReceiveMany | None = self._rx.put_many if callback is None else None
        self._lock = threading.Lock()
        self._bind_cond = threading.Condition(self._lock)
        self._closed = False
        self._disconnected: str | None = None
        self._callback_received = 0
        #: Where asyncio sends wait for buffers (made by rpmsg.aio on first need).
        self.async_sender: Any = None

    # Properties -------------------------------------------------------------------------

    @property
    def callback(self) -> MessageCallback | None:
        """``callback(ept, data, src)`` run on the transport's thread for each message
        instead of queueing it; None queues."""
        return self._callback

    @callback.setter
    def callback(self, fn: MessageCallback | None) -> None:
        check_callable(fn, "callback")
        self._callback = fn
        self.receive = self._queue_put if fn is None else self._receive_callback
        self.receive_many = self._rx.put_many if fn is None else None

    @property
    def on_bound(self) -> StateCallback | None:
        """``on_bound(ept)``, run on the transport's thread when the endpoint gets a
        destination; None for none."""
        return self._on_bound

    @on_bound.setter
    def on_bound(self, fn: StateCallback | None) -> None:
        self._on_bound = check_callable(fn, "on_bound")

    @property
    def on_unbound(self) -> StateCallback | None:
        """``on_unbound(ept)``, run on the transport's thread when the endpoint loses its
        destination (the remote went away); None for none."""
        return self._on_unbound

    @on_unbound.setter
    def on_unbound(self, fn: StateCallback | None) -> None:
        self._on_unbound = check_callable(fn, "on_unbound")

    @property
    def device(self) -> Device:
        """The Device this endpoint belongs to."""
        return cast("Device", self._host)

    @property
    def name(self) -> str:
        return self._rec.name

    @property
    def addr(self) -> int:
        """The local address (the ``src`` of messages sent from here)."""
        return self._rec.addr

    src = addr

    @property
    def dst(self) -> int:
        """The destination address, or ``ADDR_ANY`` while unbound."""
        return self._rec.dst

    @property
    def bound(self) -> bool:
        return self._rec.dst != ADDR_ANY

    @property
    def bound_by_announcement(self) -> bool:
        """Whether the destination is a service the remote announced (NS CREATE), rather
        than one that bound to our announcement or just sent us a message."""
        rec = self._rec
        return rec.dst != ADDR_ANY and rec.dst_is_service

    @property
    def mtu(self) -> int:
        """Largest payload one message can carry."""
        return self._host.mtu

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        """Messages received and not yet read (those held in the transport's buffers too)."""
        return self._rx.pending

    @property
    def queue_size(self) -> int:
        """How many messages the receive queue holds before it applies back-pressure."""
        return self._rx.capacity

    def stats(self) -> dict[str, int]:
        """This endpoint's counters: messages received, pending, held, dropped (by reason)."""
        out = self._rx.stats()
        out["rx_messages"] += self._callback_received + self._direct_received
        return out

    def __repr__(self) -> str:
        dst = "ANY" if self.dst == ADDR_ANY else f"{self.dst:#x}"
        return f"<rpmsg.Endpoint {self.name!r} {self.addr:#x} -> {dst}>"

    # Sending ----------------------------------------------------------------------------

    def send(self, data: Buffer, timeout: float | None = None) -> None:
        """Send ``data`` (any C-contiguous buffer) to the bound destination.

        Raises :class:`MessageTooLargeError` above :attr:`mtu`, :class:`NotBoundError` while
        unbound (or waits for the binding within ``timeout`` if the policy says so),
        :class:`RemoteDisconnectedError` when unbound because the remote went away,
        :class:`NoBufferError` when ``timeout`` is 0 and no buffer is free,
        :class:`RpmsgTimeoutError` when none came within ``timeout``,
        :class:`EndpointClosedError` once closed (by another thread too: a send waiting for
        a buffer sees it within :data:`CLOSE_CHECK`); wrong arguments raise
        :class:`InvalidArgumentError` / :class:`ArgumentTypeError` before anything happens.
        """
        payload = data if type(data) is bytes else checks.payload(data)
        if timeout is not None and not (type(timeout) in _PLAIN and 0 <= timeout < _DAY):
            timeout = checks.timeout(timeout)
        if self._closed or not self._host.usable:
            self._raise_unusable()
        if len(payload) > self._mtu:
            raise MessageTooLargeError(len(payload), self._mtu)
        dst = self._rec.dst
        if dst == ADDR_ANY:
            self._send_once_bound(payload, timeout)
            return
        self._transmit(dst, payload, timeout)

    def _transmit(self, dst: int, payload: Buffer, timeout: float | None) -> None:
        """One link call when a buffer is free; a wait for one runs in steps of
        :data:`CLOSE_CHECK` (see :meth:`_transmit_rest`)."""
        step = timeout if timeout is not None and timeout <= CLOSE_CHECK else CLOSE_CHECK
        try:  # a free buffer returns at once: the step only bounds a wait
            self._host.transmit(self._rec.addr, dst, payload, step)
        except (RpmsgTimeoutError, NoBufferError):
            if step == timeout:
                raise
            self._transmit_rest(dst, payload, timeout, step)

    def _transmit_rest(self, dst: int, payload: Buffer, timeout: float | None,
                       waited: float) -> None:
        """Send after a first wait of ``waited`` s found no buffer: in steps of
        :data:`CLOSE_CHECK`, so that a close from another thread ends the wait
        (:class:`EndpointClosedError`) instead of the message going out after it, or never."""
        self._in_steps(lambda step: self._host.transmit(self._rec.addr, dst, payload, step),
                       timeout, waited, f"sending on {self.name!r}")

    def _in_steps(self, call: Callable[[float], _T], timeout: float | None, waited: float,
                  what: str) -> _T:
        """``call(step)`` until it gets a buffer, the endpoint or device closes, or the time
        left of ``timeout`` (``waited`` s of it already spent) runs out."""
        deadline = Deadline(None if timeout is None else max(0.0, timeout - waited))
        while True:
            if self._closed or not self._host.usable:
                self._raise_unusable()
            left = deadline.remaining()
            try:
                return call(CLOSE_CHECK if left is None else min(left, CLOSE_CHECK))
            except (RpmsgTimeoutError, NoBufferError):
                if deadline.expired():
                    raise Deadline(timeout).timeout_error(what, self._host.seen()) from None

    def _waits_to_send(self, timeout: float | None) -> bool:
        """Whether a send while unbound waits for the binding: as the policy says (Linux's
        does not), never with ``timeout=0``. The rule of the sync and the asyncio API."""
        return timeout != 0 and self._host.policy.wait_bound_on_send

    def _send_once_bound(self, payload: Buffer, timeout: float | None) -> None:
        """:meth:`send` while unbound: wait for the binding within ``timeout`` where the
        policy says so, else NotBoundError (RemoteDisconnectedError if the remote left)."""
        if not self._waits_to_send(timeout):
            raise self._unbound_error()
        deadline = Deadline(timeout)
        dst = self.wait_bound(timeout)
        # The binding may have taken the whole timeout: then it is a timeout, not "no buffer".
        left = deadline.remaining()
        self._in_steps(lambda step: self._host.transmit(self._rec.addr, dst, payload, step),
                       left, 0.0, f"sending on {self.name!r}")

    def send_to(self, dst: int, data: Buffer, timeout: float | None = None) -> None:
        """Send ``data`` to an explicit destination address (OpenAMP ``rpmsg_sendto``)."""
        dst = checks.address(dst, "destination address")
        payload = checks.payload(data)
        timeout = check_timeout(timeout)
        if dst == ADDR_ANY:
            raise NotBoundError("cannot send to ADDR_ANY")
        self._check_sendable(len(payload))
        self._transmit(dst, payload, timeout)

    def send_many(self, messages: Iterable[Buffer], timeout: float | None = None) -> int:
        """Send several messages to the bound destination with as few notifications as the
        transport allows; returns the number sent. Each payload is checked before it is
        sent; a bad one raises after those before it went out, and so does a close of the
        endpoint (:class:`EndpointClosedError`) from another thread."""
        timeout = check_timeout(timeout)
        try:
            source = iter(messages)
        except TypeError:
            raise ArgumentTypeError(f"messages must be an iterable of payloads, not "
                                    f"{type(messages).__name__}") from None
        self._check_sendable(0)
        dst = self._rec.dst
        if dst == ADDR_ANY:
            raise self._unbound_error()
        src = self._rec.addr
        mtu = self._host.mtu
        payload_of = checks.payload

        def checked() -> Iterator[tuple[int, int, Buffer]]:
            for data in source:
                if self._closed or not self._host.usable:  # closed by another thread
                    self._raise_unusable()
                payload = payload_of(data)
                if len(payload) > mtu:
                    raise MessageTooLargeError(len(payload), mtu)
                yield src, dst, payload

        try:
            return self._host.transmit_many(checked(), timeout)
        except NoBufferError as exc:
            # A link that hands each message of the batch the time left sends the last ones
            # with 0: the batch ran out of time (Deadline's one rule).
            raise Deadline(timeout).ran_out(exc, f"send_many on {self.name!r}",
                                            self._host.seen) from None

    def get_tx_buffer(self, timeout: float | None = None) -> TxBuffer:
        """A transmit buffer to write the payload into (zero-copy send); see send_buffer."""
        timeout = check_timeout(timeout)
        self._check_sendable(0)
        step = timeout if timeout is not None and timeout <= CLOSE_CHECK else CLOSE_CHECK
        if not self._host.alloc_waits:  # the commit waits, with this timeout
            return self._host.alloc_tx(timeout)
        try:
            return self._host.alloc_tx(step)
        except (RpmsgTimeoutError, NoBufferError):
            if step == timeout:
                raise
        return self._in_steps(self._host.alloc_tx, timeout, step,
                              f"waiting for a transmit buffer on {self.name!r}")

    def send_buffer(self, buf: TxBuffer, length: int, dst: int | None = None) -> None:
        """Send the first ``length`` bytes of ``buf`` (from :meth:`get_tx_buffer`).

        The buffer is given back to the transport on any error.
        """
        try:
            if not isinstance(buf, TxBuffer):
                raise ArgumentTypeError(f"buf must be a TxBuffer from get_tx_buffer(), "
                                        f"not {type(buf).__name__}")
            length = check_count(length, "length", 0)
            target = self._rec.dst if dst is None else checks.address(dst, "destination")
            if length > buf.capacity:
                raise MessageTooLargeError(length, buf.capacity)
            self._check_sendable(0)
            if target == ADDR_ANY:
                raise self._unbound_error()
            self._host.commit_tx(buf, self._rec.addr, target, length)
        except BaseException:
            if isinstance(buf, TxBuffer):
                buf.release()
            raise

    def _unbound_error(self) -> NotBoundError | RemoteDisconnectedError:
        """The error for sending while unbound: the remote went away, or never bound."""
        if self._disconnected is not None:
            return RemoteDisconnectedError(self._disconnected)
        return NotBoundError(f"endpoint {self.name!r} at {self.addr:#x} is not bound")

    def _check_sendable(self, size: int) -> None:
        if self._closed or not self._host.usable:
            self._raise_unusable()
        if size > self._mtu:
            raise MessageTooLargeError(size, self._mtu)

    def _raise_unusable(self) -> None:
        if self._closed:
            raise EndpointClosedError(f"endpoint {self.name!r} is closed")
        self._host.check_not_broken()
        raise EndpointClosedError("the device is closed")

    # Receiving --------------------------------------------------------------------------

    def recv(self, timeout: float | None = None, *, max_size: int | None = None) -> bytes:
        """The next received payload.

        Raises :class:`WouldBlockError` if ``timeout`` is 0 and nothing is queued,
        :class:`RpmsgTimeoutError` when the timeout expires (saying what the link saw),
        :class:`RemoteDisconnectedError` when the remote went away (after queued messages
        were read), and :class:`EndpointClosedError` once closed. With ``max_size`` a longer
        message raises :class:`MessageTooLargeError` (it is consumed, never truncated).
        """
        if max_size is not None:
            max_size = check_count(max_size, "max_size", 0)
        _src, item, _ts = self._get(timeout)
        if type(item) is bytes:
            data = item
        else:
            data = bytes(item.data)  # type: ignore[union-attr]
            item.release()  # type: ignore[union-attr]
        if max_size is not None and len(data) > max_size:
            raise MessageTooLargeError(len(data), max_size)
        return data

    def recv_message(self, timeout: float | None = None) -> Message:
        """Like :meth:`recv` but also returns the sender's address and the receive time."""
        src, item, ts = self._get(timeout, stamp=True)
        if type(item) is bytes:
            data = item
        else:
            data = bytes(item.data)  # type: ignore[union-attr]
            item.release()  # type: ignore[union-attr]
        return Message(data, src, self._rec.addr, ts)

    def recv_many(self, max_count: int = 64, timeout: float | None = None) -> list[bytes]:
        """Up to ``max_count`` payloads: waits (like :meth:`recv`) for the first, then takes
        what is queued without waiting more. One lock round for the whole batch."""
        max_count = check_count(max_count, "max_count")
        return [self._payload(item) for item in self._get_many(max_count, timeout)]

    def recv_buffer(self, timeout: float | None = None) -> RxBuffer:
        """The next message as a buffer to release (zero-copy on ``zero_copy`` endpoints)."""
        if orphaned:  # buffers the cyclic GC found dropped: back to the transport first
            reap_orphans()
        src, item, ts = self._get(timeout, stamp=True)
        if isinstance(item, RxBuffer):
            return item
        return RxBuffer(memoryview(item), src, self._rec.addr, None, ts)

    @staticmethod
    def _payload(entry: Item) -> bytes:
        item = entry[1]
        if type(item) is bytes:
            return item
        data = bytes(item.data)  # type: ignore[union-attr]
        item.release()  # type: ignore[union-attr]
        return data

    def _get(self, timeout: object, stamp: bool = False) -> Item:
        if self._direct:  # nothing is ever queued for it
            return self._get_direct(check_timeout(timeout), stamp)
        checked = check_timeout(timeout)  # before anything, whatever is queued
        rx = self._rx
        item = rx.get_nowait()
        if item is not None:
            return item
        spin = self._host.rx_spin
        if spin and checked != 0 and not rx.alert:
            item = self._poll_for(spin)
            if item is not None:
                return item
        item = rx.get(checked, self._check_receivable)
        if item is None:
            raise self._recv_timeout(checked)
        return item

    def _get_many(self, max_count: int, timeout: object) -> list[Item]:
        rx = self._rx
        checked = check_timeout(timeout)
        if self._direct:  # nothing is ever queued for it
            return self._get_many_direct(max_count, checked)
        items = rx.get_many(max_count, 0, _no_check)
        if items:
            return items
        spin = self._host.rx_spin
        if spin and checked != 0:
            first = self._poll_for(spin)
            if first is not None:
                return [first, *rx.get_many(max_count - 1, 0, _no_check)] \
                    if max_count > 1 else [first]
        items = rx.get_many(max_count, checked, self._check_receivable)
        if not items:
            raise self._recv_timeout(checked)
        return items

    def _get_direct(self, timeout: float | None, stamp: bool) -> Item:
        """Read the next message on this thread (``host.read_direct``): no thread hand-off;
        the receive time is taken only when asked for (a clock read is a system call on
        some kernels, e.g. User-Mode Linux)."""
        if self._closed:
            raise EndpointClosedError(f"endpoint {self.name!r} is closed")
        self._host.check_not_broken()
        got = self._host.read_direct(self._rec.addr, timeout)
        if got is None:
            raise self._recv_timeout(timeout)
        self._direct_received += 1
        return got[0], got[1], _now() if stamp else 0.0

    def _get_many_direct(self, max_count: int, timeout: float | None) -> list[Item]:
        out = [self._get_direct(timeout, False)]
        read = self._host.read_direct
        addr = self._rec.addr
        while len(out) < max_count:
            try:
                got = read(addr, 0)
            except (EndpointClosedError, RemoteDisconnectedError):
                break  # the next call reports it; these messages are not lost
            if got is None:
                break
            self._direct_received += 1
            out.append((got[0], got[1], 0.0))
        return out

    def _recv_timeout(self, timeout: float | None) -> Exception:
        if timeout == 0:
            return WouldBlockError(f"no message queued on {self.name!r}")
        return RpmsgTimeoutError(f"recv on {self.name!r}: no message within {timeout} s; "
                                 f"{self._host.seen()}")

    def _poll_for(self, spin: float) -> Item | None:
        """Drain the transport on this thread for up to ``spin`` seconds (Device.rx_spin)."""
        poll = self._host.poll
        get = self._rx.get_nowait
        clock = time.perf_counter
        until = clock() + spin
        while True:
            if not poll():
                _yield()  # let the transport's own thread (or the peer) run
            item = get()
            if item is not None:
                return item
            if clock() >= until or self._closed:
                return None

    def _check_receivable(self) -> None:
        """Raise why no message can come (called with the queue's lock held, reads only)."""
        if self._closed:
            raise EndpointClosedError(f"endpoint {self.name!r} is closed")
        self._host.check_not_broken()
        if self._disconnected is not None:
            raise RemoteDisconnectedError(self._disconnected)
        if self._host.closed:
            raise EndpointClosedError("the device is closed")

    def wait_bound(self, timeout: float | None = None) -> int:
        """Wait until the endpoint has a destination; return it."""
        deadline = Deadline(timeout)
        with self._bind_cond:
            while self._rec.dst == ADDR_ANY:
                self._check_waitable()
                if deadline.timeout == 0:
                    raise WouldBlockError(f"endpoint {self.name!r} is not bound")
                if not self._bind_cond.wait(deadline.remaining()) and deadline.expired():
                    raise deadline.timeout_error(f"waiting for {self.name!r} to be bound",
                                                 self._host.seen())
            return self._rec.dst

    def _check_waitable(self) -> None:
        if self._closed or self._host.closed:
            raise EndpointClosedError(f"endpoint {self.name!r} is closed")
        self._host.check_not_broken()

    def __iter__(self) -> Iterator[bytes]:
        """Yield received payloads until the endpoint is closed."""
        while True:
            try:
                yield self.recv()
            except EndpointClosedError:
                return

    def fileno(self) -> int:
        """A descriptor that is readable while messages are pending (or :meth:`recv` has an
        error to report), for ``select``/``selectors`` and GUI loops. Made on first use,
        closed with the endpoint; read it only through :meth:`recv`."""
        if self._closed:
            raise EndpointClosedError(f"endpoint {self.name!r} is closed")
        if self._direct:  # messages wait in the transport until read: its descriptor
            return self._host.rx_fileno(self._rec.addr)
        return self._rx.fileno()

    # Lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Destroy the endpoint (NS DESTROY where the policy says so). Idempotent.

        Messages still queued are dropped and their transport buffers released.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._bind_cond.notify_all()
        if self._host.inherited:  # a fork() child: the queue's buffers are the parent's
            return
        self._rx.close()
        sender = self.async_sender
        if sender is not None:
            sender.close()
        self._host.remove_endpoint(self._rec)

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def as_async(self) -> AsyncEndpoint:
        """The asyncio view of this endpoint."""
        from rpmsg.aio import AsyncEndpoint

        return AsyncEndpoint(self)

    # EndpointPeer: what the Device calls ------------------------------------------------

    # ``receive(src, payload, release) -> Taken``, a message for this endpoint on a
    # transport thread, is an attribute: the queue's own ``put`` (one call less per
    # message) or, with a callback, the method below; ``receive_many`` likewise (the
    # queue's ``put_many``, or None with a callback).

    def _receive_callback(self, src: int, payload: Buffer, release: Release | None) -> Taken:
        callback = self._callback
        if callback is None:  # cleared meanwhile
            return self._rx.put(src, payload, release)
        if self._closed:
            return _DROPPED_CLOSED
        self._callback_received += 1
        self._host.call_user(callback, self, bytes(payload), src)
        return _COPIED

    def forked(self) -> None:
        """In a ``fork()`` child (see Device._inherited): forget what the queue holds
        without releasing it (the buffers are the parent's; their releases are no-ops now)
        and take new locks (a parent thread may have held one at the fork)."""
        self._lock = threading.Lock()
        self._bind_cond = threading.Condition(self._lock)
        self._rx = RxQueue(self._rec.addr, 1, None, zero_copy=self.zero_copy)
        self.async_sender = None

    def expire_held(self, now: float) -> tuple[int, float | None]:
        return self._rx.expire(now)

    def binding_changed(self, bound: bool, reason: str) -> None:
        with self._bind_cond:
            self._disconnected = None if bound else reason
            self._bind_cond.notify_all()
        self._rx.wake(alert=not bound)
        cb = self._on_bound if bound else self._on_unbound
        if cb is not None:
            self._host.call_user(cb, self)

    def device_changed(self) -> None:
        with self._bind_cond:
            self._bind_cond.notify_all()
        self._rx.wake(alert=True)


def _no_check() -> None:
    return None


def check_callable(fn: _T, what: str) -> _T:
    """``fn`` if it is None or callable, else :class:`ArgumentTypeError` (a callback that
    cannot be called would lose every message it is given, one log line each)."""
    if fn is not None and not callable(fn):
        raise ArgumentTypeError(f"{what} must be callable, not {type(fn).__name__}")
    return fn


__all__ = ["Endpoint", "Message", "MessageCallback", "RxBuffer", "StateCallback"]
