"""Restart cycles on the simulated SPI bus: 50 kill -9 of each side (issue 10.9, 10.14).

The Device in this process survives; the other side of the bus, forked from a pre-imported
zygote, is killed with SIGKILL during the handshake or mid-traffic, 50 times, and a new one
started. Traffic flows both ways all the time. Killing the master while this slave has
traffic queued is the sequence that livelocked against NuttX's master (issue 10.14). After
each restart the link comes back by itself, nothing is delivered twice or out of order,
this process's descriptors, threads and memory stay flat, and once the survivor closes
neither the bus socket nor its lock file is left behind.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import rpmsg

sys.path.insert(0, str(Path(__file__).parents[1]))
from port.harness import (
    CYCLE_PEER,
    assert_flat,
    restart_cycles,
    zygote,
)


@pytest.fixture
def bus() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="spir-")
    yield os.path.join(d, "bus.sock")
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["slave", "master"])
def test_50_kills_of_the_other_side(bus: str, victim: str) -> None:
    survivor_role = "master" if victim == "slave" else "slave"
    dev = rpmsg.open(f"spisim:{bus}?hz=0&role={survivor_role}")
    try:
        with zygote() as z:
            survivor, warm, end = restart_cycles(
                dev, lambda i: z.spawn(CYCLE_PEER, f"spisim:{bus}?hz=0&role={victim}",
                                       "remote", i), seed=3 if victim == "slave" else 4)
        assert dev.broken_error is None
        assert_flat(warm, end)
        assert len(survivor.echoes) > 50 and len(survivor.feeds) > 50
    finally:
        dev.close()
    assert os.listdir(os.path.dirname(bus)) == []
