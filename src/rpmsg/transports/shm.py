"""``shm:`` — RPMsg over virtio rings in shared memory between two processes, either role.

``shm:NAME`` is the POSIX shared-memory object ``/dev/shm/NAME``; ``shm:/dir/file`` is any
file (``shm:`` alone is ``openamp.shm``). Options: ``role`` (``driver``/``host`` or
``device``/``remote``; default from the opener's side), ``preset`` (``openamp``, the only
layout), ``kick`` (``socket``, ``eventfd`` or ``poll``), ``socket`` (kick socket path; default
``/tmp/openamp.event.0`` for ``openamp.shm``, else ``/tmp/NAME.event.0``), ``size``, ``num``,
``align``, ``buffers`` and ``buffer_size`` (driver pool; the device advertises
``buffer_size``), ``timeout`` (seconds to wait for the peer and DRIVER_OK, default 30) and
``spin`` (µs to keep polling the rings after work before sleeping, default 50).

The default policy is OPENAMP in both roles: both sides announce named endpoints, as the
OpenAMP demo does; pass ``policy=linux`` to mimic the kernel as driver. The device creates the
file, writes the resource table and listens before the driver may connect; the link is up
once DRIVER_OK is set and the peer is connected, and goes down when the peer closes the kick
socket or resets the status byte (the device then drops that driver, rewrites the table
and listens for the next one; it does not listen while serving one). ``close()``
removes what this side created: the device unlinks its socket and the shm file it made.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any

from rpmsg.core.policy import OPENAMP
from rpmsg.errors import (
    InvalidURLError,
    NotAvailableError,
    ProtocolError,
    RpmsgTimeoutError,
)
from rpmsg.registry import Connect, Opening, Transport
from rpmsg.transport import Link, LinkSink, TxBuffer
from rpmsg.url import TransportURL
from rpmsg.virtio.device import DeviceEngine
from rpmsg.virtio.driver import DriverEngine
from rpmsg.virtio.engine import RingEngine
from rpmsg.virtio.kick import KickChannel, KickServer, PeerGone, SocketKick, connect
from rpmsg.virtio.layout import OPENAMP_KICK_SOCKET, OPENAMP_SHM_NAME, ShmLayout
from rpmsg.virtio.memory import FlatMemory, SharedFile, shm_path
from rpmsg.virtio.vring import QueueAddrs
from rpmsg.wire.layout import Buffer
from rpmsg.wire.virtio import FW_RSC_VDEV, ResourceTable, VirtioStatus, vring_field_offset

log = logging.getLogger("rpmsg.shm")

#: How often an idle link re-reads the status byte (device) and checks for close.
IDLE_CHECK = 0.1
#: Bytes of the file handed to the resource-table parser.
RSC_MAX = 0x1000
_ANY_DA = 0xFFFFFFFF


class _Reset(Exception):
    """The driver cleared DRIVER_OK: this session is over."""


class ShmLink(Link):
    """One side of a virtio-rpmsg link over shared memory (see the module docstring)."""

    default_policy = OPENAMP

    def __init__(self, role: str, memory: FlatMemory, layout: ShmLayout, *,
                 channel: KickChannel | None = None, server: KickServer | None = None,
                 kick: str = "socket", shared: SharedFile | None = None,
                 timeout: float = 30.0, spin: float = 50e-6, where: str = "memory") -> None:
        self.role = role
        self.memory = memory
        self.layout = layout
        self.kick_kind = kick
        self.timeout = timeout
        self.spin = spin
        self.where = where
        self._channel = channel
        self._server = server
        self._shared = shared
        self._sink: LinkSink | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        self._status = -1
        self.engine: RingEngine
        if role == "device":
            self.engine = DeviceEngine(memory, self._notify, buffer_size=layout.buffer_size)
            self._write_table()
        else:
            self.engine = DriverEngine(memory, self._notify, buffer_size=layout.buffer_size)
        self.mtu = self.engine.mtu

    # Set-up -------------------------------------------------------------------------------

    def _write_table(self) -> None:
        """Device: write a fresh resource table (status 0) before any driver can connect."""
        raw = self.layout.resource_table().encode()
        at = self.layout.rsc_offset
        self.memory.view(at, len(raw))[:] = raw

    def _read_table(self) -> tuple[int, ResourceTable]:
        at = self.layout.rsc_offset
        data = bytes(self.memory.view(at, min(RSC_MAX, self.memory.size - at)))
        table = ResourceTable.decode(data)
        try:
            vdev_off, _vdev = table.vdev()
        except LookupError:
            raise ProtocolError("resource table has no rpmsg vdev entry") from None
        return at + vdev_off, table

    def _queues(self, table: ResourceTable, vdev_at: int, allocate: bool) -> list[QueueAddrs]:
        _off, vdev = table.vdev()
        if len(vdev.vrings) != 2:
            raise ProtocolError(f"rpmsg vdev has {len(vdev.vrings)} vrings, 2 expected")
        queues = []
        for i, vr in enumerate(vdev.vrings):
            da = vr.da
            if da == _ANY_DA:
                if not allocate:
                    raise ProtocolError(f"vring {i} has no device address (da = ANY)")
                da = self.layout.vring_das[i]
                # Linux writes the final da back into the table (spec §4.1).
                at = vring_field_offset(vdev_at, i, "da")
                self.memory.mv[at : at + 4] = da.to_bytes(4, "little")
            try:
                queues.append(QueueAddrs.from_layout(da, vr.num, vr.align))
            except ValueError as exc:
                raise ProtocolError(f"vring {i}: {exc}") from None
        return queues

    def _status_at(self, vdev_at: int) -> int:
        return vdev_at + FW_RSC_VDEV.offset("status")

    def driver_handshake(self) -> None:
        """Driver: read the table, negotiate features, fill the rings, set DRIVER_OK, kick."""
        assert isinstance(self.engine, DriverEngine)
        vdev_at, table = self._read_table()
        _off, vdev = table.vdev()
        queues = self._queues(table, vdev_at, allocate=True)
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
        status = self._status_at(vdev_at)
        mv = self.memory.mv
        mv[status] = VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER
        gf = vdev_at + FW_RSC_VDEV.offset("gfeatures")
        mv[gf : gf + 4] = features.to_bytes(4, "little")
        self.engine.start(queues, rx, tx, features=features, report_up=False)
        self.ns_enabled = self.engine.ns_enabled
        mv[status] = (VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER
                      | VirtioStatus.DRIVER_OK)
        self._status = status
        self._notify(0)

    # Link interface ---------------------------------------------------------------------

    def _notify(self, _queue: int) -> None:
        chan = self._channel
        if chan is not None:
            chan.notify()

    def start(self, sink: LinkSink) -> None:
        self._sink = sink
        self.engine.attach(sink)
        if self.role == "driver":
            self.engine.report_up()  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._main, daemon=True,
                                        name=f"rpmsg-shm-{self.role}")
        self._thread.start()

    def send(self, src: int, dst: int, payload: Buffer, timeout: float | None) -> None:
        self.engine.send(src, dst, payload, timeout)

    def send_many(self, messages: Iterable[tuple[int, int, Buffer]],
                  timeout: float | None) -> int:
        return self.engine.send_many(messages, timeout)

    def alloc_tx(self, timeout: float | None) -> TxBuffer:
        return self.engine.alloc_tx(timeout)

    can_poll = True

    def poll(self) -> int:
        return self.engine.poll()

    def stats(self) -> dict[str, int]:
        return self.engine.stats()

    def describe(self) -> dict[str, Any]:
        return {"role": self.role, "mtu": self.mtu, "memory": self.where, "kick": self.kick_kind,
                "num": self.layout.num, "align": self.layout.align,
                "buffer_size": self.layout.buffer_size, "ns": self.engine.ns_enabled,
                "socket": self._server.path if self._server else None}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        os.write(self._wake_w, b"x")
        self.engine.sink = None
        if self.role == "driver" and self._status >= 0:
            # Reset the device as Linux does on removal (status 0), then kick so it notices.
            self.memory.mv[self._status] = VirtioStatus.RESET
            with contextlib.suppress(OSError, PeerGone):
                self._notify(0)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self.engine.stop("closed")
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._server is not None:
            self._server.close()
        if self._shared is not None:
            self._shared.close(unlink=self.role == "device" and self._shared.created)
        os.close(self._wake_r)
        os.close(self._wake_w)

    # Worker thread ----------------------------------------------------------------------

    def _closing(self) -> bool:
        return self._closed

    def _main(self) -> None:
        try:
            if self.role == "driver":
                self._driver_main()
            else:
                self._device_main()
        except ProtocolError as exc:
            self.engine.fail(str(exc))
        except Exception as exc:  # never let the thread die silently
            log.exception("shm %s worker failed", self.role)
            self.engine.fail(f"internal error in the worker thread: {exc!r}")

    def _serve(self, chan: KickChannel, status_at: int | None) -> None:
        """Wait for kicks and process rings until the peer goes away or we close."""
        engine = self.engine
        mv = self.memory.mv
        wake = self._wake_r
        spin = self.spin
        clock = time.perf_counter
        while not self._closing() and engine.error is None:
            engine.kick(rearm=False)
            if spin:
                # Keep the peer's kicks suppressed while polling the ring for a short while:
                # a busy stream then costs neither side a wakeup per message. sched_yield
                # lets the peer run first when both share a CPU.
                until = clock() + spin
                while clock() < until:
                    if engine.rx_pending():
                        engine.kick(rearm=False)
                        until = clock() + spin
                    else:
                        os.sched_yield()
            if status_at is not None and not mv[status_at] & VirtioStatus.DRIVER_OK:
                raise _Reset("the driver reset the device (DRIVER_OK cleared)")
            if not engine.arm():
                continue
            chan.wait(IDLE_CHECK, wake)

    def _driver_main(self) -> None:
        chan = self._channel
        assert chan is not None
        try:
            self._serve(chan, None)
        except PeerGone as exc:
            self.engine.stop(f"the virtio device went away: {exc}")

    def _device_main(self) -> None:
        while not self._closing() and self.engine.error is None:
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
            except _Reset as exc:
                reason = str(exc)
            self.engine.stop(reason)
            # A fresh table (status 0): a later DRIVER_OK can only come from a new driver.
            self._write_table()
            if chan.kind == "poll":
                continue  # no connection to lose: wait for the next DRIVER_OK
            self._channel = None
            chan.close()
            if self._server is None:
                return  # in-process pair: a single driver
            self._server.resume()

    def _session(self, chan: KickChannel) -> bool:
        """Device: wait for DRIVER_OK, start the engine, serve. True if closed meanwhile."""
        vdev_at = self.layout.vdev_offset
        status_at = self._status_at(vdev_at)
        mv = self.memory.mv
        deadline = time.monotonic() + self.timeout
        while not mv[status_at] & VirtioStatus.DRIVER_OK:
            if self._closing():
                return True
            if time.monotonic() > deadline and chan.kind != "poll":
                log.warning("shm device: no DRIVER_OK within %s s; dropping the driver",
                            self.timeout)
                raise PeerGone(f"no DRIVER_OK within {self.timeout} s")
            chan.wait(0.001, self._wake_r)
        vdev_at, table = self._read_table()
        _off, vdev = table.vdev()
        queues = self._queues(table, vdev_at, allocate=False)
        engine = self.engine
        assert isinstance(engine, DeviceEngine)
        engine.start(queues, features=vdev.dfeatures & vdev.gfeatures)
        self.ns_enabled = engine.ns_enabled
        self._serve(chan, status_at)
        return self._closing()


# Factories ------------------------------------------------------------------------------

_ROLES = {"driver": "driver", "host": "driver", "device": "device", "remote": "device"}


def _layout_from_url(url: TransportURL) -> ShmLayout:
    url.get_choice("preset", "openamp", {"openamp": "openamp"})
    num = url.get_int("num", 256, minimum=1, maximum=32768)
    align = url.get_int("align", 0x1000, minimum=1, maximum=1 << 20)
    buffer_size = url.get_int("buffer_size", 512, minimum=17, maximum=65535 + 16)
    buffers = url.get_int("buffers", min(256, num), minimum=1, maximum=32768)
    try:
        layout = ShmLayout.openamp(num=num, align=align, buffer_size=buffer_size,
                                   buffers=buffers)
    except ValueError as exc:
        raise InvalidURLError(f"shm: {exc}") from None
    size = url.get_int("size", layout.size, minimum=0x1000)
    if size != layout.size:
        layout = ShmLayout(num=layout.num, align=layout.align, buffer_size=buffer_size,
                           rx_buffers=buffers, tx_buffers=buffers,
                           vring_stride=layout.vring_stride, buffer_base=layout.buffer_base,
                           min_size=size)
        if layout.size != size:
            raise InvalidURLError(f"shm: size={size:#x} is too small for this layout "
                                  f"(needs {layout.size:#x})")
    try:
        layout.check()
    except ValueError as exc:
        raise InvalidURLError(f"shm: {exc}") from None
    return layout


def default_socket(path: str) -> str:
    """The kick socket path for a shm file: OpenAMP's for ``openamp.shm``, else per name."""
    base = os.path.basename(path)
    if base == OPENAMP_SHM_NAME:
        return OPENAMP_KICK_SOCKET
    return f"/tmp/{base}.event.0"


def configure(url: TransportURL) -> Connect:
    """Check ``shm:NAME`` / ``shm:/path`` (options in the module docstring); open on connect."""
    role = url.get_choice("role", "driver" if url.side == "host" else "device", _ROLES)
    kick = url.get_choice("kick", "socket", {"socket": "socket", "eventfd": "eventfd",
                                             "poll": "poll"})
    layout = _layout_from_url(url)
    path = shm_path(url.path or OPENAMP_SHM_NAME)
    sock_path = url.get_str("socket", default_socket(path))
    spin = url.get_float("spin", 50.0, maximum=1e6) * 1e-6

    def connect(opening: Opening) -> ShmLink:
        return _open_shm(role, kick, layout, path, sock_path, opening, spin)

    return connect


def _open_shm(role: str, kick: str, layout: ShmLayout, path: str, sock_path: str,
              opening: Opening, spin: float) -> ShmLink:
    # The device's per-session wait for DRIVER_OK, and the poll-mode waits, use the open's
    # timeout (no limit: 30 s for DRIVER_OK, a driver must not hold the device forever).
    timeout = opening.timeout if opening.timeout is not None else 30.0
    if role == "device":
        shared = SharedFile(path, layout.size, create=True)
        server = None
        try:
            link = ShmLink("device", shared.memory, layout, kick=kick, shared=shared,
                           timeout=timeout, spin=spin, where=path,
                           channel=KickChannel() if kick == "poll" else None)
            if kick != "poll":
                server = KickServer(sock_path)
                link._server = server
        except BaseException:
            shared.close(unlink=shared.created)
            raise
        return link
    # Driver: connect first (the device writes the table before it listens), then map.
    chan = KickChannel() if kick == "poll" else connect(sock_path, kick, opening)
    try:
        shared = _open_existing(path, layout.size, timeout if kick == "poll" else 1.0)
        link = ShmLink("driver", shared.memory, layout, kick=kick, channel=chan,
                       shared=shared, timeout=timeout, spin=spin, where=path)
        try:
            if kick == "poll":
                _wait_table(link, timeout)
            link.driver_handshake()
        except BaseException:
            link._channel = None
            link.close()
            raise
    except BaseException:
        chan.close()
        raise
    return link


def _open_existing(path: str, size: int, timeout: float) -> SharedFile:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return SharedFile(path, size, create=False)
        except NotAvailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _wait_table(link: ShmLink, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            link._read_table()
            return
        except ProtocolError:
            if time.monotonic() > deadline:
                raise RpmsgTimeoutError(f"no resource table in {link.where} within "
                                        f"{timeout} s") from None
            time.sleep(0.01)


def pair(layout: ShmLayout | None = None, *, spin: float = 50e-6,
         memory: bytearray | None = None) -> tuple[ShmLink, ShmLink]:
    """A (driver, device) pair over in-process memory with socketpair kicks (for tests).

    The device's table is written and the driver's handshake done before this returns.
    """
    layout = layout or ShmLayout.openamp()
    mem = FlatMemory(memory if memory is not None else bytearray(layout.size))
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    device = ShmLink("device", mem, layout, channel=SocketKick(a), spin=spin)
    driver = ShmLink("driver", mem, layout, channel=SocketKick(b), spin=spin)
    driver.driver_handshake()
    return driver, device


TRANSPORT = Transport(
    "shm", "virtio rings in shared memory between two processes (OpenAMP-compatible)",
    configure)
