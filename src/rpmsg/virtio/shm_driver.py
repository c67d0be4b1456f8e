"""The driver (host) role of a shared-memory virtio link: connect, handshake, serve, reconnect.

A session: connect to the device's kick socket (owned by us unless ``allow_foreign``), open the
named file (no symlinks, a regular file of ours) and read the resource table from it without
mapping it. If the table's config space says the device is an rpmsg process, say hello: the
device answers with this session's memory, a sealed memfd (or that it is busy, naming the
driver it serves). Otherwise (a C/OpenAMP device) map the named file. Then the handshake of
spec §4.4/§7.6: write the negotiated features, fill the rings, set ``DRIVER_OK``, kick.

When the session ends (the device went away or reset, or broke the protocol) the link goes
down with the reason and the driver reconnects by itself, as the UART and SPI links do.
Closing resets the status byte to 0, as Linux does on removal, and kicks so the device notices.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time

from rpmsg.errors import (
    AlreadyOpenError,
    NotAvailableError,
    ProtocolError,
    RpmsgError,
)
from rpmsg.registry import Opening, remote_command
from rpmsg.transport import Deadline
from rpmsg.virtio.driver import DriverEngine
from rpmsg.virtio.kick import (
    Cancelled,
    EventfdKick,
    KickChannel,
    PeerGone,
    SocketKick,
    connect,
    is_eventfd,
    sleep,
)
from rpmsg.virtio.memory import FlatMemory
from rpmsg.virtio.rendezvous import read_caps, say_hello
from rpmsg.virtio.shm_files import SealedMemory, ShmFile, ShmMissingError
from rpmsg.virtio.shm_link import NO_MEMORY, SessionReset, ShmConfig, ShmLink, say_named_limit
from rpmsg.virtio.vdev import DRIVER_FOUND, DRIVER_READY, RSC_MAX, VdevTable, parse_vdev
from rpmsg.wire.shm_hello import ShmFlags, WelcomeStatus
from rpmsg.wire.virtio import VdevEntry, VirtioStatus

log = logging.getLogger("rpmsg.shm")

#: Longest a closing driver waits for the device to take what was sent, and the share of
#: the close budget it may use for that.
DRAIN_MAX = 5.0
DRAIN_SHARE = 0.8
#: Longest pause between two reconnection attempts.
RECONNECT_MAX_DELAY = 0.5


#: Seconds a driver keeps asking a device that answers "busy" (see ShmDriverLink.open).
BUSY_GRACE = 1.0


class _DriverLeaving(AlreadyOpenError):
    """The device is busy with a driver that is this process or gone: it is finishing."""


def _served_driver_has_left(text: str) -> bool:
    """Whether the driver a busy device names (``... already serves pid N ...``) is this
    process (whose earlier link has closed) or a process that no longer exists."""
    m = re.search(r"already serves pid (\d+)", text)
    if m is None:
        return False
    pid = int(m.group(1))
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


class ShmDriverLink(ShmLink):
    """The virtio driver side: owns the buffers, receives on vq0 and sends on vq1."""

    role = "driver"
    engine: DriverEngine

    def __init__(self, config: ShmConfig, *, channel: KickChannel | None = None,
                 memory: FlatMemory | None = None) -> None:
        super().__init__(config, channel=channel, memory=memory)
        self._file: ShmFile | None = None
        self._sealed: SealedMemory | None = None
        self._handshook = False
        self.engine = DriverEngine(self.memory, self._notify, on_error=self._on_error(),
                                   buffer_size=self.layout.buffer_size)
        self.mtu = self.engine.mtu
        self.counters["reconnects"] = 0

    @classmethod
    def open(cls, config: ShmConfig, opening: Opening) -> ShmDriverLink:
        """Connect to the device of ``config`` and complete the handshake within ``opening``.

        A device that answers "busy" may be finishing the session of a driver that has just
        left (the device notices a closed socket a moment later): when the driver it names is
        this process or no longer exists, the hello is tried again for up to
        :data:`BUSY_GRACE` seconds before it is the :class:`AlreadyOpenError` naming it. A
        device busy with another live process is an error at once.
        """
        link = cls(config)
        grace = time.monotonic() + BUSY_GRACE
        try:
            while True:
                try:
                    link._connect(opening)
                    return link
                except _DriverLeaving:
                    remaining = opening.remaining()
                    if time.monotonic() >= grace or (remaining is not None and remaining < 0.05):
                        raise
                    sleep(0.05, link._wake_r)
        except BaseException:
            link.close(0)
            raise

    # One session ------------------------------------------------------------------------

    def _connect(self, opening: Opening) -> None:
        """Connect, agree on the memory, map it and handshake (the link is not up yet)."""
        cfg = self.config
        self.state = f"connecting to the virtio device on {cfg.socket}"
        chan: KickChannel = KickChannel() if cfg.kick == "poll" else connect(
            cfg.socket, opening=opening, allow_foreign=cfg.allow_foreign, wake_fd=self._wake_r)
        file = sealed = None
        try:
            file = self._wait_file(opening)
            if cfg.kick == "poll":  # no kick socket to be told "busy" on
                file.lock_driver(cfg.url)
            vdev = self._wait_table(file, opening)
            caps = read_caps(vdev.config)
            if caps is not None and isinstance(chan, SocketKick):
                chan, sealed = self._hello(chan, caps, opening)
            elif cfg.kick == "eventfd":
                raise NotAvailableError(
                    f"{cfg.url}: the device does not offer eventfd kicks (a C/OpenAMP "
                    "device?); use kick=socket")
            if sealed is not None:
                memory = sealed.memory
                file.close()
                file = None
                self.where = f"sealed memfd from the device on {cfg.path}"
            else:
                memory = file.map(self.layout.size)
                say_named_limit(file.path)
                self.where = cfg.path
            self._file, self._sealed, self._channel = file, sealed, chan
            self.memory = memory
            self.table = VdevTable(memory, self.layout)
            self.engine.use_memory(memory)
            self.handshake()
        except BaseException:
            self.engine.stop("handshake failed")  # nothing reported: the link was not up
            self._handshook = False
            self._free_session(chan, file, sealed)
            self._channel, self._file, self._sealed = None, None, None
            self.memory, self.table = NO_MEMORY, None
            self.engine.use_memory(NO_MEMORY)
            raise
        self.counters["sessions"] += 1
        self.state = f"connected to the virtio device on {cfg.socket}"

    def _wait_file(self, opening: Opening) -> ShmFile:
        cfg = self.config
        while True:
            try:
                return ShmFile.open(cfg.path, allow_foreign=cfg.allow_foreign)
            except ShmMissingError:
                self._wait(opening, "the virtio device's shared memory",
                           f"{cfg.path} does not exist")

    def _wait_table(self, file: ShmFile, opening: Opening) -> VdevEntry:
        at = self.layout.rsc_offset
        while True:
            try:
                return parse_vdev(file.pread(at, RSC_MAX))[1]
            except ProtocolError as exc:
                self._wait(opening, "a resource table",
                           f"{file.path} holds no valid resource table ({exc})")

    def _wait(self, opening: Opening, what: str, seen: str) -> None:
        remaining = opening.remaining()
        if remaining is not None and remaining <= 0:
            raise opening.timeout_error(what, seen)
        opening.waiting(what, f"start the device with `{remote_command(self.config.url)}`")
        sleep(0.01, self._wake_r)

    def _hello(self, chan: SocketKick, caps: ShmFlags,
               opening: Opening) -> tuple[KickChannel, SealedMemory | None]:
        cfg = self.config
        want = ShmFlags(0)
        if cfg.memfd and caps & ShmFlags.MEMFD:
            want |= ShmFlags.MEMFD
        if cfg.kick == "eventfd":
            want |= ShmFlags.EVENTFD
        welcome = say_hello(chan, want, opening, self._wake_r)
        try:
            if welcome.status == WelcomeStatus.BUSY:
                error = AlreadyOpenError(f"{cfg.url}: {welcome.text}")
                if _served_driver_has_left(welcome.text):
                    raise _DriverLeaving(str(error))
                raise error
            if welcome.status != WelcomeStatus.OK:
                raise NotAvailableError(f"{cfg.url}: the device refused: {welcome.text}")
            fds = welcome.fds
            need = (1 if welcome.flags & ShmFlags.MEMFD else 0) + \
                (2 if welcome.flags & ShmFlags.EVENTFD else 0)
            if len(fds) != need or (want & ShmFlags.EVENTFD and
                                    not welcome.flags & ShmFlags.EVENTFD):
                raise ProtocolError(f"{cfg.url}: the device's welcome carried {len(fds)} "
                                    f"descriptor(s), {need} expected")
            if welcome.flags & ShmFlags.EVENTFD and not all(map(is_eventfd, fds[-2:])):
                raise ProtocolError(f"{cfg.url}: the device's kick descriptors are not "
                                    "eventfds")
            sealed = None
            if welcome.flags & ShmFlags.MEMFD:
                sealed = SealedMemory.adopt(fds.pop(0), self.layout.size)
            out: KickChannel = chan
            try:
                if welcome.flags & ShmFlags.EVENTFD:
                    os.set_blocking(fds[0], False)
                    out = EventfdKick(chan.sock, fds[1], fds[0])  # to the driver, device
                    fds.clear()
            except BaseException:
                if sealed is not None:
                    sealed.close()
                raise
            return out, sealed
        finally:
            welcome.close_fds()

    def handshake(self) -> None:
        """Read the table, negotiate features, fill the rings, set DRIVER_OK, kick."""
        table = self.table
        assert table is not None
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

    # Worker -----------------------------------------------------------------------------

    def _started(self) -> None:
        self.engine.report_up()

    def _run(self) -> None:
        while not self._closed:
            chan = self._channel
            assert chan is not None
            try:
                self._serve(chan, self.table)
                reason = "closed" if self._closed else \
                    f"the session was dropped: {self.engine.last_error}"
            except PeerGone as exc:
                reason = f"the virtio device went away: {exc}"
            except SessionReset as exc:
                reason = f"the virtio device reset the link: {exc}"
            self._end_session(reason)
            if self._closed or not self.reconnects or not self._reconnect():
                return
            self.engine.report_up()

    def _end_session(self, reason: str) -> None:
        if self._closed:
            return
        self.last_reason = reason
        log.info("shm driver %s: link down: %s", self.config.url, reason)
        self.engine.stop(reason)
        self._handshook = False
        if self.reconnects:
            self._free_session(self._channel, self._file, self._sealed)
            self._channel, self._file, self._sealed = None, None, None
            self.memory, self.table = NO_MEMORY, None
            self.engine.use_memory(NO_MEMORY)
        self.state = "reconnecting" if self.reconnects else "down"

    def _reconnect(self) -> bool:
        """Connect again (no deadline) until it works or the link is closed."""
        opening = Opening(self.config.url, None)
        delay = 0.02
        said: set[str] = set()
        while not self._closed:
            try:
                self._connect(opening)
                self.counters["reconnects"] += 1
                log.info("shm driver %s: reconnected", self.config.url)
                return True
            except Cancelled:
                return False
            except (RpmsgError, OSError) as exc:
                self.state = f"reconnecting: {exc}"
                if type(exc).__name__ not in said:
                    said.add(type(exc).__name__)
                    log.info("shm driver %s: not reconnected yet: %s", self.config.url, exc)
            try:
                sleep(delay, self._wake_r)
            except Cancelled:
                return False
            delay = min(delay * 2, RECONNECT_MAX_DELAY)
        return False

    # Resources --------------------------------------------------------------------------

    def _say_goodbye(self, budget: Deadline) -> None:
        """Let the device take what was sent (within the budget, keeping a share for the
        rest of close), then reset it as Linux does on removal."""
        if self._handshook and self.engine.running:
            remaining = budget.remaining()
            wait = DRAIN_SHARE * remaining if remaining is not None else DRAIN_MAX
            self.engine.drain_tx(min(wait, DRAIN_MAX))
        if self._handshook and self.table is not None:
            # Reset the device as Linux does on removal (status 0), then kick so it notices.
            with contextlib.suppress(ValueError, RpmsgError):
                self.table.set_status(VirtioStatus.RESET)
            with contextlib.suppress(OSError, RpmsgError):
                self._notify(0)

    def _free_session(self, chan: KickChannel | None, file: ShmFile | None,
                      sealed: SealedMemory | None) -> None:
        if chan is not None:
            chan.close()
        if sealed is not None:
            sealed.close()
        if file is not None:
            file.close()

    def _release(self) -> None:
        self.engine.stop("closed")  # close() may not have got that far yet
        self.engine.use_memory(NO_MEMORY)
        self._free_session(None, self._file, self._sealed)
        self._file = self._sealed = None


__all__ = ["ShmDriverLink"]
