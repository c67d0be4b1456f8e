"""The driver (host) role of a shared-memory virtio link: connect, handshake, serve.

The driver connects to the device's kick socket (the device wrote its resource table before
listening), maps the shared memory, reads the table, writes the negotiated features, fills
the rings and sets ``DRIVER_OK``, then kicks (spec §4.4, §7.6). Closing resets the status
byte to 0, as Linux does on removal, and kicks so the device notices.
"""

from __future__ import annotations

import contextlib
import time

from rpmsg.errors import NotAvailableError, ProtocolError, RpmsgTimeoutError
from rpmsg.registry import Opening
from rpmsg.virtio.driver import DriverEngine
from rpmsg.virtio.kick import KickChannel, PeerGone, connect
from rpmsg.virtio.layout import ShmLayout
from rpmsg.virtio.memory import FlatMemory, SharedFile
from rpmsg.virtio.shm_link import ShmConfig, ShmLink
from rpmsg.virtio.vdev import DRIVER_FOUND, DRIVER_READY
from rpmsg.wire.virtio import VirtioStatus


class ShmDriverLink(ShmLink):
    """The virtio driver side: owns the buffers, receives on vq0 and sends on vq1."""

    role = "driver"
    engine: DriverEngine

    def __init__(self, memory: FlatMemory, layout: ShmLayout, *,
                 channel: KickChannel | None = None, kick: str = "socket",
                 shared: SharedFile | None = None, timeout: float = 30.0,
                 spin: float = 50e-6, where: str = "memory") -> None:
        super().__init__(memory, layout, channel=channel, kick=kick, timeout=timeout,
                         spin=spin, where=where)
        self._shared = shared
        self._handshook = False
        self.engine = DriverEngine(memory, self._notify, buffer_size=layout.buffer_size)
        self.mtu = self.engine.mtu

    @classmethod
    def open(cls, config: ShmConfig, opening: Opening) -> ShmDriverLink:
        """Connect to the device of ``config`` and complete the handshake within ``opening``."""
        timeout = opening.timeout if opening.timeout is not None else 30.0
        kick = config.kick
        chan = KickChannel() if kick == "poll" else connect(config.socket, kick, opening)
        try:
            shared = _open_existing(config.path, config.layout.size,
                                    timeout if kick == "poll" else 1.0)
            link = cls(shared.memory, config.layout, kick=kick, channel=chan, shared=shared,
                       timeout=timeout, spin=config.spin, where=config.path)
            try:
                if kick == "poll":
                    _wait_table(link, timeout)
                link.handshake()
            except BaseException:
                link._channel = None
                link.close()
                raise
        except BaseException:
            chan.close()
            raise
        return link

    def handshake(self) -> None:
        """Read the table, negotiate features, fill the rings, set DRIVER_OK, kick."""
        table = self.table
        vdev = table.read()
        queues = table.queues(vdev, allocate=True)
        rx, tx = self.layout.rx_buffer_addrs(), self.layout.tx_buffer_addrs()
        size = self.layout.buffer_size
        for q in queues:
            end = q.used + 6 + 8 * q.num
            for name, addrs in (("receive", rx), ("transmit", tx)):
                lo, hi = addrs[0], addrs[-1] + size
                if q.desc < hi and lo < end:
                    raise NotAvailableError(
                        f"the device's vring at {q.desc:#x} overlaps the driver's {name} "
                        f"buffers {lo:#x}..{hi:#x}; adjust the layout options")
        features = vdev.dfeatures & self.layout.features
        table.set_status(DRIVER_FOUND)
        table.write_features(features)
        self.engine.start(queues, rx, tx, features=features, report_up=False)
        self.ns_enabled = self.engine.ns_enabled
        table.set_status(DRIVER_READY)
        self._handshook = True
        self._notify(0)

    def _started(self) -> None:
        self.engine.report_up()

    def _run(self) -> None:
        chan = self._channel
        assert chan is not None
        try:
            self._serve(chan, None)
        except PeerGone as exc:
            self.engine.stop(f"the virtio device went away: {exc}")

    def _closing_session(self) -> None:
        if self._handshook:
            # Reset the device as Linux does on removal (status 0), then kick so it notices.
            self.table.set_status(VirtioStatus.RESET)
            with contextlib.suppress(OSError, PeerGone):
                self._notify(0)

    def _release(self) -> None:
        if self._shared is not None:
            self._shared.close()


def _open_existing(path: str, size: int, timeout: float) -> SharedFile:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return SharedFile(path, size, create=False)
        except NotAvailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _wait_table(link: ShmDriverLink, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            link.table.read()
            return
        except ProtocolError:
            if time.monotonic() > deadline:
                raise RpmsgTimeoutError(f"no resource table in {link.where} within "
                                        f"{timeout} s") from None
            time.sleep(0.01)


__all__ = ["ShmDriverLink"]
