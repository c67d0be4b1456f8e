"""Benchmark of RPMsg over shared-memory virtio between two processes, with its own floor.

:func:`run` starts the remote (virtio device) as a second Python process (``python -m
rpmsg.bench.shm --serve ...``), measures in the same run:

* ``floor``: a 1-byte ping-pong over the same kick mechanism (UNIX stream socket, one byte per
  kick, ``poll`` + ``read``), the cost of two process wakeups;
* ``link``: the transport alone (engine + rings + kicks, no Device/Endpoint): round-trip
  latency for 16 and 496-byte payloads and one-way streaming throughput, the receiver checking
  sequence numbers and a CRC-32 over every payload (nothing lost, duplicated or reordered);
* ``endpoint``: the same through the public API (``Device``/``Endpoint``: name service
  binding, ``send``/``send_many``, callback endpoints on the remote).

and reports ratios to the floor. The result is a JSON-serialisable dict; timings are figures,
never pass/fail. ``python -m rpmsg.bench.shm --json`` prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

from rpmsg.bench.report import context, percentiles, render
from rpmsg.registry import Opening, open_link
from rpmsg.transport import Link, Release
from rpmsg.transports.shm import ShmLink
from rpmsg.virtio.kick import KickServer, PeerGone, SocketKick, connect
from rpmsg.wire.layout import Buffer

#: Addresses used by the link-level benchmark (no name service there).
CTRL, ECHO, SINK, HOST = 1, 2, 3, 1024
SEQ = struct.Struct("<Q")
_SIZES = (16, 496)


class _StreamCheck:
    """Receiver-side check of a stream: sequence numbers in order and a running CRC-32."""

    def __init__(self) -> None:
        self.reset(0)

    def reset(self, expected: int) -> None:
        self.expected = expected
        self.next = 0
        self.crc = 0
        self.bad_seq = 0
        self.bytes = 0
        self.done = threading.Event()

    def take(self, payload: Buffer) -> None:
        (seq,) = SEQ.unpack_from(payload, 0)
        if seq != self.next:
            self.bad_seq += 1
        self.next = seq + 1
        self.crc = zlib.crc32(payload, self.crc)
        self.bytes += len(payload)
        if self.next >= self.expected:
            self.done.set()

    def report(self) -> dict[str, int]:
        return {"received": self.next, "bad_seq": self.bad_seq, "crc": self.crc,
                "bytes": self.bytes}


def _payloads(count: int, size: int) -> Iterator[bytes]:
    fill = bytes(range(256)) * 2
    tail = fill[: size - SEQ.size]
    for seq in range(count):
        yield SEQ.pack(seq) + tail


# Remote side -----------------------------------------------------------------------------

class _RemoteSink:
    """The device side of the link benchmark: echo on ECHO, check a stream on SINK."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.check = _StreamCheck()
        self.up = threading.Event()
        self.gone = threading.Event()

    def link_up(self) -> None:
        self.up.set()

    def link_down(self, reason: str) -> None:
        self.gone.set()

    def broken(self, error: Exception) -> None:
        print(f"bench remote: broken: {error}", file=sys.stderr)
        self.gone.set()

    def deliver(self, src: int, dst: int, payload: Buffer, release: Release | None = None) -> None:
        if dst == SINK:
            self.check.take(payload)
            if self.check.done.is_set():
                self.link.send(SINK, src, json.dumps(self.check.report()).encode(), None)
        elif dst == ECHO:
            self.link.send(ECHO, src, payload, None)
        elif dst == CTRL:
            self.check.reset(int(bytes(payload)))
            self.link.send(CTRL, src, b"ok", None)
        if release is not None:
            release()


def serve(url: str, mode: str, floor_path: str, spin: float = 0.0) -> None:
    """Remote process: answer the floor ping-pong, then serve ``link`` or ``endpoint`` mode."""
    chan = connect(floor_path, "socket", Opening(floor_path, 30.0))
    clock = time.perf_counter
    try:
        while chan.wait(30.0):  # the parent closes the socket when the ping-pong is over
            chan.notify()
            until = clock() + spin
            while clock() < until:  # the same adaptive spin as the rings (0 = block at once)
                if chan.wait(0):
                    chan.notify()
                    until = clock() + spin
                else:
                    os.sched_yield()
    except PeerGone:
        pass
    chan.close()
    if mode == "link":
        link = open_link(url, side="remote")
        sink = _RemoteSink(link)
        link.start(sink)
        sink.gone.wait()
        link.close()
        return
    import rpmsg

    dev = rpmsg.open(url, side="remote")
    check = _StreamCheck()

    def on_echo(ept: rpmsg.Endpoint, data: bytes, src: int) -> None:
        ept.send_to(src, data)

    def on_sink(ept: rpmsg.Endpoint, data: bytes, src: int) -> None:
        if len(data) < SEQ.size:  # control: the number of messages to expect
            check.reset(int(data))
            ept.send_to(src, b"ok")
            return
        check.take(data)
        if check.done.is_set():
            ept.send_to(src, json.dumps(check.report()).encode())

    dev.create_endpoint("bench-echo", callback=on_echo)
    dev.create_endpoint("bench-sink", callback=on_sink)
    was_up = False
    deadline = time.monotonic() + 600
    while dev.broken_error is None and time.monotonic() < deadline:
        if dev.is_up:
            was_up = True
        elif was_up:
            break  # the host closed: done
        time.sleep(0.05)
    dev.close()


# Host side -------------------------------------------------------------------------------

class _HostSink:
    """The driver side of the link benchmark: collects replies."""

    def __init__(self) -> None:
        self.replies: list[bytes] = []
        self.got = threading.Event()

    def link_up(self) -> None:
        pass

    def link_down(self, reason: str) -> None:
        self.got.set()

    def broken(self, error: Exception) -> None:
        self.replies.append(f"broken: {error}".encode())
        self.got.set()

    def deliver(self, src: int, dst: int, payload: Buffer, release: Release | None = None) -> None:
        self.replies.append(bytes(payload))
        if release is not None:
            release()
        self.got.set()


def _floor(server: KickServer, rounds: int, spin: float) -> dict[str, dict[str, float]]:
    """1-byte ping-pong over the kick socket: blocking (``rtt_1``), then with the same
    adaptive spin as the rings use (``rtt_1_spin``: poll the socket for ``spin`` seconds
    before blocking, on both sides)."""
    chan = None
    deadline = time.monotonic() + 30
    while chan is None:
        chan = server.accept("socket", 1.0)
        if time.monotonic() > deadline:
            raise TimeoutError("bench remote did not connect")
    assert isinstance(chan, SocketKick)
    out = {}
    clock = time.perf_counter
    for key, this_spin in (("rtt_1", 0.0), ("rtt_1_spin", spin)):
        chan.notify()  # tells the remote which mode: the first byte of each mode is a marker
        chan.wait(None)
        samples = []
        for _ in range(rounds):
            t0 = clock()
            chan.notify()
            until = t0 + this_spin
            while not chan.wait(0):
                if clock() >= until:
                    while not chan.wait(None):
                        pass
                    break
                os.sched_yield()
            samples.append(clock() - t0)
        out[key] = percentiles(samples[rounds // 10 :])
    chan.close()
    return out


def _spawn(url: str, mode: str, floor_path: str, spin_us: float) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen([sys.executable, "-m", "rpmsg.bench.shm", "--serve", url,
                             "--mode", mode, "--floor", floor_path, "--spin", str(spin_us)],
                            env=env)


def _link_rtt(link: ShmLink, sink: _HostSink, size: int, rounds: int,
              spin: float) -> dict[str, float]:
    """Round trips driven from this thread: send, spin briefly, then block on the kick."""
    engine = link.engine
    chan = link._channel
    assert chan is not None
    payload = bytes(size)
    samples = []
    clock = time.perf_counter
    replies = sink.replies
    for _ in range(rounds):
        t0 = clock()
        engine.send(HOST, ECHO, payload, None)
        until = t0 + spin
        while True:
            engine.kick(rearm=False)
            if replies:
                break
            if clock() < until:
                os.sched_yield()
                continue
            if engine.arm():
                chan.wait(1.0)
        samples.append(clock() - t0)
        replies.clear()
    return percentiles(samples[rounds // 10 :])


def _link_stream(link: ShmLink, sink: _HostSink, size: int, count: int,
                 burst: int) -> dict[str, Any]:
    sink.got.clear()
    sink.replies.clear()
    link.send(HOST, CTRL, str(count).encode(), None)
    if not sink.got.wait(10) or sink.replies[-1] != b"ok":
        raise RuntimeError(f"bench remote did not acknowledge: {sink.replies}")
    sink.got.clear()
    sink.replies.clear()
    crc = 0
    gen = _payloads(count, size)
    t0 = time.perf_counter()
    sent = 0
    while sent < count:
        chunk = []
        for p in gen:
            crc = zlib.crc32(p, crc)
            chunk.append((HOST, SINK, p))
            if len(chunk) >= burst:
                break
        sent += link.send_many(chunk, None)
    if not sink.got.wait(60):
        raise RuntimeError("bench remote did not report the end of the stream")
    dt = time.perf_counter() - t0
    report = json.loads(sink.replies[-1])
    return _stream_result(report, count, size, crc, dt)


def _stream_result(report: dict[str, Any], count: int, size: int, crc: int,
                   dt: float) -> dict[str, Any]:
    ok = report["received"] == count and report["bad_seq"] == 0 and report["crc"] == crc
    return {"messages": count, "payload": size, "seconds": round(dt, 4),
            "msgs_per_s": round(count / dt), "mb_per_s": round(count * size / dt / 1e6, 2),
            "received": report["received"], "bad_seq": report["bad_seq"],
            "crc_match": report["crc"] == crc, "complete_in_order": ok}


def _endpoint_phase(url: str, rounds: int, count: int, burst: int,
                    sizes: tuple[int, ...]) -> dict[str, Any]:
    import rpmsg

    out: dict[str, Any] = {}
    with rpmsg.open(url) as dev:
        echo = dev.create_endpoint("bench-echo")
        sink = dev.create_endpoint("bench-sink")
        echo.wait_bound(30)
        sink.wait_bound(30)
        clock = time.perf_counter
        for size in sizes:
            payload = bytes(size)
            samples = []
            for _ in range(rounds):
                t0 = clock()
                echo.send(payload)
                echo.recv(timeout=10)
                samples.append(clock() - t0)
            out[f"rtt_{size}"] = percentiles(samples[rounds // 10 :])
        for size in sizes:
            sink.send(str(count).encode())
            if sink.recv(timeout=10) != b"ok":
                raise RuntimeError("bench remote did not acknowledge")
            crc = 0
            gen = _payloads(count, size)
            t0 = clock()
            sent = 0
            while sent < count:
                chunk = []
                for p in gen:
                    crc = zlib.crc32(p, crc)
                    chunk.append(p)
                    if len(chunk) >= burst:
                        break
                sent += sink.send_many(chunk)
            report = json.loads(sink.recv(timeout=60))
            out[f"stream_{size}"] = _stream_result(report, count, size, crc, clock() - t0)
        out["host_stats"] = dev.stats()
    return out


def run(*, rounds: int = 2000, count: int = 200_000, burst: int = 128, spin_us: float = 50.0,
        kick: str = "socket", endpoint: bool = True) -> dict[str, Any]:
    """Run the whole benchmark (two processes per phase) and return the figures as a dict.

    ``rounds`` round trips per latency figure, ``count`` messages per stream, ``burst``
    messages per ``send_many``; ``spin_us`` is the adaptive spin on both sides.
    """
    name = f"rpmsg-bench-{uuid.uuid4().hex[:10]}"
    url = f"shm:{name}?kick={kick}&spin={spin_us}&timeout=30"
    floor_path = f"/tmp/{name}.floor"
    result: dict[str, Any] = {"benchmark": "shm", **context(), "url": url, "rounds": rounds,
                              "count": count, "burst": burst, "spin_us": spin_us}
    server = KickServer(floor_path)
    proc = _spawn(url, "link", floor_path, spin_us)
    try:
        result["floor"] = _floor(server, rounds, spin_us * 1e-6)
        link = _open_driver(url)
        sink = _HostSink()
        link.engine.attach(sink)
        try:
            link_res: dict[str, Any] = {}
            for size in _SIZES:
                link_res[f"rtt_{size}"] = _link_rtt(link, sink, size, rounds, spin_us * 1e-6)
            link.start(sink)
            for size in _SIZES:
                link_res[f"stream_{size}"] = _link_stream(link, sink, size, count, burst)
            link_res["host_stats"] = link.stats()
            result["link"] = link_res
        finally:
            link.close()
        proc.wait(30)
        if endpoint:
            proc = _spawn(url, "endpoint", floor_path, spin_us)
            chan = server.accept("socket", 30.0)
            if chan is not None:
                chan.close()
            result["endpoint"] = _endpoint_phase(url, rounds, count, burst, _SIZES)
            proc.wait(30)
    finally:
        server.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"/dev/shm/{name}")
    floor = result["floor"]["rtt_1"]["p50_us"]
    floor_spin = result["floor"]["rtt_1_spin"]["p50_us"]
    ratios: dict[str, float] = {}
    for level in ("link", "endpoint"):
        for size in _SIZES:
            key = f"rtt_{size}"
            if level in result:
                p50 = result[level][key]["p50_us"]
                ratios[f"{level}_{key}_p50_over_floor"] = round(p50 / floor, 2)
                ratios[f"{level}_{key}_p50_over_spin_floor"] = round(p50 / floor_spin, 2)
    result["ratios"] = ratios
    return result


def _open_driver(url: str) -> ShmLink:
    link = open_link(url, side="host")
    assert isinstance(link, ShmLink)
    return link


def main(argv: list[str] | None = None) -> int:
    """``python -m rpmsg.bench.shm [--json]``: run and print the figures."""
    ap = argparse.ArgumentParser(prog="python -m rpmsg.bench.shm", description=__doc__)
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--rounds", type=int, default=2000)
    ap.add_argument("--count", type=int, default=200_000)
    ap.add_argument("--burst", type=int, default=128)
    ap.add_argument("--spin", type=float, default=50.0, help="adaptive spin in µs")
    ap.add_argument("--kick", choices=["socket", "eventfd"], default="socket")
    ap.add_argument("--no-endpoint", action="store_true", help="skip the Device/Endpoint phase")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="link", help=argparse.SUPPRESS)
    ap.add_argument("--floor", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve(args.serve, args.mode, args.floor, args.spin * 1e-6)
        return 0
    res = run(rounds=args.rounds, count=args.count, burst=args.burst, spin_us=args.spin,
              kick=args.kick, endpoint=not args.no_endpoint)
    print(json.dumps(res) if args.json else render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
