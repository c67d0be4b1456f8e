"""Master and slave in two processes over the simulated SPI bus, with a restart of each side.

The pytest process is the master and runs the ping client; ``spi_peer.py`` is the slave and
echoes. 10,000 messages of random sizes must come back complete and in order although the
slave is killed (SIGKILL) and the master closed and reopened in the middle. The client
resends the unanswered messages only when the transport reported a link restart (counted
link downs), so a duplicate, a loss or a reordering without a restart fails the test.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import rpmsg
from rpmsg import Device, Endpoint, RemoteDisconnectedError, RpmsgTimeoutError

PEER = Path(__file__).with_name("spi_peer.py")
TOTAL = 10_000
WINDOW = 8


@pytest.fixture
def bus_path() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="spi-")  # short: AF_UNIX paths are limited to 108 bytes
    yield os.path.join(d, "bus.sock")
    shutil.rmtree(d, ignore_errors=True)


def spawn_slave(url: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, str(PEER), url], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def open_master(url: str) -> tuple[Device, Endpoint]:
    dev = rpmsg.open(url)
    ept = dev.create_endpoint("spi-echo")
    ept.wait_bound(timeout=30)
    return dev, ept


def downs(dev: Device) -> int:
    return dev.stats()["link_link_downs"]


def test_10000_random_pings_in_order_across_a_restart_of_each_side(bus_path: str) -> None:
    url = f"spisim:{bus_path}?hz=0"
    rng = random.Random(6)
    slave = spawn_slave(url)
    dev, ept = open_master(url)
    mtu = dev.mtu
    payloads = [i.to_bytes(4, "little") + rng.randbytes(rng.randint(0, mtu - 4))
                for i in range(TOTAL)]
    next_send = next_ack = 0
    seen_downs = downs(dev)
    resends = 0
    skipping = False
    exchanges = 0
    try:
        while next_ack < TOTAL:
            if next_ack == TOTAL // 3 and slave.poll() is None and resends == 0:
                slave.kill()
                slave.wait()
                slave = spawn_slave(url)
            if next_ack == 2 * TOTAL // 3 and resends == 1:
                exchanges += dev.stats()["link_exchanges"]
                dev.close()
                dev, ept = open_master(url)
                seen_downs = downs(dev)
                next_send = next_ack  # a new master: everything unanswered goes again
                resends += 1
            try:
                while next_send < TOTAL and next_send - next_ack < WINDOW:
                    ept.send(payloads[next_send], timeout=30)
                    next_send += 1
                data = ept.recv(timeout=5)
            except (RpmsgTimeoutError, RemoteDisconnectedError):
                ept.wait_bound(timeout=30)
                now = downs(dev)
                assert now != seen_downs, "messages went missing without a link restart"
                seen_downs = now
                next_send = next_ack
                resends += 1
                continue
            seq = int.from_bytes(data[:4], "little")
            if seq != next_ack and downs(dev) != seen_downs and seq > next_ack:
                # The link restarted and the endpoint rebound before we looked: messages
                # sent before the restart were lost, later ones went through. Resend from
                # the first unanswered one; echoes of sends older than the resend come
                # first (FIFO) and are skipped until the resent next_ack is back.
                seen_downs = downs(dev)
                next_send = next_ack
                resends += 1
                skipping = True
                continue
            if skipping and seq > next_ack:
                continue
            skipping = False
            assert seq == next_ack, f"expected echo {next_ack}, got {seq}"
            assert data == payloads[seq]
            next_ack += 1
        stats = dev.stats()
        exchanges += stats["link_exchanges"]
    finally:
        dev.close()
        if slave.stdin is not None:
            slave.stdin.close()
        try:
            slave.wait(timeout=10)
        except subprocess.TimeoutExpired:
            slave.kill()
    assert next_ack == TOTAL
    assert resends == 2  # one slave restart seen by the transport, one master restart
    assert stats["link_rx_no_buffer"] == 0  # credits were honoured
    print(f"exchanges per ping (master side, both directions): {exchanges / TOTAL:.2f}")
