"""The device (remote) role of a shared-memory virtio link: table, listen, serve drivers.

The device creates the shared memory, writes its resource table (status 0) and listens on
the kick socket. It serves one driver at a time: it waits for ``DRIVER_OK``, starts the
engine on the rings the driver set up, and serves until the driver resets the status byte or
closes the kick socket; then it writes a fresh table (so a later ``DRIVER_OK`` can only come
from a new driver) and accepts the next one. It does not listen while it serves one.
"""

from __future__ import annotations

import logging
import time

from rpmsg.registry import Opening
from rpmsg.virtio.device import DeviceEngine
from rpmsg.virtio.kick import KickChannel, KickServer, PeerGone
from rpmsg.virtio.layout import ShmLayout
from rpmsg.virtio.memory import FlatMemory, SharedFile
from rpmsg.virtio.shm_link import SessionReset, ShmConfig, ShmLink

log = logging.getLogger("rpmsg.shm")


class ShmDeviceLink(ShmLink):
    """The virtio device side: sends on vq0 and receives on vq1 of the driver's rings."""

    role = "device"
    engine: DeviceEngine

    def __init__(self, memory: FlatMemory, layout: ShmLayout, *,
                 channel: KickChannel | None = None, server: KickServer | None = None,
                 kick: str = "socket", shared: SharedFile | None = None,
                 timeout: float = 30.0, spin: float = 50e-6, where: str = "memory") -> None:
        super().__init__(memory, layout, channel=channel, kick=kick, timeout=timeout,
                         spin=spin, where=where)
        self._server = server
        self._shared = shared
        self.engine = DeviceEngine(memory, self._notify, buffer_size=layout.buffer_size)
        self.mtu = self.engine.mtu
        self.table.write_fresh()

    @classmethod
    def open(cls, config: ShmConfig, opening: Opening) -> ShmDeviceLink:
        """Create the shared memory of ``config``, write the table and listen."""
        # The per-session wait for DRIVER_OK uses the open's timeout (no limit: 30 s; a
        # driver must not hold the device forever).
        timeout = opening.timeout if opening.timeout is not None else 30.0
        kick = config.kick
        shared = SharedFile(config.path, config.layout.size, create=True)
        try:
            link = cls(shared.memory, config.layout, kick=kick, shared=shared,
                       timeout=timeout, spin=config.spin, where=config.path,
                       channel=KickChannel() if kick == "poll" else None)
            if kick != "poll":
                link._server = KickServer(config.socket)
        except BaseException:
            shared.close(unlink=shared.created)
            raise
        return link

    def describe(self) -> dict[str, object]:
        out = super().describe()
        out["socket"] = self._server.path if self._server else None
        return out

    def _run(self) -> None:
        while not self._closed and self.engine.error is None:
            chan = self._channel
            if chan is None:
                if self._server is None:
                    return
                chan = self._server.accept(self.kick_kind, None, self._wake_r)
                if chan is None:
                    continue
                self._server.pause()  # one driver at a time (see KickServer)
                self._channel = chan
            reason = "the driver went away"
            try:
                if self._session(chan):
                    return
            except PeerGone as exc:
                reason = f"the driver went away: {exc}"
            except SessionReset as exc:
                reason = str(exc)
            self.engine.stop(reason)
            # A fresh table (status 0): a later DRIVER_OK can only come from a new driver.
            self.table.write_fresh()
            if chan.kind == "poll":
                continue  # no connection to lose: wait for the next DRIVER_OK
            self._channel = None
            chan.close()
            if self._server is None:
                return  # in-process pair: a single driver
            self._server.resume()

    def _session(self, chan: KickChannel) -> bool:
        """Wait for DRIVER_OK, start the engine, serve. True if closed meanwhile."""
        table = self.table
        deadline = time.monotonic() + self.timeout
        while not table.driver_ok():
            if self._closed:
                return True
            if time.monotonic() > deadline and chan.kind != "poll":
                log.warning("shm device: no DRIVER_OK within %s s; dropping the driver",
                            self.timeout)
                raise PeerGone(f"no DRIVER_OK within {self.timeout} s")
            chan.wait(0.001, self._wake_r)
        vdev = table.read()
        queues = table.queues(vdev, allocate=False)
        engine = self.engine
        assert isinstance(engine, DeviceEngine)
        engine.start(queues, features=vdev.dfeatures & vdev.gfeatures)
        self.ns_enabled = engine.ns_enabled
        self._serve(chan, table)
        return self._closed

    def _release(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._shared is not None:
            self._shared.close(unlink=self._shared.created)


__all__ = ["ShmDeviceLink"]
