"""Port transmit buffers: dropped zero-copy buffers come back, and a batch that runs out of
time is a timeout (outsider QA).

* A ``TxBuffer`` neither sent nor released kept its port buffer for ever: after ``txnum`` of
  them every send, name-service messages included, failed. The finaliser now returns it
  (with a ResourceWarning), also when the cyclic GC runs it on a thread inside the queue's
  lock.
* ``send_many`` handed each message the time left of its timeout; once that was 0 the link
  raised the ``NoBufferError`` of ``timeout=0`` although the caller gave a non-zero timeout:
  it is :class:`RpmsgTimeoutError` now (``Deadline.pass_on``).
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator

import pytest

from rpmsg import Device
from rpmsg.errors import NoBufferError, RpmsgTimeoutError
from rpmsg.port.core import PortConfig, PortLink
from rpmsg.wire.layout import Buffer

from .memory_backend import memory_pair

TXNUM = 4


def _up_pair() -> tuple[Device, Device]:
    pa, pb = memory_pair(PortConfig(txnum=TXNUM, rxnum=TXNUM))
    da, db = Device(pa), Device(pb)
    pa.register()
    pb.register()
    return da, db


def test_dropped_buffers_come_back() -> None:
    da, db = _up_pair()
    try:
        server = db.create_endpoint("svc")
        client = da.create_endpoint("svc")
        client.wait_bound(5)
        for _ in range(3 * TXNUM):
            with pytest.warns(ResourceWarning, match="dropped without being sent"):
                buf = client.get_tx_buffer(timeout=5)
                del buf
        client.send(b"after", timeout=5)
        assert server.recv(timeout=5) == b"after"
        db.create_endpoint("late")
        late = da.create_endpoint("late")  # name service still has buffers
        assert late.wait_bound(5)
    finally:
        da.close()
        db.close()


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_gc_finaliser_inside_the_queue_lock() -> None:
    pa, _pb = memory_pair(PortConfig(txnum=TXNUM))
    pa._up = True
    pa.backend.peer = None  # type: ignore[attr-defined]
    buf = pa.alloc_tx(0)
    cycle: list[object] = [buf]
    cycle.append(cycle)
    del buf, cycle
    gc.disable()
    try:
        def collect_under_lock() -> None:
            with pa.txq._cond:
                gc.collect()

        worker = threading.Thread(target=collect_under_lock, daemon=True)
        worker.start()
        worker.join(30)
        assert not worker.is_alive(), "the finaliser deadlocked on the queue lock"
    finally:
        gc.enable()
    assert pa.txq.navail() == TXNUM
    pa.close()


def _stalled_port() -> PortLink:
    """A port that is up but whose frames nobody takes: TXNUM sends fill it."""
    pa, _pb = memory_pair(PortConfig(txnum=TXNUM))
    pa._up = True
    pa.backend.peer = None  # type: ignore[attr-defined]
    return pa


def _late_batch(count: int, pause: float) -> Iterator[tuple[int, int, Buffer]]:
    """``count`` messages that fill the queue, then one more after ``pause`` seconds."""
    for _ in range(count):
        yield 1024, 1025, b"x"
    time.sleep(pause)
    yield 1024, 1025, b"late"


def test_send_many_that_runs_out_of_time_is_a_timeout() -> None:
    pa = _stalled_port()
    try:
        with pytest.raises(RpmsgTimeoutError, match="send_many"):
            pa.send_many(_late_batch(TXNUM, 0.3), 0.1)
        pa.drop_packets(1)
        with pytest.raises(NoBufferError):  # timeout=0 keeps its own error
            pa.send_many(_late_batch(TXNUM, 0.0), 0)
    finally:
        pa.close()
