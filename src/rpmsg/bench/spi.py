"""SPI benchmark over the simulated bus: exchanges per message and goodput vs. raw capacity.

The master runs in this process, the slave in a child process (``--serve``). Measured: a
ping-pong (one message in flight) and a one-way stream of full-size messages, each with the
number of SPI exchanges per message and the goodput as a fraction of the raw bus capacity
(``hz / 8`` bytes/s of the simulated clock); and, as the floor, the rate of bare exchanges of
the simulated bus with no protocol on top. ``python -m rpmsg.bench.spi --json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import rpmsg
from rpmsg.bench.report import context, render, without_capture_env
from rpmsg.endpoint import Endpoint
from rpmsg.port.spi.sim import SimBus

SERVICE = "spi-bench"
_QUERY = b"?"


def _serve(url: str) -> None:
    """Child process: echo messages starting with ``P``, count the others, answer ``?``."""
    dev = rpmsg.open(url, side="remote")
    count = [0, 0]

    def on_message(ept: Endpoint, data: bytes, src: int) -> None:
        if data[:1] == b"P":
            ept.send(data, timeout=10)
        elif data == _QUERY:
            ept.send(count[0].to_bytes(8, "little") + count[1].to_bytes(8, "little"),
                     timeout=10)
        else:
            count[0] += 1
            count[1] += len(data)

    dev.create_endpoint(SERVICE, callback=on_message)
    print("ready", flush=True)
    sys.stdin.read()
    dev.close()


class _Bare:
    """PhysEvents for the floor measurement: the slave re-arms at once after each transfer."""

    def __init__(self, bus: SimBus | None) -> None:
        self.bus = bus
        self.edge = threading.Event()
        self.buf = bytes(bus.buflen) if bus is not None else b""

    def peer_edge(self) -> None:
        self.edge.set()

    def transfer_done(self, rx: bytes) -> None:
        if self.bus is not None:
            self.bus.set_request(False)
            self.bus.queue_tx(self.buf)
            self.bus.set_request(True)

    def phys_error(self, error: Exception) -> None:
        self.edge.set()


def _floor(buflen: int, hz: int, seconds: float) -> dict[str, Any]:
    """Bare simulated-bus exchanges per second (socket pair, one process, no protocol)."""
    master, slave = SimBus.pair(buflen, hz=hz)
    m_ev, s_ev = _Bare(None), _Bare(slave)
    master.start(m_ev)
    slave.start(s_ev)
    try:
        slave.queue_tx(bytes(buflen))
        slave.set_request(True)
        tx = bytes(buflen)
        n = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            if not m_ev.edge.wait(5):
                break
            m_ev.edge.clear()
            master.transfer(tx)
            n += 1
        elapsed = time.perf_counter() - start
    finally:
        master.close()
        slave.close()
    return {"exchanges_per_s": round(n / elapsed, 1),
            "bytes_per_s": round(n * buflen / elapsed),
            "fraction_of_raw": round(n * buflen / elapsed / (hz / 8), 4) if hz else None}


@without_capture_env
def run(quick: bool = False, *, buflen: int = 512, hz: int = 10_000_000,
        pings: int | None = None, stream: int | None = None) -> dict[str, Any]:
    """Run the benchmark and return its figures as a JSON-able dict."""
    pings = pings if pings is not None else (300 if quick else 2000)
    stream = stream if stream is not None else (1000 if quick else 10000)
    workdir = tempfile.mkdtemp(prefix="spib-")
    url = f"spisim:{os.path.join(workdir, 'bus.sock')}?buflen={buflen}&hz={hz}"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child = subprocess.Popen([sys.executable, "-m", "rpmsg.bench.spi", "--serve", url],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    dev = None
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("the benchmark's slave process did not start")
        dev = rpmsg.open(url)
        ept = dev.create_endpoint(SERVICE)
        ept.wait_bound(timeout=30)
        mtu = dev.mtu
        raw = hz / 8 if hz else None

        def exchanges() -> int:
            return int(dev.stats()["link_exchanges"]) if dev is not None else 0

        # Ping-pong, 16-byte payloads, one in flight.
        msg = b"P" + bytes(15)
        rtts: list[float] = []
        e0 = exchanges()
        for _ in range(pings):
            t = time.perf_counter()
            ept.send(msg, timeout=10)
            ept.recv(timeout=10)
            rtts.append(time.perf_counter() - t)
        ping_ex = (exchanges() - e0) / pings

        # One-way stream of full-size messages.
        payload = b"S" * mtu
        e0 = exchanges()
        t = time.perf_counter()
        for _ in range(stream):
            ept.send(payload, timeout=30)
        ept.send(_QUERY, timeout=30)
        reply = ept.recv(timeout=60)
        elapsed = time.perf_counter() - t
        got, got_bytes = int.from_bytes(reply[:8], "little"), int.from_bytes(reply[8:], "little")
        stream_ex = (exchanges() - e0 - 1) / stream
        goodput = got_bytes / elapsed
        result: dict[str, Any] = {
            "benchmark": "spi",
            **context(),
            "transport": "spisim (two processes)",
            "buflen": buflen,
            "mtu": mtu,
            "hz": hz,
            "raw_capacity_bytes_per_s": raw,
            "ping_pong": {
                "messages": pings, "payload": len(msg),
                "exchanges_per_message": round(ping_ex, 3),
                "rtt_us_p50": round(statistics.median(rtts) * 1e6, 1),
                "rtt_us_p99": round(sorted(rtts)[int(len(rtts) * 0.99) - 1] * 1e6, 1),
            },
            "stream": {
                "messages": stream, "received": got, "payload": mtu,
                "exchanges_per_message": round(stream_ex, 3),
                "msgs_per_s": round(got / elapsed, 1),
                "goodput_bytes_per_s": round(goodput),
                "goodput_fraction_of_raw": round(goodput / raw, 4) if raw else None,
                # Payload per clocked byte: the fraction reachable if software kept up.
                "bus_efficiency": round(got_bytes / (stream_ex * stream * buflen), 4),
            },
            "floor_bare_exchanges": _floor(buflen, hz, 0.5 if quick else 2.0),
        }
        return result
    finally:
        if dev is not None:
            dev.close()
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print compact JSON only")
    parser.add_argument("--quick", action="store_true", help="shorter run")
    parser.add_argument("--buflen", type=int, default=512)
    parser.add_argument("--hz", type=int, default=10_000_000,
                        help="simulated SPI clock (0 = unlimited)")
    parser.add_argument("--serve", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        _serve(args.serve)
        return 0
    result = run(args.quick, buflen=args.buflen, hz=args.hz)
    print(json.dumps(result) if args.json else render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
