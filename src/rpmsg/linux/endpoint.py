"""``rpmsg.linux.Endpoint``: the first ``/dev/rpmsgN`` API, a facade over :class:`rpmsg.Endpoint`.

:meth:`Endpoint.open` makes the device the one endpoint of a ``linux:`` link under a
:class:`~rpmsg.device.Device`, so sending, receiving, timeouts, errors, iteration and asyncio
are exactly those of :class:`rpmsg.Endpoint` (which reads a kernel endpoint on the receiving
thread: one ``poll`` and one ``read`` per message, no thread hand-off). Kept from the first API:

* ``recv(max_size, timeout)`` takes ``max_size`` first, and returns None at the end of a
  stream (:meth:`Endpoint.from_streams`; a device has no end: when its remote goes away
  ``recv`` raises :class:`~rpmsg.errors.RemoteDisconnectedError` like everywhere). Iteration
  and the asyncio view stop there too;
* ``stats`` is a dict attribute; kernel controls (:meth:`destroy`, flow control,
  :meth:`info`) act on the device.

The example is in the :mod:`rpmsg.linux` package docstring.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from rpmsg import checks
from rpmsg.device import Device
from rpmsg.endpoint import Endpoint as SharedEndpoint
from rpmsg.errors import (
    EndpointClosedError,
    MessageTooLargeError,
    RemoteDisconnectedError,
    WouldBlockError,
)
from rpmsg.linux.chardev import Chardev, HasFileno, open_fd
from rpmsg.linux.sysfs import EndpointDevice, Sysfs
from rpmsg.wire.layout import Buffer
from rpmsg.wire.rpmsg import DEFAULT_MTU, RESERVED_ADDRESSES

if TYPE_CHECKING:
    from rpmsg.aio import AsyncEndpoint as SharedAsyncEndpoint

#: The address that stands for the peer where the kernel does not say it (a stream, or a
#: device without sysfs): messages seem to come from it; the kernel sends where it sends.
UNKNOWN_PEER = RESERVED_ADDRESSES


class Endpoint:
    """A kernel rpmsg endpoint device (``/dev/rpmsgN``) or a stand-in over byte streams.

    Use :meth:`open` or :meth:`from_streams`; it is a context manager.
    """

    #: Largest payload of a virtio rpmsg message (512-byte buffer minus the 16-byte header).
    MAX_MESSAGE_SIZE = DEFAULT_MTU

    def __init__(self, chardev: Chardev, *, max_message_size: int = DEFAULT_MTU) -> None:
        """Take over an open :class:`~rpmsg.linux.chardev.Chardev` (use :meth:`open`)."""
        from rpmsg.linux.link import LinuxLink

        self._chardev = chardev
        self.path = chardev.path
        self.index = chardev.index
        #: True for a kernel device (no end of stream), False for :meth:`from_streams`.
        self.is_device = chardev.is_device
        self.max_message_size = max_message_size
        self._too_large = 0
        info = None
        if chardev.is_device and chardev.index is not None and chardev.sysfs is not None:
            try:
                info = chardev.info()
            except Exception:  # no sysfs entry: the kernel still knows where it sends
                info = None
        dst = UNKNOWN_PEER if info is None or info.dst is None else info.dst
        name = "" if info is None else info.name
        self.device = Device(LinuxLink(chardev=chardev, sysfs=chardev.sysfs),
                             name=f"linux:{chardev.path}")
        try:
            #: The shared endpoint this facade drives.
            self.endpoint: SharedEndpoint = self.device.create_endpoint(name, dst=dst)
        except BaseException:
            self.device.close()
            raise
        #: A limit below the link's (which the shared endpoint checks itself).
        self._check_size = max_message_size < self.endpoint.mtu

    # Construction -----------------------------------------------------------------------

    @classmethod
    def open(cls, n: int | str | os.PathLike[str], *, sysfs: Sysfs | None = None,
             max_message_size: int = DEFAULT_MTU) -> Endpoint:
        """Open endpoint device ``n`` (an index, ``rpmsgN``, a path such as ``/dev/rpmsg0``
        or a udev link to one).

        Raises :class:`~rpmsg.errors.AlreadyOpenError` naming the holder if another process
        has it open, :class:`~rpmsg.errors.AccessDeniedError` naming the fix,
        :class:`~rpmsg.errors.NotAvailableError` if it does not exist or is not an rpmsg
        device.
        """
        return cls(Chardev.open(n, sysfs=sysfs), max_message_size=max_message_size)

    @staticmethod
    def open_fd(n: int | str | os.PathLike[str], *, nonblocking: bool = False,
                sysfs: Sysfs | None = None) -> int:
        """Open endpoint device ``n`` and return the raw descriptor (close it yourself);
        blocking by default, as the kernel's own semantics. Errors as for :meth:`open`."""
        return open_fd(n, nonblocking=nonblocking, sysfs=sysfs)

    @classmethod
    def from_streams(cls, source: int | HasFileno, sink: int | HasFileno, *,
                     max_message_size: int = DEFAULT_MTU, close: bool = False) -> Endpoint:
        """An endpoint that reads messages from ``source`` and writes them to ``sink``.

        Each ``read`` must return one message, so use message-preserving streams
        (``socketpair(AF_UNIX, SOCK_SEQPACKET)``); a pipe works one message at a time. The
        descriptors are made non-blocking until :meth:`close`, which closes them only if
        ``close`` is true. An empty read is the end of the stream: ``recv`` returns None.
        """
        return cls(Chardev.from_streams(source, sink, close=close),
                   max_message_size=max_message_size)

    # Properties -------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.endpoint.closed

    @property
    def stats(self) -> dict[str, int]:
        """Messages and bytes each way, and messages refused as too large."""
        link = self.device.link.stats()
        return {"rx_messages": link["rx_messages"], "rx_bytes": link["rx_bytes"],
                "tx_messages": link["tx_messages"], "tx_bytes": link["tx_bytes"],
                "rx_too_large": link["rx_too_large"] + self._too_large}

    def fileno(self) -> int:
        """The descriptor messages are read from (readable while one is pending), for
        ``select``/``poll``/event loops; then call :meth:`recv` with ``timeout=0``."""
        return self.endpoint.fileno()

    def info(self) -> EndpointDevice:
        """Name and addresses the kernel reports for this device (from sysfs)."""
        return self._chardev.info()

    def __repr__(self) -> str:
        return f"<rpmsg.linux.Endpoint {self.path}{' closed' if self.closed else ''}>"

    # Messages ---------------------------------------------------------------------------

    def recv(self, max_size: int = DEFAULT_MTU, timeout: float | None = None) -> bytes | None:
        """The next message, or None at the end of a stream.

        As :meth:`rpmsg.Endpoint.recv`: a message longer than ``max_size`` raises
        :class:`~rpmsg.errors.MessageTooLargeError` (it is consumed, never truncated),
        ``timeout`` 0 raises :class:`~rpmsg.errors.WouldBlockError` when nothing is there,
        x seconds :class:`~rpmsg.errors.RpmsgTimeoutError`; a vanished endpoint raises
        :class:`~rpmsg.errors.RemoteDisconnectedError`, a closed one
        :class:`~rpmsg.errors.EndpointClosedError`.
        """
        try:
            return self.endpoint.recv(timeout, max_size=max_size)
        except MessageTooLargeError:
            self._too_large += 1
            raise
        except RemoteDisconnectedError:
            if self.is_device:
                raise
            return None

    def recv_nowait(self, max_size: int = DEFAULT_MTU) -> bytes | None:
        """One message if one is there, else None (never waits); the end of a stream raises
        :class:`~rpmsg.errors.RemoteDisconnectedError`, since None means "nothing yet"."""
        try:
            return self.endpoint.recv(0, max_size=max_size)
        except WouldBlockError:
            return None

    def send(self, data: Buffer, timeout: float | None = None) -> None:
        """Send one message (see :meth:`rpmsg.Endpoint.send`): waits for a free transmit
        buffer for ever (None), not at all (0: :class:`~rpmsg.errors.NoBufferError`) or up
        to ``timeout`` seconds; :class:`~rpmsg.errors.MessageTooLargeError` above
        :attr:`max_message_size`, :class:`~rpmsg.errors.NotBoundError` on a receive-only
        endpoint (dst ANY)."""
        if self._check_size:
            payload = checks.payload(data)
            if len(payload) > self.max_message_size:
                raise MessageTooLargeError(len(payload), self.max_message_size)
        self.endpoint.send(data, timeout)

    def __iter__(self) -> Iterator[bytes]:
        """Messages until the end of a stream or :meth:`close` (errors are raised)."""
        while True:
            try:
                data = self.recv()
            except EndpointClosedError:
                return
            if data is None:
                return
            yield data

    def as_async(self) -> AsyncEndpoint:
        """The asyncio view (:class:`rpmsg.AsyncEndpoint`, ending at the end of a stream)."""
        return AsyncEndpoint(self)

    # Kernel controls --------------------------------------------------------------------

    def destroy(self) -> None:
        """Remove this endpoint device (``RPMSG_DESTROY_EPT_IOCTL``), then close.

        Only for endpoints created through a control device; the kernel refuses (EINVAL:
        :class:`~rpmsg.errors.NotAvailableError`) to destroy a channel's default endpoint.
        """
        try:
            self._chardev.destroy_device()
        finally:
            self.close()

    def get_outgoing_flow_control(self) -> bool:
        """The remote's flow-control state (Linux 6.6+; virtio always reports False)."""
        return self._chardev.get_outgoing_flow_control()

    def set_incoming_flow_control(self, enable: bool) -> None:
        """Ask the remote to pause or resume sending (Linux 6.6+, GLINK only; virtio:
        :class:`~rpmsg.errors.NotAvailableError`)."""
        self._chardev.set_incoming_flow_control(enable)

    # Lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the endpoint and its descriptor (a ctrl-created kernel endpoint is
        destroyed by the kernel; a channel's default endpoint stays). Wakes blocked callers;
        idempotent."""
        self.device.close()

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        device = getattr(self, "device", None)
        if device is not None and not device.closed:
            try:
                device.close()
            except Exception:
                pass


class AsyncEndpoint:
    """The asyncio view of a :class:`Endpoint`: :class:`rpmsg.AsyncEndpoint`'s behaviour,
    with ``recv(max_size, timeout)`` returning None at the end of a stream."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._shared: SharedAsyncEndpoint = endpoint.endpoint.as_async()

    async def recv(self, max_size: int = DEFAULT_MTU,
                   timeout: float | None = None) -> bytes | None:
        try:
            return await self._shared.recv(timeout, max_size=max_size)
        except RemoteDisconnectedError:
            if self.endpoint.is_device:
                raise
            return None

    async def send(self, data: Buffer, timeout: float | None = None) -> None:
        await self._shared.send(data, timeout)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        while True:
            try:
                data = await self.recv()
            except EndpointClosedError:
                return
            if data is None:
                return
            yield data

    async def close(self) -> None:
        self.endpoint.close()

    async def __aenter__(self) -> AsyncEndpoint:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.endpoint.close()


__all__ = ["UNKNOWN_PEER", "AsyncEndpoint", "Endpoint"]
