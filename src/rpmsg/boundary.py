"""The Device <-> Endpoint boundary: what each side may ask of the other, and nothing more.

An :class:`~rpmsg.endpoint.Endpoint` talks to its Device only through :class:`EndpointHost`
(send, poll, close, checks); the Device talks to an endpoint only through :class:`EndpointPeer`
(deliver a message, report a binding change or a device state change, expire held
messages). Neither calls the other's private methods, shares its locks or writes its
counters, the way Linux's rpmsg core and its drivers meet only through ``rpmsg_endpoint_ops``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from enum import IntEnum
from typing import Any, Protocol

from rpmsg.core.core import EndpointRecord
from rpmsg.core.policy import Policy
from rpmsg.transport import Delivery, Release, TxBuffer
from rpmsg.wire.layout import Buffer


class Taken(IntEnum):
    """What an endpoint did with a delivered message (and so who releases its buffer)."""

    #: Copied (or handed to a callback): the Device releases the buffer now.
    COPIED = 0
    #: Kept in the transport's buffer; the endpoint calls ``release`` later.
    KEPT = 1
    #: Kept, and the queue just became full: a hold started, expire it after the hold time.
    HOLD_STARTED = 2
    #: Dropped because the queue is full (held too long, or no ``release`` to hold with).
    DROPPED_FULL = 3
    #: Dropped because the endpoint is closing.
    DROPPED_CLOSED = 4


#: ``receive_many(batch, timestamp) -> (dropped_full, dropped_closed, hold_started)``: a
#: batch of one endpoint's messages, as the transport's ``(src, dst, payload, release)``
#: tuples, received at ``timestamp`` (``time.time()``); the endpoint releases what it
#: copied or dropped (see :meth:`rpmsg.rxqueue.RxQueue.put_many`).
ReceiveMany = Callable[[Sequence[Delivery], float], tuple[int, int, bool]]


class EndpointHost(Protocol):
    """What an Endpoint needs from its Device."""

    @property
    def policy(self) -> Policy: ...

    @property
    def mtu(self) -> int: ...

    @property
    def rx_spin(self) -> float: ...

    @property
    def closed(self) -> bool: ...

    @property
    def usable(self) -> bool:
        """False once the Device is closing or broken (one test before each send)."""

    @property
    def inherited(self) -> bool:
        """True in the child of a ``fork()`` made while the Device was open: the link is the
        parent's, so closing here only marks things closed."""

    def check_not_broken(self) -> None:
        """Raise TransportBrokenError if the transport failed for good."""

    def transmit(self, src: int, dst: int, payload: Buffer, timeout: float | None) -> None:
        """Send one checked message (the tap sees it)."""

    def transmit_many(self, messages: Iterable[tuple[int, int, Buffer]],
                      timeout: float | None) -> int:
        """Send checked messages with as few notifications as the link allows."""

    def alloc_tx(self, timeout: float | None) -> TxBuffer:
        """A transmit buffer to fill in place."""

    @property
    def alloc_waits(self) -> bool:
        """Whether :meth:`alloc_tx` waits for a buffer itself; False where the link copies
        at commit (``Link.alloc_tx``'s default), which then waits with alloc's timeout."""

    def commit_tx(self, buf: TxBuffer, src: int, dst: int, length: int) -> None:
        """Send the first ``length`` bytes of ``buf`` (the tap sees them)."""

    def poll(self) -> int:
        """Let the link deliver pending messages on this thread; how many it delivered."""

    def read_direct(self, addr: int, timeout: float | None) -> tuple[int, bytes] | None:
        """A direct endpoint's next message read on this thread (Link.read_direct)."""

    def rx_fileno(self, addr: int) -> int:
        """A descriptor readable while a direct endpoint has a message (Link.rx_fileno)."""

    def seen(self) -> str:
        """What the link saw, for timeout messages."""

    def remove_endpoint(self, rec: EndpointRecord) -> None:
        """The endpoint closed: forget it (NS DESTROY where due), release its address."""

    def call_user(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a user callback; an exception is logged, never propagated."""


class EndpointPeer(Protocol):
    """What a Device needs from an endpoint it created (the core record's ``owner``)."""

    @property
    def receive(self) -> Callable[[int, Buffer, Release | None], Taken]:
        """``receive(src, payload, release)``: a message for this endpoint, on a transport
        thread; see :class:`Taken`. An attribute, so the endpoint can hand its queue's own
        ``put`` to the Device (one call less per message); the queue reads the receive time."""

    @property
    def receive_many(self) -> ReceiveMany | None:
        """A batch of this endpoint's messages in one queue operation (one lock, one
        wake-up), or None when each message must be handed to :attr:`receive` in order
        (a callback endpoint: user code runs per message). An attribute, like
        :attr:`receive`."""

    def expire_held(self, now: float) -> tuple[int, float | None]:
        """Drop messages held past the hold time: (how many, next expiry or None)."""

    def binding_changed(self, bound: bool, reason: str) -> None:
        """The core bound or unbound the endpoint (``reason`` says why it was unbound)."""

    def device_changed(self) -> None:
        """The Device closed or broke: wake every waiter so it sees the new state."""


__all__ = ["EndpointHost", "EndpointPeer", "ReceiveMany", "Taken"]
