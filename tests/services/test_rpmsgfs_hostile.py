"""rpmsgfs server against a hostile chip and a hostile local user (outsider QA).

The local user may write in the served directory and swaps names between the server's
check and its use; the chip sends what a NuttX client never would.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rpmsg.services.nuttx.confine import ConfinedDir
from rpmsg.services.nuttx.rpmsgfs import FsSession
from rpmsg.wire.nuttx_rpmsgfs import (
    CH_STAT,
    FsCommand,
    FsStat,
    decode_response,
    encode_request,
)


@pytest.fixture
def share(tmp_path: Path) -> Path:
    d = tmp_path / "share"
    d.mkdir()
    (d / "f").write_bytes(b"inside\n")
    (tmp_path / "secret").write_bytes(b"outside\n")
    (tmp_path / "secret").chmod(0o600)
    return d


@pytest.fixture
def session(share: Path) -> Iterator[FsSession]:
    root = ConfinedDir(share)
    s = FsSession(root, mtu=2008)
    yield s
    s.release()
    root.close()


def ask(session: FsSession, raw: bytes) -> list:
    return [decode_response(r) for r in session.handle(raw)]


@pytest.mark.parametrize("flags", ["MODE", "MTIME", "SIZE"])
def test_chstat_never_follows_a_symlink_swapped_in_after_the_check(
        session: FsSession, share: Path, monkeypatch: pytest.MonkeyPatch, flags: str) -> None:
    """A local user replaces the checked file by a symlink to a host file between CHSTAT's
    check and its change: the host file keeps its mode, times and contents (chmod used to
    follow the swapped name: a root server made any host file world-writable)."""
    secret = share.parent / "secret"
    before = secret.stat()
    checked = FsSession._check_changeable

    def swap_after_check(self: FsSession, current: os.stat_result, flags: int) -> None:
        checked(self, current, flags)
        (share / "f").unlink()
        (share / "f").symlink_to(secret)

    monkeypatch.setattr(FsSession, "_check_changeable", swap_after_check)
    new = FsStat(mode=0o666, mtim_sec=12345, size=0)
    (r,) = ask(session, encode_request(FsCommand.CHSTAT, 7, path=b"/f",
                                       flags=CH_STAT[flags], stat=new.encode()))
    after = secret.stat()
    assert (after.st_mode, after.st_mtime_ns, after.st_size) == (
        before.st_mode, before.st_mtime_ns, before.st_size)
    assert secret.read_bytes() == b"outside\n"
    assert r.result <= 0  # applied to the file that was checked, or refused
