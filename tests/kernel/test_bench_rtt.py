"""Smoke test of the kernel round-trip benchmark: one short boot, every client correct.

Timings are figures only: this asserts that each client (the C reference, the library, raw
Python) made its round trips through the real ``/dev/rpmsgN`` with every reply intact, and
that the comparison and the per-round-trip call counts are reported.
"""

from __future__ import annotations

import json

import pytest

from .bench_rtt import run, summary

pytestmark = pytest.mark.kernel


def test_bench_rtt_compares_the_library_with_c_in_one_boot() -> None:
    result = run(count=100, sizes=(16, 496), timeout=300)
    json.dumps(result)
    for size in ("16", "496"):
        row = result["rtt"][size]
        clients = ["library", "raw_python"]
        if "c_reference" not in result:  # a compiler was there: the C rows must be too
            clients += ["c", "c_poll"]
            assert set(result["ratio_p50_to_c"][size]) == {"c_poll", "library", "raw_python"}
        for name in clients:
            assert row[name]["count"] == 100 and row[name]["errors"] == 0, (size, name)
        calls = row["library_calls"]["c_calls"]
        assert calls.get("posix.write", 0) >= 1 and calls.get("posix.read", 0) >= 1
    assert result["device"]["rx_messages"] >= 2 * 4 * 150
    assert "round trips" in summary(result)
