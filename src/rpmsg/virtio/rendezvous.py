"""The hello exchange between two rpmsg processes on the kick socket (wire: ``wire.shm_hello``).

Between rpmsg processes the session's memory is a sealed memfd the device hands over the kick
socket (no process can truncate it under them), and a second driver gets a one-line answer
naming the one being served instead of a silent wait. The device advertises this in its
vdev's config space; a C/OpenAMP peer never sees any of it and shares the named file as
before. This module holds the two halves of the exchange and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket

from rpmsg.errors import ProtocolError
from rpmsg.registry import Opening
from rpmsg.virtio.kick import PeerGone, SocketKick, sleep
from rpmsg.wire.shm_hello import (
    CAPS_MAGIC,
    HELLO_MAGIC,
    MAX_TEXT,
    SHM_CAPS,
    SHM_HELLO,
    SHM_WELCOME,
    VERSION,
    WELCOME_MAGIC,
    ShmFlags,
    WelcomeStatus,
)

_MAX_FDS = 3


def caps_config(flags: ShmFlags) -> bytes:
    """The vdev config-space bytes a device advertises (what it offers)."""
    return SHM_CAPS.pack(CAPS_MAGIC, VERSION, int(flags))


def read_caps(config: bytes) -> ShmFlags | None:
    """What an rpmsg device offers, from its vdev config space; None for any other device."""
    if len(config) < SHM_CAPS.size:
        return None
    magic, version, flags = SHM_CAPS.unpack(config)
    if magic != CAPS_MAGIC or version != VERSION:
        return None
    return ShmFlags(flags & (ShmFlags.MEMFD | ShmFlags.EVENTFD))


# Driver side -----------------------------------------------------------------------------

class Welcome:
    """The device's answer: status, text, and the descriptors it attached (caller owns them)."""

    def __init__(self, status: int, flags: int, text: str, fds: list[int]) -> None:
        self.status = status
        self.flags = ShmFlags(flags & (ShmFlags.MEMFD | ShmFlags.EVENTFD))
        self.text = text
        self.fds = fds

    def close_fds(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []


def say_hello(chan: SocketKick, flags: ShmFlags, opening: Opening,
              wake_fd: int = -1) -> Welcome:
    """Send the hello and wait (within ``opening``) for the device's welcome."""
    with contextlib.suppress(OSError):  # a device that already said BUSY closed its end
        chan.sock.sendall(SHM_HELLO.pack(HELLO_MAGIC, VERSION, int(flags)))
    data = b""
    fds: list[int] = []
    need = SHM_WELCOME.size
    header: tuple[bytes, int, int, int] | None = None
    try:
        while len(data) < need:
            chunk, got = _recv(chan.sock, need - len(data))
            fds += got
            if chunk is None:
                remaining = opening.remaining()
                if remaining is not None and remaining <= 0:
                    raise opening.timeout_error(
                        "answer from the virtio device",
                        "connected to its kick socket, but it did not answer the hello")
                opening.waiting("the virtio device to answer")
                _wait_readable(chan.sock, 0.05, wake_fd)
                continue
            if not chunk:
                raise PeerGone("the device closed the kick socket during the hello")
            data += chunk
            if header is None and len(data) >= SHM_WELCOME.size:
                header = SHM_WELCOME.unpack(data)
                if header[0] != WELCOME_MAGIC:
                    raise ProtocolError("the virtio device answered the hello with "
                                        f"{data[:4]!r}, not a welcome")
                need = SHM_WELCOME.size + min(header[3], MAX_TEXT)
    except BaseException:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        raise
    assert header is not None
    # The device chose the text: shown with escapes, never as control characters.
    text = data[SHM_WELCOME.size:].decode("utf-8", "replace").encode("unicode_escape")\
        .decode("ascii")
    return Welcome(header[1], header[2], text, fds)


def _recv(sock: socket.socket, size: int) -> tuple[bytes | None, list[int]]:
    try:
        data, fds, _flags, _addr = socket.recv_fds(sock, size, _MAX_FDS,
                                                   socket.MSG_CMSG_CLOEXEC)
    except (BlockingIOError, InterruptedError):
        return None, []
    except OSError as exc:
        raise PeerGone(f"kick socket: {exc.strerror}") from None
    return data, fds


def _wait_readable(sock: socket.socket, timeout: float, wake_fd: int) -> None:
    fds = [sock] + ([wake_fd] if wake_fd >= 0 else [])
    ready, _, _ = select.select(fds, [], [], timeout)
    if wake_fd in ready:
        sleep(0, wake_fd)  # raises Cancelled


# Device side -----------------------------------------------------------------------------

def read_hello(chan: SocketKick) -> tuple[ShmFlags | None, bool]:
    """``(hello, partial)``: a hello waiting on ``chan`` (None if there is none: the first
    bytes are something else, a C driver's kicks, which are consumed), and whether only the
    first bytes of one are there yet (left for the next call; the caller should not wait
    for the socket to be readable then, as it already is).

    A driver that closed its end in the middle of its hello is :class:`PeerGone` (its bytes
    would otherwise be peeked at for ever, and the device kept busy with a dead driver).
    """
    try:
        head = chan.sock.recv(SHM_HELLO.size, socket.MSG_PEEK)
    except (BlockingIOError, InterruptedError):
        return None, False
    except OSError as exc:
        raise PeerGone(f"kick socket: {exc.strerror}") from None
    if not head:
        raise PeerGone("the driver closed the kick socket")
    if not HELLO_MAGIC.startswith(head[:4]):
        chan.wait(0)  # kicks: consume them
        return None, False
    if len(head) < SHM_HELLO.size:
        if _hung_up(chan.sock):
            raise PeerGone(f"the driver closed the kick socket after {len(head)} byte(s) of "
                           "its hello")
        return None, True
    magic, version, flags = SHM_HELLO.unpack(chan.sock.recv(SHM_HELLO.size))
    if version != VERSION:
        return ShmFlags(0), False
    del magic
    return ShmFlags(flags & (ShmFlags.MEMFD | ShmFlags.EVENTFD)), False


def _hung_up(sock: socket.socket) -> bool:
    """Whether the peer shut down its end (seen even while unread bytes remain)."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLRDHUP)
    return any(ev & (select.POLLRDHUP | select.POLLHUP | select.POLLERR)
               for _fd, ev in poller.poll(0))


def send_welcome(sock: socket.socket, status: WelcomeStatus, flags: int = 0,
                 text: str = "", fds: list[int] | None = None) -> None:
    """Answer a hello (or refuse a connection); best effort, the peer may be gone."""
    raw = text.encode("utf-8")[:MAX_TEXT]
    data = SHM_WELCOME.pack(WELCOME_MAGIC, int(status), int(flags), len(raw)) + raw
    with contextlib.suppress(OSError):
        sock.setblocking(True)
        sock.settimeout(1.0)
        try:
            if fds:
                socket.send_fds(sock, [data], fds)
            else:
                sock.sendall(data)
        finally:
            sock.setblocking(False)


__all__ = [
    "Welcome",
    "caps_config",
    "read_caps",
    "read_hello",
    "say_hello",
    "send_welcome",
]
