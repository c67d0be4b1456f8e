"""Kick channels: how the two sides of a shared-memory virtio link interrupt each other.

The OpenAMP Linux machine's convention (spec §7.3): a UNIX stream socket, one byte per kick,
no queue id; any byte means "scan all rings" and kicks coalesce. The device is the server
(:class:`KickServer`: binds a path of its own, accepts drivers), the driver connects with
retries (:func:`connect`). With ``eventfd`` the socket only tells that the peer is gone and
kicks are writes to two eventfds passed over it (see :mod:`rpmsg.virtio.rendezvous`); with
``poll`` there is no channel at all and each side rescans the rings every few hundred µs.

Sockets are created with mode 0600 (``perm`` widens it), a path is only ever unlinked if it is
the socket this process bound (same inode), and a socket another user owns is refused.
"""

from __future__ import annotations

import os
import select
import socket
import stat
import time

from rpmsg.errors import AccessDeniedError, NotAvailableError, RemoteDisconnectedError
from rpmsg.registry import Opening, remote_command
from rpmsg.virtio.shm_files import (
    DEFAULT_PERM,
    check_owner,
    describe_pid,
    listen_socket,
    peer_credentials,
    unlink_if_ours,
    user_name,
)

#: Bytes read per wakeup; OpenAMP's libmetal reads up to 32 (kicks coalesce either way).
_READ_SIZE = 64
POLL_INTERVAL = 0.0005
#: :meth:`KickChannel.wait` results: the peer kicked; one of the extra descriptors is readable.
KICKED = 1
EXTRA = 2


class PeerGone(RemoteDisconnectedError):
    """The kick channel reached EOF: the other process went away."""


class Cancelled(Exception):
    """A wait was given up because this side is closing (internal)."""


class KickChannel:
    """One connected kick channel; :meth:`wait` also watches extra descriptors."""

    kind = "poll"

    def notify(self) -> None:
        """Interrupt the peer (a no-op when polling)."""

    def wait(self, timeout: float | None, extra: tuple[int, ...] | int = ()) -> int:
        """Block until kicked, an ``extra`` descriptor is readable or ``timeout`` passes.

        Returns :data:`KICKED`, :data:`EXTRA` or both (0: timed out). Raises
        :class:`PeerGone` when the peer closed its end.
        """
        fds = (extra,) if isinstance(extra, int) else extra
        poller = select.poll()
        for fd in fds:
            if fd >= 0:
                poller.register(fd, select.POLLIN)
        t = POLL_INTERVAL if timeout is None else min(timeout, POLL_INTERVAL)
        return EXTRA if poller.poll(t * 1000) else KICKED

    def close(self) -> None:
        """Release the channel's descriptors; idempotent."""


class SocketKick(KickChannel):
    """Kicks as single bytes on a connected UNIX stream socket (OpenAMP compatible)."""

    kind = "socket"

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self._kick_fds: tuple[int, ...] = (self.fd,)
        self._poller = select.poll()
        self._poller.register(self.fd, select.POLLIN)
        self._extra: tuple[int, ...] = ()
        self.sent = 0

    def notify(self) -> None:
        try:
            os.write(self.fd, b"\x01")
            self.sent += 1
        except BlockingIOError:
            pass  # the peer has unread kicks already; one more adds nothing
        except OSError as exc:
            raise PeerGone(f"kick socket: {exc.strerror}") from None

    def _drain(self, fd: int) -> None:
        try:
            data = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            raise PeerGone(f"kick socket: {exc.strerror}") from None
        if not data:
            raise PeerGone("the peer closed the kick socket")

    def _register(self, extra: tuple[int, ...]) -> None:
        if extra != self._extra:
            for fd in self._extra:
                if fd >= 0:
                    self._poller.unregister(fd)
            for fd in extra:
                if fd >= 0:
                    self._poller.register(fd, select.POLLIN)
            self._extra = extra

    def wait(self, timeout: float | None, extra: tuple[int, ...] | int = ()) -> int:
        self._register((extra,) if isinstance(extra, int) else extra)
        events = self._poller.poll(None if timeout is None else timeout * 1000)
        result = 0
        for fd, _ev in events:
            if fd in self._kick_fds:
                self._kicked(fd)
                result |= KICKED
            else:
                result |= EXTRA
        return result

    def _kicked(self, fd: int) -> None:
        self._drain(fd)

    def peer_gone(self) -> bool:
        """Whether the peer closed its end, looked at without consuming anything: True only
        when no byte is left before the end (pending kicks are read by :meth:`wait`)."""
        try:
            return self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True

    def close(self) -> None:
        if self.fd >= 0:
            self.fd = -1
            self.sock.close()


def is_eventfd(fd: int) -> bool:
    """Whether ``fd`` is an eventfd (a peer may pass anything over the socket)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[eventfd]"
    except OSError:
        return False


class EventfdKick(SocketKick):
    """Kicks as eventfd writes; the socket stays open only to notice the peer leaving."""

    kind = "eventfd"

    def __init__(self, sock: socket.socket, rx_fd: int, tx_fd: int) -> None:
        super().__init__(sock)
        self.rx_fd = rx_fd
        self.tx_fd = tx_fd
        os.set_blocking(rx_fd, False)
        self._kick_fds = (self.fd, rx_fd)
        self._poller.register(rx_fd, select.POLLIN)

    def notify(self) -> None:
        try:
            os.eventfd_write(self.tx_fd, 1)
        except BlockingIOError:
            return  # the counter is full: the peer has kicks to read already
        except OSError as exc:
            raise PeerGone(f"kick eventfd: {exc.strerror}") from None
        self.sent += 1

    def _kicked(self, fd: int) -> None:
        if fd == self.rx_fd:
            try:
                os.eventfd_read(self.rx_fd)
            except BlockingIOError:
                pass
            except OSError as exc:
                raise PeerGone(f"kick eventfd: {exc.strerror}") from None
        else:
            self._drain(fd)  # only EOF is expected here

    def close(self) -> None:
        if self.fd >= 0:
            super().close()
            os.close(self.rx_fd)
            os.close(self.tx_fd)


class KickServer:
    """The device's listening socket at ``path``, mode ``perm`` (0600 by default).

    A path that exists is taken over only if it is a stale socket of our own (nobody
    listens); a live one is :class:`~rpmsg.errors.AlreadyOpenError` naming the process, one of
    another user :class:`~rpmsg.errors.AccessDeniedError`, anything else
    :class:`~rpmsg.errors.NotAvailableError`. :meth:`close` unlinks the path only while it is
    still the socket this server bound.
    """

    def __init__(self, path: str, *, perm: int = DEFAULT_PERM) -> None:
        self.path = path
        self.perm = perm
        self._ino: tuple[int, int] | None = None
        self.sock = self._listen()

    def _listen(self) -> socket.socket:
        sock, self._ino = listen_socket(self.path, self.perm, "kick socket")
        return sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept(self, kind: str = "socket", timeout: float | None = 0.0,
               wake_fd: int = -1) -> SocketKick | None:
        """The next driver's channel, or None on timeout / ``wake_fd`` readable.

        ``kind`` is kept for callers of the first version; eventfd kicks are negotiated by
        the hello exchange now (:mod:`rpmsg.virtio.rendezvous`).
        """
        del kind
        if timeout != 0.0:
            poller = select.poll()
            poller.register(self.sock.fileno(), select.POLLIN)
            if wake_fd >= 0:
                poller.register(wake_fd, select.POLLIN)
            ready = {fd for fd, _ev in poller.poll(None if timeout is None else timeout * 1000)}
            if self.sock.fileno() not in ready:
                return None
        try:
            conn, _addr = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return None
        conn.set_inheritable(False)
        return SocketKick(conn)

    def close(self) -> None:
        """Close the socket and unlink its path if it is still ours. Idempotent."""
        if self.sock.fileno() < 0:
            return
        self.sock.close()
        unlink_if_ours(self.path, self._ino)


def connect(path: str, kind: str = "socket", opening: Opening | None = None, *,
            allow_foreign: bool = False, wake_fd: int = -1) -> SocketKick:
    """Connect to a device's kick socket, retrying within the open's deadline (like OpenAMP's
    client); after a second it says what it waits for.

    The socket must be owned by us (both the file and the listening process), unless
    ``allow_foreign``: otherwise another user could pose as the device. ``wake_fd`` readable
    gives up (:class:`Cancelled`). ``kind`` is kept for callers of the first version.
    """
    del kind
    opening = opening or Opening(path, None)
    hint = f"start one with `{remote_command(opening.url)}`"
    delay = 0.005
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            st = os.lstat(path)
            if not stat.S_ISSOCK(st.st_mode):
                raise NotAvailableError(f"{path} is not a socket; no virtio device listens "
                                        "there")
            check_owner(st, path, "kick socket", allow_foreign)
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            remaining = opening.remaining()
            if remaining is not None and remaining < delay:
                raise opening.timeout_error(
                    "virtio device", f"nothing listens on {path} ({exc.strerror}); "
                    f"{hint}") from None
            opening.waiting("a virtio device", hint)
            sleep(delay, wake_fd)
            delay = min(delay * 2, 0.1)
            continue
        except AccessDeniedError:
            sock.close()
            raise
        except PermissionError as exc:
            sock.close()
            raise AccessDeniedError(
                f"no permission to connect to the kick socket {path} ({exc.strerror}); its "
                "owner may widen it with perm=0660 or perm=0666") from None
        except OSError as exc:  # a file on the way where a directory should be, ...
            sock.close()
            raise NotAvailableError(f"cannot connect to the kick socket {path}: "
                                    f"{exc.strerror}") from None
        except BaseException:
            sock.close()
            raise
        pid, uid = peer_credentials(sock)
        if uid != os.geteuid() and not allow_foreign:
            sock.close()
            raise AccessDeniedError(
                f"the device on {path} ({describe_pid(pid)}) runs as {user_name(uid)}, not "
                f"as {user_name(os.geteuid())}; pass allow_foreign=1 if that is intended")
        return SocketKick(sock)


def sleep(seconds: float, wake_fd: int = -1) -> None:
    """Sleep, or raise :class:`Cancelled` as soon as ``wake_fd`` is readable."""
    if wake_fd < 0:
        time.sleep(seconds)
        return
    ready, _, _ = select.select([wake_fd], [], [], seconds)
    if ready:
        raise Cancelled()


__all__ = [
    "EXTRA",
    "KICKED",
    "Cancelled",
    "EventfdKick",
    "KickChannel",
    "KickServer",
    "PeerGone",
    "SocketKick",
    "connect",
    "is_eventfd",
    "peer_credentials",
    "sleep",
]
