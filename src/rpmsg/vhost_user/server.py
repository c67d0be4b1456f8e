"""The thin socket driver of the vhost-user back-end: listen, accept, read, map, notify.

:class:`VhostUserServer` listens on a UNIX socket and serves one front-end at a time from one
thread. It feeds received bytes and ``SCM_RIGHTS`` descriptors to the sans-IO
:class:`~rpmsg.vhost_user.backend.VhostUserBackend`, carries out its events (replies, mmap of
the memory table, kick/call descriptors) and tells a :class:`SessionHandler` when to start and
stop the virtqueues and when the front-end kicked. A front-end that breaks the protocol, or
goes away, is dropped and the server accepts the next one; the thread never dies silently.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from rpmsg.errors import ProtocolError, TransportBrokenError
from rpmsg.transport import Deadline
from rpmsg.vhost_user.backend import (
    DEFAULT_FEATURES,
    DEFAULT_PROTOCOL_FEATURES,
    BackendReqFd,
    Event,
    MemoryTable,
    QueueConfig,
    QueueFd,
    Reply,
    Start,
    Stop,
    VhostUserBackend,
    VringBaseWanted,
)
from rpmsg.vhost_user.memory import GuestMemory
from rpmsg.vhost_user.messages import MessageReader, VhostUserError, close_fds
from rpmsg.virtio.shm_files import DEFAULT_PERM, listen_socket, unlink_if_ours
from rpmsg.wire.vhost_user import VHOST_USER_HEADER, VHOST_USER_MAX_REGIONS

log = logging.getLogger("rpmsg.vhost_user")

Notify = Callable[[int], None]
#: One notification: an 8-byte counter increment (eventfd semantics; any write raises the IRQ).
_ONE = (1).to_bytes(8, "little")
#: Reads (header or payload) per wake-up before kicks and drop requests get a turn.
_READS_PER_WAKEUP = 64
#: How long a reply may wait for the front-end to read.
REPLY_TIMEOUT = 1.0
#: close() budget when the caller gives none.
CLOSE_TIMEOUT = 5.0


class SessionHandler(Protocol):
    """What the server reports to: the virtio device behind the socket."""

    def session_start(self, memory: GuestMemory, queues: tuple[QueueConfig, ...],
                      features: int, notify: Notify) -> None:
        """All queues are configured and enabled; may raise ProtocolError (drops the peer)."""

    def session_stop(self, reason: str) -> dict[int, int]:
        """Stop using the queues; return each queue's next avail index."""

    def session_kick(self, index: int) -> None:
        """The front-end kicked queue ``index``."""

    def session_idle(self) -> None:
        """Called about every ``poll_interval`` seconds while a front-end is connected."""

    def session_closed(self, reason: str) -> None:
        """The front-end went away (or was dropped); the server accepts the next one."""

    def server_failed(self, error: Exception) -> None:
        """The listening socket failed; the server thread has ended."""


@dataclass
class _Session:
    conn: socket.socket
    backend: VhostUserBackend
    reader: MessageReader = field(default_factory=MessageReader)
    memory: GuestMemory | None = None
    kick_fds: dict[int, int] = field(default_factory=dict)
    polled: set[int] = field(default_factory=set)
    call_fds: dict[int, int] = field(default_factory=dict)
    other_fds: dict[tuple[str, int], int] = field(default_factory=dict)
    bases: dict[int, int] = field(default_factory=dict)
    started: bool = False
    closed: bool = False
    call_lock: threading.Lock = field(default_factory=threading.Lock)


class VhostUserServer:
    """Serve a vhost-user back-end on the UNIX socket ``path``, one front-end at a time.

    The socket is bound and listening when the constructor returns (a front-end may connect
    at once); :meth:`start` starts the serving thread; :meth:`close` stops it, drops the
    front-end and unlinks the socket path.
    """

    def __init__(self, path: str, handler: SessionHandler, *,
                 features: int = DEFAULT_FEATURES,
                 protocol_features: int = DEFAULT_PROTOCOL_FEATURES,
                 poll_interval: float = 0.05, perm: int = DEFAULT_PERM) -> None:
        self.path = path
        self.handler = handler
        self.features = features
        self.protocol_features = protocol_features
        self.poll_interval = poll_interval
        self.counters: dict[str, int] = {
            "connections": 0, "protocol_errors": 0,
            "requests": 0, "kicks": 0, "calls": 0, "calls_coalesced": 0,
            "call_errors": 0, "unexpected_errors": 0,
        }
        self.last_error: str | None = None
        self._session: _Session | None = None
        self._drop_reason: str | None = None
        self._closing = False
        self._released = False
        #: Who releases: close() after joining the thread, or the thread as it ends if
        #: close() gave up waiting for it (decided under _release_lock).
        self._release_lock = threading.Lock()
        self._thread_done = False
        self._abandoned = False
        self._wake_closed = False
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            self._listener, self._ident = listen_socket(path, perm, "vhost-user socket")
        except BaseException:
            os.close(self._wake_r)
            os.close(self._wake_w)
            raise

    # Public ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._session is not None

    def start(self) -> None:
        """Start serving in a background thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"rpmsg-vhost-user:{self.path}")
        self._thread.start()

    def drop(self, reason: str) -> None:
        """Ask the serving thread to drop the current front-end (from any thread)."""
        self._drop_reason = reason
        self._wake()

    def _take_drop_reason(self) -> str | None:
        reason, self._drop_reason = self._drop_reason, None
        return reason

    def close(self, timeout: float | None = None) -> None:
        """Stop the thread, drop the front-end, close the socket and unlink its path.

        Returns within ``timeout`` (default 5 s); a thread still busy then (in a handler
        callback) releases the session and the socket itself when it ends.
        """
        if self._closing:
            return
        budget = Deadline(CLOSE_TIMEOUT if timeout is None else timeout)
        self._closing = True
        self._wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(budget.remaining())
        with self._release_lock:
            if thread is not None and not self._thread_done:
                self._abandoned = True
                if thread is not threading.current_thread():
                    log.warning("vhost-user server thread on %s is still busy; it releases "
                                "the socket when it ends", self.path)
                return
        self._release_all()

    def _release_all(self) -> None:
        """Release the session and the socket, once (by close() or the abandoned thread)."""
        if self._released:
            return
        self._released = True
        self._teardown("back-end closed")
        self._listener.close()
        unlink_if_ours(self.path, self._ident)
        with self._release_lock:
            self._wake_closed = True
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def stats(self) -> dict[str, int]:
        return dict(self.counters)

    def _wake(self) -> None:
        with self._release_lock, contextlib.suppress(OSError):
            if not self._wake_closed:  # never write to a closed (maybe reused) number
                os.write(self._wake_w, b"x")

    # Thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._closing:
                conn = self._accept()
                if conn is None:
                    continue
                self._serve(conn)
        except Exception as exc:  # the listener failed: report, never die silently
            if not self._closing:
                log.exception("vhost-user server on %s failed", self.path)
                self.counters["unexpected_errors"] += 1
                self._teardown(f"back-end failed: {exc}")
                self.handler.server_failed(
                    TransportBrokenError(f"vhost-user server on {self.path} failed: {exc}"))
        finally:
            with self._release_lock:
                self._thread_done = True
                abandoned = self._abandoned
            if abandoned:
                self._release_all()

    def _accept(self) -> socket.socket | None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ, "listen")
            sel.register(self._wake_r, selectors.EVENT_READ, "wake")
            for key, _ in sel.select():
                if key.data == "wake":
                    self._drain_wake()
            if self._closing:
                return None
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return None
            conn.set_inheritable(False)
            conn.setblocking(False)
            return conn

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._wake_r, 4096):
                pass

    def _serve(self, conn: socket.socket) -> None:
        self.counters["connections"] += 1
        self._drop_reason = None
        session = _Session(conn, VhostUserBackend(self.features, self.protocol_features))
        self._session = session
        reason = "front-end closed the connection"
        sel = selectors.DefaultSelector()
        sel.register(conn, selectors.EVENT_READ, ("conn", 0))
        sel.register(self._wake_r, selectors.EVENT_READ, ("wake", 0))
        registered: dict[int, int] = {}  # queue -> kick fd registered in sel
        log.info("vhost-user front-end connected on %s", self.path)
        try:
            while not self._closing:
                for index, fd in list(registered.items()):
                    if session.kick_fds.get(index) != fd:
                        sel.unregister(fd)
                        del registered[index]
                for index, fd in session.kick_fds.items():
                    if index not in registered:
                        sel.register(fd, selectors.EVENT_READ, ("kick", index))
                        registered[index] = fd
                for key, _ in sel.select(self.poll_interval):
                    kind, index = key.data
                    if kind == "conn":
                        if not self._receive(session):
                            return
                    elif kind == "kick":
                        self._read_kick(session, index)
                    else:
                        self._drain_wake()
                dropped = self._take_drop_reason()
                if dropped is not None:
                    reason = dropped
                    return
                if session.started:
                    for index in sorted(session.polled):
                        self.handler.session_kick(index)
                self.handler.session_idle()
        except (ProtocolError, OSError) as exc:
            self.counters["protocol_errors"] += 1
            reason = f"front-end dropped: {exc}"
            self.last_error = reason
            log.warning("vhost-user %s: %s", self.path, reason)
        except Exception as exc:
            self.counters["unexpected_errors"] += 1
            reason = f"front-end dropped after an internal error: {exc!r}"
            self.last_error = reason
            log.exception("vhost-user %s: internal error", self.path)
        finally:
            sel.close()
            self._teardown(reason)

    def _receive(self, session: _Session) -> bool:
        """Read the front-end's messages, the header (with its descriptors) then exactly the
        payload each, so descriptors are never given to another message; False at EOF."""
        reader = session.reader
        for _ in range(_READS_PER_WAKEUP):  # then let kicks and drop requests be seen too
            try:
                data, fds, flags, _addr = socket.recv_fds(
                    session.conn, reader.want(), VHOST_USER_MAX_REGIONS,
                    socket.MSG_CMSG_CLOEXEC | socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return True
            except ConnectionResetError:
                return False
            if flags & socket.MSG_CTRUNC:
                close_fds(fds)
                raise VhostUserError("front-end attached more descriptors than any message "
                                     f"carries ({VHOST_USER_MAX_REGIONS} at most)")
            if not data:
                close_fds(fds)
                if reader.want() != VHOST_USER_HEADER.size:
                    raise VhostUserError("front-end closed the connection in the middle of "
                                         "a message")
                return False
            for msg in reader.feed(data, fds):
                self.counters["requests"] += 1
                log.debug("vhost-user request %s flags %#x size %d fds %d", msg.name,
                          msg.flags, len(msg.payload), len(msg.fds))
                self._apply(session, session.backend.handle(msg))
        return True

    def _read_kick(self, session: _Session, index: int) -> None:
        fd = session.kick_fds.get(index)
        if fd is None:
            return
        try:
            data = os.read(fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        if not data:  # a pipe whose writer went away: poll that queue instead
            del session.kick_fds[index]
            close_fds([fd])
            session.polled.add(index)
            return
        self.counters["kicks"] += 1
        # Also before the queues start: the handler may take a kick as "the driver is ready".
        self.handler.session_kick(index)

    # Events ---------------------------------------------------------------------------

    def _apply(self, session: _Session, events: list[Event]) -> None:
        start: Start | None = None
        for ev in events:
            if isinstance(ev, Start):
                start = ev  # after the replies: the front-end may be waiting for an ack
            else:
                _EVENT_HANDLERS[type(ev)](self, session, ev)
        if start is not None:
            if session.memory is None:
                raise VhostUserError("queues enabled before a memory table was set")
            session.started = True
            session.bases = {}
            self.handler.session_start(session.memory, start.queues, start.features,
                                       self._notifier(session))

    def _on_reply(self, session: _Session, ev: Reply) -> None:
        _send_all(session.conn, ev.data)

    def _on_memory_table(self, session: _Session, ev: MemoryTable) -> None:
        if session.memory is not None:
            session.memory.close()
            session.memory = None
        session.memory = GuestMemory.map_regions(ev.regions)

    def _on_backend_req(self, session: _Session, ev: BackendReqFd) -> None:
        old = session.other_fds.pop(("backend-req", 0), None)
        if old is not None:
            close_fds([old])
        session.other_fds[("backend-req", 0)] = ev.fd

    def _on_stop(self, session: _Session, ev: Stop) -> None:
        if session.started:
            session.started = False
            session.bases = self.handler.session_stop(ev.reason)

    def _on_vring_base(self, session: _Session, ev: VringBaseWanted) -> None:
        base = session.bases.get(ev.index, session.backend.queues[ev.index].base)
        _send_all(session.conn, session.backend.vring_base_reply(ev.index, base).data)

    def _set_fd(self, session: _Session, ev: QueueFd) -> None:
        if ev.fd is not None:
            os.set_blocking(ev.fd, False)
        if ev.kind == "kick":
            old = session.kick_fds.pop(ev.index, None)
            session.polled.discard(ev.index)
            if ev.fd is None:
                session.polled.add(ev.index)
            else:
                session.kick_fds[ev.index] = ev.fd
        elif ev.kind == "call":
            with session.call_lock:
                old = session.call_fds.pop(ev.index, None)
                if ev.fd is not None:
                    session.call_fds[ev.index] = ev.fd
        else:
            old = session.other_fds.pop((ev.kind, ev.index), None)
            if ev.fd is not None:
                session.other_fds[(ev.kind, ev.index)] = ev.fd
        if old is not None:
            close_fds([old])

    def _notifier(self, session: _Session) -> Notify:
        counters = self.counters

        def notify(index: int) -> None:
            """Interrupt the front-end for queue ``index`` (write its call descriptor)."""
            with session.call_lock:
                fd = session.call_fds.get(index)
                if fd is None or session.closed:
                    return
                try:
                    os.write(fd, _ONE)
                    counters["calls"] += 1
                except BlockingIOError:
                    counters["calls_coalesced"] += 1  # unread notifications are pending
                except OSError as exc:
                    counters["call_errors"] += 1
                    if exc.errno not in (errno.EPIPE, errno.ECONNRESET):
                        log.warning("vhost-user call fd of queue %d: %s", index, exc)

        return notify

    def _teardown(self, reason: str) -> None:
        session = self._session
        if session is None or session.closed:
            return
        self._session = None
        try:
            if session.started:
                session.started = False
                self.handler.session_stop(reason)
        finally:
            with session.call_lock:
                session.closed = True
                close_fds(session.call_fds.values())
                session.call_fds.clear()
            close_fds(session.kick_fds.values())
            session.kick_fds.clear()
            # Closing the back-end request channel is what tells UML we went away.
            close_fds(session.other_fds.values())
            session.other_fds.clear()
            session.reader.close()
            if session.memory is not None:
                session.memory.close()
                session.memory = None
            session.conn.close()
            log.info("vhost-user front-end on %s gone: %s", self.path, reason)
            self.handler.session_closed(reason)


def _send_all(conn: socket.socket, data: bytes) -> None:
    """Send a reply on the non-blocking connection; a front-end that does not read its
    replies within REPLY_TIMEOUT is dropped instead of stalling the server thread."""
    deadline = time.monotonic() + REPLY_TIMEOUT
    view = memoryview(data)
    while view:
        try:
            sent = conn.send(view)
        except (BlockingIOError, InterruptedError):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [conn], [], left)[1]:
                raise VhostUserError(f"front-end read no reply for {REPLY_TIMEOUT} s") from None
            continue
        view = view[sent:]


#: What the server does with each back-end event (Start is handled last, in _apply).
_EVENT_HANDLERS: dict[type, Callable[[VhostUserServer, _Session, Any], None]] = {
    Reply: VhostUserServer._on_reply,
    MemoryTable: VhostUserServer._on_memory_table,
    QueueFd: VhostUserServer._set_fd,
    BackendReqFd: VhostUserServer._on_backend_req,
    Stop: VhostUserServer._on_stop,
    VringBaseWanted: VhostUserServer._on_vring_base,
}
