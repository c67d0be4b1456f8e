"""The host side of the kernel tests: a vhost-user virtio-rpmsg device with test services.

:class:`TestRemote` opens ``vhost-user:PATH`` as the remote (virtio device) and serves:

* ``rpmsg-raw`` (announced on request, then Linux binds it to ``rpmsg_char`` as
  ``/dev/rpmsgN``): echo;
* ``echo`` (not announced) for endpoints the guest creates through ``/dev/rpmsg_ctrl0``: echo,
  and a message starting with ``twice:`` is answered twice (the remote talking on its own);
* ``control`` (not announced): ``announce-raw`` creates ``rpmsg-raw`` (NS CREATE),
  ``destroy-raw`` closes ``rpmsg-raw`` (NS DESTROY reaches the
  guest) and ``go-away`` drops the front-end (the remote processor disappears). Each command
  is acknowledged with ``ok:<command>`` first.
"""

from __future__ import annotations

import threading

import rpmsg
from rpmsg.endpoint import Endpoint
from rpmsg.vhost_user.link import VhostUserLink

REPLY_TIMEOUT = 5.0
#: Seconds between acknowledging ``destroy-raw`` and sending the NS DESTROY.
DESTROY_DELAY = 0.5
#: Seconds between acknowledging ``go-away`` and dropping the front-end.
GO_AWAY_DELAY = 0.2


class TestRemote:
    """A vhost-user rpmsg device serving the test services (see the module docstring)."""

    __test__ = False  # not a pytest test class

    def __init__(self, path: str) -> None:
        self.path = path
        self.device = rpmsg.open(f"vhost-user:{path}", side="remote")
        self.raw: Endpoint | None = None
        self.echo = self.device.create_endpoint("echo", announce=False, callback=self._echo)
        self.control = self.device.create_endpoint("control", announce=False,
                                                   callback=self._control)
        self.commands: list[bytes] = []

    @property
    def link(self) -> VhostUserLink:
        link = self.device.link
        assert isinstance(link, VhostUserLink)
        return link

    def ensure_raw(self) -> None:
        """(Re)create the announced ``rpmsg-raw`` echo service."""
        if self.raw is None or self.raw.closed:
            self.raw = self.device.create_endpoint("rpmsg-raw", callback=self._echo)

    def withdraw_raw(self) -> None:
        """Close ``rpmsg-raw`` (while no front-end is connected: nothing is sent), so that
        the next boot does not get it announced during its own start-up."""
        if self.raw is not None:
            self.raw.close()
            self.raw = None

    def addresses(self) -> dict[str, int]:
        return {"echo_addr": self.echo.addr, "control_addr": self.control.addr,
                "destroy_delay": DESTROY_DELAY, "go_away_delay": GO_AWAY_DELAY}

    @staticmethod
    def _echo(ept: Endpoint, data: bytes, src: int) -> None:
        ept.send_to(src, data, timeout=REPLY_TIMEOUT)
        if data.startswith(b"twice:"):
            ept.send_to(src, data, timeout=REPLY_TIMEOUT)

    def _control(self, ept: Endpoint, data: bytes, src: int) -> None:
        self.commands.append(data)
        ept.send_to(src, b"ok:" + data, timeout=REPLY_TIMEOUT)
        if data == b"announce-raw":
            self.ensure_raw()
        elif data == b"destroy-raw" and self.raw is not None:
            # NS DESTROY, delayed so that the guest's reader is blocked in recv when it lands.
            threading.Timer(DESTROY_DELAY, self.raw.close).start()
        elif data == b"go-away":
            # Give the acknowledgement time to reach the guest, then vanish.
            threading.Timer(GO_AWAY_DELAY, self.link.disconnect, ("test remote went away",)).start()

    def close(self) -> None:
        self.device.close()
