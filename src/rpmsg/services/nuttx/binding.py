"""Server-side binding of NuttX's pattern A (spec §1.2): the client announces, the server binds.

A NuttX server (syslog, rpmsgfs) binds every announcement whose name matches its
``ns_match``, each with its own state. :class:`AnnouncementBinder` does the same on a
:class:`~rpmsg.Device`: one endpoint per matching announcement, created bound to the
announced address (the library answers with CREATE_ACK under the NuttX policy), released when
the chip withdraws it or the link goes down. A later announcement (a remount, a chip that came
back) gets a fresh endpoint and fresh state.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from rpmsg import checks
from rpmsg.device import Device
from rpmsg.endpoint import Endpoint
from rpmsg.errors import RpmsgError

log = logging.getLogger("rpmsg.services.nuttx")

#: Bindings one binder holds at once. Each takes a local address, and NuttX's pool has only
#: 128 (1024..1151): a chip announcing a matching name over and over must not take them
#: all, or no other endpoint (console, a new binding of another service) could be made.
MAX_BINDINGS = 16

MessageHandler = Callable[[Endpoint, bytes, int], None]
ReleaseHandler = Callable[[Endpoint], None]


class AnnouncementBinder:
    """Binds an endpoint to every service the remote announces whose name ``match``es.

    ``on_message(endpoint, data, src)`` runs on the transport's thread for each message;
    ``on_release(endpoint)`` once per binding when it ends (remote withdrew it, link down,
    or :meth:`close`), before the endpoint is closed. At most ``limit`` bindings exist at
    once; announcements beyond are not bound (counted in :attr:`refused`, logged).
    """

    def __init__(self, device: Device, match: Callable[[str], bool], *,
                 on_message: MessageHandler, on_release: ReleaseHandler,
                 on_bind: Callable[[Endpoint], None] | None = None,
                 limit: int = MAX_BINDINGS) -> None:
        self.device = device
        self._match = match
        self._on_message = on_message
        self._on_release = on_release
        self._on_bind = on_bind
        self.limit = checks.count(limit, "limit", 0)
        #: Matching announcements not bound because ``limit`` bindings existed.
        self.refused = 0
        self._lock = threading.Lock()
        self._endpoints: dict[int, Endpoint] = {}
        self._closed = False
        self._unsubscribe = device.on_service(None, self._announced)

    @property
    def endpoints(self) -> list[Endpoint]:
        """The endpoints currently bound to a chip's announcement."""
        with self._lock:
            return list(self._endpoints.values())

    def _announced(self, device: Device, name: str, addr: int) -> None:
        if self._closed or not self._match(name):
            return
        with self._lock:
            full = len(self._endpoints) >= self.limit
            if full:
                self.refused += 1
        if full:  # said once (a chip may announce without end); counted in refused
            log.log(logging.WARNING if self.refused == 1 else logging.DEBUG,
                    "not binding %r at %#x: %d bindings of this service already exist%s",
                    name, addr, self.limit,
                    "; further refusals are counted (refused)" if self.refused == 1 else "")
            return
        try:
            ept = device.create_endpoint(name, dst=addr, announce=False,
                                         callback=self._on_message,
                                         on_unbound=self._unbound)
        except RpmsgError as exc:
            log.warning("cannot bind %r at %#x: %s", name, addr, exc)
            return
        with self._lock:
            keep = not self._closed and ept.bound
            if keep:
                self._endpoints[id(ept)] = ept
        if not keep:  # closed meanwhile, or the link went down before the binding
            ept.close()
            return
        log.debug("bound %r at %#x to local %#x", name, addr, ept.addr)
        if self._on_bind is not None:
            self._on_bind(ept)

    def _unbound(self, ept: Endpoint) -> None:
        with self._lock:
            mine = self._endpoints.pop(id(ept), None) is not None
        if mine:
            self._release(ept)

    def _release(self, ept: Endpoint) -> None:
        try:
            self._on_release(ept)
        finally:
            ept.close()

    def close(self) -> None:
        """Release every binding and close its endpoint (NS DESTROY where the policy says)."""
        with self._lock:
            self._closed = True
            epts = list(self._endpoints.values())
            self._endpoints.clear()
        self._unsubscribe()  # a server closed and made again must not leave handlers behind
        for ept in epts:
            self._release(ept)


__all__ = ["MAX_BINDINGS", "AnnouncementBinder"]
