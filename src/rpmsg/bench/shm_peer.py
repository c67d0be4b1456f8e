"""The Python device of the shm benchmark, run as its own process, and the floor's echo.

``python -m rpmsg.bench.shm_peer --url URL --mode endpoint`` serves ``bench-echo`` and
``bench-sink`` (see :mod:`rpmsg.bench.shm_proto`) through the public API: a
:class:`rpmsg.Device` with callback endpoints. ``--mode link`` serves them on the bare link
(no Device, no Endpoint) at the fixed addresses, announcing them by name service as the C
device does. ``--floor-fd FD`` answers every byte on an inherited socket with one byte, the
kick mechanism alone. Each mode returns when the driver goes away.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import threading
import time

from rpmsg.bench.shm_proto import (
    ECHO_ADDR,
    ECHO_NAME,
    SEQ,
    SINK_ADDR,
    SINK_NAME,
    StreamCheck,
)
from rpmsg.transport import Link, Release
from rpmsg.wire.layout import Buffer
from rpmsg.wire.rpmsg import NS_ADDR, NsMessage

#: Longest a device process waits for its driver, and for the driver to finish.
SESSION_LIMIT = 600.0


class LinkService:
    """The device side on the bare link: echo and sink at fixed addresses."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.check = StreamCheck()
        self.gone = threading.Event()

    def link_up(self, detail: str = "") -> None:
        for name, addr in ((ECHO_NAME, ECHO_ADDR), (SINK_NAME, SINK_ADDR)):
            self.link.send(addr, NS_ADDR, NsMessage(name, addr).encode(), 10.0)

    def link_down(self, reason: str, *, restart: bool = False) -> None:
        self.gone.set()

    def broken(self, error: Exception) -> None:
        print(f"bench device: broken: {error}", file=sys.stderr)
        self.gone.set()

    def deliver(self, src: int, dst: int, payload: Buffer, release: Release | None = None) -> None:
        if dst == ECHO_ADDR:
            self.link.send(ECHO_ADDR, src, payload, 10.0)
        elif dst == SINK_ADDR:
            if len(payload) < SEQ.size:
                self.check.reset(int(bytes(payload)))
                self.link.send(SINK_ADDR, src, b"ok", 10.0)
            elif self.check.take(payload):
                self.link.send(SINK_ADDR, src, self.check.report(), 10.0)
        if release is not None:
            release()


def serve_link(url: str) -> None:
    from rpmsg.registry import open_link

    link = open_link(url, side="remote")
    service = LinkService(link)
    link.start(service)
    try:
        service.gone.wait(SESSION_LIMIT)
    finally:
        link.close()


def serve_endpoint(url: str) -> None:
    import rpmsg

    dev = rpmsg.open(url, side="remote")
    check = StreamCheck()
    served = threading.Event()  # a short session may come and go between two looks at is_up

    def on_echo(ept: rpmsg.Endpoint, data: bytes, src: int) -> None:
        if not served.is_set():
            served.set()
        ept.send_to(src, data, timeout=10)

    def on_sink(ept: rpmsg.Endpoint, data: bytes, src: int) -> None:
        if len(data) < SEQ.size:
            served.set()
            check.reset(int(data))
            ept.send_to(src, b"ok", timeout=10)
        elif check.take(data):
            ept.send_to(src, check.report(), timeout=10)

    dev.create_endpoint(ECHO_NAME, callback=on_echo)
    dev.create_endpoint(SINK_NAME, callback=on_sink)
    deadline = time.monotonic() + SESSION_LIMIT
    try:
        while dev.broken_error is None and time.monotonic() < deadline:
            if not dev.is_up and served.is_set():
                break  # the driver came and went: done
            time.sleep(0.05)
    finally:
        dev.close()


def serve_floor(fd: int, spin: float) -> None:
    """Answer each byte with one byte; with ``spin``, poll that long before blocking."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    os.set_blocking(fd, False)
    clock = time.perf_counter
    while True:
        until = clock() + spin
        while True:
            try:
                data = os.read(fd, 64)
                break
            except BlockingIOError:
                if clock() < until:
                    os.sched_yield()
                else:
                    poller.poll()
        if not data:
            return
        os.write(fd, b"\x01")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rpmsg.bench.shm_peer", description=__doc__)
    ap.add_argument("--url")
    ap.add_argument("--mode", choices=["link", "endpoint"], default="endpoint")
    ap.add_argument("--floor-fd", type=int)
    ap.add_argument("--spin", type=float, default=0.0, help="µs (floor only)")
    args = ap.parse_args(argv)
    if args.floor_fd is not None:
        serve_floor(args.floor_fd, args.spin * 1e-6)
    elif args.mode == "link":
        serve_link(args.url)
    else:
        serve_endpoint(args.url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
