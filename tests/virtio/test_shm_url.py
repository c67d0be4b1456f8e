"""The ``shm:`` transport by URL, both roles in one process over a real shared-memory file:
options, each kick mechanism, reconnection, and no stale files after close."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

import rpmsg
from rpmsg.device import Device
from rpmsg.errors import (
    AlreadyOpenError,
    InvalidURLError,
    RemoteDisconnectedError,
    RpmsgTimeoutError,
)

SERVICE = "rpmsg-openamp-demo-channel"


@pytest.fixture
def name() -> Iterator[str]:
    n = f"rpmsg-test-{uuid.uuid4().hex[:12]}"
    yield n
    for leftover in (f"/dev/shm/{n}", f"/tmp/{n}.event.0"):
        assert not os.path.exists(leftover), f"stale {leftover}"


def echo_check(host: Device, remote: Device) -> None:
    r = remote.create_endpoint(SERVICE)
    h = host.create_endpoint(SERVICE)
    h.wait_bound(10)
    h.send(b"to remote")
    msg = r.recv_message(timeout=10)
    assert msg.data == b"to remote"
    r.send_to(msg.src, b"to host")
    assert h.recv(timeout=10) == b"to host"
    h.close()
    r.close()


@pytest.mark.parametrize("kick", ["socket", "eventfd", "poll"])
def test_both_roles_by_url(name: str, kick: str) -> None:
    remote = rpmsg.open(f"shm:{name}?kick={kick}", side="remote")
    try:
        assert remote.link.role == "device"
        assert os.path.exists(f"/dev/shm/{name}")
        host = rpmsg.open(f"shm:{name}?kick={kick}&timeout=10")
        try:
            assert host.link.role == "driver"
            assert host.link.describe()["kick"] == kick
            echo_check(host, remote)
        finally:
            host.close()
    finally:
        remote.close()


def test_role_option_wins_over_side(name: str) -> None:
    remote = rpmsg.open(f"shm:{name}?role=remote", side="host")
    host = rpmsg.open(f"shm:{name}", role="host", side="remote")
    try:
        assert (remote.link.role, host.link.role) == ("device", "driver")
        echo_check(host, remote)
    finally:
        host.close()
        remote.close()


def test_file_path_and_explicit_socket(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "ring.mem")
    sock = os.path.join(tmp_path, "kick.sock")
    remote = rpmsg.open(f"shm:{path}?role=device&socket={sock}&num=64&buffers=64")
    assert os.path.exists(sock)  # listening until a driver connects
    host = rpmsg.open(f"shm:{path}?role=driver&socket={sock}&buffers=32")
    try:
        echo_check(host, remote)
    finally:
        host.close()
        remote.close()
    assert not os.path.exists(path) and not os.path.exists(sock)


def test_device_serves_a_second_driver(name: str) -> None:
    remote = rpmsg.open(f"shm:{name}", side="remote")
    try:
        for _ in range(2):
            host = rpmsg.open(f"shm:{name}")
            try:
                echo_check(host, remote)
            finally:
                host.close()
    finally:
        remote.close()


def test_device_going_away_takes_the_driver_down(name: str) -> None:
    remote = rpmsg.open(f"shm:{name}", side="remote")
    host = rpmsg.open(f"shm:{name}")
    try:
        h = host.create_endpoint("x", dst=1024)
        host.wait_up(5)
        remote.close()
        with pytest.raises(RemoteDisconnectedError):
            h.recv(timeout=5)
    finally:
        host.close()
        remote.close()


def test_second_driver_is_told_who_is_served(name: str) -> None:
    remote = rpmsg.open(f"shm:{name}", side="remote")
    first = rpmsg.open(f"shm:{name}")
    try:
        remote.wait_up(5)
        t0 = time.monotonic()
        with pytest.raises(AlreadyOpenError, match=rf"already serves pid {os.getpid()}"):
            rpmsg.open(f"shm:{name}?timeout=10")
        assert time.monotonic() - t0 < 5  # an answer, not a wait for the timeout
        assert remote.is_up and first.is_up
    finally:
        first.close()
        remote.close()


def test_driver_without_device_times_out(name: str) -> None:
    with pytest.raises(RpmsgTimeoutError, match="no virtio device"):
        rpmsg.open(f"shm:{name}?timeout=0.2")


@pytest.mark.parametrize("query", ["kick=pigeon", "role=both", "preset=zephyr", "num=3",
                                   "colour=blue", "buffer_size=8"])
def test_bad_options(name: str, query: str) -> None:
    with pytest.raises(InvalidURLError):
        rpmsg.open(f"shm:{name}?{query}", side="remote")


SENDER = """
import sys, rpmsg
dev = rpmsg.open(sys.argv[1] + "?timeout=20")
ept = dev.create_endpoint("count")
ept.wait_bound(20)
ept.send_many([b"%d" % i for i in range(int(sys.argv[2]))], timeout=20)
dev.close()
"""


def test_a_driver_that_sends_and_exits_loses_nothing(name: str) -> None:
    """The driver's close lets the device take what was sent before it resets the device."""
    got: list[bytes] = []
    with rpmsg.open(f"shm:{name}", side="remote") as remote:
        remote.create_endpoint("count", callback=lambda ept, data, src: got.append(data))
        for _ in range(3):
            got.clear()
            subprocess.run([sys.executable, "-c", SENDER, f"shm:{name}", "600"], check=True,
                           timeout=60)
            deadline = time.monotonic() + 10
            while len(got) < 600 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert got == [b"%d" % i for i in range(600)]
