"""A process out of file descriptors (RLIMIT_NOFILE reached): opening a link and an
endpoint's fileno() are typed ResourceLimitErrors carrying EMFILE, never a raw OSError, and
everything works again once descriptors are free."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(r"""
    import errno, os, resource, uuid
    import rpmsg

    name = f"loop:{uuid.uuid4().hex}"
    with rpmsg.open(name) as host, rpmsg.open(name, side="remote") as remote:
        ept = host.create_endpoint("x")
        shm = f"shm:{uuid.uuid4().hex}"
        rpmsg.prepare(shm, side="remote")  # modules imported now: an import needs a descriptor
        hog = []
        try:
            while True:
                hog.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            pass
        results = []
        try:
            ept.fileno()
        except rpmsg.ResourceLimitError as exc:
            results.append(("fileno", exc.errno == errno.EMFILE, isinstance(exc, OSError)))
        try:
            rpmsg.open(shm, side="remote", timeout=5).close()
        except rpmsg.ResourceLimitError as exc:
            results.append(("open", exc.errno == errno.EMFILE, "Too many" in str(exc)))
        for fd in hog:
            os.close(fd)
        assert ept.fileno() >= 0                       # works again
        print(results)
""")


def test_out_of_descriptors_is_a_typed_error_with_errno() -> None:
    # A low limit keeps the hog small; the child runs alone so the test process keeps its own.
    run = subprocess.run([sys.executable, "-c",
                          "import resource; resource.setrlimit(resource.RLIMIT_NOFILE, "
                          "(256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]));"
                          + SCRIPT],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[('fileno', True, True), ('open', True, True)]", run.stderr
