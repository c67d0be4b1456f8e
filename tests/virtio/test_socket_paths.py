"""Socket paths that cannot be used give typed errors naming the path (outsider QA).

A kick or vhost-user socket path running through a regular file, or through a directory this
user may not search, raised ``NotADirectoryError``/``PermissionError`` (not RpmsgErrors) from
``rpmsg.open``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import rpmsg

from .other_user import needs_other_user, run_as_nobody


@pytest.mark.parametrize("url", ["shm:{d}/shm?socket={f}/kick&timeout=1",
                                 "vhost-user:{f}/sock"])
@pytest.mark.parametrize("side", ["host", "remote"])
def test_a_socket_path_through_a_file(tmp_path: Path, url: str, side: str) -> None:
    file = tmp_path / "file"
    file.write_text("not a directory")
    with pytest.raises(rpmsg.NotAvailableError, match="Not a directory"):
        rpmsg.open(url.format(d=tmp_path, f=file), side=side)
    assert file.read_text() == "not a directory"


@needs_other_user
def test_a_socket_path_in_a_directory_we_may_not_search(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)  # root's; nobody may not look inside
    out = run_as_nobody(f"""
        import sys
        sys.path.insert(0, {str(Path(rpmsg.__file__).parents[1])!r})
        import rpmsg
        for url in ("shm:h11-sock-x?socket={tmp_path}/kick", "vhost-user:{tmp_path}/vu"):
            try:
                rpmsg.open(url, side="remote")
            except rpmsg.AccessDeniedError as exc:
                print("denied", "{tmp_path}" in str(exc))
    """)
    assert out.split() == ["denied", "True", "denied", "True"]
