"""The UART benchmark runs end to end and reports CRC and framing per implementation."""

from __future__ import annotations

import json

from rpmsg.bench import uart
from rpmsg.port import crc


def test_bench_reports_crc_and_framing_for_each_implementation() -> None:
    result = uart.run(messages=40, frames=30, pings=5)
    json.dumps(result)
    impls = set(crc.IMPLEMENTATIONS)
    assert {(r["implementation"], r["crc"]) for r in result["crc"]} == {
        (i, n) for i in impls for n in ("arc", "xmodem")}
    assert all(r["MBps"] > 0 for r in result["crc"])
    with_crc = [f for f in result["framing"] if f["crc"] == "arc"]
    assert {f["crc_impl"] for f in with_crc} == impls
    assert result["crc_in_use"] == crc.IMPLEMENTATION
    assert all(p["messages"] == 40 for p in result["pty"])
    assert "loadavg" in result
    text = uart.render(result)
    assert "crc_impl" in text and "MBps" in text
