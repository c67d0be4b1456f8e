"""Fixtures for the foundation tests: a fresh pair of loop devices per test."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from foundation_helpers import wait_until

import rpmsg


@pytest.fixture
def loop_name() -> str:
    return f"fnd-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def devices(loop_name: str) -> Iterator[tuple[rpmsg.Device, rpmsg.Device]]:
    """Both ends of a new loop; closed after the test."""
    a = rpmsg.open(f"loop:{loop_name}")
    b = rpmsg.open(f"loop:{loop_name}")
    try:
        yield a, b
    finally:
        a.close()
        b.close()


@pytest.fixture
def no_thread_leak() -> Iterator[None]:
    before = threading.active_count()
    yield
    wait_until(lambda: threading.active_count() <= before, timeout=5)
