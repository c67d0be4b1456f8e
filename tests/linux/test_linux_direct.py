"""linux: endpoints read on the receiving thread (direct receive): the same API as everywhere,
with fileno, recv_many, timestamps, concurrent readers, asyncio, callbacks on the reader
thread, remote-gone reports while nobody reads, close waking readers, no thread left."""

from __future__ import annotations

import asyncio
import errno
import os
import select
import signal
import threading
import time

import pytest
from linux_fakes import FakeKernel

from rpmsg.device import Device
from rpmsg.endpoint import Endpoint
from rpmsg.errors import EndpointClosedError, RemoteDisconnectedError, RpmsgTimeoutError
from rpmsg.linux.fastpoll import LIBC_POLL, Poller
from rpmsg.linux.link import LinuxLink


def ctrl_device(fake: FakeKernel) -> Device:
    fake.add_ctrl(0)
    return Device(LinuxLink(ctrl=fake.open_ctrl(0), opener=fake.opener))


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "rpmsg-linux-reader"]


def test_fileno_is_the_device_and_select_works(fake: FakeKernel) -> None:
    with ctrl_device(fake) as dev:
        ept = dev.create_endpoint("a", dst=0x400)
        assert ept.fileno() == fake.endpoints[-1].rfd  # messages wait in the kernel
        assert select.select([ept], [], [], 0)[0] == []
        fake.remotes[0].send(b"one")
        assert select.select([ept], [], [], 30)[0] == [ept]
        assert ept.recv(timeout=0) == b"one"
        assert ept.pending == 0 and ept.stats()["rx_messages"] == 1


def test_recv_many_and_message_timestamps(fake: FakeKernel) -> None:
    with ctrl_device(fake) as dev:
        ept = dev.create_endpoint("a", dst=0x400)
        for i in range(5):
            fake.remotes[0].send(bytes([i]))
        assert ept.recv_many(3, timeout=5) == [b"\0", b"\1", b"\2"]
        before = time.time()
        msg = ept.recv_message(timeout=5)
        assert (msg.data, msg.src, msg.dst) == (b"\3", 0x400, ept.addr)
        assert before - 1 <= msg.timestamp <= time.time()
        assert ept.recv_many(64, timeout=5) == [b"\4"]
        with pytest.raises(RpmsgTimeoutError, match="delivered 5 message"):
            ept.recv_many(4, timeout=0.01)
        assert dev.stats()["rx_messages"] == 5


def test_concurrent_readers_get_each_message_once(fake: FakeKernel) -> None:
    with ctrl_device(fake) as dev:
        ept = dev.create_endpoint("a", dst=0x400)
        got: list[list[bytes]] = [[], []]

        def reader(out: list[bytes]) -> None:
            try:
                while True:
                    out.append(ept.recv(timeout=2))
            except (RpmsgTimeoutError, EndpointClosedError):
                pass

        threads = [threading.Thread(target=reader, args=(g,)) for g in got]
        for t in threads:
            t.start()
        sent = [i.to_bytes(2, "little") for i in range(300)]
        for data in sent:
            fake.remotes[0].send(data)
        for t in threads:
            t.join(60)
        assert sorted(got[0] + got[1]) == sorted(sent)
        for g in got:  # each reader saw its messages in order
            assert g == sorted(g, key=lambda b: int.from_bytes(b, "little"))


def test_callback_endpoint_is_delivered_by_the_reader_thread(fake: FakeKernel) -> None:
    seen: list[tuple[bytes, int, str]] = []
    done = threading.Event()

    def on_message(ept: Endpoint, data: bytes, src: int) -> None:
        seen.append((data, src, threading.current_thread().name))
        done.set()

    with ctrl_device(fake) as dev:
        dev.create_endpoint("cb", dst=0x400, callback=on_message)
        fake.remotes[0].send(b"hi")
        assert done.wait(30)
        assert seen == [(b"hi", 0x400, "rpmsg-linux-reader")]


def test_remote_gone_is_reported_while_nobody_reads(fake: FakeKernel) -> None:
    unbound = threading.Event()
    with ctrl_device(fake) as dev:
        ept = dev.create_endpoint("a", dst=0x400, on_unbound=lambda e: unbound.set())
        fake.remotes[0].close()  # the device reports POLLHUP/POLLERR: the endpoint is gone
        assert unbound.wait(30)
        assert not dev.is_up
        with pytest.raises(RemoteDisconnectedError):
            ept.send(b"x")
        with pytest.raises(RemoteDisconnectedError):
            ept.recv(timeout=5)


def test_close_wakes_a_direct_reader_and_leaves_no_thread(fake: FakeKernel) -> None:
    before = len(reader_threads())
    dev = ctrl_device(fake)
    ept = dev.create_endpoint("a", dst=0x400)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            ept.recv()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    chardev = fake.endpoints[-1]
    while not chardev._users:  # the reader waits in poll()
        time.sleep(0.001)
    started = time.monotonic()
    dev.close(timeout=1.0)
    assert time.monotonic() - started < 1.0 + 0.5  # the budget, plus slack for a busy box
    t.join(30)
    assert not t.is_alive()
    assert isinstance(errors[0], EndpointClosedError)
    assert len(reader_threads()) == before
    assert chardev.closed and fake.ept_names() == {}  # the link destroyed what it made


def test_asyncio_direct(fake: FakeKernel) -> None:
    async def main() -> None:
        with ctrl_device(fake) as dev:
            ept = dev.create_endpoint("a", dst=0x400).as_async()
            loop = asyncio.get_running_loop()
            loop.call_later(0.01, fake.remotes[0].send, b"later")
            assert await ept.recv(timeout=30) == b"later"
            fake.remotes[0].send(b"1")
            fake.remotes[0].send(b"2")
            assert await ept.recv_many(8, timeout=30) in ([b"1", b"2"], [b"1"])
            with pytest.raises(RpmsgTimeoutError):
                await ept.recv(timeout=0.02)
            waiter = asyncio.ensure_future(ept.recv())
            await asyncio.sleep(0.01)
            await ept.close()  # wakes the waiting task
            with pytest.raises(EndpointClosedError):
                await asyncio.wait_for(waiter, 30)

    asyncio.run(main())


# fastpoll -------------------------------------------------------------------------------


@pytest.mark.parametrize("libc", [True, False], ids=["libc", "select"])
def test_poller_ready_and_timeout(libc: bool) -> None:
    if libc and LIBC_POLL is None:
        pytest.skip("no libc poll on this system")
    r, w = os.pipe()
    try:
        poller = Poller([(r, select.POLLIN)], libc_poll=LIBC_POLL if libc else None)
        assert poller.wait(0) == 0 and poller.poll(10) == []
        os.write(w, b"x")
        assert poller.wait(None) == 1 and poller.revents(0) == select.POLLIN
        assert poller.view[3] == select.POLLIN
        assert poller.poll(0) == [(r, select.POLLIN)]
        os.close(w)
        w = -1
        os.read(r, 1)
        assert poller.wait(1000) == 1 and poller.revents(0) & select.POLLHUP
    finally:
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)


def test_poller_resumes_after_a_signal_and_lets_handlers_raise() -> None:
    if LIBC_POLL is None:
        pytest.skip("no libc poll on this system")
    r, w = os.pipe()
    calls: list[int] = []

    class Stop(Exception):
        pass

    def handler(signum: int, frame: object) -> None:
        calls.append(signum)
        if len(calls) == 3:
            raise Stop

    old = signal.signal(signal.SIGALRM, handler)
    try:
        poller = Poller([(r, select.POLLIN)])
        signal.setitimer(signal.ITIMER_REAL, 0.02)
        started = time.monotonic()
        assert poller.wait(300) == 0  # interrupted once, then waited out the rest
        assert calls == [signal.SIGALRM]
        assert time.monotonic() - started >= 0.29
        signal.setitimer(signal.ITIMER_REAL, 0.01, 0.01)
        with pytest.raises(Stop):  # a raising handler ends the wait (Ctrl-C works)
            poller.wait(None)
        assert len(calls) == 3
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        os.close(r)
        os.close(w)


def test_poller_reports_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(ptr: int, count: int, wait: int) -> int:
        import ctypes

        ctypes.set_errno(errno.EBADF)
        return -1

    poller = Poller([(0, select.POLLIN)], libc_poll=failing)
    with pytest.raises(OSError) as info:
        poller.wait(0)
    assert info.value.errno == errno.EBADF
