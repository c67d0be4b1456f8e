"""An asyncio service with several endpoints, and a client that calls them concurrently.

The remote half serves three endpoints from one event loop, one task each: ``upper``
(upper-cases), ``reverse`` (reverses) and ``sum`` (adds up little-endian u32 values). Receiving
costs no thread per message: the transport wakes the loop only when a task waits.

    python async_services.py serve shm:services
    python async_services.py call shm:services
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import sys
from collections.abc import Callable

import rpmsg

HANDLERS: dict[str, Callable[[bytes], bytes]] = {
    "upper": bytes.upper,
    "reverse": lambda data: data[::-1],
    "sum": lambda data: struct.pack("<Q", sum(struct.unpack(f"<{len(data) // 4}I", data))),
}


async def serve_one(ept: rpmsg.AsyncEndpoint, handler: Callable[[bytes], bytes]) -> None:
    while True:
        try:
            msg = await ept.recv_message()
        except rpmsg.RemoteDisconnectedError:
            await ept.wait_bound()      # a client left; the next one binds with its first message
            continue
        await ept.send_to(msg.src, handler(msg.data))


async def serve(url: str) -> int:
    with rpmsg.open(url, side="remote") as dev:
        endpoints = {name: dev.create_endpoint(name).as_async() for name in HANDLERS}
        print(f"serving {', '.join(endpoints)} on {url}", flush=True)
        tasks = [asyncio.create_task(serve_one(ept, HANDLERS[name]))
                 for name, ept in endpoints.items()]
        try:
            await asyncio.gather(*tasks)               # until Ctrl-C
        finally:
            for task in tasks:
                task.cancel()
    return 0


async def call(url: str, timeout: float) -> int:
    with rpmsg.open(url, timeout=timeout) as dev:
        clients = {name: dev.create_endpoint(name).as_async() for name in HANDLERS}
        await asyncio.gather(*(c.wait_bound(timeout=timeout) for c in clients.values()))

        async def ask(name: str, data: bytes) -> bytes:
            await clients[name].send(data, timeout=timeout)
            return await clients[name].recv(timeout=timeout)

        upper, reverse, total = await asyncio.gather(
            ask("upper", b"asyncio"), ask("reverse", b"stressed"),
            ask("sum", struct.pack("<4I", 1, 2, 3, 4)))
    print(upper, reverse, struct.unpack("<Q", total)[0])
    ok = (upper, reverse, total) == (b"ASYNCIO", b"desserts", struct.pack("<Q", 10))
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("half", choices=["serve", "call"])
    parser.add_argument("url", help="transport URL, e.g. shm:services")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per wait (10)")
    args = parser.parse_args()
    try:
        if args.half == "serve":
            return asyncio.run(serve(args.url))
        return asyncio.run(call(args.url, args.timeout))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except rpmsg.RpmsgError as exc:  # every library error: one line, exit 1
        sys.exit(f"async services: {exc}")
