"""The endpoint API, the same over every transport, and its asyncio twin.

An :class:`Endpoint` sends to its bound destination and receives into a queue; ``recv`` and
``send`` take pyserial-style timeouts (None blocks, 0 polls, x seconds). Iteration yields
received payloads until the endpoint is closed. :class:`AsyncEndpoint` offers the same with
``await`` and ``async for``.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rpmsg.errors import (
    EndpointClosedError,
    MessageTooLargeError,
    NotBoundError,
    RemoteDisconnectedError,
    WouldBlockError,
)
from rpmsg.transport import Deadline, Release, TxBuffer
from rpmsg.wire.layout import Buffer
from rpmsg.wire.rpmsg import ADDR_ANY

if TYPE_CHECKING:
    from rpmsg.core.core import Bound, EndpointRecord, Unbound
    from rpmsg.device import Device

MessageCallback = Callable[["Endpoint", bytes, int], None]

_yield: Callable[[], None] = getattr(os, "sched_yield", lambda: time.sleep(0))
StateCallback = Callable[["Endpoint"], None]


@dataclass(frozen=True, slots=True)
class Message:
    """A received message: payload and the sender's address (``dst`` is the local address)."""

    data: bytes
    src: int
    dst: int


class RxBuffer:
    """A received payload still in the transport's buffer (zero-copy receive).

    ``data`` is a read-only memoryview, valid until :meth:`release` (or the end of a
    ``with`` block) returns the buffer to the transport. Release exactly once; later
    releases are ignored.
    """

    __slots__ = ("_release", "data", "dst", "src")

    def __init__(self, data: memoryview, src: int, dst: int, release: Release | None) -> None:
        self.data = data
        self.src = src
        self.dst = dst
        self._release = release

    def __len__(self) -> int:
        return len(self.data)

    def __bytes__(self) -> bytes:
        return bytes(self.data)

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            self.data.release()
            release()

    def __enter__(self) -> RxBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_Item = tuple[int, "bytes | RxBuffer"]


class Endpoint:
    """A local RPMsg endpoint. Create with :meth:`rpmsg.device.Device.create_endpoint`."""

    def __init__(self, device: Device, rec: EndpointRecord, *,
                 callback: MessageCallback | None, on_bound: StateCallback | None,
                 on_unbound: StateCallback | None, zero_copy: bool) -> None:
        self.device = device
        self._rec = rec
        self.callback = callback
        self.on_bound = on_bound
        self.on_unbound = on_unbound
        self.zero_copy = zero_copy
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition(device.lock)
        self._closed = False
        self._disconnected: str | None = None
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    # Properties -------------------------------------------------------------------------

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
    def mtu(self) -> int:
        """Largest payload one message can carry."""
        return self.device.link.mtu

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        """Messages received and not yet read."""
        return len(self._queue)

    def __repr__(self) -> str:
        dst = "ANY" if self.dst == ADDR_ANY else f"{self.dst:#x}"
        return f"<rpmsg.Endpoint {self.name!r} {self.addr:#x} -> {dst}>"

    # Sending ----------------------------------------------------------------------------

    def send(self, data: Buffer, timeout: float | None = None) -> None:
        """Send ``data`` to the bound destination.

        Raises :class:`MessageTooLargeError` above :attr:`mtu`, :class:`NotBoundError` while
        unbound (or waits for the binding within ``timeout`` if the policy says so),
        :class:`RemoteDisconnectedError` when unbound because the remote went away,
        :class:`NoBufferError` when ``timeout`` is 0 and no buffer is free.
        """
        self._check_sendable(len(data))
        dst = self._rec.dst
        if dst == ADDR_ANY:
            if not self.device.policy.wait_bound_on_send or timeout == 0:
                raise self._unbound_error()
            deadline = Deadline(timeout)
            dst = self.wait_bound(timeout)
            timeout = deadline.remaining()
        self.device.link.send(self._rec.addr, dst, data, timeout)

    def send_to(self, dst: int, data: Buffer, timeout: float | None = None) -> None:
        """Send ``data`` to an explicit destination address (OpenAMP ``rpmsg_sendto``)."""
        if dst == ADDR_ANY:
            raise NotBoundError("cannot send to ADDR_ANY")
        self._check_sendable(len(data))
        self.device.link.send(self._rec.addr, dst, data, timeout)

    def send_many(self, messages: Iterable[Buffer], timeout: float | None = None) -> int:
        """Send several messages to the bound destination with as few notifications as the
        transport allows; returns the number sent."""
        dst = self._rec.dst
        if dst == ADDR_ANY:
            raise self._unbound_error()
        src = self._rec.addr
        mtu = self.mtu
        self._check_sendable(0)

        def checked() -> Iterator[tuple[int, int, Buffer]]:
            for data in messages:
                if len(data) > mtu:
                    raise MessageTooLargeError(len(data), mtu)
                yield src, dst, data

        return self.device.link.send_many(checked(), timeout)

    def get_tx_buffer(self, timeout: float | None = None) -> TxBuffer:
        """A transmit buffer to write the payload into (zero-copy send); see send_buffer."""
        self._check_sendable(0)
        return self.device.link.alloc_tx(timeout)

    def send_buffer(self, buf: TxBuffer, length: int, dst: int | None = None) -> None:
        """Send the first ``length`` bytes of ``buf`` (from :meth:`get_tx_buffer`)."""
        target = self._rec.dst if dst is None else dst
        if target == ADDR_ANY:
            buf.release()
            raise self._unbound_error()
        if length > buf.capacity:
            buf.release()
            raise MessageTooLargeError(length, buf.capacity)
        buf.commit(self._rec.addr, target, length)

    def _unbound_error(self) -> NotBoundError | RemoteDisconnectedError:
        """The error for sending while unbound: the remote went away, or never bound."""
        if self._disconnected is not None:
            return RemoteDisconnectedError(self._disconnected)
        return NotBoundError(f"endpoint {self.name!r} at {self.addr:#x} is not bound")

    def _check_sendable(self, size: int) -> None:
        if self._closed:
            raise EndpointClosedError(f"endpoint {self.name!r} is closed")
        self.device.check_not_broken()
        mtu = self.device.link.mtu
        if size > mtu:
            raise MessageTooLargeError(size, mtu)

    # Receiving --------------------------------------------------------------------------

    def recv(self, timeout: float | None = None) -> bytes:
        """The next received payload.

        Raises :class:`WouldBlockError` if ``timeout`` is 0 and nothing is queued,
        :class:`RpmsgTimeoutError` when the timeout expires, :class:`RemoteDisconnectedError`
        when the remote went away (after queued messages were read), and
        :class:`EndpointClosedError` once closed.
        """
        _src, item = self._get(timeout)
        if isinstance(item, RxBuffer):
            data = bytes(item.data)
            item.release()
            return data
        return item

    def recv_message(self, timeout: float | None = None) -> Message:
        """Like :meth:`recv` but also returns the sender's address."""
        src, item = self._get(timeout)
        if isinstance(item, RxBuffer):
            data = bytes(item.data)
            item.release()
        else:
            data = item
        return Message(data, src, self._rec.addr)

    def recv_buffer(self, timeout: float | None = None) -> RxBuffer:
        """The next message as a buffer to release (zero-copy on ``zero_copy`` endpoints)."""
        src, item = self._get(timeout)
        if isinstance(item, RxBuffer):
            return item
        return RxBuffer(memoryview(item), src, self._rec.addr, lambda: None)

    def _get(self, timeout: float | None) -> _Item:
        spin = self.device.rx_spin
        if spin and timeout != 0:
            item = self._poll_for(spin)
            if item is not None:
                return item
        deadline: Deadline | None = None
        with self._cond:
            while True:
                item = self._pop_locked()
                if item is not None:
                    return item
                if timeout == 0:
                    raise WouldBlockError(f"no message queued on {self.name!r}")
                if timeout is not None:
                    if deadline is None:
                        deadline = Deadline(timeout)
                    remaining = deadline.remaining()
                    if not remaining:
                        raise deadline.timeout_error(f"recv on {self.name!r}")
                    self._cond.wait(remaining)
                else:
                    self._cond.wait()

    def _poll_for(self, spin: float) -> _Item | None:
        """Drain the transport on this thread for up to ``spin`` seconds (see Device.rx_spin)."""
        poll = self.device.link.poll
        clock = time.perf_counter
        until = clock() + spin
        while True:
            with self._cond:
                item = self._pop_locked()
            if item is not None:
                return item
            if clock() >= until:
                return None
            if not poll():
                _yield()  # let the transport's own thread (or the peer) run

    def _pop_locked(self) -> _Item | None:
        """Next item, None if none yet; raises if none can come. Lock held."""
        if self._queue:
            return self._queue.popleft()
        if self._closed:
            raise EndpointClosedError(f"endpoint {self.name!r} is closed")
        self.device.check_not_broken()
        if self._disconnected is not None:
            raise RemoteDisconnectedError(self._disconnected)
        if self.device.closed:
            raise EndpointClosedError("the device is closed")
        return None

    def wait_bound(self, timeout: float | None = None) -> int:
        """Wait until the endpoint has a destination; return it."""
        deadline = Deadline(timeout)
        with self._cond:
            while self._rec.dst == ADDR_ANY:
                self._check_waitable_locked()
                if timeout == 0:
                    raise WouldBlockError(f"endpoint {self.name!r} is not bound")
                if not self._cond.wait(deadline.remaining()) and deadline.expired():
                    raise deadline.timeout_error(f"waiting for {self.name!r} to be bound")
            return self._rec.dst

    def _check_waitable_locked(self) -> None:
        if self._closed or self.device.closed:
            raise EndpointClosedError(f"endpoint {self.name!r} is closed")
        self.device.check_not_broken()

    def __iter__(self) -> Iterator[bytes]:
        """Yield received payloads until the endpoint is closed."""
        while True:
            try:
                yield self.recv()
            except EndpointClosedError:
                return

    # Lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Destroy the endpoint (NS DESTROY where the policy says so). Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            leftovers = [item for _src, item in self._queue if isinstance(item, RxBuffer)]
            self._queue.clear()
            self._wake_locked()
        for buf in leftovers:
            buf.release()
        self.device._destroy_endpoint(self._rec)

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def as_async(self) -> AsyncEndpoint:
        """The asyncio view of this endpoint."""
        return AsyncEndpoint(self)

    # Called by the Device -----------------------------------------------------------------

    def _enqueue_locked(self, src: int, payload: Buffer, release: Release | None) -> bool:
        """Queue a received message (lock held); True if the endpoint took ``release``."""
        if self._closed:  # closing: the core forgets it in a moment; drop, count, release
            self.device.core.stats.dropped_unknown_dst += 1
            return False
        if self.zero_copy and release is not None:
            self._queue.append((src, RxBuffer(memoryview(payload).toreadonly(), src,
                                              self._rec.addr, release)))
            taken = True
        else:
            self._queue.append((src, bytes(payload)))
            taken = False
        self._cond.notify()
        if self._async_waiters:
            self._wake_async_locked()
        return taken

    def _wake_locked(self) -> None:
        self._cond.notify_all()
        self._wake_async_locked()

    def _wake_async_locked(self) -> None:
        waiters, self._async_waiters = self._async_waiters, []
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:  # the loop is closed; nobody waits there any more
                pass

    def _state_changed(self, ev: Bound | Unbound) -> None:
        from rpmsg.core.core import Bound

        with self._cond:
            self._disconnected = None if isinstance(ev, Bound) else ev.reason
            self._wake_locked()
        cb = self.on_bound if isinstance(ev, Bound) else self.on_unbound
        if cb is not None:
            self.device._safe_call(cb, self)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class AsyncEndpoint:
    """asyncio twin of :class:`Endpoint`: ``await recv()``, ``async for``, ``async with``."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def __getattr__(self, name: str) -> Any:
        # name, addr, dst, bound, mtu, pending, closed, zero_copy... come from the endpoint.
        return getattr(self.endpoint, name)

    def __repr__(self) -> str:
        return f"<rpmsg.AsyncEndpoint {self.endpoint!r}>"

    async def _wait(self, timeout: float | None, ready: Callable[[], Any], what: str) -> Any:
        """Await until ``ready()`` (called under the lock) returns non-None."""
        ept = self.endpoint
        loop = asyncio.get_running_loop()
        deadline = Deadline(timeout)
        while True:
            fut: asyncio.Future[None] = loop.create_future()
            with ept._cond:
                value = ready()
                if value is not None:
                    return value
                if timeout == 0:
                    raise WouldBlockError(f"{what}: would block")
                ept._async_waiters.append((loop, fut))
            try:
                await asyncio.wait_for(fut, deadline.remaining())
            except asyncio.TimeoutError:
                raise deadline.timeout_error(what) from None
            finally:
                with ept._cond:
                    if (loop, fut) in ept._async_waiters:
                        ept._async_waiters.remove((loop, fut))

    async def recv(self, timeout: float | None = None) -> bytes:
        """The next received payload (see :meth:`Endpoint.recv`)."""
        return (await self.recv_message(timeout)).data

    async def recv_message(self, timeout: float | None = None) -> Message:
        ept = self.endpoint
        src, item = await self._wait(timeout, ept._pop_locked, f"recv on {ept.name!r}")
        if isinstance(item, RxBuffer):
            data = bytes(item.data)
            item.release()
        else:
            data = item
        return Message(data, src, ept.addr)

    async def wait_bound(self, timeout: float | None = None) -> int:
        ept = self.endpoint

        def ready() -> int | None:
            ept._check_waitable_locked()
            return ept.dst if ept.bound else None

        result: int = await self._wait(timeout, ready, f"waiting for {ept.name!r} to be bound")
        return result

    async def send(self, data: Buffer, timeout: float | None = None) -> None:
        """Send without blocking the event loop: tries at once, else waits in a thread."""
        from rpmsg.errors import NoBufferError

        try:
            self.endpoint.send(data, timeout=0)
            return
        except (NoBufferError, NotBoundError):
            if timeout == 0:
                raise
        if not self.endpoint.bound and self.endpoint.device.policy.wait_bound_on_send:
            deadline = Deadline(timeout)
            await self.wait_bound(timeout)
            timeout = deadline.remaining()
        await asyncio.to_thread(self.endpoint.send, data, timeout)

    async def send_to(self, dst: int, data: Buffer, timeout: float | None = None) -> None:
        from rpmsg.errors import NoBufferError

        try:
            self.endpoint.send_to(dst, data, timeout=0)
        except NoBufferError:
            if timeout == 0:
                raise
            await asyncio.to_thread(self.endpoint.send_to, dst, data, timeout)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        while True:
            try:
                yield await self.recv()
            except EndpointClosedError:
                return

    async def close(self) -> None:
        self.endpoint.close()

    async def __aenter__(self) -> AsyncEndpoint:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.endpoint.close()
