"""A send waiting for a transmit buffer ends when another thread closes its endpoint.

Found by using the library from outside the suite: ``close()`` from another thread woke
blocked receives and ``wait_bound``, but a ``send``/``send_to``/``get_tx_buffer`` (and so a
queued asyncio send) waiting for a buffer the peer kept went on waiting: for ever if the peer
never gave one back, else the message went out from an endpoint already closed; a
``send_many`` sent the rest of its batch after the close. Still open: a ``send_many`` waiting
for a buffer inside the link (the virtio engine takes the next message before it waits)
ends only when a buffer comes or the device closes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest
from hostile_helpers import bind, wait_until

import rpmsg
from rpmsg import EndpointClosedError, NoBufferError


def fill_for_good(client: rpmsg.Endpoint, server: rpmsg.Endpoint) -> None:
    """Send until every transmit buffer is held by the server (queue=1, hold=None, never
    read): from then on no buffer comes back."""
    sent = [0]
    while True:
        try:
            client.send(b"fill", timeout=0)
            sent[0] += 1
            continue
        except NoBufferError:
            wait_until(lambda: server.pending == sent[0], timeout=20)
        try:  # the one message copied into the server's queue freed its buffer
            client.send(b"fill", timeout=0)
            sent[0] += 1
        except NoBufferError:
            return


OPS: dict[str, Callable[[rpmsg.Endpoint], object]] = {
    "send": lambda ept: ept.send(b"late"),
    "send_to": lambda ept: ept.send_to(ept.dst, b"late", timeout=None),
    "send with a long timeout": lambda ept: ept.send(b"late", timeout=3600),
    "get_tx_buffer": lambda ept: ept.get_tx_buffer(),
    "asyncio send": lambda ept: asyncio.run(ept.as_async().send(b"late")),
}


@pytest.mark.parametrize("op", list(OPS))
def test_close_from_another_thread_ends_a_send_waiting_for_a_buffer(
        pair: tuple[rpmsg.Device, rpmsg.Device], op: str) -> None:
    host, remote = pair
    keeper = remote.create_endpoint("full", queue=1, hold=None)
    full = host.create_endpoint("full")
    full.wait_bound(timeout=20)
    fill_for_good(full, keeper)
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(OPS[op](full))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(0.5)  # usually blocked by now; closing earlier must give the same error
    full.close()
    worker.join(20)
    assert not worker.is_alive(), f"{op} still waits after its endpoint was closed"
    assert len(outcome) == 1 and isinstance(outcome[0], EndpointClosedError), outcome
    assert host.is_up and not host.closed
    keeper.close()  # its buffers go back: the link serves the others again
    client, server = bind(host, remote, "echo")
    client.send(b"after", timeout=20)
    assert server.recv(timeout=20) == b"after"


def test_close_from_another_thread_ends_a_send_many(
        pair: tuple[rpmsg.Device, rpmsg.Device]) -> None:
    """A send_many went on sending its whole batch from an endpoint closed meanwhile (4700
    of 5000 messages after the close) and returned as if nothing happened."""
    host, remote = pair
    got: list[bytes] = []
    arrived = threading.Event()

    def slow(_ept: rpmsg.Endpoint, data: bytes, _src: int) -> None:
        got.append(data)
        if len(got) >= 50:
            arrived.set()
        time.sleep(0.001)  # the sender runs at most the link's buffers ahead

    remote.create_endpoint("slow", callback=slow)
    client = host.create_endpoint("slow")
    client.wait_bound(timeout=20)
    outcome: list[BaseException | int] = []

    def run() -> None:
        try:
            outcome.append(client.send_many((b"%d" % n for n in range(5000)), timeout=60))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    assert arrived.wait(20)
    client.close()
    worker.join(60)
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], EndpointClosedError), outcome
    assert len(got) < 2000  # what was in flight at the close, not the rest of the batch
