"""What capturing costs: the same traffic with and without ``capture=``, in one run.

- ``tap``: nanoseconds per :meth:`CaptureTap.message` call (16 and 496 bytes), next to the
  floor of an empty Python method call, the cost every tap pays at least, and per message of
  a 64-message :meth:`CaptureTap.message_batch` (a received burst).
- ``device``: CPU nanoseconds per message through a Device on one thread, with no thread
  hand-off to blur them: received bursts of 64 (``deliver_many`` into a queue endpoint read
  with ``recv_many``), ``send`` and ``send_many`` to a link that takes everything at once;
  the capture cost is the difference, the flusher's work (and the file's writes) included.
  This is the figure for a link at full rate: set ``capture_ns`` against what a message
  costs the whole process on the real link (``shm`` below: ``cpu_us_off`` is a round trip,
  two messages), not against ``cpu_ns_off``, which leaves the transport out.
- ``loop``: pipelined echo between two Devices of one process over ``loop:`` (pure Python,
  so the worst case for the relative overhead: each round trip is four tap calls when both
  Devices capture). Off and on runs alternate, the best of each is kept.
- ``shm``: pipelined echo from this process to ``rpmsg remote`` in another over shared memory;
  only this side captures (as an application under ``RPMSG_CAPTURE`` would).

Overhead in percent: on this process's CPU time per round trip (every thread, the flusher
included; robust on a loaded machine) and on the rate. Figures only, never pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import rpmsg
from rpmsg.bench.report import context, render, without_capture_env
from rpmsg.capture import open_capture
from rpmsg.capture.blocks import message_packer
from rpmsg.device import Device
from rpmsg.endpoint import Endpoint
from rpmsg.services import EchoService
from rpmsg.transport import Delivery, Link, LinkSink
from rpmsg.wire.layout import Buffer

ECHO = "rpmsg-echo"


def _tap_cost(calls: int) -> dict[str, Any]:
    """Per message: the call on the data path, and the whole cost (call plus encoding and
    writing on the flusher thread, which takes the same GIL)."""

    class Noop:
        def message(self, direction: str, src: int, dst: int, payload: bytes,
                    flags: int = 0) -> None:
            pass

    out: dict[str, Any] = {}
    noop = Noop()
    payload = bytes(16)
    t0 = time.perf_counter_ns()
    for _ in range(calls):
        noop.message("tx", 0x400, 0x401, payload)
    out["empty_method_ns"] = round((time.perf_counter_ns() - t0) / calls, 1)
    with tempfile.TemporaryDirectory() as tmp:
        for size in (16, 496):
            tap = open_capture(os.path.join(tmp, f"tap{size}.pcapng"), link_name="bench")
            payload = bytes(size)
            t0 = time.perf_counter_ns()
            for _ in range(calls):
                tap.message("tx", 0x400, 0x401, payload)
            t1 = time.perf_counter_ns()
            tap.flush()  # type: ignore[attr-defined]
            t2 = time.perf_counter_ns()
            out[f"call_{size}_ns"] = round((t1 - t0) / calls, 1)
            out[f"total_{size}_ns"] = round((t2 - t0) / calls, 1)
            out[f"batch64_{size}_ns"] = round(_batch_cost(tap, size, calls), 1)
            tap.close()
    return out


def _batch_cost(tap: Any, size: int, calls: int) -> float:
    """Per message of 64-message ``message_batch`` calls (received payloads in a ring)."""
    ring = memoryview(bytearray(64 * size))
    batch = [(0x400, 0x401, ring[i * size:(i + 1) * size], None) for i in range(64)]
    show = tap.message_batch
    rounds = max(1, calls // 64)
    t0 = time.perf_counter_ns()
    for _ in range(rounds):
        show("rx", batch)
    return (time.perf_counter_ns() - t0) / (rounds * 64)


class _SinkLink(Link):
    """A link that takes every message at once and drops it (the Device's side alone)."""

    role = "bench"

    def start(self, sink: LinkSink) -> None:
        self.sink = sink

    def send(self, src: int, dst: int, payload: Buffer, timeout: float | None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


def _device_run(size: int, count: int, capture: str | None) -> dict[str, float]:
    """CPU ns per message of each data path of one Device, on this thread (the capture's
    flusher thread included)."""
    link = _SinkLink()
    tap = open_capture(capture, link_name="bench") if capture else None
    dev = Device(link, tap=tap)
    try:
        dev.link_up()
        ept = dev.create_endpoint(src=0x400, dst=0x401, queue=128)
        ring = memoryview(bytearray(64 * size))

        def release() -> None:
            pass

        burst: list[Delivery] = [(0x401, 0x400, ring[i * size:(i + 1) * size], release)
                                 for i in range(64)]
        payload = bytes(size)
        payloads = [payload] * 64
        rounds = max(1, count // 64)
        # This thread writes what is queued every 1024 messages itself, as the flusher
        # would on a free core: without a pause, on a loaded machine, the flusher may not
        # get the GIL (or a core) in time and records would be dropped, not measured.
        flush = getattr(tap, "flush", None) or (lambda: None)
        out: dict[str, float] = {}
        for name in ("rx_burst", "send", "send_many"):
            c0 = time.process_time_ns()
            for i in range(rounds):
                if name == "rx_burst":
                    dev.deliver_many(burst)
                    ept.recv_many(64, timeout=0)
                elif name == "send":
                    for data in payloads:
                        ept.send(data)
                else:
                    ept.send_many(payloads)
                if i % 16 == 15:
                    flush()
            flush()  # the writing belongs to the cost
            out[name] = (time.process_time_ns() - c0) / (rounds * 64)
        if tap is not None:
            out["dropped"] = tap.file.overflowed  # type: ignore[attr-defined]
        return out
    finally:
        dev.close()


def _write_floor(size: int, count: int, path: str) -> float:
    """CPU ns per message of only writing the capture's bytes for ``count`` messages of
    ``size`` bytes to a file there, in 1 MiB writes: what the kernel charges for the file
    (page cache; past the dirty limit, writeback), which no capture code avoids."""
    record = message_packer(size)[1]
    chunk = bytes(1 << 20)
    left = record * count
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        c0 = time.process_time_ns()
        while left > 0:
            left -= os.write(fd, chunk[:left])
        return (time.process_time_ns() - c0) / count
    finally:
        os.close(fd)
        os.unlink(path)


def _device_cost(count: int, repeats: int, tmp: str) -> list[dict[str, Any]]:
    """Off and on alternating, the least CPU of each kept (CPU time: robust under load);
    ``write_floor_ns`` (see :func:`_write_floor`) is the part of ``capture_ns`` spent in
    the kernel writing the file, the rest is Python's."""
    rows = []
    for size in (16, 496):
        off: list[dict[str, float]] = []
        on: list[dict[str, float]] = []
        floor: list[float] = []
        for i in range(repeats):
            off.append(_device_run(size, count, None))
            on.append(_device_run(size, count, os.path.join(tmp, f"d{size}-{i}.pcapng")))
            floor.append(_write_floor(size, count, os.path.join(tmp, "floor")))
        for path in ("rx_burst", "send", "send_many"):
            ns_off = min(r[path] for r in off)
            ns_on = min(r[path] for r in on)
            rows.append({"path": path, "size": size, "cpu_ns_off": round(ns_off),
                         "cpu_ns_capture": round(ns_on), "capture_ns": round(ns_on - ns_off),
                         "write_floor_ns": round(min(floor)),
                         "dropped": int(max(r.get("dropped", 0) for r in on))})
    return rows


def _echo(ept: Endpoint, size: int, count: int, window: int) -> tuple[float, float]:
    """Pipelined echo, at most ``window`` messages in flight: (round trips per second, CPU
    microseconds of this process per round trip, every thread included)."""
    payload = bytes(size)
    credits = threading.Semaphore(window)
    errors: list[BaseException] = []

    def sender() -> None:
        try:
            for _ in range(count):
                credits.acquire()
                ept.send(payload, timeout=30)
        except BaseException as exc:  # reported by the receiving side
            errors.append(exc)

    t0, c0 = time.perf_counter(), time.process_time()
    th = threading.Thread(target=sender, daemon=True)
    th.start()
    for _ in range(count):
        ept.recv(timeout=30)
        credits.release()
    elapsed = time.perf_counter() - t0
    th.join(30)
    cpu = time.process_time() - c0
    if errors:
        raise errors[0]
    return count / elapsed, cpu / count * 1e6


def _loop_rate(size: int, count: int, window: int, capture: str | None
               ) -> tuple[float, float]:
    name = f"bench-cap-{uuid.uuid4().hex[:8]}"
    opt = f"?capture={capture}" if capture else ""
    with rpmsg.open(f"loop:{name}{opt}", side="remote") as remote, \
            rpmsg.open(f"loop:{name}{opt}") as host:
        EchoService(remote, ECHO)
        ept = host.create_endpoint(ECHO)
        ept.wait_bound(10)
        return _echo(ept, size, count, window)


def _shm_rate(url: str, size: int, count: int, window: int, capture: str | None
              ) -> tuple[float, float]:
    opt = f"&capture={capture}" if capture and "?" in url else (
        f"?capture={capture}" if capture else "")
    with rpmsg.open(url + opt) as host:
        ept = host.create_endpoint(ECHO)
        ept.wait_bound(10)
        return _echo(ept, size, count, window)


def _compare(measure: Any, sizes: tuple[int, ...], repeats: int, tmp: str) -> list[dict[str, Any]]:
    """Runs without and with capture, alternating; the best of each is kept. The overhead
    is given on CPU time per round trip (robust on a loaded machine) and on the rate."""
    rows = []
    for size in sizes:
        off: list[tuple[float, float]] = []
        on: list[tuple[float, float]] = []
        captured = 0
        for i in range(repeats):  # alternate so that load changes hit both alike
            off.append(measure(size, None))
            path = os.path.join(tmp, f"c{size}-{i}.pcapng")
            on.append(measure(size, path))
            captured = Path(path).stat().st_size
        rate_off, rate_on = max(r for r, _ in off), max(r for r, _ in on)
        cpu_off, cpu_on = min(c for _, c in off), min(c for _, c in on)
        rows.append({"size": size, "cpu_us_off": round(cpu_off, 2),
                     "cpu_us_capture": round(cpu_on, 2),
                     "cpu_overhead_pct": round((cpu_on / cpu_off - 1) * 100, 1),
                     "rate_off": round(rate_off), "rate_capture": round(rate_on),
                     "rate_overhead_pct": round((rate_off / rate_on - 1) * 100, 1),
                     "capture_bytes": captured})
    return rows


@without_capture_env
def run(quick: bool = False, *, count: int | None = None, repeats: int | None = None,
        tap_calls: int | None = None) -> dict[str, Any]:
    """Measure (``quick``: smaller workloads); the keyword arguments override the sizes."""
    count = count or (3000 if quick else 20_000)
    repeats = repeats or (3 if quick else 5)
    window = 16
    sizes = (16, 496)
    result: dict[str, Any] = {"benchmark": "capture", **context(), "messages": count,
                              "window": window, "repeats": repeats}
    result["tap"] = _tap_cost(tap_calls or (10_000 if quick else 50_000))
    with tempfile.TemporaryDirectory() as tmp:
        result["device"] = _device_cost(count, repeats, tmp)
        result["loop"] = _compare(lambda s, c: _loop_rate(s, count, window, c), sizes,
                                  repeats, tmp)
        tag = f"bench-cap-{uuid.uuid4().hex[:8]}"
        sock = os.path.join(tmp, "kick.sock")
        url = f"shm:{tag}?socket={sock}"
        env = dict(os.environ)
        env.pop("RPMSG_CAPTURE", None)
        child = subprocess.Popen([sys.executable, "-m", "rpmsg", "remote", url, "--echo", ECHO],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=env)
        try:
            assert child.stdout is not None
            if "serving" not in child.stdout.readline():
                raise rpmsg.NotAvailableError("rpmsg remote did not start")
            result["shm"] = _compare(lambda s, c: _shm_rate(url, s, count, window, c), sizes,
                                     repeats, tmp)
        finally:
            child.terminate()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            for leftover in Path("/dev/shm").glob(f"{tag}*"):
                leftover.unlink(missing_ok=True)
    result["loadavg_end"] = context().get("loadavg")
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m rpmsg.bench.capture [--json] [--quick]``."""
    ap = argparse.ArgumentParser(prog="python -m rpmsg.bench.capture", description=__doc__)
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--quick", action="store_true", help="smaller workloads")
    args = ap.parse_args(argv)
    res = run(args.quick)
    print(json.dumps(res) if args.json else render(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
