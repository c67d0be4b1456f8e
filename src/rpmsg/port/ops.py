"""The two interfaces between the RPMsg Port core and a physical backend (UART, SPI).

NuttX joins its port core and backends through ``struct rpmsg_port_ops_s`` one way and a few
``rpmsg_port_*`` helpers the other way (spec ``rpmsg-port.md`` §1.2). Both directions are
declared here, so neither side reaches into the other's internals:

* :class:`PortBackend` (core → backend): what :class:`~rpmsg.port.core.PortLink` calls.
* :class:`PortCore` (backend → core): what a backend calls; ``PortLink`` implements it.

Threading contract: the sink-facing calls of :class:`PortCore` (``register``, ``unregister``,
``rx_dispatch``) come from one backend thread, in order. ``rx_dispatch`` may return before
the buffer is free again (zero-copy receivers keep it); the core gives it back with
``rxq.return_buffer`` and then calls :meth:`PortBackend.notify_rx_free`, so a backend that
finds no free RX buffer stops receiving until that call: this is the back-pressure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from rpmsg.port.queues import BufferQueue, PortBuffer
from rpmsg.tap import Tap

#: The core's RX dispatcher, handed to the backend by ``register_callback``.
RxCallback = Callable[[PortBuffer], None]

#: ``drop_packets`` masks, as NuttX: 1 = TX ready list, 2 = RX ready list.
DROP_TX = 1
DROP_RX = 2
DROP_BOTH = DROP_TX | DROP_RX


class PortBackend(Protocol):
    """The physical layer under a port (NuttX ``struct rpmsg_port_ops_s``)."""

    def register_callback(self, callback: RxCallback) -> None:
        """Store the core's RX dispatcher; called once, before :meth:`start`."""

    def start(self) -> None:
        """Begin I/O (threads, connect); the backend calls ``core.register()`` when up."""

    def notify_tx_ready(self) -> None:
        """A buffer was put on the TX ready list."""

    def notify_rx_free(self) -> None:
        """An RX buffer went back to the free list: resume receiving, refresh credits."""

    def notify_queue_noavail(self, queue: BufferQueue) -> bool:
        """A waiter found no free buffer in ``queue``.

        Return True after doing work that may free one (the UART RX thread pumps one read so
        acknowledgements get processed), False to make the waiter block.
        """

    def close(self, timeout: float) -> None:
        """Flush the TX frames queued before the call, stop threads, release the device.

        Returns within ``timeout`` seconds whatever the peer does (frames that could not go
        out are dropped and counted); closes both queues of the core once its threads
        stopped, which wakes every waiter. Idempotent.
        """

    def seen(self) -> str:
        """What the physical link saw, in one phrase (for timeout errors); may be empty."""

    def stats(self) -> dict[str, int]:
        """Backend counters (bytes, framing errors...)."""

    def describe(self) -> dict[str, Any]:
        """Backend facts for ``describe()``."""


class PortCore(Protocol):
    """What a backend may call on its port (NuttX's ``rpmsg_port_*`` helpers)."""

    #: The TX and RX buffer queues (free and ready lists).
    txq: BufferQueue
    rxq: BufferQueue
    #: Frame-level observer (``capture_level=frames``) or None; test before building info.
    tap: Tap | None

    @property
    def is_up(self) -> bool:
        """Whether the link is registered (up)."""

    def register(self, detail: str = "") -> None:
        """The backend connected (``detail``: how, for the log): link up, endpoints
        announce."""

    def unregister(self, reason: str, *, restart: bool = False) -> None:
        """The backend lost the peer (``reason`` says why; ``restart``: the peer restarted
        while the link was up): drop queued TX, link down."""

    def rx_dispatch(self, buf: PortBuffer) -> None:
        """Deliver the frame in an RX buffer taken from ``rxq``; the core frees it later."""

    def tx_frame(self, buf: PortBuffer) -> memoryview:
        """The frame in a ready TX buffer: its first ``port_hdr.len`` bytes."""

    def drop_packets(self, mask: int) -> int:
        """Return ready buffers to their free lists (:data:`DROP_TX`, :data:`DROP_RX`)."""

    def update_timestamp(self, buf: PortBuffer, rx: bool) -> None:
        """Write the monotonic clock into a buffer's timestamp trailer (current protocol)."""

    def mark_broken(self, error: Exception) -> None:
        """The backend failed for good: sends fail from now on, the sink is told once."""


__all__ = ["DROP_BOTH", "DROP_RX", "DROP_TX", "PortBackend", "PortCore", "RxCallback"]
