"""Corners of the endpoint API found by using the library from outside the suite.

Each test is one defect that was seen: a name no UTF-8 encoder takes raised an untyped
``UnicodeEncodeError``; ``send_many`` of a non-iterable an untyped ``TypeError``; and sends
whose timeout ran out while they waited their turn (asyncio sends queued behind others, the
rest of a ``send_many`` batch, a NuttX-policy send that waited for its binding) raised
``NoBufferError`` (the error of ``timeout=0``) instead of ``RpmsgTimeoutError``;
``rpmsg.open`` with ``policy=123`` raised ``AttributeError``, ``capture=123`` created a file
named ``123``, and a capture path or URL with a NUL or a lone surrogate raised untyped
``ValueError``/``UnicodeEncodeError``.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_helpers import wait_until

import rpmsg
from rpmsg import (
    ArgumentTypeError,
    InvalidArgumentError,
    NoBufferError,
    RpmsgError,
    RpmsgTimeoutError,
)


def fill(client: rpmsg.Endpoint, server: rpmsg.Endpoint, buffers: int) -> None:
    """Send until the link is full: the server (queue=1, hold=None) keeps one message
    copied in its queue and holds the next ``buffers`` in the loop's buffers."""
    for _ in range(buffers + 1):
        client.send(b"fill", timeout=20)
    wait_until(lambda: server.pending == buffers + 1)
    with pytest.raises(NoBufferError):  # the loop is full now
        client.send(b"x", timeout=0)


@pytest.fixture
def starved() -> Iterator[tuple[rpmsg.Endpoint, rpmsg.Endpoint]]:
    """(client, server) over a loop of 4 buffers whose server never reads: after 4
    messages every send waits for a buffer that never comes."""
    name = f"edges-{uuid.uuid4().hex[:8]}"
    with rpmsg.open(f"loop:{name}?buffers=4") as host, \
            rpmsg.open(f"loop:{name}?buffers=4") as remote:
        server = remote.create_endpoint("svc", queue=1, hold=None)
        client = host.create_endpoint("svc")
        client.wait_bound(timeout=20)
        fill(client, server, 4)
        yield client, server


@pytest.mark.parametrize("name", ["\ud800", "a\udfffb", "\udbff\udc00x"])
def test_names_no_encoder_takes_are_invalid_arguments(name: str) -> None:
    with rpmsg.open(f"loop:{uuid.uuid4().hex}") as dev:
        for call in (lambda: dev.create_endpoint(name),
                     lambda: dev.on_service(name, lambda *a: None),
                     lambda: dev.wait_service(name, timeout=0)):
            with pytest.raises(InvalidArgumentError, match="UTF-8"):
                call()
        assert dev.endpoints == []


def test_peer_style_undecodable_names_still_work() -> None:
    """A name a peer sent with bytes that are not UTF-8 comes back as \\udcXX characters
    (surrogateescape); such a name must stay usable for create_endpoint."""
    name = f"loop:{uuid.uuid4().hex}"
    with rpmsg.open(name) as a, rpmsg.open(name) as b:
        odd = b"tty\xff".decode("utf-8", "surrogateescape")
        server = b.create_endpoint(odd)
        assert a.wait_service(odd, timeout=20) == server.addr
        client = a.create_endpoint(odd)
        assert client.wait_bound(timeout=20) == server.addr


@pytest.mark.parametrize("messages", [5, None, 1.5])
def test_send_many_of_a_non_iterable_is_a_typed_error(
        starved: tuple[rpmsg.Endpoint, rpmsg.Endpoint], messages: object) -> None:
    client, _server = starved
    with pytest.raises(ArgumentTypeError, match="iterable"):
        client.send_many(messages)  # type: ignore[arg-type]


def test_queued_async_sends_that_run_out_of_time_are_timeouts(
        starved: tuple[rpmsg.Endpoint, rpmsg.Endpoint]) -> None:
    client, _server = starved

    async def main() -> list[BaseException | None]:
        aclient = client.as_async()
        return await asyncio.gather(*[aclient.send(b"y", timeout=0.3) for _ in range(6)],
                                    return_exceptions=True)

    results = asyncio.run(main())
    assert [type(r) for r in results] == [RpmsgTimeoutError] * 6


def test_send_many_whose_time_ran_out_between_messages_is_a_timeout(
        starved: tuple[rpmsg.Endpoint, rpmsg.Endpoint]) -> None:
    client, _server = starved

    def slow() -> Iterator[bytes]:
        time.sleep(0.4)  # the batch's 0.2 s are over before its first message
        yield b"late"

    with pytest.raises(RpmsgTimeoutError):
        client.send_many(slow(), timeout=0.2)
    with pytest.raises(NoBufferError):  # timeout=0 keeps its own error
        client.send_many([b"now"], timeout=0)


def test_a_send_whose_binding_took_the_whole_timeout_is_a_timeout() -> None:
    """NuttX policy: send() on an unbound endpoint waits for the binding within its timeout;
    a binding that comes as the time runs out leaves a send of 0 s on a full link."""
    name = f"loop:{uuid.uuid4().hex}?buffers=2"
    with rpmsg.open(name, policy="nuttx") as host, rpmsg.open(name, policy="nuttx") as remote:
        server = remote.create_endpoint("svc", queue=1, hold=None)
        client = host.create_endpoint("svc")
        client.wait_bound(timeout=20)
        fill(client, server, 2)
        late = host.create_endpoint("late")
        real_wait = late.wait_bound

        def wait_bound(timeout: float | None = None) -> int:
            time.sleep(0.3)  # the binding arrives after the 0.2 s of the send below
            late._rec.dst = server.addr
            return real_wait(0)

        late.wait_bound = wait_bound  # type: ignore[method-assign]
        with pytest.raises(RpmsgTimeoutError) as info:
            late.send(b"x", timeout=0.2)
        assert isinstance(info.value, RpmsgError)


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"policy": 123}, ArgumentTypeError),
    ({"capture": 123}, ArgumentTypeError),
    ({"capture": "/tmp/cap\0ture.pcapng"}, InvalidArgumentError),
    ({"capture": "/tmp/cap\ud800.pcapng"}, InvalidArgumentError),
])
def test_open_refuses_wrong_options_with_typed_errors(kwargs: dict[str, object],
                                                      error: type[Exception]) -> None:
    threads = threading.active_count()
    with pytest.raises(error):
        rpmsg.open(f"loop:{uuid.uuid4().hex}", **kwargs)  # type: ignore[arg-type]
    assert threading.active_count() == threads


@pytest.mark.parametrize("url", ["loop:x\ud800", "shm:x\udbff?timeout=1", "uart:/dev/\ud800"])
def test_urls_no_encoding_can_write_are_invalid(url: str) -> None:
    with pytest.raises(rpmsg.InvalidURLError, match="surrogate"):
        rpmsg.open(url)


def test_capture_takes_a_path_object(tmp_path: Path) -> None:
    path = tmp_path / "cap.pcapng"
    name = f"loop:{uuid.uuid4().hex}"
    with rpmsg.open(name, capture=path):
        pass
    assert path.stat().st_size > 0


def test_a_zero_copy_buffer_dropped_unreleased_goes_back_to_the_transport() -> None:
    """An RxBuffer dropped without release() kept its transport buffer for ever: after as
    many as the link has, every send waited in vain."""
    name = f"loop:{uuid.uuid4().hex}?buffers=4"
    with rpmsg.open(name) as host, rpmsg.open(name) as remote:
        server = remote.create_endpoint("zc", zero_copy=True)
        client = host.create_endpoint("zc")
        client.wait_bound(timeout=20)
        for i in range(12):  # three times the loop's buffers
            client.send(bytes([i]), timeout=20)
            with pytest.warns(ResourceWarning, match="without release"):
                buf = server.recv_buffer(timeout=20)
                assert bytes(buf) == bytes([i])
                del buf
                gc.collect()


def test_a_zero_copy_buffer_in_a_cycle_goes_back_at_the_next_receive() -> None:
    """One the cyclic GC finalises (perhaps on a transport thread holding its lock) is given
    back at the next zero-copy receive, a safe point, not inside the collection."""
    name = f"loop:{uuid.uuid4().hex}?buffers=2"
    with rpmsg.open(name) as host, rpmsg.open(name) as remote:
        server = remote.create_endpoint("zc", zero_copy=True)
        client = host.create_endpoint("zc")
        client.wait_bound(timeout=20)
        for _round in range(5):
            for i in range(2):  # both buffers, each kept alive only by a cycle
                client.send(bytes([i]), timeout=20)
                cycle: list[object] = [server.recv_buffer(timeout=20)]
                cycle.append(cycle)
                del cycle
            with pytest.warns(ResourceWarning):
                gc.collect()
            assert len(rpmsg.rxqueue.orphaned) == 2  # deferred, not released in the GC
            with pytest.raises(rpmsg.WouldBlockError):
                server.recv_buffer(timeout=0)  # the safe point: both go back
            assert len(rpmsg.rxqueue.orphaned) == 0


@pytest.mark.parametrize("attr", ["callback", "on_bound", "on_unbound"])
def test_a_callback_set_later_must_be_callable(loop_name: str, attr: str) -> None:
    """``ept.callback = 5`` was accepted (create_endpoint checked it, the setter did not):
    every message after it was lost, one 'user callback raised' log line each."""
    with rpmsg.open(f"loop:{loop_name}") as host, rpmsg.open(f"loop:{loop_name}") as remote:
        server = remote.create_endpoint("svc")
        client = host.create_endpoint("svc")
        client.wait_bound(timeout=20)
        for bad in (5, "print", b""):
            with pytest.raises(ArgumentTypeError, match=attr):
                setattr(server, attr, bad)
            assert getattr(server, attr) is None
        got: list[bytes] = []
        setattr(server, attr, lambda *args: got.append(b"called"))
        setattr(server, attr, None)
        client.send(b"kept", timeout=20)
        assert server.recv(timeout=20) == b"kept"
        with pytest.raises(ArgumentTypeError, match="zero_copy"):
            host.create_endpoint("zc", zero_copy=1)  # type: ignore[arg-type]
