"""Peers of the simulated bus that the bus must get rid of (outsider QA).

A connection that never says hello: the end that owns the bus serves one connection at a
time and read the newcomer's hello without a time limit: a process that connected and said
nothing (a stuck tool, a stopped process) held the bus for as long as it stayed connected,
and the real peer queued behind it was never served. An accepted connection now has
HELLO_TIMEOUT seconds to say hello, is dropped (counted as a bad peer) after that, and the
bus serves the next.

A peer set up differently (another buflen): both ends were marked broken for good, so after
the misconfigured process was fixed and restarted the other end still refused to work until
it was restarted too. Now the mismatch is named (log, ``seen()``, timeout errors), that peer
is dropped, and the bus waits for one set up to match.

The bus's lock file is ``PATH.lock``: an existing file of that name with data in it
(``spisim:yarn`` next to ``yarn.lock``) was adopted as the lock file and removed at close. A
lock file holds no data; one with some is refused and left alone.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import rpmsg
from rpmsg.port.spi import sim

sys.path.insert(0, str(Path(__file__).parents[1]))
from port.harness import wait_until


def bound(m: rpmsg.Device, s: rpmsg.Device) -> tuple[rpmsg.Endpoint, rpmsg.Endpoint]:
    srv = s.create_endpoint("x")
    cli = m.create_endpoint("x")
    cli.wait_bound(10)
    srv.wait_bound(10)
    return cli, srv


def _connects(sock: socket.socket, path: str) -> bool:
    """Connect ``sock`` to ``path``; False while nothing listens there yet (the socket file
    exists a moment before the owner listens on it)."""
    try:
        sock.connect(path)
    except (FileNotFoundError, ConnectionRefusedError):
        return False
    return True


@pytest.fixture
def bus() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="spis-")
    yield os.path.join(d, "bus.sock")
    for name in os.listdir(d):
        os.unlink(os.path.join(d, name))
    os.rmdir(d)


def test_a_silent_connection_cannot_hold_the_bus(bus: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sim, "HELLO_TIMEOUT", 0.5)
    m = rpmsg.open(f"spisim:{bus}?hz=0")  # first: owns the bus and listens
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        wait_until(lambda: _connects(silent, bus), 10, "the listening socket")
        # accepted first, then says nothing, ever
        with rpmsg.open(f"spisim:{bus}?hz=0", side="remote") as s:
            m.wait_up(30)
            cli, srv = bound(m, s)
            cli.send(b"served", timeout=10)
            assert srv.recv(timeout=10) == b"served"
        assert m.stats()["link_bus_bad_peers"] == 1
        assert m.broken_error is None
    finally:
        silent.close()
        m.close()


def test_a_peer_with_another_buflen_is_dropped_and_the_right_one_served(bus: str) -> None:
    m = rpmsg.open(f"spisim:{bus}?hz=0&buflen=536")
    try:
        wait_until(lambda: os.path.exists(bus), 10, "the listening socket")
        with rpmsg.open(f"spisim:{bus}?hz=0&buflen=1024", side="remote") as wrong:
            with pytest.raises(rpmsg.RpmsgTimeoutError, match="buflen 1024 here, 536"):
                wrong.wait_up(2)
            assert wrong.broken_error is None
        wait_until(lambda: "buflen 536 here, 1024" in m.link.seen(), 10, "the mismatch named")
        assert m.broken_error is None
        with rpmsg.open(f"spisim:{bus}?hz=0&buflen=536", side="remote") as s:
            m.wait_up(30)
            cli, srv = bound(m, s)
            cli.send(b"matched", timeout=10)
            assert srv.recv(timeout=10) == b"matched"
    finally:
        m.close()


def test_a_file_with_data_where_the_lock_file_goes_is_refused_and_kept(bus: str) -> None:
    lock = bus + ".lock"
    with open(lock, "w") as f:
        f.write("# yarn lockfile v1\n")
    with pytest.raises(rpmsg.NotAvailableError, match="not a bus lock file"):
        rpmsg.open(f"spisim:{bus}?hz=0")
    with open(lock) as f:
        assert f.read() == "# yarn lockfile v1\n"
    assert not os.path.exists(bus)  # no socket made either
    os.unlink(lock)
