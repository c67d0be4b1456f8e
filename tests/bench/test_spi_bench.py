"""The SPI benchmark runs end to end and reports its figures (no timing assertions)."""

from __future__ import annotations

import json

from rpmsg.bench import spi


def test_bench_reports_exchanges_and_goodput_as_json() -> None:
    result = spi.run(pings=20, stream=50)
    json.dumps(result)
    assert result["stream"]["received"] == 50
    assert result["ping_pong"]["exchanges_per_message"] >= 1
    assert 0 < result["stream"]["bus_efficiency"] <= 1
