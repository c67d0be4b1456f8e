"""Hostile local files, names and users around ``shm:`` (issue 10 items 6, 7, 8).

Real files in /dev/shm and /tmp, real sockets, and a second user (``nobody``) preparing traps:
every case is refused with a typed error that names the path and the fix, nothing that is not
ours is changed or removed, and the link works afterwards where it should.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import rpmsg
from rpmsg.errors import (
    AccessDeniedError,
    AlreadyOpenError,
    InvalidURLError,
    NotAvailableError,
)

from .other_user import needs_other_user, run_as_nobody, start_as_nobody

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def name() -> Iterator[str]:
    n = f"rpmsg-hf-{uuid.uuid4().hex[:10]}"
    yield n
    for leftover in (f"/dev/shm/{n}", f"/tmp/{n}.event.0"):
        if os.path.lexists(leftover):
            os.unlink(leftover)


def echo_once(host: rpmsg.Device, remote: rpmsg.Device) -> None:
    remote.create_endpoint("e", callback=lambda ept, data, src: ept.send_to(src, data))
    ept = host.create_endpoint("e")
    ept.wait_bound(10)
    ept.send(b"ping")
    assert ept.recv(timeout=10) == b"ping"


def timed_close(*devices: rpmsg.Device) -> None:
    for dev in devices:
        t0 = time.monotonic()
        dev.close()
        assert time.monotonic() - t0 < 1.0


# Names (item 7): refused while configuring, before any I/O --------------------------------

@pytest.mark.parametrize("path", [
    "../../../tmp/rpmsg-escape", "..", ".", "a/b", "x" * 5000, "a\0b", "/", "/dir/",
    "/dir/..", "//",
])
@pytest.mark.parametrize("side", ["host", "remote"])
def test_bad_names_are_url_errors(path: str, side: str) -> None:
    with pytest.raises(InvalidURLError, match="shm:"):
        rpmsg.open(f"shm:{path}", side=side)
    assert not os.path.exists("/tmp/rpmsg-escape")


def test_names_map_as_documented(name: str, tmp_path: Path) -> None:
    for url in (f"shm:{name}", f"shm:/{name}"):
        with rpmsg.open(url, side="remote") as dev:
            assert dev.link.describe()["memory"] == f"/dev/shm/{name}"
            assert os.path.exists(f"/dev/shm/{name}")
    target = tmp_path / "ring.mem"
    with rpmsg.open(f"shm:{target}?socket={tmp_path}/k.sock", side="remote"):
        assert target.exists()
    assert not target.exists()


def test_socket_path_too_long_names_the_option() -> None:
    with pytest.raises(InvalidURLError, match=r"socket="):
        rpmsg.open("shm:" + "n" * 200, side="remote")
    assert not os.path.exists("/dev/shm/" + "n" * 200)


@pytest.mark.parametrize("query", ["buffer_size=17", "buffer_size=55", "perm=0644x",
                                   "perm=0400", "perm=04777", "allow_foreign=maybe",
                                   "memfd=2", "kick=eventfd&memfd=0"])
def test_bad_options(name: str, query: str) -> None:
    with pytest.raises(InvalidURLError):
        rpmsg.open(f"shm:{name}?{query}", side="remote")
    assert not os.path.exists(f"/dev/shm/{name}")


# Symlinks and non-files (item 6) --------------------------------------------------------

def test_symlinked_file_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    link = tmp_path / "ring"
    link.symlink_to(victim)
    sock = f"{tmp_path}/k.sock"
    with pytest.raises(AccessDeniedError, match="symbolic link"):
        rpmsg.open(f"shm:{link}?socket={sock}", side="remote")
    # A driver sent to the link by a device elsewhere refuses it as well.
    with rpmsg.open(f"shm:{tmp_path}/real?socket={sock}", side="remote"), \
            pytest.raises(AccessDeniedError, match="symbolic link"):
        rpmsg.open(f"shm:{link}?socket={sock}&timeout=5")
    assert victim.read_bytes() == b"precious"
    assert link.is_symlink()


def test_socket_option_at_a_regular_file_never_removes_it(name: str, tmp_path: Path) -> None:
    regular = tmp_path / "notes.txt"
    regular.write_text("keep me")
    with pytest.raises(NotAvailableError, match="not a socket; refusing to replace it"):
        rpmsg.open(f"shm:{name}?socket={regular}", side="remote")
    assert regular.read_text() == "keep me"
    assert not os.path.exists(f"/dev/shm/{name}")  # nothing left behind either
    with pytest.raises(NotAvailableError, match="not a socket"):
        rpmsg.open(f"shm:{name}?socket={regular}&timeout=1")
    assert regular.read_text() == "keep me"


def test_a_directory_is_not_shared_memory(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(NotAvailableError, match="not a regular file"):
        rpmsg.open(f"shm:{tmp_path}/d?socket={tmp_path}/k.sock", side="remote")


# Modes (item 6) ---------------------------------------------------------------------------

@pytest.mark.parametrize(("perm", "mode"), [("", 0o600), ("&perm=0660", 0o660),
                                            ("&perm=666", 0o666)])
def test_files_and_sockets_are_created_0600_unless_widened(name: str, perm: str,
                                                           mode: int) -> None:
    old = os.umask(0)  # the worst umask: nothing masked
    try:
        with rpmsg.open(f"shm:{name}?kick=socket{perm}", side="remote"):
            for path in (f"/dev/shm/{name}", f"/tmp/{name}.event.0"):
                assert stat.S_IMODE(os.lstat(path).st_mode) == mode, path
    finally:
        os.umask(old)


# Two devices, crashed devices (item 8) --------------------------------------------------

def test_second_device_in_another_process_is_refused_naming_it(name: str) -> None:
    child = subprocess.Popen([sys.executable, os.path.join(HERE, "remote_echo.py"),
                              f"shm:{name}"], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"ready"
        with pytest.raises(AlreadyOpenError, match=rf"pid {child.pid} \(.*remote_echo"):
            rpmsg.open(f"shm:{name}", side="remote")
        # The first device is untouched: a driver is served by it.
        with rpmsg.open(f"shm:{name}?timeout=20") as host:
            ept = host.create_endpoint("echo")
            ept.wait_bound(20)
            ept.send(b"still the first")
            assert ept.recv(timeout=10) == b"still the first"
        assert child.wait(20) == 0  # it exits by itself when the driver leaves
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


def test_second_device_in_this_process_is_refused(name: str) -> None:
    with rpmsg.open(f"shm:{name}", side="remote"), \
            pytest.raises(AlreadyOpenError, match=rf"pid {os.getpid()} "):
        rpmsg.open(f"shm:{name}", side="remote")


def test_crashed_devices_file_and_socket_are_taken_over(name: str) -> None:
    child = subprocess.Popen([sys.executable, os.path.join(HERE, "remote_echo.py"),
                              f"shm:{name}"], stdout=subprocess.PIPE)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == b"ready"
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert os.path.exists(f"/dev/shm/{name}") and os.path.exists(f"/tmp/{name}.event.0")
    remote = rpmsg.open(f"shm:{name}", side="remote")
    host = rpmsg.open(f"shm:{name}?timeout=20")
    echo_once(host, remote)
    timed_close(host, remote)
    # Taken over, so removed like our own: nothing left behind.
    assert not os.path.exists(f"/dev/shm/{name}")
    assert not os.path.exists(f"/tmp/{name}.event.0")


def test_a_c_peers_file_is_used_but_not_removed(name: str) -> None:
    path = f"/dev/shm/{name}"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)  # as libmetal would
    os.close(fd)
    remote = rpmsg.open(f"shm:{name}", side="remote")
    host = rpmsg.open(f"shm:{name}?timeout=20")
    echo_once(host, remote)
    timed_close(host, remote)
    assert os.path.exists(path)  # not ours: left where it was


# Other users (item 6) ---------------------------------------------------------------------

@needs_other_user
def test_another_users_file_is_refused_unless_allowed(name: str) -> None:
    path = f"/dev/shm/{name}"
    run_as_nobody(f"""
        import os
        fd = os.open({path!r}, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        os.fchmod(fd, 0o666)
        os.ftruncate(fd, 4096)
    """)
    with pytest.raises(AccessDeniedError, match=r"belongs to nobody.*allow_foreign=1"):
        rpmsg.open(f"shm:{name}", side="remote")
    assert os.stat(path).st_size == 4096  # not touched
    # Meant to be shared (e.g. a root device and a user driver): said explicitly.
    remote = rpmsg.open(f"shm:{name}?allow_foreign=1", side="remote")
    try:
        with pytest.raises(AccessDeniedError, match="belongs to nobody"):
            rpmsg.open(f"shm:{name}?timeout=5")
        host = rpmsg.open(f"shm:{name}?allow_foreign=1&timeout=20")
        echo_once(host, remote)
        timed_close(host)
    finally:
        timed_close(remote)
    assert os.path.exists(path)  # nobody's file: never removed by us


@needs_other_user
def test_another_users_stale_socket_is_refused_and_kept(name: str) -> None:
    sock_path = f"/tmp/{name}.event.0"
    run_as_nobody(f"""
        import socket
        s = socket.socket(socket.AF_UNIX)
        s.bind({sock_path!r})
        s.close()
    """)
    with pytest.raises(AccessDeniedError, match=rf"{sock_path} belongs to nobody"):
        rpmsg.open(f"shm:{name}", side="remote")
    assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)  # still there
    assert not os.path.exists(f"/dev/shm/{name}")


@needs_other_user
def test_driver_refuses_a_device_socket_of_another_user(name: str) -> None:
    sock_path = f"/tmp/{name}.event.0"
    fake = start_as_nobody(f"""
        import os, socket, sys
        s = socket.socket(socket.AF_UNIX)
        s.bind({sock_path!r})
        os.chmod({sock_path!r}, 0o777)
        s.listen(1)
        print("ready", flush=True)
        sys.stdin.read()
    """)
    try:
        assert fake.stdout is not None and fake.stdout.readline().strip() == "ready"
        t0 = time.monotonic()
        with pytest.raises(AccessDeniedError, match=r"belongs to nobody.*allow_foreign=1"):
            rpmsg.open(f"shm:{name}?timeout=10")
        assert time.monotonic() - t0 < 5  # refused, not waited for
        # Even with the file owner check waived, the listening process is checked too.
        with pytest.raises(AccessDeniedError, match=r"runs as nobody"):
            _connect_waived(sock_path)
    finally:
        assert fake.stdin is not None
        fake.stdin.close()
        assert fake.wait(10) == 0
        if fake.stdout is not None:
            fake.stdout.close()


def _connect_waived(path: str) -> None:
    """Connect to ``path`` with the file-owner check waived but the peer check kept."""
    from rpmsg.virtio import kick

    real = kick.check_owner
    kick.check_owner = lambda *args: None  # type: ignore[assignment]
    try:
        kick.connect(path).close()
    finally:
        kick.check_owner = real  # type: ignore[assignment]
