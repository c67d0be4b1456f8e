"""The device (remote) role of a shared-memory virtio link: the file, the socket, the sessions.

Opening creates the named file (mode ``perm``, 0600 by default; a leftover of ours is taken
over) and holds its lifetime lock, so a second device on the same name is refused naming this
one; it writes the resource table (status 0, with this device's capabilities in the vdev's
config space) and listens on the kick socket.

One driver at a time: a driver that says hello gets a fresh sealed memfd holding the table
(its session's memory; the named file is never mapped then); a driver that does not (a
C/OpenAMP one) sets ``DRIVER_OK`` in the named file, which is then mapped and served. The
device serves the rings until the driver resets the status byte, closes the kick socket or
breaks the protocol; then it drops the session, writes a fresh table and serves the next
driver. A driver that connects meanwhile is told who is being served. ``close()`` removes the
socket and the file when this device made them (or took over an rpmsg device's leftover).
"""

from __future__ import annotations

import logging
import os
import select
import socket
import time
from typing import Any

from rpmsg.errors import ProtocolError, RpmsgError
from rpmsg.registry import Opening
from rpmsg.virtio.device import DeviceEngine
from rpmsg.virtio.kick import (
    Cancelled,
    EventfdKick,
    KickChannel,
    KickServer,
    PeerGone,
    SocketKick,
    peer_credentials,
)
from rpmsg.virtio.memory import FlatMemory
from rpmsg.virtio.rendezvous import caps_config, read_caps, read_hello, send_welcome
from rpmsg.virtio.shm_files import SealedMemory, ShmFile, describe_pid
from rpmsg.virtio.shm_link import SessionReset, ShmConfig, ShmLink, say_named_limit
from rpmsg.virtio.vdev import RSC_MAX, VdevTable, parse_vdev
from rpmsg.wire.shm_hello import ShmFlags, WelcomeStatus
from rpmsg.wire.virtio import FW_RSC_VDEV, VirtioStatus

log = logging.getLogger("rpmsg.shm")

#: How often the device looks for a hello or DRIVER_OK while a driver sets up.
RENDEZVOUS_POLL = 0.001


class ShmDeviceLink(ShmLink):
    """The virtio device side: sends on vq0 and receives on vq1 of the driver's rings."""

    role = "device"
    engine: DeviceEngine

    def __init__(self, config: ShmConfig, *, channel: KickChannel | None = None,
                 memory: FlatMemory | None = None, file: ShmFile | None = None,
                 server: KickServer | None = None, timeout: float = 30.0) -> None:
        super().__init__(config, channel=channel, memory=memory)
        self._file = file
        self._server = server
        self._timeout = timeout
        self._named: FlatMemory | None = memory  # the named file, mapped for C drivers
        self._sealed: SealedMemory | None = None
        self._driver = "no driver"
        self._serving = False
        offers = ShmFlags.MEMFD | (ShmFlags.EVENTFD if config.kick == "eventfd" else 0)
        self._caps = caps_config(offers) if file is not None else b""
        self._owns_file = file is not None and file.created
        self.engine = DeviceEngine(self.memory, self._notify, on_error=self._on_error(),
                                   buffer_size=self.layout.buffer_size)
        self.mtu = self.engine.mtu
        self.counters["drivers_refused_busy"] = 0
        self._write_table()
        self.state = "waiting for a driver"

    @classmethod
    def open(cls, config: ShmConfig, opening: Opening) -> ShmDeviceLink:
        """Create the shared memory of ``config``, lock it, write the table and listen."""
        # A driver that connects must complete its handshake within the open's timeout
        # (no limit: 30 s; a driver must not hold the device forever).
        timeout = opening.timeout if opening.timeout is not None else 30.0
        file = ShmFile.create(config.path, perm=config.perm, allow_foreign=config.allow_foreign,
                              table_at=config.layout.rsc_offset)
        try:
            file.lock(config.url)
            leftover = not file.created and _is_rpmsg_table(file, config)
            file.ensure_size(config.layout.size)
            # The link writes the table; only then may a driver connect (a C/OpenAMP driver
            # reads the table as soon as its connect succeeds).
            link = cls(config, file=file, timeout=timeout,
                       channel=KickChannel() if config.kick == "poll" else None)
        except BaseException:
            file.close(unlink=file.created)
            raise
        link._owns_file = file.created or leftover
        if config.kick != "poll":
            try:
                link._server = KickServer(config.socket, perm=config.perm)
            except BaseException:
                link.close(0)  # releases the file (and unlinks what it created)
                raise
        return link

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["socket"] = self._server.path if self._server else None
        out["driver"] = self._driver
        return out

    # The named file ---------------------------------------------------------------------

    def _write_table(self) -> None:
        """A fresh table (status 0) in the named file: a later DRIVER_OK there, or a hello,
        can only come from a new driver. Written without mapping the file."""
        raw = self.layout.resource_table(self._caps).encode()
        if self._file is not None:
            self._file.pwrite(self.layout.rsc_offset, raw)
        else:
            VdevTable(self.memory, self.layout).write_fresh(self.layout.resource_table())

    def _named_driver_ok(self) -> bool:
        if self._file is None:
            assert self._named is not None
            return VdevTable(self._named, self.layout).driver_ok()
        at = self.layout.vdev_offset + FW_RSC_VDEV.offset("status")
        status = self._file.pread(at, 1)
        return bool(status and status[0] & VirtioStatus.DRIVER_OK)

    def _named_memory(self) -> FlatMemory:
        if self._named is None:
            assert self._file is not None
            self._file.ensure_size(self.layout.size)
            self._named = self._file.map(self.layout.size)
            say_named_limit(self._file.path)
        return self._named

    # Worker -----------------------------------------------------------------------------

    def _extra_fds(self) -> tuple[int, ...]:
        if self._server is None:
            return (self._wake_r,)
        return (self._wake_r, self._server.fileno())

    def _on_extra(self) -> None:
        """A driver connected while one is being served: tell it who, and hang up. (Unless
        the one being served has just left: its session ends first, and the newcomer, still
        waiting in the listen queue, is served next.)"""
        if self._server is None or self._closed:
            return
        chan = self._channel
        if isinstance(chan, SocketKick):
            if self._serving:
                chan.wait(0, ())  # its kicks, or its end (PeerGone: the session is over)
            elif chan.peer_gone():  # setting up: look without eating a hello
                raise PeerGone("the driver closed the kick socket")
        while True:
            chan = self._server.accept()
            if chan is None:
                return
            pid, _uid = peer_credentials(chan.sock)
            self.counters["drivers_refused_busy"] += 1
            send_welcome(chan.sock, WelcomeStatus.BUSY,
                         text=f"the device {describe_pid(os.getpid())} already serves "
                              f"{self._driver} on {self.config.path}")
            log.info("shm device %s: refused %s: busy with %s", self.config.url,
                     describe_pid(pid), self._driver)
            chan.close()

    def _run(self) -> None:
        while not self._closed:
            try:
                chan = self._next_driver()
            except Cancelled:
                return
            if chan is None:
                return
            reason = self._session(chan)
            self._end_session(chan, reason)
            if self._server is None and chan.kind != "poll":
                return  # in-process pair: a single driver

    def _next_driver(self) -> KickChannel | None:
        if self._channel is not None:
            return self._channel  # poll mode, or an in-process pair
        assert self._server is not None
        while not self._closed:
            chan = self._server.accept(timeout=None, wake_fd=self._wake_r)
            if chan is not None:
                pid, _uid = peer_credentials(chan.sock)
                self._driver = describe_pid(pid)
                self._channel = chan
                return chan
        return None

    def _session(self, chan: KickChannel) -> str:
        """Serve one driver; returns why the session ended."""
        try:
            got = self._rendezvous(chan)
            if got is None:
                return "closed"
            memory, chan = got
            self._channel = chan
            table = VdevTable(memory, self.layout)
            self.where = (f"sealed memfd (rendezvous {self.config.path})"
                          if self._sealed is not None else self.config.path or "memory")
            self._wait_driver_ok(table, chan)
            vdev = table.read()
            queues = table.queues(vdev, allocate=False)
            self.engine.use_memory(memory)
            self.counters["sessions"] += 1
            self.state = f"serving {self._driver}"
            self.engine.start(queues, features=vdev.dfeatures & vdev.gfeatures)
            self.ns_enabled = self.engine.ns_enabled
            self._serving = True
            try:
                self._serve(chan, table)
            finally:
                self._serving = False
            if self._closed:
                return "closed"
            return f"dropped {self._driver}: {self.engine.last_error}"
        except Cancelled:
            return "closed"
        except PeerGone as exc:
            return f"the driver went away: {exc}"
        except SessionReset as exc:
            return str(exc)
        except ProtocolError as exc:
            self.counters["sessions_dropped"] += 1
            return f"dropped {self._driver}, which broke the protocol: {exc}"
        except (RpmsgError, OSError) as exc:
            # This session could not be set up (no room for its memory, out of descriptors):
            # the driver is dropped and the next one served; the device stays up.
            self.counters["sessions_dropped"] += 1
            return f"dropped {self._driver}: the session could not be set up: {exc}"

    def _rendezvous(self, chan: KickChannel) -> tuple[FlatMemory, KickChannel] | None:
        """Wait for a hello (an rpmsg driver) or DRIVER_OK in the named file (a C driver)."""
        deadline = time.monotonic() + self._timeout
        sock = chan.sock if isinstance(chan, SocketKick) else None
        while not self._closed:
            partial = False
            if sock is not None and self._file is not None:
                assert isinstance(chan, SocketKick)
                hello, partial = read_hello(chan)
                if hello is not None:
                    return self._welcome(chan, hello)
            if self._named_driver_ok():
                return self._named_memory(), chan
            if sock is not None and time.monotonic() > deadline:
                raise PeerGone(f"neither a hello nor DRIVER_OK within {self._timeout} s")
            # With part of a hello unread the socket stays readable: poll, do not spin.
            self._wait_rendezvous(None if partial else sock)
        return None

    def _wait_rendezvous(self, sock: socket.socket | None) -> None:
        fds = list(self._extra_fds()) + ([sock.fileno()] if sock is not None else [])
        ready, _, _ = select.select(fds, [], [], RENDEZVOUS_POLL)
        if self._server is not None and self._server.fileno() in ready:
            self._on_extra()
        if self._wake_r in ready:
            raise Cancelled()

    def _welcome(self, chan: SocketKick,
                 hello: ShmFlags) -> tuple[FlatMemory, KickChannel] | None:
        """Answer a hello: this session's memory and kicks, or why not."""
        eventfd = self.config.kick == "eventfd"
        if bool(hello & ShmFlags.EVENTFD) != eventfd:
            mine = "eventfd" if eventfd else "socket"
            send_welcome(chan.sock, WelcomeStatus.REFUSED,
                         text=f"this device uses kick={mine}; use the same kick= on both sides")
            raise PeerGone("the driver asked for other kicks than this device uses")
        fds: list[int] = []
        flags = ShmFlags(0)
        if hello & ShmFlags.MEMFD:
            self._sealed = SealedMemory.create(self.layout.size, "rpmsg-shm-session")
            memory = self._sealed.memory
            VdevTable(memory, self.layout).write_fresh(self.layout.resource_table(self._caps))
            fds.append(self._sealed.fd)
            flags |= ShmFlags.MEMFD
        else:
            memory = self._named_memory()
        out: KickChannel = chan
        if eventfd:
            to_device, to_driver = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC), \
                os.eventfd(0, os.EFD_CLOEXEC)
            fds += [to_device, to_driver]
            flags |= ShmFlags.EVENTFD
            out = EventfdKick(chan.sock, to_device, to_driver)
        send_welcome(chan.sock, WelcomeStatus.OK, flags, fds=fds)
        return memory, out

    def _wait_driver_ok(self, table: VdevTable, chan: KickChannel) -> None:
        deadline = time.monotonic() + self._timeout
        while not table.driver_ok():
            if self._closed:
                raise Cancelled()
            if time.monotonic() > deadline and chan.kind != "poll":
                raise PeerGone(f"no DRIVER_OK within {self._timeout} s")
            chan.wait(RENDEZVOUS_POLL, self._extra_fds())

    def _end_session(self, chan: KickChannel, reason: str) -> None:
        self.engine.stop(reason)
        if self._closed:
            return
        self.last_reason = reason
        log.info("shm device %s: session with %s ended: %s", self.config.url, self._driver,
                 reason)
        if self._sealed is not None:
            self._sealed.close()
            self._sealed = None
        self._write_table()
        if chan.kind != "poll" and self._server is not None:
            chan.close()
            if self._channel is not chan:
                self._channel.close()  # type: ignore[union-attr]
            self._channel = None
        self._driver = "no driver"
        self.state = "waiting for a driver"

    def _release(self) -> None:
        self.engine.stop("closed")  # close() may not have got that far yet
        if self._sealed is not None:
            self._sealed.close()
            self._sealed = None
        if self._server is not None:
            self._server.close()
        if self._file is not None:
            self._file.close(unlink=self._owns_file)


def _is_rpmsg_table(file: ShmFile, config: ShmConfig) -> bool:
    """Whether an existing file holds the table an rpmsg device wrote (a leftover of ours)."""
    try:
        _off, vdev = parse_vdev(file.pread(config.layout.rsc_offset, RSC_MAX))
    except (ProtocolError, OSError):
        return False
    return read_caps(vdev.config) is not None


__all__ = ["ShmDeviceLink"]
