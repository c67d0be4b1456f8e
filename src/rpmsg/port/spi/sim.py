"""A simulated SPI bus with its MREQ/SREQ lines between two processes, over a UNIX socket.

The simulation keeps the hardware's rules so the protocol is exercised as on a board: only the
master clocks, and only once per SREQ rising edge (or when SREQ is already high at boot); the
slave must have queued its TX buffer before raising SREQ; if the master clocks a slave that
queued nothing, the slave loses the master's data and the master reads zeros (an underrun), as
with a real SPI slave controller. Edges may arrive during a transfer. A transfer takes
``buflen * 8 / hz`` seconds of simulated clock at least.

The first end to arrive owns the bus: it holds the owner lock of ``PATH.lock``
(:mod:`rpmsg.port.spi.buslock`, which also keeps a second master or slave out) and listens on
``PATH``; the other connects. When the peer goes away its line reads low and the bus waits
for it to come back; if the owner went away, the survivor takes the bus over. The socket is
created ``perm`` (0600 unless widened), a path that is not our socket is never removed, and
the last end to close leaves neither the socket nor the lock file behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import threading
import time
from typing import Any

from rpmsg.errors import AccessDeniedError, InvalidArgumentError, TransportBrokenError
from rpmsg.port.spi.buslock import BusLock
from rpmsg.port.spi.phys import BusViolationError, PhysEvents, SpiPhys
from rpmsg.port.spi.proto import Role
from rpmsg.wire.layout import Buffer

log = logging.getLogger("rpmsg.port.spi")

# Bus messages: one type byte, then a fixed-size body.
_HELLO = b"H"  # role byte (M/S) + buflen (2 bytes LE)
_LINE = b"L"  # level byte 0/1 of the sender's request line
_XFER = b"X"  # master → slave: buflen bytes clocked out on MOSI
_REPLY = b"R"  # slave → master: buflen bytes shifted out on MISO in the same transfer
_RETRY = 0.02
#: Seconds an accepted connection has to say hello: one that says nothing would otherwise
#: hold the bus, and the real peer waiting behind it would never be served.
HELLO_TIMEOUT = 5.0


class _PeerGone(Exception):
    """The other end of the bus closed its connection."""


class _BadPeer(_PeerGone):
    """Whatever connected does not speak the bus protocol: dropped, the bus waits on."""


class _Mismatch(_BadPeer):
    """The peer speaks the bus protocol but is set up differently (same role, another
    buflen): dropped and named, and the bus waits for a peer set up to match; one
    misconfigured process must not break the link for the one that comes next."""


#: Pause before connecting again after a peer that does not match.
_MISMATCH_PAUSE = 0.5


class SimBus(SpiPhys):
    """One end (``master`` or ``slave``) of a simulated SPI bus at ``path``.

    With ``sock`` (one end of :func:`socket.socketpair`) the bus is that connection only and
    ``path`` is just a label: for in-process tests, no restart possible. Otherwise the role
    is claimed at once (:class:`~rpmsg.errors.AlreadyOpenError` if the bus has that role
    already) and a path that exists but is not a socket is refused
    (:class:`~rpmsg.errors.AccessDeniedError`).
    """

    def __init__(self, path: str, role: Role, buflen: int, *, hz: int = 10_000_000,
                 perm: int = 0o600, sock: socket.socket | None = None) -> None:
        if role not in ("master", "slave"):
            raise InvalidArgumentError(f"role must be master or slave, not {role!r}")
        if not 0 <= perm <= 0o777 or perm & 0o600 != 0o600:
            raise InvalidArgumentError(f"perm {perm:#o} must be in 0o600..0o777 and keep "
                                       "the owner's read and write bits")
        self.path = path
        self.role = role
        self.buflen = buflen
        self.hz = hz
        self.perm = perm
        self._fixed = sock
        self._buslock: BusLock | None = None
        self._sock_id: tuple[int, int] | None = None  # (dev, ino) of the socket we bound
        if sock is None:
            self._check_socket_path()
            self._buslock = BusLock(path, role, perm)
        self._lock = threading.Condition()
        self._send_lock = threading.Lock()
        self._conn: socket.socket | None = None
        self._listener: socket.socket | None = None
        self._events: PhysEvents | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._my_level = False
        self._peer_level = False
        self._permit = False  # master: an SREQ edge allows one transfer
        self._permit_generation = 0  # the connection whose slave raised that edge
        self._queued: bytes | None = None  # slave: the buffer armed in the controller
        self._reply: bytes | None = None  # master: the slave's answer to the transfer
        self._waiting_reply = False
        self._generation = 0
        self._stats = {"transfers": 0, "edges": 0, "underruns": 0, "no_peer_transfers": 0,
                       "peer_connects": 0, "peer_losses": 0, "bus_ns": 0, "bad_peers": 0}
        #: Why the last peer was dropped (for ``seen()`` and timeout errors).
        self.last_error: str | None = None

    @classmethod
    def pair(cls, buflen: int, *, hz: int = 10_000_000) -> tuple[SimBus, SimBus]:
        """A master end and a slave end connected by a socket pair (in-process tests)."""
        a, b = socket.socketpair()
        return (cls("socketpair", "master", buflen, hz=hz, sock=a),
                cls("socketpair", "slave", buflen, hz=hz, sock=b))

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def transfer_seconds(self) -> float:
        """Simulated clock time of one transfer (0 if the clock is unlimited)."""
        return self.buflen * 8 / self.hz if self.hz else 0.0

    def describe(self) -> dict[str, Any]:
        return {"phys": "spisim", "path": self.path, "hz": self.hz,
                "bus_owner": self._listener is not None, "last_error": self.last_error}

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._stats)

    # Lifecycle -----------------------------------------------------------------------------

    def start(self, events: PhysEvents) -> None:
        self._events = events
        self._thread = threading.Thread(target=self._run, name=f"rpmsg-spisim-{self.role}",
                                        daemon=True)
        self._thread.start()

    def close(self, timeout: float = 1.0) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            conn = self._conn
            self._lock.notify_all()
        for s in (conn, self._listener, self._fixed):
            if s is not None:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._sock_id is not None and self._is_our_socket():
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        if self._buslock is not None:
            self._buslock.release()
            self._buslock = None

    # Paths ---------------------------------------------------------------------------------

    def _check_socket_path(self) -> None:
        """Refuse a bus path that exists and is not a socket (never remove such a file)."""
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise AccessDeniedError(f"spisim:{self.path}: cannot inspect the path: {exc}") \
                from None
        if not stat.S_ISSOCK(st.st_mode):
            raise AccessDeniedError(
                f"spisim:{self.path} exists and is not a socket; refusing to replace it "
                "(remove it or choose another path)")

    def _is_our_socket(self) -> bool:
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except OSError:
            return False
        return stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) == self._sock_id

    # Connection management (bus thread) -----------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._closed:
                conn = self._establish()
                if conn is None:
                    return
                try:
                    self._serve(conn)
                except _BadPeer as exc:
                    if self._fixed is not None:
                        raise TransportBrokenError(str(exc)) from None
                    with self._lock:
                        self._stats["bad_peers"] += 1
                        said, self.last_error = self.last_error, str(exc)
                    if str(exc) != said:  # once per reason, not at every reconnection
                        log.warning("%s; connection dropped, waiting for %s", exc,
                                    "a peer set up to match" if isinstance(exc, _Mismatch)
                                    else "a real peer")
                    if isinstance(exc, _Mismatch):
                        with self._lock:  # do not hammer the peer; close() cuts this short
                            if not self._closed:
                                self._lock.wait(_MISMATCH_PAUSE)
                except (_PeerGone, OSError):
                    pass
                finally:
                    self._peer_lost(conn)
                if self._fixed is not None:
                    return
        except Exception as exc:  # reported, never silent
            if not self._closed and self._events is not None:
                self._events.phys_error(exc)

    def _establish(self) -> socket.socket | None:
        if self._fixed is not None:
            return self._fixed
        while not self._closed:
            if self._listener is None and self._try_own():
                continue
            if self._listener is not None:
                try:
                    conn, _ = self._listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    if self.closed:
                        return None
                    raise
                conn.settimeout(HELLO_TIMEOUT)  # until its hello (see _serve)
                return conn
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.path)
                return s
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                time.sleep(_RETRY)
        return None

    def _try_own(self) -> bool:
        """Take the bus over if no other end owns it; True if this end now listens."""
        assert self._buslock is not None
        if not self._buslock.try_own():
            return False
        # We hold the owner lock: a socket left at the path is a dead owner's, removed only
        # if it is a socket of ours (another user's, or any other file, is refused).
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None:
            if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.geteuid():
                raise AccessDeniedError(
                    f"spisim:{self.path} is not a socket of ours; refusing to replace it "
                    "(remove it or choose another path)")
            os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            os.fchmod(listener.fileno(), self.perm)  # the mode bind gives the socket file
            listener.bind(self.path)
            st = os.stat(self.path, follow_symlinks=False)
            self._sock_id = (st.st_dev, st.st_ino)
            if self.perm & 0o077:
                os.chmod(self.path, self.perm)  # widen on purpose whatever the umask did
            listener.listen(1)
            listener.settimeout(0.2)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        return True

    def _serve(self, conn: socket.socket) -> None:
        rfile = conn.makefile("rb", buffering=1 << 16)
        try:
            me = b"M" if self.role == "master" else b"S"
            # Hello and our current level go out first and in this order: a concurrent
            # set_request() sees the connection only once both are sent.
            with self._send_lock:
                with self._lock:
                    level = self._my_level
                conn.sendall(_HELLO + me + self.buflen.to_bytes(2, "little")
                             + _LINE + (b"\x01" if level else b"\x00"))
                with self._lock:
                    self._conn = conn
                    self._generation += 1
                    self._stats["peer_connects"] += 1
                    if self._my_level != level:
                        conn.sendall(_LINE + (b"\x01" if self._my_level else b"\x00"))
            try:
                hello = self._read(rfile, 4)
            except TimeoutError:
                raise _BadPeer(f"spisim:{self.path}: what connected said nothing within "
                               f"{HELLO_TIMEOUT} s") from None
            conn.settimeout(None)
            if hello[:1] != _HELLO or hello[1:2] not in (b"M", b"S"):
                raise _BadPeer(f"spisim:{self.path}: what connected is not a simulated bus "
                               f"(it sent {hello!r})")
            peer_buflen = int.from_bytes(hello[2:4], "little")
            if hello[1:2] == me:
                other = "slave" if self.role == "master" else "master"
                raise _Mismatch(
                    f"spisim:{self.path}: both ends are {self.role}s; one must be "
                    f"role={other}")
            if peer_buflen != self.buflen:
                raise _Mismatch(
                    f"spisim:{self.path}: buflen {self.buflen} here, {peer_buflen} at the peer; "
                    "both chips must use the same buffer length")
            while True:
                kind = self._read(rfile, 1)
                if kind == _LINE:
                    self._on_line(self._read(rfile, 1) != b"\x00")
                elif kind == _XFER and self.role == "slave":
                    self._on_xfer(conn, self._read(rfile, self.buflen))
                elif kind == _REPLY and self.role == "master":
                    data = self._read(rfile, self.buflen)
                    with self._lock:
                        self._reply = data
                        self._lock.notify_all()
                else:
                    raise _BadPeer(
                        f"spisim:{self.path}: unexpected bus message {kind!r} at the {self.role}")
        finally:
            rfile.close()

    @staticmethod
    def _read(rfile: Any, n: int) -> bytes:
        data: bytes = rfile.read(n)
        if len(data) != n:
            raise _PeerGone()
        return data

    def _send(self, conn: socket.socket, data: bytes) -> None:
        with self._send_lock:
            conn.sendall(data)

    def _peer_lost(self, conn: socket.socket) -> None:
        with self._lock:
            if self._conn is conn:
                self._conn = None
            self._peer_level = False
            self._stats["peer_losses"] += 1
            self._lock.notify_all()
        with contextlib.suppress(OSError):
            conn.close()

    # Line and transfer events (bus thread) ----------------------------------------------------

    def _on_line(self, level: bool) -> None:
        with self._lock:
            rising = level and not self._peer_level
            self._peer_level = level
            if rising:
                self._stats["edges"] += 1
                if self.role == "master":
                    self._permit = True
                    self._permit_generation = self._generation
        if rising and self._events is not None:
            self._events.peer_edge()

    def _on_xfer(self, conn: socket.socket, mosi: bytes) -> None:
        with self._lock:
            queued, self._queued = self._queued, None
            if queued is None:
                self._stats["underruns"] += 1
            else:
                self._stats["transfers"] += 1
        try:
            self._send(conn, _REPLY + (queued if queued is not None else bytes(self.buflen)))
        finally:
            # The master clocked the whole buffer: the transfer is complete for the slave
            # even if the master is gone before our answer reached it (its death must not
            # leave this side waiting for a completion that never comes, with SREQ high).
            if queued is not None and self._events is not None:
                self._events.transfer_done(mosi)

    # SpiPhys -------------------------------------------------------------------------------

    def set_request(self, active: bool) -> None:
        with self._send_lock:  # level changes reach the wire in the order they happen
            with self._lock:
                if active and self.role == "slave" and self._queued is None:
                    raise BusViolationError("slave raised SREQ without a queued TX buffer")
                changed = active != self._my_level
                self._my_level = active
                conn = self._conn
            if changed and conn is not None:
                with contextlib.suppress(OSError):
                    conn.sendall(_LINE + (b"\x01" if active else b"\x00"))

    def peer_active(self) -> bool:
        with self._lock:
            return self._peer_level

    def transfer(self, tx: Buffer) -> bytes:
        if self.role != "master":
            raise BusViolationError("only the master clocks the bus")
        data = bytes(tx)
        if len(data) != self.buflen:
            raise ValueError(f"transfer of {len(data)} bytes on a {self.buflen}-byte bus")
        start = time.monotonic()
        with self._lock:
            if not self._permit:
                raise BusViolationError("master clocked without an SREQ edge")
            self._permit = False
            conn = self._conn
            generation = self._generation
            if self._permit_generation != generation:
                conn = None  # that slave is gone: this clocks an empty bus (MISO reads 0)
            self._reply = None
        rx: bytes | None = None
        if conn is not None:
            try:
                self._send(conn, _XFER + data)
            except OSError:
                conn = None
        with self._lock:
            if conn is not None:
                while (self._reply is None and not self._closed and self._conn is conn
                       and self._generation == generation):
                    self._lock.wait(0.5)
                rx, self._reply = self._reply, None
            if rx is None:  # nobody there: MISO pulled down
                rx = bytes(self.buflen)
                self._stats["no_peer_transfers"] += 1
            else:
                self._stats["transfers"] += 1
            bus = self.transfer_seconds
            self._stats["bus_ns"] += int(bus * 1e9)
        rest = bus - (time.monotonic() - start)
        if rest > 0:
            time.sleep(rest)
        return rx

    def queue_tx(self, tx: Buffer) -> None:
        if self.role != "slave":
            raise BusViolationError("only the slave queues a buffer")
        data = bytes(tx)
        if len(data) != self.buflen:
            raise ValueError(f"queued {len(data)} bytes on a {self.buflen}-byte bus")
        with self._lock:
            self._queued = data

    def cancel_tx(self) -> None:
        with self._lock:
            self._queued = None
