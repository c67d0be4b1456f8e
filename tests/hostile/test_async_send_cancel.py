"""An asyncio send that was cancelled never goes out later.

Found by using the library from outside the suite: ``asyncio.wait_for(ept.send(data), t)``
that ran out while the endpoint's sender thread waited for a buffer raised ``TimeoutError``
to the caller, yet the message was sent as soon as a buffer came back: a caller that retried
(it was told the message did not go) had it delivered twice.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

import rpmsg


@pytest.mark.parametrize("how", ["wait_for", "task.cancel"])
def test_a_cancelled_send_waiting_for_a_buffer_is_never_sent(how: str) -> None:
    name = f"loop:{uuid.uuid4().hex}?buffers=2"

    async def main() -> list[bytes]:
        with rpmsg.open(name) as host, rpmsg.open(name) as remote:
            server = remote.create_endpoint("svc", queue=1, hold=None)  # never drops
            client = host.create_endpoint("svc").as_async()
            await client.wait_bound(timeout=20)
            for n in range(3):  # one in the server's queue, two held in the loop's buffers
                await client.send(b"fill %d" % n, timeout=20)
            if how == "wait_for":
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(client.send(b"cancelled"), 0.3)
            else:
                task = asyncio.create_task(client.send(b"cancelled"))
                await asyncio.sleep(0.3)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            got: list[bytes] = []
            later = asyncio.create_task(client.send(b"after", timeout=20))
            while not got or got[-1] != b"after":  # sends of one endpoint keep their order
                got.append(await server.as_async().recv(timeout=20))
            await later
            return got

    assert asyncio.run(main()) == [b"fill 0", b"fill 1", b"fill 2", b"after"]
