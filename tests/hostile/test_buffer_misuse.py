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
from hostile_helpers import bind

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
