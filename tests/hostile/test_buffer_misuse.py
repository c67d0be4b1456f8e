"""Zero-copy buffers used the wrong way, found by using the library from outside the suite.

``RxBuffer.release()`` while a view of ``data`` was alive (``struct.iter_unpack``,
``numpy.frombuffer``) raised a raw ``BufferError`` after forgetting the transport's buffer:
the buffer was lost for good (after as many as the link has, every send waited in vain).
``send_buffer`` of a buffer already sent or released raised a plain ``ValueError``, and a
transmit buffer's ``payload`` stayed writable after the send, so a late write changed the
message under the peer (shared memory) or another sender's next message.
"""

from __future__ import annotations

import gc
import struct
import uuid

import pytest
from hostile_helpers import bind, wait_until

import rpmsg
from rpmsg import BufferInUseError, InvalidArgumentError, RpmsgError


def test_release_with_a_live_view_keeps_the_buffer_and_says_so() -> None:
    name = f"loop:{uuid.uuid4().hex}?buffers=2"
    with rpmsg.open(name) as host, rpmsg.open(name) as remote:
        server = remote.create_endpoint("zc", zero_copy=True)
        client = host.create_endpoint("zc")
        client.wait_bound(timeout=20)
        for i in range(6):  # three times the loop's buffers: none may be lost
            client.send(bytes([i, i]), timeout=20)
            buf = server.recv_buffer(timeout=20)
            view = struct.iter_unpack("B", buf.data)  # holds an export of data
            with pytest.raises(BufferInUseError, match="views of its data"):
                buf.release()
            assert [v for (v,) in view] == [i, i]  # the data was still there
            del view
            buf.release()  # now it goes back
            buf.release()  # and only once


def test_buffer_collected_with_a_live_view_goes_back() -> None:
    name = f"loop:{uuid.uuid4().hex}?buffers=2"
    with rpmsg.open(name) as host, rpmsg.open(name) as remote:
        server = remote.create_endpoint("zc", zero_copy=True)
        client = host.create_endpoint("zc")
        client.wait_bound(timeout=20)
        views = []
        for i in range(6):
            client.send(bytes([i]), timeout=20)
            buf = server.recv_buffer(timeout=20)
            views.append(memoryview(buf.data).cast("B"))
            views.append(struct.iter_unpack("B", buf.data))
            with pytest.warns(ResourceWarning, match="without release"):
                del buf
        assert server.stats()["rx_messages"] == 6


def test_a_transmit_buffer_is_sent_once_and_not_written_after(
        pair: tuple[rpmsg.Device, rpmsg.Device]) -> None:
    host, remote = pair
    client, server = bind(host, remote)
    buf = client.get_tx_buffer(timeout=20)
    buf.payload[:4] = b"good"
    client.send_buffer(buf, 4)
    with pytest.raises(ValueError):  # released: the buffer is the peer's now
        buf.payload[:4] = b"evil"
    with pytest.raises(InvalidArgumentError, match="already sent"):
        client.send_buffer(buf, 4)
    assert server.recv(timeout=20) == b"good"
    spare = client.get_tx_buffer(timeout=20)
    spare.release()
    with pytest.raises(RpmsgError):
        client.send_buffer(spare, 1)
    with pytest.raises(ValueError):
        spare.payload[0] = 1
    client.send(b"still serving", timeout=20)
    assert server.recv(timeout=20) == b"still serving"


def test_transmit_buffers_dropped_unsent_go_back(
        pair: tuple[rpmsg.Device, rpmsg.Device]) -> None:
    """Dropped (by reference count or in a cycle the GC finds): each goes back to the pool,
    so the link never runs out (loop: taken from its pool since get_tx_buffer waits there)."""
    host, remote = pair
    client, server = bind(host, remote)
    for n in range(600):  # more than either link has
        buf = client.get_tx_buffer(timeout=20)
        if n % 2:
            cycle: list[object] = [buf]
            cycle.append(cycle)
            del cycle
        with pytest.warns(ResourceWarning, match="dropped without being sent"):
            del buf
            gc.collect()
    client.send(b"still serving", timeout=20)
    assert server.recv(timeout=20) == b"still serving"


def test_a_buffer_dropped_while_a_burst_waits_for_one_reaches_the_burst() -> None:
    """loop: a transmit buffer dropped unsent goes to an orphan list (6235e11) that only a
    sender looking for a buffer empties; a send_many already waiting without a timeout
    slept on the pool's condition, which nothing notified: it waited for ever for a buffer
    the pool had got back (the finaliser used to give it back and wake the waiters)."""
    import threading
    import warnings

    name = f"loop:{uuid.uuid4().hex}?buffers=2"
    with rpmsg.open(name) as host, rpmsg.open(name) as remote:
        server = remote.create_endpoint("svc", queue=1, hold=None)  # keeps what it gets
        client = host.create_endpoint("svc")
        client.wait_bound(timeout=20)
        buf = client.get_tx_buffer(timeout=20)  # one buffer is ours
        sent = 0
        while True:  # the server holds every other one for good (queue=1, never read)
            try:
                client.send(b"fill", timeout=0)
                sent += 1
                continue
            except rpmsg.NoBufferError:
                wait_until(lambda: server.pending == sent, timeout=20)  # noqa: B023
            try:  # the one message copied into the server's queue freed its buffer
                client.send(b"fill", timeout=0)
                sent += 1
            except rpmsg.NoBufferError:
                break
        outcome: list[object] = []

        def burst() -> None:
            try:
                outcome.append(client.send_many([b"burst"], timeout=None))
            except BaseException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=burst, daemon=True)
        worker.start()
        worker.join(0.5)  # usually waiting by now; earlier or later gives the same outcome
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            del buf  # unsent: back to the pool, by way of the orphan list
        worker.join(60)
        assert not worker.is_alive(), "send_many still waits for the buffer that came back"
        assert outcome == [1]
        server.close()  # let the loop go
