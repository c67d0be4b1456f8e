"""Echo service: announce a name and send every message back to its sender."""

from __future__ import annotations

import logging

from rpmsg.device import Device
from rpmsg.endpoint import Endpoint
from rpmsg.errors import RpmsgError

log = logging.getLogger("rpmsg.services")

#: How long an echo may wait for a transmit buffer before the message is counted as failed.
ECHO_SEND_TIMEOUT = 5.0


class EchoService:
    """Echoes each message on endpoint ``name`` back to the address it came from.

    Runs on the transport's receive thread (an endpoint callback), so no thread of its own.
    """

    def __init__(self, device: Device, name: str = "rpmsg-echo") -> None:
        self.name = name
        self.echoed = 0
        self.failed = 0
        self.endpoint = device.create_endpoint(name, callback=self._on_message)

    def _on_message(self, ept: Endpoint, data: bytes, src: int) -> None:
        try:
            ept.send_to(src, data, timeout=ECHO_SEND_TIMEOUT)
            self.echoed += 1
        except RpmsgError as exc:
            self.failed += 1
            log.warning("echo %r: reply to %#x failed: %s", self.name, src, exc)

    def close(self) -> None:
        self.endpoint.close()
