"""Round-trip benchmark through ``/dev/rpmsgN`` inside User-Mode Linux; prints JSON.

The guest (Linux 6.12 as UML, ``rpmsg_char``) writes a message to a ctrl-created endpoint,
our vhost-user device echoes it from Python on the host, and the guest reads it back; each
round trip is timed with the guest's clock. Payloads are checked (a sequence number and
the pattern), so the figures only count correct round trips. Run from the checkout::

    .venv/bin/python tests/kernel/bench_rtt.py --count 5000

Output: per payload size ``count``, ``p50_us``, ``p99_us``, ``mean_us``, ``msgs_per_s``
(round trips per second) and ``errors``, plus the host-side device counters.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.kernel.remote import TestRemote
from tests.kernel.uml import VIRTIO_ID_RPMSG, boot

GUEST = r"""
import json, os, statistics, time
from rpmsg.linux import Ctrl, Endpoint

params = json.loads(os.environ["RPMSG_TEST_PARAMS"])
out = {}
with Ctrl.open(0) as ctrl:
    n = ctrl.create_endpoint(name="bench", dst=params["echo_addr"])
with Endpoint.open(n) as ep:
    for size in params["sizes"]:
        pattern = bytes(i & 0xFF for i in range(size))
        for warm in range(50):
            ep.send(pattern)
            ep.recv(timeout=5)
        rtts = []
        errors = 0
        clock = time.perf_counter_ns
        t_start = clock()
        for seq in range(params["count"]):
            msg = seq.to_bytes(4, "little") + pattern[4:] if size >= 4 else pattern
            t0 = clock()
            ep.send(msg)
            got = ep.recv(timeout=5)
            rtts.append(clock() - t0)
            if got != msg:
                errors += 1
        total = (clock() - t_start) / 1e9
        rtts.sort()
        out[str(size)] = {
            "count": len(rtts),
            "p50_us": round(rtts[len(rtts) // 2] / 1e3, 1),
            "p99_us": round(rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))] / 1e3, 1),
            "mean_us": round(statistics.fmean(rtts) / 1e3, 1),
            "msgs_per_s": round(len(rtts) / total),
            "errors": errors,
        }
with Ctrl.open(0) as ctrl:
    ctrl.destroy_endpoint(name="bench", dst=params["echo_addr"])
print(json.dumps(out))
"""


def run(count: int = 2000, sizes: tuple[int, ...] = (16, 496),
        timeout: float = 600) -> dict[str, Any]:
    """Boot UML once and measure; returns the JSON-serialisable result."""
    with tempfile.TemporaryDirectory(prefix="rpmsg-bench-") as tmp:
        remote = TestRemote(str(Path(tmp) / "rpmsg.sock"))
        try:
            params = dict(remote.addresses(), count=count, sizes=list(sizes))
            result = boot(GUEST, devices=[(remote.path, VIRTIO_ID_RPMSG)], timeout=timeout,
                          env={"RPMSG_TEST_PARAMS": json.dumps(params)}).check()
            stats = remote.device.stats()
        finally:
            remote.close()
    return {"transport": "vhost-user (UML 6.12 guest, /dev/rpmsgN)", "rtt": json.loads(
        result.stdout), "device": {k: v for k, v in stats.items() if not k.startswith("ns_")}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="round trips per size")
    parser.add_argument("--sizes", default="16,496", help="payload sizes, comma-separated")
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    print(json.dumps(run(args.count, sizes), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
