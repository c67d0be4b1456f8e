"""Capture paths that are regular files to stat but no files to write: a typed error, no
leaked descriptor.

Seen from outside the suite: ``RPMSG_CAPTURE=/proc/self/status rpmsg ping ...`` (procfs
reports its files as regular, owned by the process's user, one link) passed every check of
``open_private`` and then failed ``ftruncate`` with a raw PermissionError (not an RpmsgError:
the CLI printed a traceback, a library caller caught nothing typed).
"""

from __future__ import annotations

import os

import pytest

from rpmsg.capture import open_capture
from rpmsg.errors import AccessDeniedError


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs procfs")
def test_a_procfs_file_is_a_typed_error_and_leaks_no_descriptor() -> None:
    before = open_fds()
    with pytest.raises(AccessDeniedError, match="/proc/self/status"):
        open_capture("/proc/self/status", link_name="loop:x")
    assert open_fds() <= before
