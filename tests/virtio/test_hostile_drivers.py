"""Drivers that misbehave during the hello (outsider QA).

A driver that sent only the first bytes of its hello and then closed the kick socket kept the
device busy with a dead driver until the rendezvous timeout (30 s by default): the device only
peeked at the bytes, which stay readable for ever, never saw the end of the stream, and
answered every other driver "busy", spinning on the readable socket meanwhile.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

import rpmsg
from rpmsg.wire.shm_hello import HELLO_MAGIC


@pytest.fixture
def name() -> Iterator[str]:
    n = f"rpmsg-hd-{uuid.uuid4().hex[:10]}"
    yield n
    for leftover in (f"/dev/shm/{n}", f"/tmp/{n}.event.0"):
        if os.path.lexists(leftover):
            os.unlink(leftover)


def _echo_device(name: str) -> rpmsg.Device:
    # A long open timeout: the device gives a silent driver that long to say hello.
    dev = rpmsg.open(f"shm:{name}?timeout=60", side="remote")
    dev.create_endpoint("echo", callback=lambda e, data, src: e.send_to(src, data))
    return dev


@pytest.mark.parametrize("sent", [HELLO_MAGIC[:1], HELLO_MAGIC[:2], HELLO_MAGIC + b"\x01"])
def test_a_driver_gone_in_the_middle_of_its_hello_frees_the_device(name: str,
                                                                   sent: bytes) -> None:
    device = _echo_device(name)
    try:
        for _ in range(3):
            evil = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            evil.connect(f"/tmp/{name}.event.0")
            evil.sendall(sent)
            evil.close()
        with rpmsg.open(f"shm:{name}?timeout=20") as host:
            ept = host.create_endpoint("echo")
            ept.wait_bound(20)
            ept.send(b"served", timeout=10)
            assert ept.recv(timeout=10) == b"served"
    finally:
        device.close()


CONNECT_AND_READ = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.settimeout(20)
print(len(s.recv(4096)))
"""


def test_a_refused_drivers_command_line_cannot_forge_log_lines(
        name: str, caplog: pytest.LogCaptureFixture) -> None:
    """The device names a driver it refuses by its command line, which that driver chose:
    control characters are escaped, not written into the log."""
    caplog.set_level(logging.INFO, logger="rpmsg.shm")
    device = _echo_device(name)
    try:
        with rpmsg.open(f"shm:{name}?timeout=20") as host:
            ept = host.create_endpoint("echo")
            ept.wait_bound(20)
            evil = subprocess.run([sys.executable, "-c", CONNECT_AND_READ,
                                   f"/tmp/{name}.event.0", "\x1b[2J\nFORGED: all is well"],
                                  capture_output=True, text=True, timeout=60)
            assert evil.returncode == 0 and int(evil.stdout) > 0  # it was answered "busy"
        refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert refused and "FORGED" in refused[0]
        assert all("\x1b" not in m and "\n" not in m for m in refused)
    finally:
        device.close()


def test_a_second_polling_driver_is_refused_instead_of_sharing_the_rings(name: str) -> None:
    """With kick=poll there is no kick socket on which the device could answer "busy": a
    second driver re-initialised the rings of the first, and both broke each other's
    sessions (ring errors, lost messages). It is AlreadyOpenError naming the first now."""
    device = rpmsg.open(f"shm:{name}?kick=poll&timeout=60", side="remote")
    device.create_endpoint("echo", callback=lambda e, data, src: e.send_to(src, data))
    try:
        first = rpmsg.open(f"shm:{name}?kick=poll&timeout=20")
        try:
            ept = first.create_endpoint("echo")
            ept.wait_bound(20)
            with pytest.raises(rpmsg.AlreadyOpenError, match=f"pid {os.getpid()} .*drives"):
                rpmsg.open(f"shm:{name}?kick=poll&timeout=5")
            for i in range(20):  # the first session never noticed
                ept.send(b"%d" % i, timeout=10)
                assert ept.recv(timeout=10) == b"%d" % i
        finally:
            first.close()
        with rpmsg.open(f"shm:{name}?kick=poll&timeout=20") as second:
            ept = second.create_endpoint("echo")
            ept.wait_bound(20)
            ept.send(b"next", timeout=10)
            assert ept.recv(timeout=10) == b"next"
    finally:
        device.close()


def test_a_view_kept_past_close_does_not_keep_the_devices_lock(name: str) -> None:
    """The lifetime lock lived on the descriptor a mapping duplicates: a zero-copy buffer
    kept past close() (so the mapping cannot be closed yet) kept the name locked, and the
    next device on that file was refused as if this one were still running."""
    path = f"/dev/shm/{name}"
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))  # a C peer's file
    device = rpmsg.open(f"shm:{name}", side="remote")
    ept = device.create_endpoint("svc", zero_copy=True)
    host = rpmsg.open(f"shm:{name}?memfd=0&timeout=20")  # maps the named file, as C does
    h = host.create_endpoint("svc")
    h.wait_bound(20)
    h.send(b"kept", timeout=10)
    kept = ept.recv_buffer(timeout=10)
    assert bytes(kept.data) == b"kept"
    host.close()
    device.close()
    again = rpmsg.open(f"shm:{name}", side="remote")  # refused before: "already serves"
    again.close()
    kept.release()
