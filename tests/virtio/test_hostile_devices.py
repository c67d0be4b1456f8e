"""A device that hands the driver bad descriptors in its welcome (outsider QA).

Between rpmsg processes the device passes the session's memfd (and with ``kick=eventfd`` two
eventfds) over the kick socket. A device that passed a memfd sealed against writes, or opened
read-only, made ``rpmsg.open`` raise an untyped ``PermissionError``; pipes or ``/dev/zero``
where eventfds belong gave an untyped ``OSError`` (EBADF on the first kick) and leaked the
mapped memfd. A refusal text with control characters reached the error message raw.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator

import pytest

import rpmsg

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def name() -> Iterator[str]:
    n = f"rpmsg-ed-{uuid.uuid4().hex[:10]}"
    yield n
    for leftover in (f"/dev/shm/{n}", f"/tmp/{n}.event.0"):
        if os.path.lexists(leftover):
            os.unlink(leftover)


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize(("kind", "error", "says"), [
    ("sealed_for_writes", rpmsg.NotAvailableError, "cannot be mapped for reading and writing"),
    ("future_write_sealed", rpmsg.NotAvailableError, "cannot be mapped"),
    ("read_only", rpmsg.NotAvailableError, "cannot be mapped"),
    ("pipes_as_eventfds", rpmsg.ProtocolError, "not eventfds"),
    ("dev_zero_as_eventfds", rpmsg.ProtocolError, "not eventfds"),
    ("control_characters", rpmsg.NotAvailableError, r"\\x1b]0;pwned\\x07\\nforged"),
])
def test_bad_welcome_is_a_typed_error_and_leaks_nothing(name: str, kind: str,
                                                        error: type[Exception],
                                                        says: str) -> None:
    child = subprocess.Popen([sys.executable, os.path.join(HERE, "evil_device.py"), name,
                              kind], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        before, threads = _fds(), threading.active_count()
        with pytest.raises(error, match=says) as info:
            rpmsg.open(f"shm:{name}?timeout=20&kick=socket")
        assert "\x1b" not in str(info.value) and "\n" not in str(info.value)
        assert _fds() <= before  # the memfd and the eventfds were closed, the socket too
        assert threading.active_count() == threads
    finally:
        child.kill()
        child.wait()
        assert child.stdout is not None
        child.stdout.close()
