"""rpmsg: RPMsg for Python over Linux char devices, virtio shared memory and NuttX RPMsg Port.

Quick start::

    import rpmsg

    with rpmsg.open("loop:demo") as host, rpmsg.open("loop:demo") as remote:
        echo = remote.create_endpoint("rpmsg-echo")          # announced by name service
        ept = host.create_endpoint("rpmsg-echo")             # binds to the announcement
        ept.wait_bound(timeout=1)
        ept.send(b"hello")
        print(echo.recv(timeout=1))
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from rpmsg._version import __version__ as __version__
from rpmsg.core.policy import LINUX, NUTTX, OPENAMP, Policy
from rpmsg.device import Device
from rpmsg.endpoint import Endpoint, Message
from rpmsg.errors import (
    AccessDeniedError,
    AddressInUseError,
    AlreadyOpenError,
    ArgumentTypeError,
    BufferInUseError,
    DecodeError,
    EndpointClosedError,
    InvalidArgumentError,
    InvalidURLError,
    MessageTooLargeError,
    NameTooLongError,
    NoBufferError,
    NotAvailableError,
    NotBoundError,
    ProtocolError,
    RemoteDisconnectedError,
    ResourceLimitError,
    RpmsgError,
    RpmsgTimeoutError,
    TransportBrokenError,
    WouldBlockError,
)
from rpmsg.registry import CaptureOptions, Transport, list_transports, prepare, register_transport
from rpmsg.rxqueue import RxBuffer
from rpmsg.tap import Tap
from rpmsg.transport import Link
from rpmsg.url import TransportURL
from rpmsg.wire.rpmsg import ADDR_ANY, NS_ADDR, RESERVED_ADDRESSES

if TYPE_CHECKING:
    from rpmsg.aio import AsyncEndpoint


def __getattr__(name: str) -> Any:
    # The asyncio twin is imported on first use: ``import rpmsg`` does not import asyncio.
    if name == "AsyncEndpoint":
        from rpmsg.aio import AsyncEndpoint

        return AsyncEndpoint
    raise AttributeError(f"module 'rpmsg' has no attribute {name!r}")


def open(url: str, *, policy: Policy | str | None = None, side: str = "host",
         **options: Any) -> Device:
    """Open a transport by URL and return the :class:`Device` on it.

    ``url`` is ``scheme:path?key=value&...`` (``loop:``, ``shm:``, ``vhost-user:``,
    ``linux:``, ``uart:``, ``spi:``, ``spisim:``; ``rpmsg transports`` lists them); keyword
    ``options`` override the query. Every option is checked before any connection is tried.
    Options every scheme takes: ``policy`` (``"linux"``, ``"openamp"``, ``"nuttx"`` or a
    :class:`Policy`; overrides the transport's default peer behaviour), ``timeout`` (seconds
    the open may wait for the peer, default 30; None waits forever), ``capture`` (a pcapng
    file recording the traffic; also ``RPMSG_CAPTURE``), ``capture_level``, ``capture_max``.
    ``side`` says which end to be where the transport has two kinds: ``"host"`` (virtio
    driver, as Linux) or ``"remote"`` (virtio device, as co-processor firmware).
    """
    if policy is not None:
        options = {**options, "policy": policy}
    prepared = prepare(url, options, side=side)
    tap = _open_taps(prepared.capture, url)
    try:
        link = prepared.open_link()
    except BaseException:
        if tap is not None:
            tap.close()
        raise
    try:
        if tap is not None and prepared.capture is not None \
                and prepared.capture.level == "frames":
            link.tap = tap
        return Device(link, policy=prepared.policy, tap=tap, name=url)
    except BaseException:
        link.close()
        if tap is not None:
            tap.close()
        raise


def _open_taps(options: CaptureOptions | None, url: str) -> Tap | None:
    """The Device's tap: a pcapng capture if asked for, plus the ``rpmsg.trace`` logger's
    tracing tap when that logger is enabled (DEBUG) at open; None when neither."""
    trace = logging.getLogger("rpmsg.trace")  # off unless its own level was set to DEBUG
    tracing = trace.level != logging.NOTSET and trace.isEnabledFor(logging.DEBUG)
    if options is None and not tracing:
        return None
    # Only programs that capture or trace pay for the import.
    from rpmsg.capture import combine, open_capture, trace_tap

    capture: Tap | None = None
    if options is not None:
        try:
            capture = open_capture(options.path, link_name=url, level=options.level,
                                   max_bytes=options.max_bytes)
        except RpmsgError as exc:
            if not options.from_env:
                raise
            logging.getLogger("rpmsg.capture").warning(
                "RPMSG_CAPTURE: %s; %s runs without capture", exc, url)
    return combine(capture, trace_tap(url) if tracing else None)


__all__ = [
    "ADDR_ANY",
    "LINUX",
    "NS_ADDR",
    "NUTTX",
    "OPENAMP",
    "RESERVED_ADDRESSES",
    "AccessDeniedError",
    "AddressInUseError",
    "AlreadyOpenError",
    "ArgumentTypeError",
    "AsyncEndpoint",
    "BufferInUseError",
    "DecodeError",
    "Device",
    "Endpoint",
    "EndpointClosedError",
    "InvalidArgumentError",
    "InvalidURLError",
    "Link",
    "Message",
    "MessageTooLargeError",
    "NameTooLongError",
    "NoBufferError",
    "NotAvailableError",
    "NotBoundError",
    "Policy",
    "ProtocolError",
    "RemoteDisconnectedError",
    "ResourceLimitError",
    "RpmsgError",
    "RpmsgTimeoutError",
    "RxBuffer",
    "Tap",
    "Transport",
    "TransportBrokenError",
    "TransportURL",
    "WouldBlockError",
    "list_transports",
    "open",
    "register_transport",
]
