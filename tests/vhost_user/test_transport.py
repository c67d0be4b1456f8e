"""The vhost-user: transport end to end against a Python front-end that behaves like UML."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import rpmsg
from rpmsg.endpoint import Endpoint
from rpmsg.errors import (
    AlreadyOpenError,
    InvalidURLError,
    MessageTooLargeError,
    NotAvailableError,
    RemoteDisconnectedError,
)
from rpmsg.vhost_user.messages import encode_message
from rpmsg.wire.vhost_user import VHOST_USER_U64, Request
from rpmsg.wire.virtio import VRING_DESC

from .frontend import FakeFrontend


@pytest.fixture
def sock_path(tmp_path: Path) -> str:
    return str(tmp_path / "rpmsg.sock")


@pytest.fixture
def remote(sock_path: str) -> Iterator[rpmsg.Device]:
    dev = rpmsg.open(f"vhost-user:{sock_path}", side="remote")
    # An echo service announced by name, answering whoever wrote to it.
    dev.create_endpoint("rpmsg-raw", callback=lambda ept, data, src: ept.send_to(src, data))
    yield dev
    dev.close()


def wait_for(cond: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def bind_echo(fe: FakeFrontend) -> Endpoint:
    host = fe.boot()
    addr = host.wait_service("rpmsg-raw", timeout=5)
    return host.create_endpoint("rpmsg-raw", dst=addr)


def test_announced_service_echoes_both_ways(remote: rpmsg.Device, sock_path: str) -> None:
    with FakeFrontend(sock_path) as fe:
        ept = bind_echo(fe)
        for size in (0, 1, 100, 496):
            data = bytes(range(256)) * 2
            ept.send(data[:size])
            assert ept.recv(timeout=5) == data[:size]
        with pytest.raises(MessageTooLargeError):
            ept.send(bytes(497))
        remote_ept = remote.create_endpoint("rpmsg-raw", dst=ept.addr)
        remote_ept.send(b"from the device")
        assert ept.recv(timeout=5) == b"from the device"
        assert remote.mtu == 496
        stats = remote.stats()
        assert stats["link_server_protocol_errors"] == 0
        assert stats["link_links_up"] == 1


def test_front_end_going_away_and_a_new_one(remote: rpmsg.Device, sock_path: str) -> None:
    plain = remote.create_endpoint("plain")
    with FakeFrontend(sock_path) as fe:
        ept = bind_echo(fe)
        host = fe.device
        assert host is not None
        h_plain = host.create_endpoint("plain", dst=host.wait_service("plain", timeout=5))
        h_plain.send(b"bind me")
        assert plain.recv(timeout=5) == b"bind me"
        ept.send(b"x")
        assert ept.recv(timeout=5) == b"x"
        errors: list[BaseException] = []

        def blocked_recv() -> None:
            try:
                plain.recv(timeout=10)
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=blocked_recv)
        t.start()
        time.sleep(0.1)
    # The front-end closed its socket: the link goes down, blocked receivers learn it.
    t.join(timeout=5)
    assert errors and isinstance(errors[0], RemoteDisconnectedError)
    wait_for(lambda: not remote.is_up)
    with pytest.raises(RemoteDisconnectedError):
        plain.send(b"nobody there")
    with FakeFrontend(sock_path) as fe2:
        ept2 = bind_echo(fe2)
        ept2.send(b"again")
        assert ept2.recv(timeout=5) == b"again"
    assert remote.stats()["link_sessions"] == 2


def test_uml_shutdown_sequence_takes_the_link_down(remote: rpmsg.Device, sock_path: str) -> None:
    with FakeFrontend(sock_path) as fe:
        bind_echo(fe)
        fe.shutdown()  # SET_VRING_ENABLE 0 for each queue, then GET_FEATURES
        wait_for(lambda: not remote.is_up)


@pytest.mark.parametrize("bad", [
    encode_message(77),                                           # unknown request
    encode_message(Request.SET_FEATURES, b"\0" * 3),              # bad size
    encode_message(Request.SET_VRING_KICK, VHOST_USER_U64.pack(0)),  # missing fd
    encode_message(Request.GET_FEATURES, flags=2),                # wrong version
])
def test_bad_message_drops_front_end_and_keeps_listening(remote: rpmsg.Device, sock_path: str,
                                                         bad: bytes) -> None:
    with FakeFrontend(sock_path) as fe:
        fe.negotiate()
        fe.send_raw(bad)
        assert fe.backend_gone()  # the back-end request channel closed: UML's cue
        fe.sock.settimeout(5)
        assert fe.sock.recv(1) == b""
    assert remote.stats()["link_server_protocol_errors"] == 1
    assert remote.broken_error is None
    with FakeFrontend(sock_path) as fe2:
        ept = bind_echo(fe2)
        ept.send(b"still serving")
        assert ept.recv(timeout=5) == b"still serving"


def test_ring_address_outside_memory_drops_front_end(remote: rpmsg.Device,
                                                     sock_path: str) -> None:
    with FakeFrontend(sock_path) as fe:
        ept = bind_echo(fe)
        # Corrupt the driver's next TX descriptor: the device must not follow it.
        q1 = fe.queues[1]
        for head in range(fe.num):
            VRING_DESC.pack_into(fe.memory.view(q1.desc + head * VRING_DESC.size,
                                                VRING_DESC.size), 0, 0xDEAD_0000, 64, 0, 0)
        assert fe.engine is not None
        fe.engine._tx_fresh = []  # reuse the corrupted descriptors as-is
        avail = fe.memory.view(q1.avail, 4 + 2 * fe.num)
        idx = int.from_bytes(avail[2:4], "little")
        avail[4 + 2 * (idx % fe.num): 6 + 2 * (idx % fe.num)] = (0).to_bytes(2, "little")
        avail[2:4] = ((idx + 1) & 0xFFFF).to_bytes(2, "little")
        fe.kick(1)
        assert fe.backend_gone()
        del ept
    wait_for(lambda: remote.stats()["link_ring_errors"] == 1)
    assert remote.broken_error is None
    with FakeFrontend(sock_path) as fe2:
        ept2 = bind_echo(fe2)
        ept2.send(b"ok")
        assert ept2.recv(timeout=5) == b"ok"


def test_close_unlinks_socket_and_stale_socket_is_replaced(sock_path: str) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(sock_path)
    stale.close()  # a socket file nobody listens on, as a crashed run leaves behind
    dev = rpmsg.open(f"vhost-user:{sock_path}", side="remote")
    with pytest.raises(AlreadyOpenError):
        rpmsg.open(f"vhost-user:{sock_path}", side="remote")
    dev.close()
    dev.close()
    assert not os.path.exists(sock_path)


def test_url_errors(tmp_path: Path) -> None:
    regular = tmp_path / "file"
    regular.write_text("x")
    with pytest.raises(NotAvailableError, match="is not a socket; refusing to replace it"):
        rpmsg.open(f"vhost-user:{regular}", side="remote")
    assert regular.read_text() == "x"  # never removed
    with pytest.raises(InvalidURLError):
        rpmsg.open(f"vhost-user:{tmp_path}/s.sock?role=driver")
    with pytest.raises(InvalidURLError):
        rpmsg.open("vhost-user:")
    with pytest.raises(InvalidURLError):
        rpmsg.open(f"vhost-user:{tmp_path}/s.sock?bogus=1")
    assert not (tmp_path / "s.sock").exists()


def test_send_before_any_front_end_is_remote_disconnected(sock_path: str) -> None:
    with rpmsg.open(f"vhost-user:{sock_path}", side="remote") as dev:
        ept = dev.create_endpoint("x", dst=0x400)
        with pytest.raises(RemoteDisconnectedError):
            ept.send(b"too early")
        assert dev.link.describe()["connected"] is False
