"""Round trips through ``/dev/rpmsgN`` inside User-Mode Linux: this library next to C.

In one boot (Linux 6.12 as UML, ``rpmsg_char``), the guest creates an endpoint through
``/dev/rpmsg_ctrl0`` and our vhost-user device on the host echoes it. On that same
``/dev/rpmsgN``, in the same boot, one after the other for each payload size:

* ``c``: a small C client (``rtt_client.c``, built on the host; UML runs the host's root file
  system): ``write`` then a blocking ``read``, two system calls per round trip;
* ``c_poll``: the same with a ``poll`` (5 s timeout) before the ``read``, as any client with a
  timeout needs;
* ``library``: :class:`rpmsg.linux.Endpoint` ``send`` then ``recv(timeout=5)``;
* ``raw_python``: ``os.write`` then a blocking ``os.read`` on the same node (Python's floor).

Replies are compared with what was sent, so only correct round trips count. The result has
the percentiles of each, the ratios to ``c`` (p50), and for the library the C-level calls and
Python-level calls per round trip (from ``sys.setprofile``; C calls such as ``posix.read`` are
the system calls). Without a C compiler the C rows are skipped with a note. Run::

    .venv/bin/python tests/kernel/bench_rtt.py [--count 5000] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from rpmsg.bench import cref
from rpmsg.bench.report import context, render
from rpmsg.errors import NotAvailableError

try:
    from .remote import TestRemote
    from .uml import VIRTIO_ID_RPMSG, boot
except ImportError:  # run as a script: this directory is first on sys.path
    from remote import TestRemote  # type: ignore[no-redef]
    from uml import VIRTIO_ID_RPMSG, boot  # type: ignore[no-redef]

CLIENT_SOURCE = Path(__file__).with_name("rtt_client.c")
WARMUP = 50

GUEST = r"""
import collections, json, os, subprocess, sys, time
from rpmsg.bench.report import percentiles
from rpmsg.linux import Ctrl, Endpoint

params = json.loads(os.environ["RPMSG_TEST_PARAMS"])
count, warmup = params["count"], params["warmup"]
clock = time.perf_counter


def message(seq, pattern):
    return seq.to_bytes(4, "little") + pattern[4:]


def timed(round_trip, pattern):
    for _ in range(warmup):
        round_trip(pattern)
    rtts, errors = [], 0
    start = clock()
    for seq in range(count):
        msg = message(seq, pattern)
        t0 = clock()
        got = round_trip(msg)
        rtts.append(clock() - t0)
        errors += got != msg
    total = clock() - start
    return dict(percentiles(rtts), msgs_per_s=round(count / total), errors=errors)


def calls_per_round_trip(round_trip, pattern, n=200):
    c_calls, py_calls = collections.Counter(), 0

    def profile(frame, event, arg):
        nonlocal py_calls
        if event == "c_call":
            name = getattr(arg, "__qualname__", None) or repr(arg)
            module = getattr(arg, "__module__", None)
            c_calls[f"{module}.{name}" if module else name] += 1
        elif event == "call":
            py_calls += 1

    sys.setprofile(profile)
    try:
        for _ in range(n):
            round_trip(pattern)
    finally:
        sys.setprofile(None)
    return {"python_calls": round(py_calls / n, 2),
            "c_calls": {k: round(v / n, 2) for k, v in c_calls.most_common(25)}}


out = {}
with Ctrl.open(0) as ctrl:
    n = ctrl.create_endpoint(name="bench", dst=params["echo_addr"])
node = f"/dev/rpmsg{n}"
for size in params["sizes"]:
    pattern = bytes(i & 0xFF for i in range(size))
    row = out[str(size)] = {}
    if params["client"]:
        for mode in ("read", "poll"):
            proc = subprocess.run([params["client"], node, str(size), str(count), str(warmup),
                                   mode], capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                raise SystemExit(f"C client ({mode}) failed: {proc.stderr}")
            row["c" if mode == "read" else "c_poll"] = json.loads(proc.stdout)
    with Endpoint.open(n) as ep:
        def library(msg):
            ep.send(msg)
            return ep.recv(timeout=5)
        row["library"] = timed(library, pattern)
        row["library_calls"] = calls_per_round_trip(library, pattern)
    fd = os.open(node, os.O_RDWR)
    try:
        def raw(msg):
            os.write(fd, msg)
            return os.read(fd, 512)
        row["raw_python"] = timed(raw, pattern)
    finally:
        os.close(fd)
with Ctrl.open(0) as ctrl:
    ctrl.destroy_endpoint(name="bench", dst=params["echo_addr"])
print(json.dumps(out))
"""


def build_client() -> Path:
    """The C client, built with the system compiler (NotAvailableError without one)."""
    return cref.build("rtt_client", [CLIENT_SOURCE])


def run(count: int = 2000, sizes: tuple[int, ...] = (16, 496),
        timeout: float = 900) -> dict[str, Any]:
    """Boot UML once and measure every client; returns the JSON-serialisable result."""
    result: dict[str, Any] = {"benchmark": "kernel /dev/rpmsgN round trip", **context(),
                              "transport": "vhost-user (UML 6.12 guest, /dev/rpmsgN)",
                              "count": count}
    try:
        client: str = str(build_client())
    except NotAvailableError as exc:
        client = ""
        result["c_reference"] = f"skipped: {exc}"
        print(f"bench_rtt: {exc}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="rpmsg-bench-") as tmp:
        remote = TestRemote(str(Path(tmp) / "rpmsg.sock"))
        try:
            params = dict(remote.addresses(), count=count, sizes=list(sizes), client=client,
                          warmup=WARMUP)
            guest = boot(GUEST, devices=[(remote.path, VIRTIO_ID_RPMSG)], timeout=timeout,
                         env={"RPMSG_TEST_PARAMS": json.dumps(params)}).check()
            stats = remote.device.stats()
        finally:
            remote.close()
    rtt = json.loads(guest.stdout)
    result["rtt"] = rtt
    result["device"] = {k: v for k, v in stats.items() if not k.startswith("ns_")}
    if client:
        result["ratio_p50_to_c"] = {
            size: {name: round(row[name]["p50_us"] / row["c"]["p50_us"], 2)
                   for name in ("c_poll", "library", "raw_python")}
            for size, row in rtt.items()}
    result["loadavg_end"] = context().get("loadavg")
    return result


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """One row per size and client, for people."""
    rows = []
    for size, row in result["rtt"].items():
        for name in ("c", "c_poll", "library", "raw_python"):
            if name in row:
                fig = row[name]
                rows.append({"size": size, "client": name, "p50_us": fig["p50_us"],
                             "p99_us": fig["p99_us"], "mean_us": fig["mean_us"],
                             "msgs_per_s": fig["msgs_per_s"], "errors": fig["errors"],
                             "p50 / c": result.get("ratio_p50_to_c", {}).get(size, {}).get(
                                 name, 1.0 if name == "c" else "")})
    calls = {size: row["library_calls"] for size, row in result["rtt"].items()}
    return {"benchmark": result["benchmark"], "loadavg": result.get("loadavg"),
            "c_reference": result.get("c_reference", "built"), "round trips": rows,
            "library calls per round trip": calls}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="round trips per size")
    parser.add_argument("--sizes", default="16,496", help="payload sizes, comma-separated")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    result = run(args.count, sizes)
    print(json.dumps(result) if args.json else render(summary(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
