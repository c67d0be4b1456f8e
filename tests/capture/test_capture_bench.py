"""``rpmsg bench capture`` runs and reports its figures (never judged: timings vary)."""

from __future__ import annotations

import json

from rpmsg.bench import KINDS
from rpmsg.bench.capture import run
from rpmsg.bench.report import render


def test_capture_benchmark_reports_both_runs() -> None:
    assert KINDS["capture"] == "rpmsg.bench.capture"
    res = run(count=300, repeats=1, tap_calls=2000)
    json.dumps(res)
    assert {"empty_method_ns", "call_16_ns", "total_16_ns", "call_496_ns",
            "total_496_ns", "batch64_16_ns", "batch64_496_ns"} <= set(res["tap"])
    paths = [(r["path"], r["size"]) for r in res["device"]]
    assert paths == [(p, s) for s in (16, 496) for p in ("rx_burst", "send", "send_many")]
    for r in res["device"]:
        assert r["cpu_ns_off"] > 0 and r["cpu_ns_capture"] > 0 and r["write_floor_ns"] > 0
        assert r["dropped"] == 0  # every record measured was written
    for transport in ("loop", "shm"):
        rows = res[transport]
        assert [r["size"] for r in rows] == [16, 496]
        for r in rows:
            assert r["rate_off"] > 0 and r["rate_capture"] > 0
            assert r["cpu_us_off"] > 0 and r["cpu_us_capture"] > 0
            assert r["capture_bytes"] > 300 * r["size"]  # every message was written
    assert "cpu_overhead_pct" in render(res)
