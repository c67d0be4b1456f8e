"""Hostile and unusual vhost-user front-ends against the back-end (issue 10 items 1, 3, 4).

Real sockets, real memfds and real processes: a front-end that pipelines its requests, one
that kicks before posting buffers, one that shrinks its memory after sharing it, one whose
memory cannot be sealed or is shorter than it claims, one that floods descriptors, and
front-ends killed at random. The back-end never crashes or stalls, drops the culprit with a
typed error, and serves the next front-end; close() takes under a second.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import rpmsg
from rpmsg.vhost_user.messages import encode_message
from rpmsg.wire.vhost_user import (
    VHOST_USER_U64,
    VHOST_USER_VRING_ADDR,
    VHOST_USER_VRING_STATE,
    Request,
)

from .frontend import MEM_SIZE, FakeFrontend

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def sock_path(tmp_path: Path) -> str:
    return str(tmp_path / "rpmsg.sock")


def open_remote(sock_path: str, query: str = "") -> rpmsg.Device:
    dev = rpmsg.open(f"vhost-user:{sock_path}{query}", side="remote")
    dev.create_endpoint("rpmsg-raw", callback=lambda ept, data, src: ept.send_to(src, data))
    return dev


@pytest.fixture
def remote(sock_path: str) -> Iterator[rpmsg.Device]:
    dev = open_remote(sock_path)
    yield dev
    t0 = time.monotonic()
    dev.close()
    assert time.monotonic() - t0 < 1.0, "close() took a second or more"


def wait_until(cond: object, timeout: float = 10.0, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > end:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.01)


def echo_works(fe: FakeFrontend, data: bytes = b"echo") -> None:
    host = fe.device or fe.boot()
    ept = host.create_endpoint("rpmsg-raw", dst=host.wait_service("rpmsg-raw", timeout=10))
    ept.send(data, timeout=10)
    assert ept.recv(timeout=10) == data


def still_serving(sock_path: str) -> None:
    with FakeFrontend(sock_path) as fe:
        echo_works(fe, b"next front-end")


# Item 4: requests back to back, each with its own sendmsg, nobody waiting for replies ------

def test_pipelined_front_end_gets_each_descriptor_with_its_own_message(sock_path: str) -> None:
    remote = open_remote(sock_path, "?reply_ack=0")  # no REPLY_ACK: nothing to wait for
    try:
        with FakeFrontend(sock_path) as fe:
            fe.negotiate()
            assert not fe.protocol_features >> 3 & 1  # REPLY_ACK was not negotiated
            burst = []
            for i, q in enumerate(fe.queues):
                burst += [
                    (encode_message(Request.SET_VRING_NUM,
                                    VHOST_USER_VRING_STATE.pack(i, fe.num)), []),
                    (encode_message(Request.SET_VRING_ADDR, VHOST_USER_VRING_ADDR.pack(
                        i, 0, q.desc, q.used, q.avail, 0xFFFFFFFFFFFFFFFF)), []),
                    (encode_message(Request.SET_VRING_BASE, VHOST_USER_VRING_STATE.pack(i, 0)),
                     []),
                    (encode_message(Request.SET_VRING_CALL, VHOST_USER_U64.pack(i)),
                     [fe.call_pairs[i][1].fileno()]),
                    (encode_message(Request.SET_VRING_KICK, VHOST_USER_U64.pack(i)),
                     [fe.kick_fds[i]]),
                    (encode_message(Request.SET_VRING_ENABLE,
                                    VHOST_USER_VRING_STATE.pack(i, 1)), []),
                ]
            for data, fds in burst:  # one sendmsg per message, back to back
                if fds:
                    socket.send_fds(fe.sock, [data], fds)
                else:
                    fe.sock.sendmsg([data])
            for pair_ in fe.call_pairs:
                pair_[1].close()
            fe.start_driver()
            echo_works(fe)
        stats = remote.stats()
        assert stats["link_server_protocol_errors"] == 0
        assert stats["link_links_up"] == 1
    finally:
        remote.close()


# Item 3: a front-end that kicks before it posts receive buffers ---------------------------

def test_kick_before_buffers_never_stalls_the_server(remote: rpmsg.Device,
                                                     sock_path: str) -> None:
    with FakeFrontend(sock_path) as fe:
        fe.negotiate()
        fe.setup_queues()
        fe.kick(0)  # "ready" but no receive buffer posted: the announcement cannot go out
        fe.kick(1)
        wait_until(lambda: remote.is_up, what="link up")
        # The server thread still reads requests at once (it is not stuck sending).
        t0 = time.monotonic()
        assert fe.u64(Request.GET_FEATURES) >> 0 & 1
        assert time.monotonic() - t0 < 1.0
        # Buffers come: the queued announcement goes out and the link works.
        host = fe.start_driver()
        assert host.wait_service("rpmsg-raw", timeout=10)
        echo_works(fe)
    still_serving(sock_path)


def test_close_within_a_second_while_the_front_end_holds_every_buffer(sock_path: str) -> None:
    dev = open_remote(sock_path)
    with FakeFrontend(sock_path) as fe:
        fe.negotiate()
        fe.setup_queues()
        fe.kick(0)
        wait_until(lambda: dev.is_up, what="link up")
        ept = dev.create_endpoint("to-host", dst=1024)
        with pytest.raises(rpmsg.RpmsgTimeoutError):
            ept.send(b"nobody gave me a buffer", timeout=0.3)
        t0 = time.monotonic()
        dev.close()
        assert time.monotonic() - t0 < 1.0
        assert fe.backend_gone()


# Item 1: memory that shrinks under us ----------------------------------------------------

def test_front_end_cannot_shrink_its_shared_memfd(remote: rpmsg.Device, sock_path: str) -> None:
    with FakeFrontend(sock_path) as fe:
        fe.negotiate()  # SET_MEM_TABLE: the back-end sealed the memfd against shrinking
        with pytest.raises(PermissionError):
            os.ftruncate(fe.memfd, 4096)
        assert os.fstat(fe.memfd).st_size == MEM_SIZE
        fe.setup_queues()
        fe.start_driver()
        echo_works(fe)
    assert remote.broken_error is None


def test_unsealable_memory_is_said_once_and_served(remote: rpmsg.Device, sock_path: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rpmsg.vhost_user")
    fd = os.open("/dev/shm", os.O_TMPFILE | os.O_RDWR, 0o600)  # like UML's memory file
    os.ftruncate(fd, MEM_SIZE)
    with FakeFrontend(sock_path, memfd=fd) as fe:
        fe.negotiate()
        fe.setup_queues()
        fe.start_driver()
        echo_works(fe)
    said = [r for r in caplog.records if "cannot be sealed" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO
    assert "SIGBUS" in said[0].getMessage()


def test_region_past_the_end_of_its_file_drops_the_front_end(remote: rpmsg.Device,
                                                             sock_path: str) -> None:
    fd = os.memfd_create("short", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, MEM_SIZE // 2)  # the table below claims MEM_SIZE
    with FakeFrontend(sock_path, memfd=fd) as fe:
        with pytest.raises((AssertionError, ConnectionError, OSError)):
            fe.negotiate()  # REPLY_ACK: the back-end hangs up instead of acknowledging
        assert fe.backend_gone()
    wait_until(lambda: remote.stats()["link_server_protocol_errors"] == 1, what="the drop")
    assert "past the end of its file" in (remote.link.describe()["last_error"] or "")
    still_serving(sock_path)


# Descriptors beyond any message -----------------------------------------------------------

def settled_fds(remote: rpmsg.Device) -> int:
    """This process's descriptors once the back-end waits for the next front-end."""
    wait_until(lambda: not remote.link.describe()["connected"], what="front-end gone")
    time.sleep(0.1)  # the server thread is back in accept (its selector open)
    gc.collect()  # the in-process test front-ends leave cycles (FakeFrontend <-> its engine)
    return len(os.listdir("/proc/self/fd"))


def test_a_flood_of_descriptors_drops_the_front_end(remote: rpmsg.Device, sock_path: str) -> None:
    still_serving(sock_path)  # warm up: every lazily opened descriptor exists now
    before = settled_fds(remote)
    with FakeFrontend(sock_path) as fe:
        fe.negotiate()
        fds = [os.eventfd(0) for _ in range(40)]
        try:
            socket.send_fds(fe.sock, [encode_message(Request.SET_VRING_CALL,
                                                     VHOST_USER_U64.pack(0))], fds)
        finally:
            for fd in fds:
                os.close(fd)
        assert fe.backend_gone()
    wait_until(lambda: remote.stats()["link_server_protocol_errors"] == 1, what="the drop")
    still_serving(sock_path)
    assert settled_fds(remote) <= before  # the 40 descriptors were not kept


def test_a_stray_descriptor_is_refused_with_the_request_that_carried_it(
        remote: rpmsg.Device, sock_path: str) -> None:
    with FakeFrontend(sock_path) as fe:
        fe.negotiate()
        # A descriptor on a request that takes none: it belongs to that request, which is
        # refused for it (named in the error), and nothing is kept.
        socket.send_fds(fe.sock, [encode_message(Request.GET_QUEUE_NUM)], [fe.memfd])
        assert fe.backend_gone()
    assert "GET_QUEUE_NUM" in (remote.link.describe()["last_error"] or "")
    still_serving(sock_path)


# A peer killed at random -----------------------------------------------------------------

def test_front_ends_killed_at_random_points(remote: rpmsg.Device, sock_path: str) -> None:
    rng = random.Random(0xF20)
    script = os.path.join(HERE, "frontend_child.py")
    baseline = None
    for cycle in range(10):
        child = subprocess.Popen([sys.executable, script, sock_path], stdout=subprocess.PIPE)
        assert child.stdout is not None
        if cycle % 3 == 2:
            time.sleep(rng.uniform(0, 0.6))  # while importing, negotiating or binding
        else:
            line = child.stdout.readline().strip()
            assert line == b"bound", (line, child.poll(), remote.link.seen())
            time.sleep(rng.uniform(0, 0.05))  # during traffic
        child.kill()
        child.wait()
        child.stdout.close()
        wait_until(lambda: not remote.link.describe()["connected"], what="front-end gone")
        assert remote.broken_error is None
        if cycle == 2:
            baseline = (len(os.listdir("/proc/self/fd")), threading.active_count())
    still_serving(sock_path)
    wait_until(lambda: not remote.link.describe()["connected"], what="front-end gone")
    assert baseline is not None
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= baseline[0] + 2, os.listdir("/proc/self/fd")
    assert threading.active_count() <= baseline[1], threading.enumerate()


def test_waiting_for_a_front_end_says_so(sock_path: str) -> None:
    with rpmsg.open(f"vhost-user:{sock_path}", side="remote") as dev:
        assert dev.link.seen().startswith(f"no front-end is connected on {sock_path}")
        ept = dev.create_endpoint("x", dst=1024)
        with pytest.raises(rpmsg.RemoteDisconnectedError, match="no front-end driver"):
            ept.send(b"too early", timeout=0.1)
