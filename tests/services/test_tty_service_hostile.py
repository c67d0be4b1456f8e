"""TtyService (Linux rpmsg_tty's far side) against a remote that types faster than the
command reads (outsider QA)."""

from __future__ import annotations

import os
import sys

import pytest

import rpmsg
from rpmsg.errors import InvalidArgumentError
from rpmsg.services.tty import TtyService


def test_a_command_that_does_not_read_never_stops_the_device() -> None:
    """The command never reads its stdin and the tty sends 200 KB: what does not fit the
    pipe is dropped and counted, and the device keeps delivering to its other endpoints.
    The write to the pipe used to block the transport's thread for as long as the command
    did not read: no endpoint of the device received anything any more."""
    with rpmsg.open("loop:tty-stuck", policy="nuttx") as pc, \
            rpmsg.open("loop:tty-stuck", policy="nuttx") as remote:
        svc = TtyService(pc, command=[sys.executable, "-c", "import time; time.sleep(600)"])
        other = pc.create_endpoint("other", announce=True)
        try:
            remote.wait_service("rpmsg-tty", 10)
            tty = remote.create_endpoint("rpmsg-tty")
            for _ in range(500):
                tty.send(b"x" * 400, timeout=10)
            remote.wait_service("other", 10)
            remote.create_endpoint("other").send(b"ping", timeout=10)
            assert other.recv(timeout=30) == b"ping"
            assert svc.received == 200_000
            assert 0 < svc.dropped < svc.received  # the pipe took some, the rest counted
        finally:
            assert svc.proc is not None
            svc.proc.kill()
            svc.close()


@pytest.mark.parametrize("command", ["/nonexistent/program", "", "'unbalanced", []])
def test_a_command_that_cannot_run_is_a_typed_error_and_leaves_nothing(
        command: str | list[str]) -> None:
    """A command that cannot run is InvalidArgumentError (an RpmsgError: the CLI prints one
    line), raised before the endpoint exists: the remote is never offered an rpmsg-tty
    with nothing behind it. It was FileNotFoundError/IndexError with the endpoint already
    announced and left open."""
    with rpmsg.open("loop:tty-bad", policy="nuttx") as pc, \
            rpmsg.open("loop:tty-bad", policy="nuttx") as remote:
        fds = len(os.listdir("/proc/self/fd"))
        with pytest.raises(InvalidArgumentError):
            TtyService(pc, command=command)
        assert len(os.listdir("/proc/self/fd")) == fds
        probe = pc.create_endpoint("probe", announce=True)
        remote.wait_service("probe", 10)  # announcements arrive in order: rpmsg-tty before
        assert "rpmsg-tty" not in [name for name, _addr in remote.services]
        probe.close()


_OUT_OF_DESCRIPTORS = r"""
import os, resource, uuid
resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
import rpmsg
from rpmsg.services.tty import TtyService
name = f"loop:{uuid.uuid4().hex}"
with rpmsg.open(name, policy="nuttx") as pc, rpmsg.open(name, policy="nuttx") as remote:
    hog = []
    try:
        while True:
            hog.append(os.open("/dev/null", os.O_RDONLY))
    except OSError:
        pass
    try:
        TtyService(pc, command=["true"])
    except rpmsg.ResourceLimitError as exc:
        print("ResourceLimitError", exc.errno)
    except rpmsg.RpmsgError as exc:
        print(type(exc).__name__, exc)
    for fd in hog:
        os.close(fd)
"""


def test_a_process_out_of_descriptors_cannot_start_the_command_for_that_reason() -> None:
    """Out of descriptors (the command's pipes cannot be made) is ResourceLimitError with
    EMFILE (errors.unavailable's rule), not InvalidArgumentError 'cannot run the tty
    command', which blamed the command line."""
    import errno
    import subprocess

    run = subprocess.run([sys.executable, "-c", _OUT_OF_DESCRIPTORS], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"ResourceLimitError {errno.EMFILE}", run.stdout + run.stderr
