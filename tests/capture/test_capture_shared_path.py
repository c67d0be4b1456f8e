"""Two captures to the same file: the second is refused, the first stays whole.

Seen from outside the suite: a program capturing to ``/tmp/c.pcapng`` and a second one (or a
child it forked or spawned with the same ``RPMSG_CAPTURE``) writing to the same path both
"worked", but the second truncated the file and both wrote from their own offsets: the first
one's later blocks landed after a hole of zeros and the capture no longer read
("block length 0 ..."). Every record of both was lost without a word.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rpmsg.capture import CapturedMessage, open_capture, read_capture
from rpmsg.errors import AlreadyOpenError

_OTHER = textwrap.dedent("""
    import sys
    from rpmsg.capture import open_capture
    from rpmsg.errors import AlreadyOpenError
    try:
        tap = open_capture(sys.argv[1], link_name="loop:other")
    except AlreadyOpenError as exc:
        print("refused", exc)
    else:
        tap.message("tx", 3, 4, b"other")
        tap.close()
        print("opened")
""")


def _payloads(path: Path) -> list[bytes]:
    return [r.payload for r in read_capture(str(path)) if isinstance(r, CapturedMessage)]


def test_a_second_process_cannot_take_over_a_capture_being_written(tmp_path: Path) -> None:
    path = tmp_path / "shared.pcapng"
    tap = open_capture(str(path), link_name="loop:first")
    try:
        for i in range(20):
            tap.message("tx", 1, 2, b"before %d" % i)
        tap.flush()
        out = subprocess.run([sys.executable, "-c", _OTHER, str(path)], capture_output=True,
                             text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("refused"), out.stdout
        assert "another capture" in out.stdout
        for i in range(20):
            tap.message("tx", 1, 2, b"after %d" % i)
    finally:
        tap.close()
    assert _payloads(path) == [b"before %d" % i for i in range(20)] + \
        [b"after %d" % i for i in range(20)]
    # Once the first capture is closed, the path is free again.
    out = subprocess.run([sys.executable, "-c", _OTHER, str(path)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.stdout.startswith("opened"), out.stdout + out.stderr
    assert _payloads(path) == [b"other"]


def test_the_same_file_by_another_path_in_one_process_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)  # a symlinked directory: another absolute path
    tap = open_capture(str(real / "c.pcapng"), link_name="loop:a")
    try:
        tap.message("tx", 1, 2, b"kept")
        tap.flush()
        with pytest.raises(AlreadyOpenError):
            open_capture(str(tmp_path / "alias" / "c.pcapng"), link_name="loop:b")
    finally:
        tap.close()
    assert _payloads(real / "c.pcapng") == [b"kept"]


def test_a_forked_child_opening_the_path_again_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fork.pcapng"
    tap = open_capture(str(path), link_name="loop:parent")
    tap.message("tx", 1, 2, b"parent")
    tap.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (child)
        code = 1
        try:
            open_capture(str(path), link_name="loop:child")
        except AlreadyOpenError:
            code = 0
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    tap.message("tx", 1, 2, b"parent again")
    tap.close()
    assert os.waitstatus_to_exitcode(status) == 0
    assert _payloads(path) == [b"parent", b"parent again"]
