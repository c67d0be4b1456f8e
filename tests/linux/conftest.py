"""Fixtures for the rpmsg.linux tests: a fake kernel (see linux_fakes.py) and socketpairs."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from linux_fakes import FakeKernel


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeKernel]:
    kernel = FakeKernel(tmp_path)
    yield kernel
    kernel.close()


@pytest.fixture
def seqpacket() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    yield a, b
    a.close()
    b.close()
