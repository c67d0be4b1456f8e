"""Kick channels: how the two sides of a shared-memory virtio link interrupt each other.

The OpenAMP Linux machine's convention (spec §7.3): a UNIX stream socket, one byte per kick,
no queue id; any byte means "scan all rings" and kicks coalesce. The device is the server
(it unlinks a stale path, binds, accepts one driver), the driver connects with retries.
With ``eventfd`` the socket only sets the link up: the server passes two eventfds over it
(``SCM_RIGHTS``) and kicks become eventfd writes; socket EOF still means "peer gone".
With ``poll`` there is no channel at all: each side rescans the rings every few hundred µs.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import time

from rpmsg.errors import NotAvailableError, RemoteDisconnectedError
from rpmsg.registry import Opening

#: Bytes read per wakeup; OpenAMP's libmetal reads up to 32 (kicks coalesce either way).
_READ_SIZE = 64
_EVENTFD_HELLO = b"E"
POLL_INTERVAL = 0.0005


class PeerGone(RemoteDisconnectedError):
    """The kick channel reached EOF: the other process went away."""


class KickChannel:
    """One connected kick channel; :meth:`wait` also watches an optional wakeup fd."""

    kind = "poll"

    def notify(self) -> None:
        """Interrupt the peer (a no-op when polling)."""

    def wait(self, timeout: float | None, wake_fd: int = -1) -> bool:
        """Block until kicked (True), ``wake_fd`` is readable or ``timeout`` passes (False).

        Raises :class:`PeerGone` when the peer closed its end.
        """
        poller = select.poll()
        if wake_fd >= 0:
            poller.register(wake_fd, select.POLLIN)
        t = POLL_INTERVAL if timeout is None else min(timeout, POLL_INTERVAL)
        poller.poll(t * 1000)
        return True

    def close(self) -> None:
        """Release the channel's descriptors; idempotent."""


class SocketKick(KickChannel):
    """Kicks as single bytes on a connected UNIX stream socket (OpenAMP compatible)."""

    kind = "socket"

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self._poller = select.poll()
        self._poller.register(self.fd, select.POLLIN)
        self._wake_fd = -1
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

    def _register_wake(self, wake_fd: int) -> None:
        if wake_fd != self._wake_fd:
            if self._wake_fd >= 0:
                self._poller.unregister(self._wake_fd)
            if wake_fd >= 0:
                self._poller.register(wake_fd, select.POLLIN)
            self._wake_fd = wake_fd

    def wait(self, timeout: float | None, wake_fd: int = -1) -> bool:
        self._register_wake(wake_fd)
        events = self._poller.poll(None if timeout is None else timeout * 1000)
        kicked = False
        for fd, _ev in events:
            if fd == self.fd:
                self._drain(fd)
                kicked = True
        return kicked

    def close(self) -> None:
        if self.fd >= 0:
            self.fd = -1
            self.sock.close()


class EventfdKick(SocketKick):
    """Kicks as eventfd writes; the socket stays open only to notice the peer leaving."""

    kind = "eventfd"

    def __init__(self, sock: socket.socket, rx_fd: int, tx_fd: int) -> None:
        super().__init__(sock)
        self.rx_fd = rx_fd
        self.tx_fd = tx_fd
        os.set_blocking(rx_fd, False)
        self._poller.register(rx_fd, select.POLLIN)

    def notify(self) -> None:
        os.eventfd_write(self.tx_fd, 1)
        self.sent += 1

    def wait(self, timeout: float | None, wake_fd: int = -1) -> bool:
        self._register_wake(wake_fd)
        events = self._poller.poll(None if timeout is None else timeout * 1000)
        kicked = False
        for fd, _ev in events:
            if fd == self.rx_fd:
                with contextlib.suppress(BlockingIOError):
                    os.eventfd_read(self.rx_fd)
                kicked = True
            elif fd == self.fd:
                self._drain(fd)  # only EOF is expected here
        return kicked

    def close(self) -> None:
        if self.fd >= 0:
            super().close()
            os.close(self.rx_fd)
            os.close(self.tx_fd)


class KickServer:
    """The device's listening socket: unlinks a stale path, binds, accepts one driver.

    While a driver is being served the device :meth:`pause` s the server (socket closed and
    unlinked), so no second driver can connect and write into the live resource table; it
    :meth:`resume` s once the table is fresh again.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock: socket.socket | None = None
        self.resume()

    def resume(self) -> None:
        """(Re)create the listening socket at :attr:`path`."""
        if self.sock is not None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self.path)
            sock.listen(1)
        except OSError as exc:
            sock.close()
            raise NotAvailableError(f"cannot listen on kick socket {self.path}: {exc}") from None
        sock.setblocking(False)
        self.sock = sock

    def pause(self) -> None:
        """Stop listening and remove the path (connections already accepted stay)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def accept(self, kind: str, timeout: float | None, wake_fd: int = -1) -> KickChannel | None:
        """The next driver's channel, or None on timeout / ``wake_fd`` readable."""
        if self.sock is None:
            self.resume()
        assert self.sock is not None
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        if wake_fd >= 0:
            poller.register(wake_fd, select.POLLIN)
        for fd, _ev in poller.poll(None if timeout is None else timeout * 1000):
            if fd == self.sock.fileno():
                try:
                    conn, _addr = self.sock.accept()
                except BlockingIOError:
                    return None
                if kind == "eventfd":
                    to_device, to_driver = os.eventfd(0, os.EFD_NONBLOCK), os.eventfd(0)
                    try:
                        socket.send_fds(conn, [_EVENTFD_HELLO], [to_device, to_driver])
                    except OSError:
                        conn.close()
                        os.close(to_device)
                        os.close(to_driver)
                        return None
                    return EventfdKick(conn, to_device, to_driver)
                return SocketKick(conn)
        return None

    def close(self) -> None:
        """Close and unlink the socket path (no stale sockets left behind)."""
        self.pause()


def connect(path: str, kind: str, opening: Opening) -> KickChannel:
    """Connect to a device's kick socket, retrying within the open's deadline (like OpenAMP's
    client); after a second it says what it waits for."""
    delay = 0.005
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            break
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            remaining = opening.remaining()
            if remaining is not None and remaining < delay:
                raise opening.timeout_error(
                    "virtio device", f"nothing listens on {path} ({exc.strerror}); "
                    f"start one with `rpmsg remote {opening.url}`") from None
            opening.waiting("a virtio device", f"start one with `rpmsg remote {opening.url}`")
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
    timeout = opening.remaining()
    if kind != "eventfd":
        return SocketKick(sock)
    sock.settimeout(timeout if timeout is not None else 10.0)
    try:
        msg, fds, _flags, _addr = socket.recv_fds(sock, 16, 2)
    except OSError as exc:
        sock.close()
        raise NotAvailableError(f"kick socket {path}: no eventfds received ({exc})") from None
    if msg != _EVENTFD_HELLO or len(fds) != 2:
        for fd in fds:
            os.close(fd)
        sock.close()
        raise NotAvailableError(f"kick socket {path}: the device did not send eventfds "
                                "(is it using kick=eventfd too?)")
    to_device, to_driver = fds
    os.set_blocking(to_device, False)
    return EventfdKick(sock, to_driver, to_device)
