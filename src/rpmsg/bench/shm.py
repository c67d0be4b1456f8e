"""Benchmark of RPMsg over shared-memory virtio between two processes, next to C.

:func:`run` measures, in one run and on one machine, every driver/device pairing of our
Python stack and a C reference of our own (``c/``: a C driver and a C device that speak the
same layout and kick convention, built with the system compiler; see :mod:`rpmsg.bench.cref`):

* ``C<->C``, ``C<->rpmsg``, ``rpmsg<->C``, ``rpmsg<->rpmsg`` (driver first), where rpmsg is
  the public Endpoint API, plus the same with ``rpmsg link`` (the bare transport link);
* per pairing: round trip p50/p99 (16 and 496 bytes), pipelined echo throughput with 1, 16
  and 64 messages in flight, and one-way streams checked by the device (sequence + CRC-32);
* the floor: a 1-byte ping-pong over a socket, in Python and in C, blocking and spinning;

and reports ratios to C<->C within the run (time ratios for latency, rate ratios for
throughput). Without a compiler the C rows are skipped with a one-line note. The result is a
JSON-serialisable dict; timings are figures, never pass/fail.
``python -m rpmsg.bench.shm [--json] [--quick]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from rpmsg.bench import cref
from rpmsg.bench.report import context, percentiles, render, without_capture_env
from rpmsg.bench.shm_host import Workload, measure_endpoint, measure_link
from rpmsg.errors import NotAvailableError

#: Driver/device pairings, driver first: "c", "endpoint" (public API) or "link" (bare link).
PAIRS = (("c", "c"), ("c", "endpoint"), ("endpoint", "c"), ("endpoint", "endpoint"),
         ("c", "link"), ("link", "c"), ("link", "link"))
LABELS = {"c": "C", "endpoint": "rpmsg", "link": "rpmsg link"}
QUICK = Workload(rounds=300, echo=2000, min_seconds=0.05, stream=20_000)
DEVICE_WAIT = 60.0


def _label(driver: str, device: str) -> str:
    return f"{LABELS[driver]}<->{LABELS[device]}"


def _python_env() -> dict[str, str]:
    """The environment for Python children: this copy of rpmsg first on the path."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


# The floor ----------------------------------------------------------------------------------

def _python_floor(rounds: int, spin: float) -> dict[str, Any]:
    """1-byte ping-pong between this process and a Python child, blocking then spinning."""
    import select

    out = {}
    clock = time.perf_counter
    for key, this_spin in (("rtt_1", 0.0), ("rtt_1_spin", spin)):
        ours, theirs = socket.socketpair()
        child = subprocess.Popen(
            [sys.executable, "-m", "rpmsg.bench.shm_peer", "--floor-fd", str(theirs.fileno()),
             "--spin", str(this_spin * 1e6)], pass_fds=[theirs.fileno()], env=_python_env())
        theirs.close()
        fd = ours.fileno()
        os.set_blocking(fd, False)
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        samples = []
        try:
            for _ in range(rounds):
                t0 = clock()
                os.write(fd, b"\x01")
                until = t0 + this_spin
                while True:
                    try:
                        data = os.read(fd, 64)
                    except BlockingIOError:
                        if clock() < until:
                            os.sched_yield()
                        elif not poller.poll(DEVICE_WAIT * 1000):
                            raise RuntimeError("bench: the floor's child does not answer") \
                                from None
                        continue
                    if not data:
                        raise RuntimeError("bench: the floor's child went away")
                    break
                samples.append(clock() - t0)
        finally:
            ours.close()
            child.wait(DEVICE_WAIT)
        out[key] = percentiles(samples[rounds // 10 :])
    return out


def _c_floor(driver: Path, rounds: int, spin_us: float) -> dict[str, Any]:
    proc = subprocess.run([str(driver), "--floor", str(rounds), "--spin", str(spin_us)],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"C floor failed: {proc.stderr.strip()}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


# One pairing --------------------------------------------------------------------------------

def _start_device(kind: str, name: str, url: str, programs: dict[str, Path],
                  spin_us: float) -> subprocess.Popen[str]:
    if kind == "c":
        cmd = [str(programs["shm_device"]), "--shm", name, "--spin", str(spin_us),
               "--timeout", str(DEVICE_WAIT)]
    else:
        cmd = [sys.executable, "-m", "rpmsg.bench.shm_peer", "--url", url, "--mode", kind]
    return subprocess.Popen(cmd, env=_python_env(), stderr=subprocess.PIPE, text=True)


def _c_driver(programs: dict[str, Path], name: str, work: Workload,
              spin_us: float) -> dict[str, Any]:
    cmd = [str(programs["shm_driver"]), "--shm", name, "--spin", str(spin_us),
           "--timeout", str(DEVICE_WAIT), "--rounds", str(work.rounds), "--echo", str(work.echo),
           "--min-seconds", str(work.min_seconds), "--stream", str(work.stream),
           "--burst", str(work.burst), "--sizes", ",".join(map(str, work.sizes)),
           "--windows", ",".join(map(str, work.windows))]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"C driver failed ({proc.returncode}): {proc.stderr.strip()}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def run_pair(driver: str, device: str, work: Workload, *, spin_us: float = 50.0,
             programs: dict[str, Path] | None = None) -> dict[str, Any]:
    """Measure one driver/device pairing over a fresh shm file; the device's exit status too."""
    name = f"rpmsg-bench-{uuid.uuid4().hex[:10]}"
    url = f"shm:{name}?kick=socket&spin={spin_us}&timeout={DEVICE_WAIT}"
    programs = programs or {}
    proc = _start_device(device, name, url, programs, spin_us)
    try:
        if driver == "c":
            figures = _c_driver(programs, name, work, spin_us)
        elif driver == "endpoint":
            figures = measure_endpoint(url, work)
        else:
            figures = measure_link(url, work, spin_us * 1e-6)
        try:
            _out, err = proc.communicate(timeout=DEVICE_WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()
        if proc.returncode != 0:
            figures["device_error"] = f"exit {proc.returncode}: {err.strip()[-500:]}"
        return figures
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for path in (f"/dev/shm/{name}", f"/tmp/{name}.event.0"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


# The whole run ------------------------------------------------------------------------------

def _compare(pairs: dict[str, Any], work: Workload) -> dict[str, dict[str, float]]:
    """Each pairing's figures divided by C<->C's (latency: time ratio; rates: rate ratio)."""
    base = pairs.get(_label("c", "c"))
    if not base or "error" in base:
        return {}
    out: dict[str, dict[str, float]] = {}
    for label, fig in pairs.items():
        if "error" in fig:
            continue
        row: dict[str, float] = {}
        for size in work.sizes:
            row[f"rtt_{size}_p50"] = round(fig[f"rtt_{size}"]["p50_us"]
                                           / base[f"rtt_{size}"]["p50_us"], 2)
            for w in work.windows:
                key = f"echo_w{w}_{size}"
                row[key] = round(fig[key]["msgs_per_s"] / base[key]["msgs_per_s"], 3)
            row[f"stream_{size}"] = round(fig[f"stream_{size}"]["msgs_per_s"]
                                          / base[f"stream_{size}"]["msgs_per_s"], 3)
        out[label] = row
    return out


@without_capture_env
def run(quick: bool = False, *, work: Workload | None = None, spin_us: float = 50.0,
        c_reference: bool = True, pairs: tuple[tuple[str, str], ...] = PAIRS) -> dict[str, Any]:
    """Run every pairing (two processes each) and return the figures as a dict."""
    work = work or (QUICK if quick else Workload())
    result: dict[str, Any] = {
        "benchmark": "shm", **context(), "spin_us": spin_us,
        "workload": {"rounds": work.rounds, "echo": work.echo, "min_seconds": work.min_seconds,
                     "stream": work.stream, "burst": work.burst, "sizes": list(work.sizes),
                     "windows": list(work.windows)},
    }
    programs: dict[str, Path] = {}
    if c_reference:
        try:
            programs = cref.build_shm()
            result["c_reference"] = {"built": str(programs["shm_driver"].parent),
                                     "compiler": cref.compiler()}
        except NotAvailableError as exc:
            result["c_reference"] = f"skipped: {exc}"
            print(f"rpmsg bench shm: {exc}", file=sys.stderr)
    if not programs:
        pairs = tuple(p for p in pairs if "c" not in p)
    result["floor"] = {"python": _python_floor(work.rounds, spin_us * 1e-6)}
    if programs:
        result["floor"]["c"] = _c_floor(programs["shm_driver"], work.rounds, spin_us)
    figures: dict[str, Any] = {}
    for driver, device in pairs:
        label = _label(driver, device)
        try:
            figures[label] = run_pair(driver, device, work, spin_us=spin_us, programs=programs)
        except Exception as exc:  # one failed pairing must not hide the others' figures
            figures[label] = {"error": f"{type(exc).__name__}: {exc}"}
    result["pairs"] = figures
    result["vs_c"] = _compare(figures, work)
    result["loadavg_end"] = context().get("loadavg")
    return result


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The human form: one row per pairing, then the same divided by C<->C."""
    sizes = result["workload"]["sizes"]
    windows = result["workload"]["windows"]
    rows = []
    for label, fig in result["pairs"].items():
        row: dict[str, Any] = {"driver<->device": label}
        if "error" in fig:
            row["error"] = fig["error"]
            rows.append(row)
            continue
        for size in sizes:
            row[f"rtt{size} p50/p99 us"] = (f"{fig[f'rtt_{size}']['p50_us']:.1f}/"
                                            f"{fig[f'rtt_{size}']['p99_us']:.1f}")
        for size in sizes:
            for w in windows:
                row[f"echo{size} w{w} k/s"] = round(fig[f"echo_w{w}_{size}"]["msgs_per_s"] / 1e3,
                                                    1)
        for size in sizes:
            s = fig[f"stream_{size}"]
            row[f"stream{size} k/s"] = round(s["msgs_per_s"] / 1e3, 1)
        row["stream496 MB/s"] = fig.get("stream_496", {}).get("mb_per_s", "")
        ok = all(fig[f"stream_{s}"]["complete_in_order"] for s in sizes) and all(
            fig[f"echo_w{w}_{s}"]["in_order"] for s in sizes for w in windows)
        row["intact"] = "yes" if ok else "NO"
        rows.append(row)
    floor = {f"{lang} {k}": f"{v['p50_us']:.1f} us"
             for lang, fl in result["floor"].items() for k, v in fl.items()}
    out: dict[str, Any] = {
        "benchmark": "shm", "python": result["python"], "cpus": result["cpus"],
        "loadavg": result.get("loadavg"), "c_reference": result.get("c_reference"),
        "floor p50 (1-byte ping-pong)": floor, "figures": rows,
    }
    ratios = [{"driver<->device": k, **v} for k, v in result["vs_c"].items()]
    if ratios:
        out["ratio to C<->C (rtt: time, others: rate)"] = ratios
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m rpmsg.bench.shm [--json] [--quick] [--no-c]``."""
    ap = argparse.ArgumentParser(prog="python -m rpmsg.bench.shm", description=__doc__)
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--quick", action="store_true", help="smaller workloads")
    ap.add_argument("--spin", type=float, default=50.0, help="adaptive spin in µs")
    ap.add_argument("--no-c", action="store_true", help="skip the C reference")
    ap.add_argument("--pair", action="append", metavar="DRIVER:DEVICE",
                    help="only these pairings (c, endpoint, link), e.g. c:endpoint")
    args = ap.parse_args(argv)
    pairs: tuple[tuple[str, str], ...] = PAIRS
    if args.pair:
        pairs = tuple((d, v) for d, v in (p.split(":", 1) for p in args.pair))
    res = run(args.quick, spin_us=args.spin, c_reference=not args.no_c, pairs=pairs)
    print(json.dumps(res) if args.json else render(summary(res)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
