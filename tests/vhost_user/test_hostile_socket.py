"""The vhost-user socket path as a hostile local user could prepare it (issue 10 items 6, 7,
8, 12): modes, other users' sockets, non-sockets, long paths, nonsense sizes."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

import rpmsg
from rpmsg.errors import AccessDeniedError, AlreadyOpenError, InvalidURLError
from virtio.other_user import needs_other_user, run_as_nobody


@pytest.mark.parametrize(("query", "mode"), [("", 0o600), ("?perm=0660", 0o660)])
def test_socket_is_created_0600_unless_widened(tmp_path: Path, query: str, mode: int) -> None:
    path = tmp_path / "vu.sock"
    old = os.umask(0)  # the worst umask: nothing masked
    try:
        with rpmsg.open(f"vhost-user:{path}{query}", side="remote"):
            assert stat.S_IMODE(os.lstat(path).st_mode) == mode
    finally:
        os.umask(old)
    assert not path.exists()


def test_a_live_back_end_is_named(tmp_path: Path) -> None:
    path = tmp_path / "vu.sock"
    with rpmsg.open(f"vhost-user:{path}", side="remote"), \
            pytest.raises(AlreadyOpenError, match=rf"pid {os.getpid()} .*listens on {path}"):
        rpmsg.open(f"vhost-user:{path}", side="remote")


@needs_other_user
def test_another_users_stale_socket_is_refused_and_kept() -> None:
    shared = Path(tempfile.mkdtemp(prefix="rpmsg-vu-", dir="/tmp"))  # nobody may enter
    try:
        os.chmod(shared, 0o1777)
        path = shared / "vu.sock"
        run_as_nobody(f"""
            import socket
            s = socket.socket(socket.AF_UNIX)
            s.bind({str(path)!r})
            s.close()
        """)
        with pytest.raises(AccessDeniedError, match=rf"{path} belongs to nobody"):
            rpmsg.open(f"vhost-user:{path}", side="remote")
        assert stat.S_ISSOCK(os.lstat(path).st_mode)  # never removed
    finally:
        shutil.rmtree(shared)


@pytest.mark.parametrize("query", ["buffer_size=17", "buffer_size=55", "perm=0644x",
                                   "perm=0200", "ready_timeout=nan"])
def test_bad_options(tmp_path: Path, query: str) -> None:
    with pytest.raises(InvalidURLError):
        rpmsg.open(f"vhost-user:{tmp_path}/vu.sock?{query}", side="remote")
    assert not (tmp_path / "vu.sock").exists()


def test_socket_path_longer_than_a_unix_socket_holds(tmp_path: Path) -> None:
    path = tmp_path / ("x" * 120)
    with pytest.raises(InvalidURLError, match="at most 107"):
        rpmsg.open(f"vhost-user:{path}", side="remote")
