"""An in-process RPMsg Port backend for tests: two ports wired back to back by a thread each.

It exercises the port core's ops table exactly as a physical backend would: TX ready buffers
are copied into a free RX buffer of the other port and dispatched on that port's thread.
"""

from __future__ import annotations

import threading
from typing import Any

from rpmsg.errors import EndpointClosedError, RpmsgTimeoutError
from rpmsg.port.core import PortConfig, PortLink
from rpmsg.port.ops import RxCallback
from rpmsg.port.queues import BufferQueue


class MemoryBackend:
    """One side of an in-memory port pair."""

    def __init__(self) -> None:
        self.port: PortLink | None = None
        self.peer: MemoryBackend | None = None
        self.callback: RxCallback | None = None
        self.cond = threading.Condition()
        self.stop = False
        self.thread: threading.Thread | None = None
        self.started = False
        self.calls = {"tx_ready": 0, "rx_free": 0, "noavail": 0}

    def register_callback(self, callback: RxCallback) -> None:
        self.callback = callback

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.started = True

    def notify_tx_ready(self) -> None:
        self.calls["tx_ready"] += 1
        peer = self.peer
        if peer is not None:
            with peer.cond:
                peer.cond.notify_all()

    def notify_rx_free(self) -> None:
        self.calls["rx_free"] += 1

    def notify_queue_noavail(self, queue: BufferQueue) -> bool:
        self.calls["noavail"] += 1
        return False

    def close(self, timeout: float) -> None:
        with self.cond:
            self.stop = True
            self.cond.notify_all()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def stats(self) -> dict[str, int]:
        return dict(self.calls)

    def seen(self) -> str:
        return f"{self.calls['tx_ready']} TX notifications"

    def describe(self) -> dict[str, Any]:
        return {"backend": "memory"}

    def _run(self) -> None:
        """Pull frames from the peer's TX ready list into our RX buffers and dispatch."""
        port = self.port
        assert port is not None
        while True:
            with self.cond:
                while not self.stop and (self.peer is None or self.peer.port is None
                                         or self.peer.port.txq.nused() == 0):
                    self.cond.wait(0.05)
                if self.stop:
                    return
            peer_port = self.peer.port  # type: ignore[union-attr]
            assert peer_port is not None
            src = peer_port.txq.get_buffer(0)
            if src is None:
                continue
            dst = None
            while dst is None:  # wait for a free RX buffer: the receiver's back-pressure
                if self.stop:
                    peer_port.txq.return_buffer(src)
                    return
                try:
                    dst = port.rxq.get_available_buffer(0.05)
                except RpmsgTimeoutError:
                    continue
                except EndpointClosedError:
                    peer_port.txq.return_buffer(src)
                    return
            frame = bytes(peer_port.tx_frame(src))
            peer_port.txq.return_buffer(src)
            dst.view[:len(frame)] = frame
            assert self.callback is not None
            self.callback(dst)


def memory_pair(config: PortConfig | None = None) -> tuple[PortLink, PortLink]:
    """Two PortLinks connected in memory; call ``connect()`` on the result to bring them up."""
    a, b = MemoryBackend(), MemoryBackend()
    a.peer, b.peer = b, a
    pa = PortLink(a, config, role="a")
    pb = PortLink(b, config, role="b")
    a.port, b.port = pa, pb
    return pa, pb
