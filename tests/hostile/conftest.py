"""Fixtures for the runtime's hostile tests: a bound pair of Devices over ``loop:`` (in
process) or ``shm:`` (both roles in this process over a real shared-memory file)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

import rpmsg


@pytest.fixture
def loop_name() -> str:
    return f"hostile-{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["loop", "shm"])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[rpmsg.Device, rpmsg.Device]]:
    """(host, remote): the remote announces nothing yet; both closed after the test."""
    name = f"rpmsg-hostile-{uuid.uuid4().hex[:10]}"
    if request.param == "loop":
        remote = rpmsg.open(f"loop:{name}")
        host = rpmsg.open(f"loop:{name}")
    else:
        remote = rpmsg.open(f"shm:{name}", side="remote")
        host = rpmsg.open(f"shm:{name}?timeout=20")
    try:
        host.wait_up(timeout=20)
        remote.wait_up(timeout=20)
        yield host, remote
    finally:
        host.close()
        remote.close()
        for leftover in (f"/dev/shm/{name}", f"/tmp/{name}.event.0"):
            if os.path.exists(leftover):
                os.unlink(leftover)

