"""Benchmark of the RPMsg Port UART path: CRC, framing throughput and goodput over a pty.

``python -m rpmsg.bench.uart [--json]`` measures, on one core: CRC-16 MB/s of each available
implementation (the ``crc`` extra and the pure-Python fallback) on varied buffers; encoding
and decoding MB/s of random port frames (payload sizes uniform up to the MTU, with
CRC-16/ARC through each implementation, and a worst case where every byte needs escaping);
then end-to-end goodput and round-trip latency between two ``uart:`` links over a
pseudo-terminal in this process, next to the raw pty throughput (the floor of the mechanism
underneath). :func:`run` returns the same figures as a dict.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import threading
import time
from typing import Any

from rpmsg.bench.report import context, render, without_capture_env
from rpmsg.port import crc as crcmod
from rpmsg.port.core import FRAME_HEADER_SIZE, OVERHEAD_CURRENT
from rpmsg.port.uart.framer import CURRENT, Frame, FrameDecoder, FrameEncoder
from rpmsg.wire.port import PORT_HEADER
from rpmsg.wire.rpmsg import RPMSG_HEADER

BUFLEN = 2048
MTU = BUFLEN - OVERHEAD_CURRENT


def _frames(rng: random.Random, count: int, worst: bool) -> list[bytes]:
    out = []
    for _ in range(count):
        size = MTU if worst else rng.randint(0, MTU)
        payload = bytes(rng.randrange(0x70, 0x80) for _ in range(size)) if worst \
            else rng.randbytes(size)
        out.append(PORT_HEADER.pack(0, 0, 0, FRAME_HEADER_SIZE + size)
                   + RPMSG_HEADER.pack(0x400, 0x401, 0, size, 0) + payload)
    return out


def bench_crc(implementation: str, name: str, count: int = 2000, size: int = 496,
              seed: int = 1) -> dict[str, Any]:
    """CRC-16 ``name`` over ``count`` different random buffers of ``size`` bytes (varied data:
    a table method cannot keep one buffer's lookups in cache)."""
    fn = crcmod.IMPLEMENTATIONS[implementation][name]
    rng = random.Random(seed)
    bufs = [rng.randbytes(size) for _ in range(count)]
    fn(bufs[0])  # lazy tables are built outside the timing
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for buf in bufs:
            fn(buf)
        best = min(best, time.perf_counter() - t0)
    return {"implementation": implementation, "crc": name, "buffers": count, "size": size,
            "MBps": round(count * size / best / 1e6, 1)}


def bench_framing(count: int = 2000, crc: str = "none", worst: bool = False,
                  seed: int = 1, implementation: str | None = None) -> dict[str, Any]:
    """Encode and decode ``count`` frames; MB/s counted in unescaped frame bytes.

    ``implementation`` picks the CRC implementation (default: the one in use).
    """
    impl = implementation or crcmod.IMPLEMENTATION
    with crcmod.implementation(impl):
        return _framing(count, crc, worst, seed, impl)


def _framing(count: int, crc: str, worst: bool, seed: int, impl: str) -> dict[str, Any]:
    rng = random.Random(seed)
    frames = _frames(rng, count, worst)
    total = sum(len(f) for f in frames)
    enc = FrameEncoder(CURRENT, crc)
    t0 = time.perf_counter()
    wire = [enc.encode(f) for f in frames]
    t_enc = time.perf_counter() - t0
    stream = b"".join(wire)
    chunks = [stream[i:i + 4096] for i in range(0, len(stream), 4096)]
    dec = FrameDecoder(CURRENT, crc, max_len=BUFLEN)
    got = 0
    t0 = time.perf_counter()
    for chunk in chunks:
        for ev in dec.feed(chunk):
            if isinstance(ev, Frame):
                got += 1
    t_dec = time.perf_counter() - t0
    if got != count:
        raise RuntimeError(f"decoded {got} of {count} frames")
    return {"frames": count, "frame_bytes": total, "wire_bytes": len(stream),
            "crc": crc, "crc_impl": impl if crc != "none" else "",
            "payload": "all-escaped" if worst else "random",
            "encode_MBps": round(total / t_enc / 1e6, 1),
            "decode_MBps": round(total / t_dec / 1e6, 1)}


def bench_raw_pty(total: int) -> dict[str, Any]:
    """Raw bytes through a pty master -> slave (the floor under the UART transport)."""
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    got = 0

    def reader() -> None:
        nonlocal got
        while got < total:
            got += len(os.read(slave, 65536))

    block = os.urandom(4096)
    t = threading.Thread(target=reader)
    t0 = time.perf_counter()
    t.start()
    sent = 0
    while sent < total:
        sent += os.write(master, block[:min(4096, total - sent)])
    t.join()
    dt = time.perf_counter() - t0
    os.close(master)
    os.close(slave)
    return {"bytes": total, "MBps": round(total / dt / 1e6, 1)}


def bench_pty(messages: int = 3000, pings: int = 300, staywake: bool = True) -> dict[str, Any]:
    """Goodput (one way, MTU-sized payloads) and ping latency between two uart: links."""
    import rpmsg

    opt = "" if staywake else "?staywake=off"
    a = rpmsg.open("uart:pty" + opt)
    path = a.link.describe()["pty"]
    sep = "&" if opt else "?"
    b = rpmsg.open(f"uart:{path}{opt}{sep}baudrate=4000000")
    try:
        done = threading.Event()
        received = 0

        def sink(ept: rpmsg.Endpoint, data: bytes, src: int) -> None:
            nonlocal received
            received += len(data)
            if received >= messages * a.mtu:
                done.set()

        b.create_endpoint("bench-sink", callback=sink)
        b.create_endpoint("bench-echo", callback=lambda e, d, s: e.send_to(s, d, timeout=10))
        tx = a.create_endpoint("bench-sink")
        echo = a.create_endpoint("bench-echo")
        tx.wait_bound(10)
        echo.wait_bound(10)
        payload = os.urandom(a.mtu)
        t0 = time.perf_counter()
        for _ in range(messages):
            tx.send(payload, timeout=30)
        if not done.wait(60):
            raise RuntimeError(f"only {received} bytes arrived")
        dt = time.perf_counter() - t0
        rtts = []
        small = b"x" * 32
        for _ in range(pings):
            t1 = time.perf_counter()
            echo.send(small, timeout=10)
            echo.recv(timeout=10)
            rtts.append(time.perf_counter() - t1)
        stats = a.stats()
        return {"messages": messages, "payload": a.mtu, "staywake": staywake,
                "goodput_MBps": round(messages * a.mtu / dt / 1e6, 2),
                "messages_per_s": round(messages / dt),
                "ping_32B_median_us": round(statistics.median(rtts) * 1e6),
                "ping_32B_p90_us": round(sorted(rtts)[int(0.9 * len(rtts))] * 1e6),
                "bursts": stats.get("link_bursts", 0),
                "wire_tx_bytes": stats.get("link_wire_tx_bytes", 0)}
    finally:
        b.close()  # the pty's user first: closing the master first looks like a pulled cable
        a.close()


@without_capture_env
def run(messages: int = 3000, frames: int = 2000, pings: int = 300,
        pty: bool = True) -> dict[str, Any]:
    """All figures as one dict (the ``rpmsg bench uart`` entry point)."""
    impls = sorted(crcmod.IMPLEMENTATIONS)
    out: dict[str, Any] = {
        "benchmark": "uart", **context(), "buffer_len": BUFLEN, "mtu": MTU,
        "crc_in_use": crcmod.IMPLEMENTATION,
        "crc": [bench_crc(impl, name, frames) for impl in impls for name in ("arc", "xmodem")],
        "framing": [bench_framing(frames),
                    *(bench_framing(frames, crc="arc", implementation=impl) for impl in impls),
                    bench_framing(max(frames // 4, 1), worst=True)],
    }
    if "fastcrc" not in crcmod.IMPLEMENTATIONS:
        out["crc_note"] = "the crc extra (fastcrc) is not installed: pip install rpmsg[crc]"
    if pty:
        out["pty_raw"] = bench_raw_pty(messages * BUFLEN)
        out["pty"] = [bench_pty(messages, pings, staywake=True),
                      bench_pty(messages, pings, staywake=False)]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m rpmsg.bench.uart", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--messages", type=int, default=3000, help="messages for goodput")
    parser.add_argument("--frames", type=int, default=2000, help="frames for framing")
    parser.add_argument("--pings", type=int, default=300, help="round trips for latency")
    parser.add_argument("--no-pty", action="store_true", help="framing figures only")
    args = parser.parse_args(argv)
    result = run(args.messages, args.frames, args.pings, pty=not args.no_pty)
    print(json.dumps(result) if args.json else render(result))


if __name__ == "__main__":
    main()
