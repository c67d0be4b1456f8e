"""What every benchmark shares: latency percentiles, run context, and JSON or table output.

A benchmark returns one JSON-serialisable dict. :func:`render` prints it for people: nested
dicts become indented sections, lists of dicts become column tables, and a list of rows under
a ``"table"`` key is printed as that table (used for side-by-side comparisons).
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])
#: The environment variables that make every ``rpmsg.open`` capture (``rpmsg.registry``).
CAPTURE_ENV = ("RPMSG_CAPTURE", "RPMSG_CAPTURE_LEVEL")


def without_capture_env(run: _F) -> _F:
    """Run a benchmark with the caller's ``RPMSG_CAPTURE``/``RPMSG_CAPTURE_LEVEL`` set aside
    (for its own opens and the peer processes it starts), put back afterwards; a note on
    stderr says so. A benchmark measures the transport as it is (``rpmsg bench capture``
    measures capturing on purpose): under ``RPMSG_CAPTURE`` every open of the run, in this
    process and its children, captured to the one file, so the figures silently included
    capturing, and the peers after the first failed to open it (one capture per file)."""

    @functools.wraps(run)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        saved = {k: os.environ.pop(k) for k in CAPTURE_ENV if k in os.environ}
        if saved.get("RPMSG_CAPTURE"):
            print(f"rpmsg bench: RPMSG_CAPTURE={saved['RPMSG_CAPTURE']} ignored: benchmarks "
                  "measure without capture (`rpmsg bench capture` measures its cost)",
                  file=sys.stderr)
        try:
            return run(*args, **kwargs)
        finally:
            os.environ.update(saved)

    return wrapper  # type: ignore[return-value]


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """p50/p99/mean in microseconds of ``samples`` (seconds), and their count."""
    s = sorted(samples)
    if not s:
        return {"p50_us": 0.0, "p99_us": 0.0, "mean_us": 0.0, "count": 0}

    def pick(q: float) -> float:
        return s[min(len(s) - 1, int(q * len(s)))]

    return {"p50_us": round(pick(0.5) * 1e6, 2), "p99_us": round(pick(0.99) * 1e6, 2),
            "mean_us": round(statistics.fmean(s) * 1e6, 2), "count": len(s)}


def context() -> dict[str, Any]:
    """Where the figures were taken: Python version, CPUs and the load average at the start."""
    out: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    try:
        out["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return out


def dumps(result: dict[str, Any]) -> str:
    """The machine-readable form: one JSON document on one line."""
    return json.dumps(result)


def _scalar(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)) and all(not isinstance(v, (dict, list)) for v in value):
        return " ".join(_scalar(v) for v in value)
    return str(value)


def _is_rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _table(rows: list[dict[str, Any]], indent: str) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    cells = [[_scalar(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [indent + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += [indent + "  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return lines


def _lines(data: dict[str, Any], indent: str) -> list[str]:
    out: list[str] = []
    flat = {k: v for k, v in data.items() if not isinstance(v, dict) and not _is_rows(v)}
    if flat:
        width = max(len(k) for k in flat)
        out += [f"{indent}{k.ljust(width)}  {_scalar(v)}" for k, v in flat.items()]
    for key, value in data.items():
        if isinstance(value, dict):
            out.append(f"{indent}{key}:")
            out += _lines(value, indent + "  ")
        elif _is_rows(value):
            out.append(f"{indent}{key}:")
            out += _table(value, indent + "  ")
    return out


def render(result: dict[str, Any]) -> str:
    """The human form of a result: sections and tables, numbers as measured."""
    return "\n".join(_lines(result, ""))
