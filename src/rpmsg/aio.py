"""The asyncio twin of :class:`~rpmsg.endpoint.Endpoint` (imported only when used).

Receiving never leaves the event loop: a waiting ``recv`` parks a future that the delivering
thread resolves through ``call_soon_threadsafe`` (once per burst, not per message). Sending
tries the transport at once without waiting; only when no buffer is free does the message
go to the endpoint's one sender thread, which sends such messages in order as buffers come,
so a burst waits without a thread (or a hop) per message. Timeouts, errors and iteration are
those of the sync API.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from rpmsg import checks
from rpmsg.endpoint import CLOSE_CHECK, Endpoint, Message, check_count, check_timeout
from rpmsg.errors import (
    EndpointClosedError,
    MessageTooLargeError,
    NoBufferError,
    NotBoundError,
    RemoteDisconnectedError,
    RpmsgTimeoutError,
    WouldBlockError,
)
from rpmsg.rxqueue import Item
from rpmsg.transport import Deadline
from rpmsg.wire.layout import Buffer

#: Seconds the sender thread waits for more work before it ends.
SENDER_LINGER = 0.5


class AsyncEndpoint:
    """asyncio twin of :class:`Endpoint`: ``await recv()``, ``async for``, ``async with``."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def __getattr__(self, name: str) -> Any:
        # name, addr, dst, bound, mtu, pending, closed, fileno, stats... from the endpoint.
        return getattr(self.endpoint, name)

    def __repr__(self) -> str:
        return f"<rpmsg.AsyncEndpoint {self.endpoint!r}>"

    # Receiving --------------------------------------------------------------------------

    async def recv(self, timeout: float | None = None, *,
                   max_size: int | None = None) -> bytes:
        """The next received payload (see :meth:`Endpoint.recv`)."""
        if max_size is not None:
            max_size = check_count(max_size, "max_size", 0)
        checked = check_timeout(timeout)
        entry = self.endpoint._rx.get_nowait()  # the common case: no future, no list
        if entry is None:
            (entry,) = await self._next(checked, 1)
        data = Endpoint._payload(entry)
        if max_size is not None and len(data) > max_size:
            from rpmsg.errors import MessageTooLargeError

            raise MessageTooLargeError(len(data), max_size)
        return data

    async def recv_message(self, timeout: float | None = None) -> Message:
        """The next message with its sender and receive time (see :meth:`Endpoint.recv`)."""
        checked = check_timeout(timeout)
        entry = self.endpoint._rx.get_nowait()
        if entry is None:
            (entry,) = await self._next(checked, 1)
        return Message(Endpoint._payload(entry), entry[0], self.endpoint.addr, entry[2])

    async def recv_many(self, max_count: int = 64, timeout: float | None = None) -> list[bytes]:
        """Up to ``max_count`` payloads: waits for the first, takes the rest queued."""
        max_count = check_count(max_count, "max_count")
        return [Endpoint._payload(e) for e in await self._next(timeout, max_count)]

    async def _next(self, timeout: object, count: int) -> list[Item]:
        ept = self.endpoint
        rx = ept._rx
        check = ept._check_receivable
        items = rx.get_many(count, 0, check)
        if items:
            return items
        checked = check_timeout(timeout)
        if ept._direct:
            return await self._next_direct(checked, count)
        if checked == 0:
            raise ept._recv_timeout(0)
        if ept._host.rx_spin and ept._host.poll():  # drain the rings on the loop's thread
            items = rx.get_many(count, 0, check)
            if items:
                return items
        return await self._wait_queued(checked, count)

    async def _wait_queued(self, timeout: float | None, count: int) -> list[Item]:
        """Await messages in the queue (a future the queue resolves), up to ``timeout``."""
        ept = self.endpoint
        rx = ept._rx
        loop = asyncio.get_running_loop()
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            fut: asyncio.Future[None] = loop.create_future()
            items = rx.get_many_or_wait(count, loop, fut, ept._check_receivable)
            if items:
                return items
            if not await _wait(loop, fut, end, rx.remove_async_waiter):
                raise ept._recv_timeout(timeout)

    async def _next_direct(self, timeout: float | None, count: int) -> list[Item]:
        """A direct endpoint (Link.read_direct): wait for its descriptor on the loop, then
        read without blocking; local close and state changes wake the wait too."""
        ept = self.endpoint
        rx = ept._rx
        loop = asyncio.get_running_loop()
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                if count == 1:
                    return [ept._get_direct(0, True)]
                now = time.time()
                return [(src, data, now) for src, data, _ts in ept._get_many_direct(count, 0)]
            except WouldBlockError:
                pass
            if timeout == 0:
                raise ept._recv_timeout(0)
            fut: asyncio.Future[None] = loop.create_future()
            fd = ept._host.rx_fileno(ept.addr)
            rx.add_async_waiter(loop, fut)  # closed, unbound, broken: resolved too
            loop.add_reader(fd, _settle, fut, None)
            try:
                if not await _wait(loop, fut, end, rx.remove_async_waiter):
                    raise ept._recv_timeout(timeout)
            finally:
                loop.remove_reader(fd)

    async def wait_bound(self, timeout: float | None = None) -> int:
        """Wait until the endpoint has a destination; return it (see Endpoint.wait_bound)."""
        ept = self.endpoint
        deadline = Deadline(timeout)
        loop = asyncio.get_running_loop()
        end = None if deadline.deadline is None else deadline.deadline
        while True:
            fut: asyncio.Future[None] = loop.create_future()
            ept._rx.add_async_waiter(loop, fut)
            if ept.bound:
                ept._rx.remove_async_waiter(loop, fut)
                return ept.dst
            try:
                ept._check_waitable()
            except BaseException:
                ept._rx.remove_async_waiter(loop, fut)
                raise
            if deadline.timeout == 0:
                ept._rx.remove_async_waiter(loop, fut)
                raise WouldBlockError(f"endpoint {ept.name!r} is not bound")
            if not await _wait(loop, fut, end, ept._rx.remove_async_waiter):
                raise deadline.timeout_error(f"waiting for {ept.name!r} to be bound",
                                             ept._host.seen())

    # Sending ----------------------------------------------------------------------------

    async def send(self, data: Buffer, timeout: float | None = None) -> None:
        """Send without blocking the event loop (see :meth:`Endpoint.send`).

        Tries at once (no thread, no future); only without a free buffer, or while earlier
        messages of this endpoint still wait for one, does it queue to the sender thread.
        """
        ept = self.endpoint
        checked = check_timeout(timeout)
        sender = ept.async_sender
        if sender is None or sender.idle:
            try:
                ept.send(data, 0)  # checks every argument first
                return
            except NoBufferError:
                if checked == 0:
                    raise
            except (NotBoundError, RemoteDisconnectedError):
                if ept.bound or not ept._waits_to_send(checked):
                    raise
        payload = checks.payload(data)
        deadline = Deadline(checked)
        if not ept.bound and ept._waits_to_send(checked):
            await self.wait_bound(deadline.remaining())
        await self._queue(payload, None, deadline)

    async def send_to(self, dst: int, data: Buffer, timeout: float | None = None) -> None:
        """Send to an explicit address without blocking the loop (see :meth:`Endpoint.send_to`)."""
        ept = self.endpoint
        checked = check_timeout(timeout)
        sender = ept.async_sender
        if sender is None or sender.idle:
            try:
                ept.send_to(dst, data, 0)  # checks every argument first
                return
            except NoBufferError:
                if checked == 0:
                    raise
        payload = checks.payload(data)
        await self._queue(payload, checks.address(dst, "destination address"),
                          Deadline(checked))

    async def _queue(self, payload: Buffer, dst: int | None, deadline: Deadline) -> None:
        """Hand a send (to ``dst``, None: the bound destination) to the endpoint's sender
        thread and await its outcome."""
        sender: _Sender | None = self.endpoint.async_sender
        if sender is None:
            sender = self.endpoint.async_sender = _Sender(self.endpoint)
        await sender.submit(payload, dst, deadline)

    # Iteration and lifecycle ------------------------------------------------------------

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


async def _wait(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None],
                end: float | None, forget: Callable[[asyncio.AbstractEventLoop,
                                                     asyncio.Future[None]], None]) -> bool:
    """Await ``fut`` until ``end`` (monotonic); False on timeout. Always unregisters it."""
    handle = None
    if end is not None:
        remaining = end - time.monotonic()
        if remaining <= 0:
            forget(loop, fut)
            return False
        handle = loop.call_later(min(remaining, 86400.0), _expire, fut)
    try:
        await fut
    except _Expired:
        return False
    finally:
        if handle is not None:
            handle.cancel()
        forget(loop, fut)
    return True


class _Expired(Exception):
    """The wait's timer fired."""


def _expire(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_exception(_Expired())


def _settle(fut: asyncio.Future[None], error: BaseException | None) -> None:
    if fut.done():
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(error)


_Job = tuple[Buffer, "int | None", Deadline, asyncio.AbstractEventLoop,
             "asyncio.Future[None]"]


class _Sender:
    """One endpoint's sender thread for asyncio sends that found no free buffer."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.name = endpoint.name or f"{endpoint.addr:#x}"
        self._endpoint = endpoint
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._jobs: deque[_Job] = deque()
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def idle(self) -> bool:
        """Nothing queued: a new message may try the transport directly (keeps the order)."""
        return not self._jobs

    def submit(self, payload: Buffer, dst: int | None,
               deadline: Deadline) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._closed:
                raise EndpointClosedError(f"endpoint {self.name!r} is closed")
            self._jobs.append((payload, dst, deadline, loop, fut))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name=f"rpmsg-async-send-{self.name}")
                self._thread.start()
            self._cond.notify()
        return fut

    def _run(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            payload, dst, deadline, loop, fut = job
            error = None if fut.cancelled() else self._send(payload, dst, deadline, fut)
            with self._lock:
                self._jobs.popleft()
            try:
                loop.call_soon_threadsafe(_settle, fut, error)
            except RuntimeError:  # the loop is closed
                pass

    def _next_job(self) -> _Job | None:
        """The oldest job (left queued until done, so that :attr:`idle` stays false), or
        None once closed or idle for :data:`SENDER_LINGER` s (the thread then ends)."""
        with self._lock:
            while not self._jobs:
                if self._closed or (not self._cond.wait(SENDER_LINGER) and not self._jobs):
                    self._thread = None
                    return None
            return self._jobs[0]

    def _send(self, payload: Buffer, dst: int | None, deadline: Deadline,
              fut: asyncio.Future[None]) -> BaseException | None:
        """One queued send; the error for its awaiting coroutine, if any.

        The caller of a cancelled send (``asyncio.wait_for`` ran out, the task was
        cancelled) was told the message did not go, so it must not go later: the wait is
        for a transmit buffer, in steps of :data:`~rpmsg.endpoint.CLOSE_CHECK`, and the
        message is written into it only if the send is still wanted then.
        """
        while True:
            left = deadline.remaining()
            try:
                self._send_step(payload, dst, CLOSE_CHECK if left is None
                                else min(left, CLOSE_CHECK), fut)
            except (RpmsgTimeoutError, NoBufferError) as exc:
                if fut.cancelled():
                    return None
                if deadline.expired():
                    # The send waited its turn behind earlier ones until its time ran out:
                    # a timeout, not the "timeout=0 and no buffer" of the sync API.
                    return exc if deadline.timeout == 0 else deadline.timeout_error(
                        f"waiting for a transmit buffer on {self.name!r}")
            except BaseException as exc:
                return exc
            else:
                return None

    def _send_step(self, payload: Buffer, dst: int | None, step: float,
                   fut: asyncio.Future[None]) -> None:
        """Send unless cancelled, waiting up to ``step`` for a buffer."""
        ept = self._endpoint
        if not ept._host.alloc_waits or (dst is None and not ept.bound):
            # No buffer to hold first (a link that copies at commit; a send that waits
            # for its binding): a cancel is seen at the end of a step only.
            if dst is None:
                ept.send(payload, step)
            else:
                ept.send_to(dst, payload, step)
            return
        size = len(payload)
        if size > ept.mtu:
            raise MessageTooLargeError(size, ept.mtu)
        buf = ept.get_tx_buffer(step)
        if fut.cancelled():
            buf.release()
            return
        buf.payload[:size] = payload
        ept.send_buffer(buf, size, dst)

    def close(self) -> None:
        """The endpoint closed: queued sends fail with EndpointClosedError (by themselves)."""
        with self._lock:
            self._closed = True
            self._cond.notify_all()


__all__ = ["AsyncEndpoint"]
