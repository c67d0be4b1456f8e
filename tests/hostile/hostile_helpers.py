"""Helpers shared by the runtime's hostile tests (imported by module name)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

import rpmsg

SERVICE = "hostile-svc"
#: Slack on top of a time budget on a loaded two-core machine (scheduling, not work):
#: these checks catch a wait that ignores its budget (30 s, for ever), not slowness.
SLACK = 1.5


def wait_until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            pytest.fail("condition not reached in time")
        time.sleep(0.005)


def rss_kib(pid: int | str = "self") -> int:
    """Resident set size of a process in KiB (from /proc)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def bind(host: rpmsg.Device, remote: rpmsg.Device,
         name: str = SERVICE) -> tuple[rpmsg.Endpoint, rpmsg.Endpoint]:
    """(client on host, server on remote), bound both ways."""
    server = remote.create_endpoint(name)
    host.wait_service(name, timeout=20)
    client = host.create_endpoint(name)
    client.wait_bound(timeout=20)
    client.send(b"hello", timeout=20)
    assert server.recv(timeout=20) == b"hello"
    return client, server
