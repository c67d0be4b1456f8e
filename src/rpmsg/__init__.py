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

from typing import Any

from rpmsg.core.policy import LINUX, NUTTX, OPENAMP, Policy
from rpmsg.device import Device
from rpmsg.endpoint import AsyncEndpoint, Endpoint, Message, RxBuffer
from rpmsg.errors import (
    AddressInUseError,
    AlreadyOpenError,
    DecodeError,
    EndpointClosedError,
    InvalidURLError,
    MessageTooLargeError,
    NameTooLongError,
    NoBufferError,
    NotAvailableError,
    NotBoundError,
    ProtocolError,
    RemoteDisconnectedError,
    RpmsgError,
    RpmsgTimeoutError,
    TransportBrokenError,
    WouldBlockError,
)
from rpmsg.transport import Link, TransportURL, make_link, register_transport, transports
from rpmsg.wire.rpmsg import ADDR_ANY, NS_ADDR, RESERVED_ADDRESSES

__version__ = "0.1.0"


def open(url: str, *, policy: Policy | str | None = None, side: str = "host",
         **options: Any) -> Device:
    """Open a transport by URL and return the :class:`Device` on it.

    ``url`` is ``scheme:path?key=value&...`` (``loop:``, ``shm:``, ``vhost-user:``,
    ``linux:``, ``uart:``, ``spi:``, ``spisim:``); keyword ``options`` override the query.
    ``policy`` (``"linux"``, ``"openamp"``, ``"nuttx"`` or a :class:`Policy`) overrides the
    transport's default peer behaviour; it may also be given as ``?policy=`` in the URL.
    ``side`` says which end to be where the transport has two kinds: ``"host"`` (virtio
    driver, as Linux) or ``"remote"`` (virtio device, as co-processor firmware).
    """
    parsed = TransportURL.parse(url, options, side=side)
    url_policy = parsed.take("policy")
    link = make_link(parsed)
    try:
        parsed.finish()
        return Device(link, policy=policy if policy is not None else url_policy)
    except BaseException:
        link.close()
        raise


__all__ = [
    "ADDR_ANY",
    "LINUX",
    "NS_ADDR",
    "NUTTX",
    "OPENAMP",
    "RESERVED_ADDRESSES",
    "AddressInUseError",
    "AlreadyOpenError",
    "AsyncEndpoint",
    "DecodeError",
    "Device",
    "Endpoint",
    "EndpointClosedError",
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
    "RpmsgError",
    "RpmsgTimeoutError",
    "RxBuffer",
    "TransportBrokenError",
    "TransportURL",
    "WouldBlockError",
    "open",
    "register_transport",
    "transports",
]
