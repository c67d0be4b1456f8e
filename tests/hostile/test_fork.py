"""fork() with an open Device: the child cannot use or close the parent's link.

Found by using the library from outside the suite: a child of ``fork()`` that sent on an
inherited shm Device wrote the parent's ring and broke its link for good
(``TransportBrokenError: used.idx jumped``); one that closed it reset the parent's session.
Now the child's copy raises :class:`TransportBrokenError` saying why, and its ``close()``
touches nothing of the link.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_helpers import bind

import rpmsg
from rpmsg import TransportBrokenError


def _in_child(client: rpmsg.Endpoint, server: rpmsg.Endpoint,
              host: rpmsg.Device, remote: rpmsg.Device) -> int:
    """What the child tries; the exit status says what went wrong (0: all as expected)."""
    calls = [lambda: client.send(b"from the child", timeout=1),
             lambda: server.send_to(client.addr, b"from the child", timeout=1),
             lambda: server.recv(timeout=0.2),
             lambda: client.get_tx_buffer(timeout=1),
             lambda: host.create_endpoint("child"),
             lambda: client.send_many([b"a", b"b"], timeout=1)]
    for n, call in enumerate(calls, 1):
        try:
            call()
        except TransportBrokenError as exc:
            if "fork()" not in str(exc):
                return 100 + n
        except BaseException:
            return 50 + n
        else:
            return n
    client.close()
    host.close()
    remote.close()
    return 0


def test_a_forked_child_neither_uses_nor_closes_the_parents_link(
        pair: tuple[rpmsg.Device, rpmsg.Device]) -> None:
    host, remote = pair
    client, server = bind(host, remote)
    zc = remote.create_endpoint("zc", zero_copy=True)
    zc_client = host.create_endpoint("zc")
    zc_client.wait_bound(timeout=20)
    zc_client.send(b"held across the fork", timeout=20)
    held = zc.recv_buffer(timeout=20)
    client.send(b"queued across the fork", timeout=20)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 99
        try:
            status = _in_child(client, server, host, remote)
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert host.is_up and remote.is_up
    assert server.recv(timeout=20) == b"queued across the fork"  # the child took nothing
    for n in range(300):  # more than the ring's buffers: nothing was lost or reused
        client.send(n.to_bytes(2, "little"), timeout=20)
        assert server.recv(timeout=20) == n.to_bytes(2, "little")
        server.send_to(client.addr, b"back", timeout=20)
        assert client.recv(timeout=20) == b"back"
    assert bytes(held) == b"held across the fork"
    held.release()
    zc_client.send(b"after", timeout=20)
    with zc.recv_buffer(timeout=20) as buf:
        assert bytes(buf) == b"after"


@pytest.fixture(params=["uart", "spisim"])
def port_pair(request: pytest.FixtureRequest, tmp_path: Path
              ) -> Iterator[tuple[rpmsg.Device, rpmsg.Device, threading.Condition]]:
    """(a, b, a lock of b's port that its threads take while a buffer comes back)."""
    if request.param == "uart":
        a = rpmsg.open("uart:pty")
        peer = f"uart:{a.link.describe()['pty']}"
    else:
        bus = str(tmp_path / "bus")
        a = rpmsg.open(f"spisim:{bus}?hz=0")
        peer = f"spisim:{bus}?hz=0"
    try:
        b = rpmsg.open(peer, side="remote")
        try:
            a.wait_up(timeout=20)
            b.wait_up(timeout=20)
            link = b.link
            lock = link.backend._cv if request.param == "spisim" else link.rxq._cond
            yield a, b, lock
        finally:
            b.close()
    finally:
        a.close()


def test_a_forked_child_dropping_a_port_buffer_touches_nothing_of_the_parent(
        port_pair: tuple[rpmsg.Device, rpmsg.Device, threading.Condition]) -> None:
    """RPMsg Port: a zero-copy buffer held across fork() and dropped in the child goes
    nowhere. Its release took the parent's port locks (the SPI backend's is held by its
    thread at any moment: the child hung for ever) and could wake the parent's threads."""
    a, b, lock = port_pair
    server = b.create_endpoint("zc", zero_copy=True)
    client = a.create_endpoint("zc")
    client.wait_bound(timeout=20)
    client.send(b"held across the fork", timeout=20)
    held = server.recv_buffer(timeout=20)
    holding, forked = threading.Event(), threading.Event()

    def hold_the_lock() -> None:  # a transport thread inside the lock at the fork
        with lock:
            holding.set()
            forked.wait(30)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    holding.wait(30)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 99
        try:
            held.release()        # the child's copy: goes nowhere, at once
            try:
                client.send(b"from the child", timeout=1)
                status = 1
            except TransportBrokenError:
                b.close()
                a.close()
                status = 0
        finally:
            os._exit(status)
    forked.set()
    holder.join()
    deadline = time.monotonic() + 30
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if not done:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert done, "the child hung releasing a buffer of the parent's port"
    assert os.waitstatus_to_exitcode(status) == 0
    assert bytes(held) == b"held across the fork"
    held.release()
    for n in range(40):  # more than the port's buffers: none was lost
        client.send(n.to_bytes(2, "little"), timeout=20)
        with server.recv_buffer(timeout=20) as buf:
            assert bytes(buf) == n.to_bytes(2, "little")
