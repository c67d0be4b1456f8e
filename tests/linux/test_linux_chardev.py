"""The /dev/rpmsgN Endpoint over socketpairs: messages, end of stream, sizes, timeouts, asyncio."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from linux_fakes import FakeKernel

from rpmsg.errors import (
    AlreadyOpenError,
    ArgumentTypeError,
    EndpointClosedError,
    InvalidArgumentError,
    MessageTooLargeError,
    NoBufferError,
    NotAvailableError,
    RemoteDisconnectedError,
    RpmsgTimeoutError,
    WouldBlockError,
)
from rpmsg.linux import Chardev, Endpoint

Pair = tuple[socket.socket, socket.socket]


def test_constants() -> None:
    assert Endpoint.MAX_MESSAGE_SIZE == 496


def test_round_trip_and_end_of_stream(seqpacket: Pair) -> None:
    a, b = seqpacket
    ep = Endpoint.from_streams(a, a)
    b.send(b"hello")
    b.send(b"x" * 496)
    assert ep.recv() == b"hello"
    assert ep.recv() == b"x" * 496
    ep.send(b"ping")
    ep.send(b"")
    assert b.recv(1000) == b"ping"
    b.shutdown(socket.SHUT_WR)
    assert ep.recv(timeout=5) is None
    assert ep.stats["rx_messages"] == 2 and ep.stats["tx_messages"] == 2
    ep.close()


def test_iteration_stops_at_end_of_stream(seqpacket: Pair) -> None:
    a, b = seqpacket
    for i in range(3):
        b.send(bytes([i]))
    b.close()
    with Endpoint.from_streams(a, a) as ep:
        assert list(ep) == [b"\x00", b"\x01", b"\x02"]


def test_two_pipes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    ep = Endpoint.from_streams(r1, w2, close=True)
    os.write(w1, b"in")
    assert ep.recv(timeout=5) == b"in"
    ep.send(b"out")
    assert os.read(r2, 100) == b"out"
    ep.close()
    for fd in (w1, r2):
        os.close(fd)
    with pytest.raises(OSError):
        os.fstat(r1)


def test_oversized_message_is_an_error_not_a_truncation(seqpacket: Pair) -> None:
    a, b = seqpacket
    ep = Endpoint.from_streams(a, a)
    b.send(b"y" * 11)
    b.send(b"next")
    with pytest.raises(MessageTooLargeError, match=r"11 bytes exceeds .* 10 bytes"):
        ep.recv(max_size=10)
    assert ep.stats["rx_too_large"] == 1
    assert ep.recv(max_size=10) == b"next"  # the stream goes on
    b.send(b"z" * 10)
    assert ep.recv(max_size=10) == b"z" * 10  # exactly max_size is fine
    with pytest.raises(MessageTooLargeError):
        ep.send(b"q" * 497)
    ep.close()


def test_timeouts(seqpacket: Pair) -> None:
    a, _b = seqpacket
    ep = Endpoint.from_streams(a, a)
    with pytest.raises(WouldBlockError):
        ep.recv(timeout=0)
    with pytest.raises(RpmsgTimeoutError):
        ep.recv(timeout=0.05)
    ep.close()


def test_huge_and_invalid_timeouts(seqpacket: Pair) -> None:
    """Huge finite timeouts simply wait (in slices poll() accepts); NaN and negative ones are
    refused before anything happens."""
    a, b = seqpacket
    ep = Endpoint.from_streams(a, a)
    threading.Timer(0.05, b.send, (b"late",)).start()
    assert ep.recv(timeout=1e12) == b"late"
    ep.send(b"big", timeout=1e12)
    assert b.recv(100) == b"big"
    for bad in (float("nan"), -1):
        with pytest.raises(InvalidArgumentError):
            ep.recv(timeout=bad)
        with pytest.raises(InvalidArgumentError):
            ep.send(b"x", timeout=bad)
    with pytest.raises(ArgumentTypeError):
        ep.recv(timeout="1")  # type: ignore[arg-type]
    ep.close()


def test_send_without_buffer(seqpacket: Pair) -> None:
    a, _b = seqpacket
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    ep = Endpoint.from_streams(a, a)
    with pytest.raises(NoBufferError):
        for _ in range(10000):
            ep.send(b"f" * 400, timeout=0)
    with pytest.raises(RpmsgTimeoutError):
        ep.send(b"f", timeout=0.05)
    ep.close()


def test_close_wakes_a_blocked_receiver(seqpacket: Pair) -> None:
    a, _b = seqpacket
    ep = Endpoint.from_streams(a, a)
    errors: list[BaseException] = []

    def receiver() -> None:
        try:
            ep.recv()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=receiver)
    t.start()
    while not ep._chardev._users:  # the receiver is waiting in poll()
        time.sleep(0.001)
    ep.close()
    t.join(10)
    assert not t.is_alive()
    assert isinstance(errors[0], EndpointClosedError)
    with pytest.raises(EndpointClosedError):
        ep.send(b"x")


def _nonblocking(sock: socket.socket) -> bool:
    return bool(fcntl.fcntl(sock.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK)


def test_streams_flags_restored_and_not_closed(seqpacket: Pair) -> None:
    a, _b = seqpacket
    assert not _nonblocking(a)
    ep = Endpoint.from_streams(a, a)
    assert _nonblocking(a)
    ep.close()
    assert not _nonblocking(a)
    a.fileno()  # still open


def test_device_zero_length_message(fake: FakeKernel) -> None:
    """On a device an empty read is a zero-length message, not the end."""
    fake.add_ctrl(0)
    fake.add_ept(0, "e", 0xFFFFFFFF, 0x400, ctrl=0)
    ep = fake.open_endpoint(0)
    fake.remotes[0].send(b"")
    assert ep.recv(timeout=5) == b""
    fake.remotes[0].close()
    with pytest.raises(RemoteDisconnectedError):  # EPIPE from the (fake) device
        ep.send(b"x")
    ep.close()


def test_device_pollhup_while_waiting_is_a_disconnect(monkeypatch: pytest.MonkeyPatch) -> None:
    r, w = os.pipe()
    ep = Endpoint(Chardev(r, w, path="/dev/rpmsg9", device=True, owns_fds=False))
    real_read = os.read

    def read(fd: int, n: int) -> bytes:  # the device's queue is empty: EAGAIN
        if fd == r:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        return real_read(fd, n)

    monkeypatch.setattr(os, "read", read)
    os.close(w)  # poll now reports POLLHUP without POLLIN, like the kernel's EPOLLERR
    with pytest.raises(RemoteDisconnectedError):
        ep.recv(timeout=10)
    monkeypatch.undo()
    ep.close()
    os.close(r)


def test_device_read_epipe_is_a_disconnect(monkeypatch: pytest.MonkeyPatch,
                                           fake: FakeKernel) -> None:
    fake.add_ctrl(0)
    fake.add_ept(0, "e", 0xFFFFFFFF, 0x400, ctrl=0)
    ep = fake.open_endpoint(0)
    device_fd = ep.fileno()
    real_read = os.read

    def read(fd: int, n: int) -> bytes:
        if fd == device_fd:
            raise OSError(errno.EPIPE, "Broken pipe")
        return real_read(fd, n)

    monkeypatch.setattr(os, "read", read)
    fake.remotes[0].send(b"poll reports it readable")  # as the kernel's EPOLLERR does
    with pytest.raises(RemoteDisconnectedError):
        ep.recv(timeout=10)
    monkeypatch.undo()


def test_open_and_errors(fake: FakeKernel) -> None:
    with pytest.raises(NotAvailableError, match="no such endpoint"):
        Endpoint.open(0, sysfs=fake.sysfs)
    with pytest.raises(NotAvailableError, match="does not name"):
        Endpoint.open("tty0", sysfs=fake.sysfs)
    fake.add_ctrl(0)
    fake.add_ept(0, "e", 0xFFFFFFFF, 0x400, ctrl=0)
    with Endpoint.open("rpmsg0", sysfs=fake.sysfs) as ep:
        assert ep.path == str(fake.dev / "rpmsg0")
        assert ep.info().name == "e"
        assert ep.recv(timeout=0) == b""  # the fake node reads empty: a 0-byte "message"
    fd = Endpoint.open_fd(f"{fake.dev}/rpmsg0", sysfs=fake.sysfs)
    os.close(fd)
    # Without the sysfs that lists it, a node of no rpmsg driver (here /dev/null's number)
    # is not trusted.
    with pytest.raises(NotAvailableError, match="of no rpmsg driver"):
        Endpoint.open_fd(f"{fake.dev}/rpmsg0")


def test_destroy_and_flow_control_use_the_ioctls(fake: FakeKernel) -> None:
    fake.add_ctrl(0)
    fake.add_ept(0, "e", 0xFFFFFFFF, 0x400, ctrl=0)
    ep = fake.open_endpoint(0)
    ep.destroy()
    assert ep.closed and fake.ept_names() == {}
    assert fake.calls[-1][0] == "0xb502"
    fake.add_ept(1, "raw", 0x400, 0x400, channel=fake.add_channel("rpmsg-raw", 0x400, 0x400))
    raw = fake.open_endpoint(1)
    with pytest.raises(NotAvailableError, match="default endpoint"):
        raw.destroy()
    other = fake.open_endpoint(1)
    with pytest.raises(NotAvailableError, match="EOPNOTSUPP"):  # virtio has no flow control
        other.set_incoming_flow_control(True)
    assert other.get_outgoing_flow_control() is False


def test_busy_open_is_already_open(monkeypatch: pytest.MonkeyPatch, fake: FakeKernel) -> None:
    """rpmsg_char's single opener: EBUSY is AlreadyOpenError naming the process holding it."""
    fake.add_ctrl(0)
    fake.add_ept(0, "e", 0xFFFFFFFF, 0x400, ctrl=0)
    node = str(fake.dev / "rpmsg0")
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import os,sys; fd=os.open({node!r}, os.O_RDWR); "
         "print('open', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        real_open = os.open

        def busy(path: str, flags: int, *args: int) -> int:
            if path == node:  # what the kernel answers a second opener
                raise OSError(errno.EBUSY, "Device or resource busy")
            return real_open(path, flags, *args)

        monkeypatch.setattr(os, "open", busy)
        with pytest.raises(AlreadyOpenError, match=f"held by pid {holder.pid} "):
            Endpoint.open_fd(0, sysfs=fake.sysfs)
    finally:
        holder.kill()
        holder.wait()


def test_asyncio(seqpacket: Pair) -> None:
    a, b = seqpacket

    async def main() -> None:
        ep = Endpoint.from_streams(a, a).as_async()
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, b.send, b"later")
        assert await ep.recv(timeout=5) == b"later"
        with pytest.raises(RpmsgTimeoutError):
            await ep.recv(timeout=0.02)
        with pytest.raises(WouldBlockError):
            await ep.recv(timeout=0)
        await ep.send(b"pong")
        assert b.recv(100) == b"pong"
        b.send(b"1")
        b.send(b"2")
        b.shutdown(socket.SHUT_WR)
        assert [m async for m in ep] == [b"1", b"2"]
        await ep.close()

    asyncio.run(main())


def test_asyncio_close_wakes_receiver(seqpacket: Pair) -> None:
    a, _b = seqpacket

    async def main() -> None:
        ep = Endpoint.from_streams(a, a)
        task = asyncio.ensure_future(ep.as_async().recv())
        await asyncio.sleep(0.01)
        ep.close()
        with pytest.raises(EndpointClosedError):
            await asyncio.wait_for(task, 5)

    asyncio.run(main())
