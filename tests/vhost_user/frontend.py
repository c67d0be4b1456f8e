"""A vhost-user front-end in Python that behaves like UML 6.12, for tests of the back-end.

It connects to the back-end's socket, negotiates like ``arch/um/drivers/virtio_uml.c`` (same
request order, REPLY_ACK when offered), shares a memfd as guest memory, and drives the two
rings as the virtio driver with :class:`rpmsg.virtio.driver.DriverEngine`, so a host-side
:class:`rpmsg.Device` can talk to the back-end's Device through real shared memory and real
kick/call descriptors.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import select
import socket
import threading
from collections.abc import Sequence

from rpmsg.core.policy import LINUX
from rpmsg.device import Device
from rpmsg.errors import RemoteDisconnectedError
from rpmsg.transport import Link, LinkSink
from rpmsg.vhost_user.memory import memfd_region
from rpmsg.vhost_user.messages import encode_message
from rpmsg.virtio.driver import DriverEngine
from rpmsg.virtio.memory import FlatMemory
from rpmsg.virtio.vring import QueueAddrs
from rpmsg.wire.layout import Buffer
from rpmsg.wire.vhost_user import (
    VHOST_USER_FLAG_NEED_REPLY,
    VHOST_USER_HEADER,
    VHOST_USER_MEM_REGION,
    VHOST_USER_MEMORY,
    VHOST_USER_U64,
    VHOST_USER_VERSION,
    VHOST_USER_VRING_ADDR,
    VHOST_USER_VRING_STATE,
    ProtocolFeature,
    Request,
)
from rpmsg.wire.virtio import VringGeometry

GUEST_BASE = 0x4000_0000
MEM_SIZE = 1 << 20
NUM = 64
BUF = 512


class FrontendLink(Link):
    """The driver side as a Link, so a normal Device (Linux policy) runs on top of it."""

    role = "driver"
    default_policy = LINUX

    def __init__(self, engine: DriverEngine) -> None:
        self.engine = engine

    def start(self, sink: LinkSink) -> None:
        self.engine.attach(sink)

    def send(self, src: int, dst: int, payload: Buffer, timeout: float | None) -> None:
        self.engine.send(src, dst, payload, timeout)

    def close(self) -> None:
        pass


class FakeFrontend:
    """One connection to a vhost-user back-end, acting as UML's virtio_uml."""

    def __init__(self, path: str, *, num: int = NUM, connect_timeout: float = 5.0,
                 memfd: int | None = None) -> None:
        self.path = path
        self.num = num
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(connect_timeout)
        self.sock.connect(path)
        #: The guest memory file (a sealable memfd, as QEMU shares, unless one is given).
        self.memfd = memfd if memfd is not None else memfd_region(MEM_SIZE)
        # Map what the file holds (a test may hand over one shorter than it claims).
        self.map = mmap.mmap(self.memfd, min(MEM_SIZE, os.fstat(self.memfd).st_size))
        self.memory = FlatMemory(self.map, base=GUEST_BASE)
        self.protocol_features = 0
        self.kick_fds = [os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC) for _ in range(2)]
        self.call_pairs = [socket.socketpair() for _ in range(2)]
        self.req_pair = socket.socketpair()
        geo = VringGeometry(num, 4096)
        self.queues = [QueueAddrs.from_layout(GUEST_BASE + i * 0x4000, num, 4096)
                       for i in range(2)]
        assert geo.size <= 0x4000
        self.rx_buffers = [GUEST_BASE + 0x10000 + i * BUF for i in range(num)]
        self.tx_buffers = [GUEST_BASE + 0x10000 + (num + i) * BUF for i in range(num)]
        self.engine: DriverEngine | None = None
        self.device: Device | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # Raw protocol ---------------------------------------------------------------------

    def send_raw(self, data: bytes, fds: Sequence[int] = ()) -> None:
        if fds:
            socket.send_fds(self.sock, [data], list(fds))
        else:
            self.sock.sendall(data)

    def recv_exact(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionResetError("back-end closed the connection")
            out += chunk
        return out

    def recv_reply(self) -> tuple[int, int, bytes]:
        request, flags, size = VHOST_USER_HEADER.unpack(self.recv_exact(VHOST_USER_HEADER.size))
        return request, flags, self.recv_exact(size)

    def request(self, req: int, payload: bytes = b"", fds: Sequence[int] = (),
                reply: bool = False) -> bytes | None:
        """Send one request like UML does; return the reply payload if one is expected."""
        ack = not reply and bool(self.protocol_features >> ProtocolFeature.REPLY_ACK & 1)
        flags = VHOST_USER_VERSION | (VHOST_USER_FLAG_NEED_REPLY if ack else 0)
        self.send_raw(encode_message(req, payload, flags), fds)
        if reply or ack:
            rreq, rflags, body = self.recv_reply()
            assert rreq == req and rflags == 0x5, (rreq, rflags)
            if ack:
                assert body == bytes(8), body
                return None
            return body
        return None

    def u64(self, req: int) -> int:
        body = self.request(req, reply=True)
        assert body is not None
        return int(VHOST_USER_U64.unpack(body)[0])

    # UML's sequence -------------------------------------------------------------------

    def negotiate(self) -> int:
        """SET_OWNER .. SET_MEM_TABLE, as virtio_uml probes; returns the device features."""
        self.request(Request.SET_OWNER)
        features = self.u64(Request.GET_FEATURES)
        offered = self.u64(Request.GET_PROTOCOL_FEATURES)
        wanted = offered & ((1 << ProtocolFeature.BACKEND_REQ) | (1 << ProtocolFeature.REPLY_ACK)
                            | (1 << ProtocolFeature.CONFIG))
        self.protocol_features = wanted
        self.request(Request.SET_PROTOCOL_FEATURES, VHOST_USER_U64.pack(wanted))
        if wanted >> ProtocolFeature.BACKEND_REQ & 1:
            self.request(Request.SET_BACKEND_REQ_FD, fds=[self.req_pair[1].fileno()])
            self.req_pair[1].close()  # as UML: only the back-end holds the other end now
        self.request(Request.SET_FEATURES, VHOST_USER_U64.pack(features))
        table = VHOST_USER_MEMORY.pack(1, 0) + VHOST_USER_MEM_REGION.pack(
            GUEST_BASE, MEM_SIZE, GUEST_BASE, 0) + bytes(VHOST_USER_MEM_REGION.size)
        self.request(Request.SET_MEM_TABLE, table, fds=[self.memfd])
        return features

    def setup_queues(self) -> None:
        for i, q in enumerate(self.queues):
            self.request(Request.SET_VRING_CALL, VHOST_USER_U64.pack(i),
                         fds=[self.call_pairs[i][1].fileno()])
            self.call_pairs[i][1].close()
            self.request(Request.SET_VRING_NUM, VHOST_USER_VRING_STATE.pack(i, self.num))
            self.request(Request.SET_VRING_BASE, VHOST_USER_VRING_STATE.pack(i, 0))
            self.request(Request.SET_VRING_ADDR, VHOST_USER_VRING_ADDR.pack(
                i, 0, q.desc, q.used, q.avail, 0xFFFFFFFFFFFFFFFF))
        for i in range(2):
            self.request(Request.SET_VRING_KICK, VHOST_USER_U64.pack(i), fds=[self.kick_fds[i]])
            self.request(Request.SET_VRING_ENABLE, VHOST_USER_VRING_STATE.pack(i, 1))

    def kick(self, index: int) -> None:
        os.eventfd_write(self.kick_fds[index], 1)

    def start_driver(self) -> Device:
        """Queue the RX buffers, 'set DRIVER_OK' and kick vq0; return the host-side Device."""
        engine = DriverEngine(self.memory, self.kick, buffer_size=BUF)
        self.engine = engine
        self.device = Device(FrontendLink(engine), policy=LINUX)
        engine.start(self.queues, self.rx_buffers, self.tx_buffers)
        self._thread = threading.Thread(target=self._interrupts, daemon=True,
                                        name="fake-frontend-irq")
        self._thread.start()
        self.kick(0)
        return self.device

    def boot(self) -> Device:
        self.negotiate()
        self.setup_queues()
        return self.start_driver()

    def _interrupts(self) -> None:
        fds = [p[0] for p in self.call_pairs]
        while not self._stop.is_set():
            ready, _, _ = select.select(fds, [], [], 0.05)
            for s in ready:
                with contextlib.suppress(OSError):
                    s.recv(4096)
            if ready and self.engine is not None:
                self.engine.kick()

    def backend_gone(self, timeout: float = 5.0) -> bool:
        """Whether the back-end closed its end of the backend-request channel (UML's cue)."""
        r, _, _ = select.select([self.req_pair[0]], [], [], timeout)
        return bool(r) and self.req_pair[0].recv(1) == b""

    def shutdown(self) -> None:
        """Disable the queues and ask for the features, as UML does when it stops."""
        for i in (1, 0):
            self.request(Request.SET_VRING_ENABLE, VHOST_USER_VRING_STATE.pack(i, 0))
        self.u64(Request.GET_FEATURES)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.engine is not None:
            with contextlib.suppress(RemoteDisconnectedError):
                self.engine.stop("front-end closed")
        if self.device is not None:
            self.device.close()
        self.sock.close()
        self.memory.release()
        with contextlib.suppress(BufferError):
            self.map.close()
        for fd in [self.memfd, *self.kick_fds]:
            with contextlib.suppress(OSError):
                os.close(fd)
        for a, b in [*self.call_pairs, self.req_pair]:
            a.close()
            b.close()

    def __enter__(self) -> FakeFrontend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

