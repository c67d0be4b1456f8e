"""A hostile shm device for tests: a valid table with the rpmsg caps, then a bad welcome.

``python evil_device.py NAME KIND``: creates ``/dev/shm/NAME`` and ``/tmp/NAME.event.0``,
prints ``ready``, answers the first hello as KIND says, and waits to be killed.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import time

from rpmsg.virtio.layout import ShmLayout
from rpmsg.virtio.rendezvous import caps_config
from rpmsg.wire.shm_hello import SHM_HELLO, SHM_WELCOME, WELCOME_MAGIC, ShmFlags

F_SEAL_FUTURE_WRITE = 0x10
LAYOUT = ShmLayout.openamp()
CAPS = caps_config(ShmFlags.MEMFD | ShmFlags.EVENTFD)


def memfd(seals: int = fcntl.F_SEAL_SHRINK) -> int:
    fd = os.memfd_create("evil", os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, LAYOUT.size)
    os.pwrite(fd, LAYOUT.resource_table(CAPS).encode(), 0)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    return fd


def welcome_fds(kind: str) -> tuple[int, list[int], bytes, int]:
    """(flags, descriptors, text, status) of each kind of bad welcome."""
    if kind == "sealed_for_writes":
        return 1, [memfd(fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_WRITE)], b"", 0
    if kind == "future_write_sealed":
        return 1, [memfd(fcntl.F_SEAL_SHRINK | F_SEAL_FUTURE_WRITE)], b"", 0
    if kind == "read_only":
        fd = memfd()
        return 1, [os.open(f"/proc/self/fd/{fd}", os.O_RDONLY)], b"", 0
    if kind == "pipes_as_eventfds":
        r, w = os.pipe()
        return 3, [memfd(), r, w], b"", 0
    if kind == "dev_zero_as_eventfds":
        return 3, [memfd(), os.open("/dev/zero", os.O_RDONLY),
                   os.open("/dev/null", os.O_WRONLY)], b"", 0
    if kind == "control_characters":
        return 0, [], b"\x1b]0;pwned\x07\nforged line\x00", 2
    raise SystemExit(f"unknown kind {kind}")


def main(name: str, kind: str) -> None:
    fd = os.open(f"/dev/shm/{name}", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.ftruncate(fd, LAYOUT.size)
    os.pwrite(fd, LAYOUT.resource_table(CAPS).encode(), 0)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(f"/tmp/{name}.event.0")
    srv.listen(8)
    print("ready", flush=True)
    conn, _ = srv.accept()
    conn.recv(SHM_HELLO.size)
    flags, fds, text, status = welcome_fds(kind)
    data = SHM_WELCOME.pack(WELCOME_MAGIC, status, flags, len(text)) + text
    socket.send_fds(conn, [data], fds)
    time.sleep(60)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
