"""The asyncio view of endpoints over ``loop:``: await recv/send, async for, async with."""

from __future__ import annotations

import asyncio
import threading

import pytest

import rpmsg
from rpmsg import (
    EndpointClosedError,
    MessageTooLargeError,
    NoBufferError,
    RemoteDisconnectedError,
    RpmsgTimeoutError,
    WouldBlockError,
)

Pair = tuple[rpmsg.Device, rpmsg.Device]


def connect(a: rpmsg.Device, b: rpmsg.Device,
            name: str = "svc") -> tuple[rpmsg.Endpoint, rpmsg.Endpoint]:
    server = b.create_endpoint(name)
    a.wait_service(name, timeout=5)
    client = a.create_endpoint(name)
    client.wait_bound(timeout=5)
    return client, server


def test_messages_both_ways(devices: Pair) -> None:
    a, b = devices

    async def main() -> None:
        server = b.create_endpoint("svc").as_async()
        a.wait_service("svc", timeout=5)
        client = a.create_endpoint("svc").as_async()
        assert await client.wait_bound(timeout=5) == server.addr
        await client.send(b"ping")
        msg = await server.recv_message(timeout=5)
        assert (msg.data, msg.src, msg.dst) == (b"ping", client.addr, server.addr)
        await server.send(b"pong")
        assert await client.recv(timeout=5) == b"pong"
        big = bytes(range(256)) * 2
        await client.send(big[:496])
        assert await server.recv(timeout=5) == big[:496]
        with pytest.raises(MessageTooLargeError):
            await client.send(big[:497])
        await server.send_to(client.addr, b"direct")
        assert await client.recv(timeout=5) == b"direct"

    asyncio.run(main())


def test_timeouts(devices: Pair) -> None:
    a, b = devices
    client, _server = connect(a, b)

    async def main() -> None:
        ac = client.as_async()
        with pytest.raises(WouldBlockError):
            await ac.recv(timeout=0)
        with pytest.raises(RpmsgTimeoutError):
            await ac.recv(timeout=0.05)

    asyncio.run(main())


def test_unbound_wait_and_send(devices: Pair) -> None:
    a, _ = devices

    async def main() -> None:
        lone = a.create_endpoint().as_async()
        with pytest.raises(WouldBlockError):
            await lone.wait_bound(timeout=0)
        with pytest.raises(RpmsgTimeoutError):
            await lone.wait_bound(timeout=0.02)
        with pytest.raises(rpmsg.NotBoundError):
            await lone.send(b"x", timeout=0)

    asyncio.run(main())


def test_recv_does_not_block_the_event_loop(devices: Pair) -> None:
    a, b = devices
    client, server = connect(a, b)

    async def main() -> None:
        waiting = asyncio.create_task(server.as_async().recv())
        for _ in range(20):
            await asyncio.sleep(0)  # other coroutines run while recv waits
        assert not waiting.done()
        t = threading.Thread(target=client.send, args=(b"from a thread",))
        t.start()
        assert await asyncio.wait_for(waiting, 5) == b"from a thread"
        t.join(5)

    asyncio.run(main())


def test_async_for_ends_on_close(devices: Pair) -> None:
    a, b = devices
    client, server = connect(a, b)

    async def main() -> None:
        aserver = server.as_async()
        got: list[bytes] = []

        async def consume() -> None:
            async for data in aserver:
                got.append(data)
                if len(got) == 3:
                    await aserver.close()

        task = asyncio.create_task(consume())
        for m in (b"a", b"b", b"c"):
            client.send(m)
        await asyncio.wait_for(task, 5)
        assert got == [b"a", b"b", b"c"]
        assert server.closed

    asyncio.run(main())


def test_close_from_another_thread_ends_async_for(devices: Pair) -> None:
    a, b = devices
    _client, server = connect(a, b)

    async def main() -> None:
        got: list[bytes] = []

        async def consume() -> None:
            async for data in server.as_async():
                got.append(data)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
        await asyncio.to_thread(server.close)
        await asyncio.wait_for(task, 5)
        assert got == []

    asyncio.run(main())


def test_async_with_closes(devices: Pair) -> None:
    a, b = devices
    client, server = connect(a, b)

    async def main() -> None:
        async with client.as_async() as ac:
            await ac.send(b"inside")
            assert ac.bound
        assert client.closed
        with pytest.raises(EndpointClosedError):
            await ac.recv(timeout=0)
        with pytest.raises(EndpointClosedError):
            await ac.send(b"after")

    asyncio.run(main())
    assert server.recv(timeout=5) == b"inside"


def test_remote_close_wakes_async_recv(devices: Pair) -> None:
    a, b = devices
    client, server = connect(a, b)
    client.send(b"bind")
    assert server.recv(timeout=5) == b"bind"

    async def main() -> None:
        waiting = asyncio.create_task(server.as_async().recv())
        await asyncio.sleep(0)
        await asyncio.to_thread(a.close)
        with pytest.raises(RemoteDisconnectedError):
            await asyncio.wait_for(waiting, 5)

    asyncio.run(main())


def test_async_send_waits_for_buffer(loop_name: str) -> None:
    url = f"loop:{loop_name}?buffers=2"
    release = threading.Event()
    entered = threading.Event()

    def stuck(ept: rpmsg.Endpoint, data: bytes, src: int) -> None:
        entered.set()
        release.wait(10)

    with rpmsg.open(url) as a, rpmsg.open(url) as b:
        try:
            b.create_endpoint("sink", callback=stuck)
            a.wait_service("sink", timeout=5)
            client = a.create_endpoint("sink")
            client.wait_bound(timeout=5)

            async def main() -> None:
                ac = client.as_async()
                await ac.send(b"1", timeout=0)
                assert entered.wait(5)
                await ac.send(b"2", timeout=0)
                with pytest.raises(NoBufferError):
                    await ac.send(b"3", timeout=0)
                with pytest.raises(RpmsgTimeoutError):
                    await ac.send(b"3", timeout=0.05)
                pending = asyncio.create_task(ac.send(b"3"))
                await asyncio.sleep(0)
                release.set()
                await asyncio.wait_for(pending, 5)

            asyncio.run(main())
        finally:
            release.set()


def test_async_nuttx_send_waits_for_binding(loop_name: str) -> None:
    with rpmsg.open(f"loop:{loop_name}", policy="nuttx") as a, \
            rpmsg.open(f"loop:{loop_name}", policy="nuttx") as b:
        a.wait_up(timeout=5)

        async def main() -> None:
            early = a.create_endpoint("late").as_async()
            sending = asyncio.create_task(early.send(b"when bound", timeout=5))
            await asyncio.sleep(0)
            peer = await asyncio.to_thread(b.create_endpoint, "late")
            await asyncio.wait_for(sending, 5)
            assert await peer.as_async().recv(timeout=5) == b"when bound"

        asyncio.run(main())


def test_cancelled_recv_loses_nothing(devices: Pair, no_thread_leak: None) -> None:
    a, b = devices
    client, server = connect(a, b)

    async def main() -> None:
        aserver = server.as_async()
        waiting = asyncio.create_task(aserver.recv())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await asyncio.to_thread(client.send, b"kept")
        assert await aserver.recv(timeout=5) == b"kept"

    asyncio.run(main())
