"""Endpoint habits from python-can/pyserial and the batch API: fileno() for select loops,
recv_many (sync and asyncio), recv(max_size=), asyncio sends that wait for buffers."""

from __future__ import annotations

import asyncio
import selectors
import threading

import pytest
from foundation_helpers import wait_until

import rpmsg
from rpmsg import EndpointClosedError, MessageTooLargeError, RemoteDisconnectedError

Pair = tuple[rpmsg.Device, rpmsg.Device]


def linked(a: rpmsg.Device, b: rpmsg.Device) -> tuple[rpmsg.Endpoint, rpmsg.Endpoint]:
    a.wait_up(timeout=5)
    b.wait_up(timeout=5)
    return a.create_endpoint(src=0x40, dst=0x41), b.create_endpoint(src=0x41, dst=0x40)


def test_fileno_in_a_selector_loop(devices: Pair) -> None:
    a, b = devices
    x, y = linked(a, b)
    sel = selectors.DefaultSelector()
    sel.register(y.fileno(), selectors.EVENT_READ)
    assert y.fileno() == y.fileno()  # made once
    assert sel.select(timeout=0) == []
    x.send(b"one")
    x.send(b"two")
    assert len(sel.select(timeout=5)) == 1
    assert y.recv(timeout=0) == b"one"
    assert len(sel.select(timeout=0)) == 1  # still one pending
    assert y.recv(timeout=0) == b"two"
    assert sel.select(timeout=0) == []
    # The remote going away makes it readable too: recv has an error to report.
    a.close()
    assert len(sel.select(timeout=5)) == 1
    with pytest.raises(RemoteDisconnectedError):
        y.recv(timeout=0)
    sel.unregister(y.fileno())
    sel.close()
    y.close()
    with pytest.raises(EndpointClosedError):
        y.fileno()


def test_fileno_wakes_a_select_waiting_in_another_thread(devices: Pair) -> None:
    a, b = devices
    x, y = linked(a, b)
    fd = y.fileno()
    woke = threading.Event()

    def waiter() -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            if sel.select(timeout=10):
                woke.set()

    t = threading.Thread(target=waiter)
    t.start()
    x.send(b"wake")
    t.join(10)
    assert woke.is_set()


def test_recv_many_takes_a_burst(devices: Pair) -> None:
    a, b = devices
    x, y = linked(a, b)
    assert x.send_many([b"%d" % i for i in range(10)]) == 10
    wait_until(lambda: y.pending == 10)
    assert y.recv_many(4, timeout=0) == [b"0", b"1", b"2", b"3"]
    assert y.recv_many(100, timeout=5) == [b"%d" % i for i in range(4, 10)]
    with pytest.raises(rpmsg.WouldBlockError):
        y.recv_many(4, timeout=0)
    with pytest.raises(rpmsg.RpmsgTimeoutError):
        y.recv_many(4, timeout=0.02)


def test_recv_max_size(devices: Pair) -> None:
    a, b = devices
    x, y = linked(a, b)
    x.send(b"12345")
    x.send(b"123")
    with pytest.raises(MessageTooLargeError):
        y.recv(timeout=5, max_size=4)  # consumed, not truncated
    assert y.recv(timeout=5, max_size=4) == b"123"


def test_async_recv_many_and_timestamps(devices: Pair) -> None:
    a, b = devices
    x, y = linked(a, b)

    async def main() -> None:
        ay = y.as_async()
        waiting = asyncio.create_task(ay.recv_many(8, timeout=5))
        await asyncio.sleep(0)
        await asyncio.to_thread(x.send_many, [b"a", b"b", b"c"])
        got = await waiting
        while len(got) < 3:
            got += await ay.recv_many(8, timeout=5)
        assert got == [b"a", b"b", b"c"]
        x.send(b"m")
        msg = await ay.recv_message(timeout=5)
        assert msg.timestamp > 0 and msg.src == 0x40
        with pytest.raises(rpmsg.RpmsgTimeoutError, match="link up"):
            await ay.recv(timeout=0.02)

    asyncio.run(main())


def test_async_burst_waits_for_buffers_without_a_thread_per_message(loop_name: str) -> None:
    url = f"loop:{loop_name}?buffers=4"
    with rpmsg.open(url) as a, rpmsg.open(url) as b:
        a.wait_up(timeout=5)
        b.wait_up(timeout=5)
        x = a.create_endpoint(src=0x40, dst=0x41)
        y = b.create_endpoint(src=0x41, queue=1, hold=None)  # holds the loop's 4 buffers
        n = 200

        async def main() -> None:
            ax = x.as_async()
            sends = [asyncio.create_task(ax.send(b"%d" % i, timeout=30)) for i in range(n)]
            await asyncio.sleep(0.05)
            senders = [t for t in threading.enumerate() if t.name.startswith("rpmsg-async-send")]
            assert len(senders) == 1  # one thread waits for buffers for the whole burst
            assert sum(1 for t in sends if t.done()) <= 5
            got = [await asyncio.to_thread(y.recv, 10) for _ in range(n)]
            await asyncio.gather(*sends)
            assert got == [b"%d" % i for i in range(n)]  # in order

        asyncio.run(main())
