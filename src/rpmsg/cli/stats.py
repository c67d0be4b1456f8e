"""``--stats`` of the long-running commands: a Device's counters once a second on stderr.

One line per second (and a last one when the command ends): messages and bytes each way with
their rate, drops by reason and reconnects, from :meth:`rpmsg.Device.stats`. Standard output
is left alone, so ``--json`` output stays machine-readable.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import TextIO

#: Counter names per figure, first present wins (the core's, then the transport's).
TX_MESSAGES = ("tx_messages", "link_tx_messages")
TX_BYTES = ("tx_bytes", "link_tx_bytes")
RX_MESSAGES = ("rx_messages", "link_rx_messages")
RX_BYTES = ("rx_bytes", "link_rx_bytes")


def _first(stats: Mapping[str, int], keys: tuple[str, ...]) -> int | None:
    for k in keys:
        if k in stats:
            return stats[k]
    return None


def _is_drop(key: str) -> bool:
    return ("drop" in key or key.startswith("link_framing_") or "invalid" in key
            or key.endswith("_failures") or "lost" in key)


def _is_reconnect(key: str) -> bool:
    return "restart" in key or "reconnect" in key


def _flow(name: str, stats: Mapping[str, int], prev: Mapping[str, int] | None,
          seconds: float, mkeys: tuple[str, ...], bkeys: tuple[str, ...]) -> str | None:
    """``tx 120 msg 7680 B (100 msg/s)``, or None where the link counts nothing of it."""
    msgs = _first(stats, mkeys)
    if msgs is None:
        return None
    text = f"{name} {msgs} msg"
    nbytes = _first(stats, bkeys)
    if nbytes is not None:
        text += f" {nbytes} B"
    if prev is not None and seconds > 0:
        before = _first(prev, mkeys) or 0
        text += f" ({(msgs - before) / seconds:.0f} msg/s)"
    return text


def stats_line(stats: Mapping[str, int], prev: Mapping[str, int] | None,
               seconds: float) -> str:
    """``tx 120 msg 7680 B (100 msg/s) | rx ... | drops: reason=n ... | reconnects n``."""
    flows = (_flow("tx", stats, prev, seconds, TX_MESSAGES, TX_BYTES),
             _flow("rx", stats, prev, seconds, RX_MESSAGES, RX_BYTES))
    parts = [flow for flow in flows if flow is not None]
    drops = [f"{k}={v}" for k, v in stats.items() if v and _is_drop(k)]
    parts.append("drops: " + (" ".join(drops) if drops else "none"))
    reconnects = sum(v for k, v in stats.items() if _is_reconnect(k))
    parts.append(f"reconnects {reconnects}")
    return " | ".join(parts)


class StatsReporter:
    """Prints ``stats_line`` of ``source()`` every ``interval`` seconds until stopped."""

    def __init__(self, source: Callable[[], Mapping[str, int]], *, interval: float = 1.0,
                 stream: TextIO | None = None, prefix: str = "rpmsg stats: ") -> None:
        self.source = source
        self.interval = interval
        self.stream = stream if stream is not None else sys.stderr
        self.prefix = prefix
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rpmsg stats", daemon=True)
        self._prev: Mapping[str, int] | None = None
        self._when = time.monotonic()

    def _print(self) -> None:
        try:
            stats = dict(self.source())
        except Exception as exc:  # a closed device: say it, keep the command running
            print(f"{self.prefix}unavailable ({exc})", file=self.stream, flush=True)
            return
        now = time.monotonic()
        print(self.prefix + stats_line(stats, self._prev, now - self._when), file=self.stream,
              flush=True)
        self._prev, self._when = stats, now

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._print()

    def start(self) -> StatsReporter:
        self._prev, self._when = dict(self.source()), time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop and print the last line."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._print()

    def __enter__(self) -> StatsReporter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["StatsReporter", "stats_line"]
