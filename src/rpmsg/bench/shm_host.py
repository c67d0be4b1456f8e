"""The Python driver of the shm benchmark: the same workloads as the C driver, same keys.

Two levels: :func:`measure_endpoint` goes through the public API (``rpmsg.open``, named
endpoints bound by name service, ``send``/``send_many``/``recv``, and ``recv_many`` where the
endpoint has it); :func:`measure_link` uses the bare :class:`~rpmsg.transport.Link` (no
Device, no Endpoint: ``send``/``send_many``, ``poll`` from this thread, and deliveries from the
link's worker). Each returns ``rtt_SIZE`` (latency percentiles), ``echo_wW_SIZE`` (pipelined
echo, W in flight) and ``stream_SIZE`` (one-way, checked by the device) for every size.
"""

from __future__ import annotations

import collections
import os
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rpmsg.bench.report import percentiles
from rpmsg.bench.shm_proto import (
    ECHO_ADDR,
    ECHO_NAME,
    HOST_ADDR,
    SEQ,
    SINK_ADDR,
    SINK_NAME,
    SIZES,
    WINDOWS,
    control,
    echo_result,
    payload,
    payloads,
    stream_result,
)
from rpmsg.transport import Link, Release
from rpmsg.wire.layout import Buffer
from rpmsg.wire.rpmsg import NS_ADDR

WAIT = 30.0  # longest wait for any one reply (the machine may be loaded)


@dataclass(frozen=True)
class Workload:
    """How much each figure measures (the C driver gets the same numbers)."""

    rounds: int = 2000
    echo: int = 20_000
    min_seconds: float = 0.2
    stream: int = 100_000
    burst: int = 128
    sizes: Sequence[int] = SIZES
    windows: Sequence[int] = WINDOWS


# Bare link -------------------------------------------------------------------------------

class _Replies:
    """The link's sink on the driver side: replies (not name-service traffic) in a deque."""

    def __init__(self) -> None:
        self.items: collections.deque[bytes] = collections.deque()
        self.event = threading.Event()
        self.error: str | None = None

    def link_up(self, detail: str = "") -> None:
        pass

    def link_down(self, reason: str, *, restart: bool = False) -> None:
        self.error = self.error or f"link down: {reason}"
        self.event.set()

    def broken(self, error: Exception) -> None:
        self.error = f"broken: {error}"
        self.event.set()

    def deliver(self, src: int, dst: int, data: Buffer, release: Release | None = None) -> None:
        if dst != NS_ADDR:
            self.items.append(bytes(data))
            self.event.set()
        if release is not None:
            release()


def _await(link: Link, box: _Replies, count: int, spin: float) -> None:
    """Until ``count`` replies are queued: poll the rings for ``spin`` s, then sleep."""
    clock = time.perf_counter
    until = clock() + spin
    deadline = time.monotonic() + WAIT
    items = box.items
    while len(items) < count:
        if link.poll():
            continue
        if clock() < until:
            os.sched_yield()
            continue
        box.event.clear()
        if len(items) >= count:
            break
        if box.error is not None:
            raise RuntimeError(f"bench: {box.error}")
        if not box.event.wait(1.0) and time.monotonic() > deadline:
            raise RuntimeError(f"bench: no reply within {WAIT} s")
        until = clock() + spin


def _link_rtt(link: Link, box: _Replies, size: int, rounds: int, spin: float) -> dict[str, Any]:
    data = bytes(size)
    samples = []
    clock = time.perf_counter
    for _ in range(rounds):
        t0 = clock()
        link.send(HOST_ADDR, ECHO_ADDR, data, WAIT)
        _await(link, box, 1, spin)
        box.items.popleft()
        samples.append(clock() - t0)
    return percentiles(samples[rounds // 10 :])


def _link_echo(link: Link, box: _Replies, size: int, window: int, work: Workload,
               spin: float) -> dict[str, Any]:
    clock = time.perf_counter
    unpack = SEQ.unpack_from
    t0 = clock()
    sent = min(window, work.echo)
    link.send_many([(HOST_ADDR, ECHO_ADDR, payload(i, size)) for i in range(sent)], WAIT)
    handled = 0
    in_order = True
    items = box.items
    while handled < sent:
        _await(link, box, 1, spin)
        more_time = clock() - t0 < work.min_seconds
        batch = []
        while items:
            if unpack(items.popleft(), 0)[0] != handled:
                in_order = False
            handled += 1
            if sent < work.echo or more_time:
                batch.append((HOST_ADDR, ECHO_ADDR, payload(sent, size)))
                sent += 1
        if batch:
            link.send_many(batch, WAIT)
    return echo_result(window, size, handled, clock() - t0, in_order)


def _link_stream(link: Link, box: _Replies, size: int, work: Workload,
                 spin: float) -> dict[str, Any]:
    link.send(HOST_ADDR, SINK_ADDR, control(work.stream), WAIT)
    _await(link, box, 1, spin)
    if box.items.popleft() != b"ok":
        raise RuntimeError("bench: the sink did not acknowledge the stream")
    crc = 0
    gen = payloads(work.stream, size)
    t0 = time.perf_counter()
    sent = 0
    while sent < work.stream:
        chunk = []
        for p in gen:
            crc = zlib.crc32(p, crc)
            chunk.append((HOST_ADDR, SINK_ADDR, p))
            if len(chunk) >= work.burst:
                break
        sent += link.send_many(chunk, WAIT)
    _await(link, box, 1, spin)
    return stream_result(box.items.popleft(), work.stream, size, crc, time.perf_counter() - t0)


def measure_link(url: str, work: Workload, spin: float) -> dict[str, Any]:
    """All figures through the bare link (``url`` names a ``shm:`` device to drive)."""
    from rpmsg.registry import open_link

    link = open_link(url, side="host")
    box = _Replies()
    link.start(box)
    out: dict[str, Any] = {"api": "link"}
    try:
        for size in work.sizes:
            out[f"rtt_{size}"] = _link_rtt(link, box, size, work.rounds, spin)
        for size in work.sizes:
            for window in work.windows:
                out[f"echo_w{window}_{size}"] = _link_echo(link, box, size, window, work, spin)
        for size in work.sizes:
            out[f"stream_{size}"] = _link_stream(link, box, size, work, spin)
        out["host_stats"] = link.stats()
    finally:
        link.close()
    return out


# Public Endpoint API -----------------------------------------------------------------------

def _ept_echo(ept: Any, size: int, window: int, work: Workload) -> dict[str, Any]:
    clock = time.perf_counter
    unpack = SEQ.unpack_from
    recv_many = getattr(ept, "recv_many", None)
    t0 = clock()
    sent = min(window, work.echo)
    ept.send_many([payload(i, size) for i in range(sent)], timeout=WAIT)
    handled = 0
    in_order = True
    while handled < sent:
        got = recv_many(window, timeout=WAIT) if recv_many else [ept.recv(timeout=WAIT)]
        more_time = clock() - t0 < work.min_seconds
        batch = []
        for data in got:
            if unpack(data, 0)[0] != handled:
                in_order = False
            handled += 1
            if sent < work.echo or more_time:
                batch.append(payload(sent, size))
                sent += 1
        if len(batch) == 1:
            ept.send(batch[0], timeout=WAIT)
        elif batch:
            ept.send_many(batch, timeout=WAIT)
    return echo_result(window, size, handled, clock() - t0, in_order)


def _ept_stream(ept: Any, size: int, work: Workload) -> dict[str, Any]:
    ept.send(control(work.stream), timeout=WAIT)
    if ept.recv(timeout=WAIT) != b"ok":
        raise RuntimeError("bench: the sink did not acknowledge the stream")
    crc = 0
    gen = payloads(work.stream, size)
    t0 = time.perf_counter()
    sent = 0
    while sent < work.stream:
        chunk = []
        for p in gen:
            crc = zlib.crc32(p, crc)
            chunk.append(p)
            if len(chunk) >= work.burst:
                break
        sent += ept.send_many(chunk, timeout=WAIT)
    report = ept.recv(timeout=WAIT)
    return stream_result(report, work.stream, size, crc, time.perf_counter() - t0)


def measure_endpoint(url: str, work: Workload) -> dict[str, Any]:
    """All figures through ``rpmsg.open`` and named endpoints bound by name service."""
    import rpmsg

    with rpmsg.open(url) as dev:
        echo = dev.create_endpoint(ECHO_NAME)
        sink = dev.create_endpoint(SINK_NAME)
        echo.wait_bound(WAIT)
        sink.wait_bound(WAIT)
        out: dict[str, Any] = {
            "api": "endpoint" + (" (recv_many)" if hasattr(echo, "recv_many") else "")}
        clock = time.perf_counter
        for size in work.sizes:
            data = bytes(size)
            samples = []
            for _ in range(work.rounds):
                t0 = clock()
                echo.send(data, timeout=WAIT)
                echo.recv(timeout=WAIT)
                samples.append(clock() - t0)
            out[f"rtt_{size}"] = percentiles(samples[work.rounds // 10 :])
        for size in work.sizes:
            for window in work.windows:
                out[f"echo_w{window}_{size}"] = _ept_echo(echo, size, window, work)
        for size in work.sizes:
            out[f"stream_{size}"] = _ept_stream(sink, size, work)
        out["host_stats"] = dev.stats()
    return out
