"""Restart cycles over real ptys: 50 kill -9 of the peer at random points (issue 10.9).

The Device in this process survives; a peer forked from a pre-imported zygote is killed with
SIGKILL during the handshake or mid-traffic, 50 times, and a new one started. Traffic flows
both ways all the time (our pings echoed on ``cycle``, the peer's stream on ``feed``). After
each restart the link must come back by itself, nothing may be delivered twice or out of
order, and this process's descriptors, threads and memory stay flat over the cycles.

Two wirings: the peer opens the pty this Device created (``uart:pty``), or both ends open a
path of a null-modem cable, as two boards on a serial cable do.
"""

from __future__ import annotations

import pytest

import rpmsg

from .harness import CYCLE_PEER, NullModem, assert_flat, restart_cycles, zygote


@pytest.mark.slow
def test_50_kills_of_a_peer_on_our_pty() -> None:
    dev = rpmsg.open("uart:pty?baudrate=4000000")
    path = dev.link.describe()["pty"]
    try:
        with zygote() as z:
            survivor, warm, end = restart_cycles(
                dev, lambda i: z.spawn(CYCLE_PEER, f"uart:{path}?baudrate=4000000", "remote", i))
        assert dev.stats()["link_peer_restarts"] >= 40  # CONNREQ while connected
        assert dev.broken_error is None
        assert_flat(warm, end)
        assert len(survivor.echoes) > 50 and len(survivor.feeds) > 50
    finally:
        dev.close()


@pytest.mark.slow
def test_50_kills_of_the_far_end_of_a_null_modem_cable() -> None:
    cable = NullModem()
    try:
        dev = rpmsg.open(f"uart:{cable.a}?baudrate=4000000")
        try:
            with zygote() as z:
                survivor, warm, end = restart_cycles(
                    dev, lambda i: z.spawn(CYCLE_PEER, f"uart:{cable.b}?baudrate=4000000",
                                           "remote", i), seed=2)
            assert dev.broken_error is None
            assert_flat(warm, end)
            assert len(survivor.echoes) > 50 and len(survivor.feeds) > 50
        finally:
            dev.close()
    finally:
        cable.close()
