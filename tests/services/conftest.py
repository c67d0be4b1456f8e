"""Fixtures shared by the services' tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rpmsg.services.nuttx.confine import ConfinedDir
from rpmsg.services.nuttx.rpmsgfs import FsSession


@pytest.fixture
def session(share: Path) -> Iterator[FsSession]:
    """An rpmsgfs server session over the test module's own ``share`` directory, for raw
    requests (what FsClient never sends)."""
    root = ConfinedDir(share)
    s = FsSession(root, mtu=2008)
    yield s
    s.release()
    root.close()
