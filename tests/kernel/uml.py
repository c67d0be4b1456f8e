"""Boot the real Linux kernel as User-Mode Linux (UML) for tests.

The kernel is built and cached by ``scripts/uml-kernel`` (see
``/work/shared/spec/kernel-peer-uml.md``). :func:`boot` runs it as an ordinary process with the
host's ``/`` as its root file system (hostfs), so a guest program written in Python runs with the
host's interpreter (``sys.executable``, including a virtual environment) and sees the checkout.

Typical use::

    result = boot("import os; print(os.listdir('/sys/bus/rpmsg/devices'))",
                  devices=[(socket_path, VIRTIO_ID_RPMSG)], timeout=60)
    result.check()
    print(result.stdout)

Every UML process of a boot (UML forks helper processes) is killed before :func:`boot` returns
or raises, and UML's runtime directory is a fresh temporary one (``uml_dir=``/``umid=``), so boots
can run in parallel and nothing is left in ``~/.uml``.

Environment variables:

``RPMSG_UML_KERNEL``
    Path of a ``linux`` executable to use instead of running ``scripts/uml-kernel``.
``RPMSG_UML_KEEP``
    If non-empty, keep each boot's temporary directory (guest script, init, outputs) and name it
    in :attr:`UmlResult.workdir`, for debugging.
"""

from __future__ import annotations

import itertools
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "UML_KERNEL_SCRIPT",
    "VIRTIO_ID_RPMSG",
    "UmlError",
    "UmlResult",
    "UmlTimeout",
    "boot",
    "kernel_path",
]

#: Root of the checkout (``tests/kernel/uml.py`` -> ``.``).
REPO_ROOT = Path(__file__).resolve().parents[2]
#: The script that builds (once) and prints the path of the UML kernel.
UML_KERNEL_SCRIPT = REPO_ROOT / "scripts" / "uml-kernel"
#: Virtio device ID of rpmsg, for ``devices=[(socket, VIRTIO_ID_RPMSG)]``.
VIRTIO_ID_RPMSG = 7

_CONSOLE_TAIL_LINES = 40
_KILL_GRACE_SECONDS = 5.0
_GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Guest program that keeps the guest's tmpfs ``/dev`` in step with the kernel's devices.
_DEVD = Path(__file__).with_name("guest_devd.py")

_kernel_lock = threading.Lock()
_kernel: Path | None = None
_boot_counter = itertools.count()


class UmlError(RuntimeError):
    """The UML kernel could not be built or booted, or the guest program did not report back.

    :attr:`console` holds the kernel console output captured so far (may be empty).
    """

    def __init__(self, message: str, console: str = "") -> None:
        super().__init__(message)
        self.console = console


class UmlTimeout(UmlError):
    """The UML kernel did not power off within the timeout given to :func:`boot`."""


@dataclass(frozen=True)
class UmlResult:
    """What a guest program run by :func:`boot` produced."""

    stdout: str
    """The guest program's standard output."""
    stderr: str
    """The guest program's standard error."""
    returncode: int
    """The guest program's exit status (as reported by the guest shell: 128+N for signal N)."""
    console: str
    """The kernel console (UML's standard output and error) of the whole boot."""
    workdir: Path | None = None
    """The boot's temporary directory if it was kept (``RPMSG_UML_KEEP``), else ``None``."""

    def check(self) -> UmlResult:
        """Return ``self`` if the guest program exited with 0, else raise :class:`UmlError`."""
        if self.returncode != 0:
            raise UmlError(
                f"guest program exited with status {self.returncode}\n"
                f"--- guest stdout ---\n{self.stdout}"
                f"--- guest stderr ---\n{self.stderr}"
                f"--- kernel console (tail) ---\n{_tail(self.console)}",
                self.console,
            )
        return self


def kernel_path() -> Path:
    """Return the path of the UML ``linux`` executable, building it if needed.

    Runs ``scripts/uml-kernel`` (its progress goes to this process's standard error; the first
    build takes several minutes) unless ``RPMSG_UML_KERNEL`` names an executable. The answer is
    cached for the life of the process. Raises :class:`UmlError` if the kernel cannot be built.
    """
    global _kernel
    with _kernel_lock:
        if _kernel is None:
            _kernel = _find_kernel()
        return _kernel


def _find_kernel() -> Path:
    override = os.environ.get("RPMSG_UML_KERNEL")
    if override:
        path = Path(override).resolve()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise UmlError(f"RPMSG_UML_KERNEL={override!r} is not an executable file")
        return path
    try:
        proc = subprocess.run(
            [str(UML_KERNEL_SCRIPT)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            check=False,
            text=True,
        )
    except OSError as exc:
        raise UmlError(f"cannot run {UML_KERNEL_SCRIPT}: {exc}") from exc
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise UmlError(
            f"{UML_KERNEL_SCRIPT} failed with status {proc.returncode} "
            "(its standard error above says why)"
        )
    path = Path(lines[-1])
    if not (path.is_absolute() and path.is_file() and os.access(path, os.X_OK)):
        raise UmlError(f"{UML_KERNEL_SCRIPT} printed {lines[-1]!r}, not an executable file")
    return path


def boot(
    guest_script: str,
    *,
    devices: Sequence[tuple[str | os.PathLike[str], int]] = (),
    timeout: float,
    mem: str = "128M",
    env: Mapping[str, str] | None = None,
    kernel_args: Sequence[str] = (),
) -> UmlResult:
    """Boot UML, run the Python program *guest_script* in it as root, power off, report.

    The guest init mounts ``proc``, ``sysfs`` and a tmpfs on ``/dev``, starts
    ``guest_devd.py`` (which creates device nodes from kernel uevents, since the kernel has no
    devtmpfs; a node appears shortly after its device), then runs *guest_script* with the
    host's ``sys.executable`` in a temporary directory (its working directory, also ``HOME``)
    and records its output and exit status there.

    Args:
        guest_script: Python source of the program to run in the guest.
        devices: vhost-user devices as ``(socket path, virtio device id)``, e.g.
            ``(path, VIRTIO_ID_RPMSG)``. UML connects to each socket while booting, so the
            device backend must already be listening.
        timeout: Seconds from starting UML until it must have powered off.
        mem: Guest memory size (UML's ``mem=`` option).
        env: Extra environment variables for the guest program. ``PYTHONPATH`` of this
            process is passed on unless given here.
        kernel_args: Extra kernel command-line arguments (e.g. ``"loglevel=8"``).

    Returns:
        The guest program's stdout, stderr and exit status, and the kernel console output.

    Raises:
        UmlTimeout: UML did not power off within *timeout*; the message ends with the tail of
            the kernel console (and of the guest's stderr, if any).
        UmlError: The guest program did not report an exit status (e.g. the kernel panicked or
            could not start the interpreter), or the kernel could not be built.
        ValueError: A path contains characters the kernel command line cannot carry.
    """
    kernel = kernel_path()
    keep = bool(os.environ.get("RPMSG_UML_KEEP"))
    workdir = Path(tempfile.mkdtemp(prefix="rpmsg-uml-")).resolve()
    try:
        result = _boot_in(workdir, kernel, guest_script, devices, timeout, mem, env, kernel_args)
    except UmlError as exc:
        if keep and sys.version_info >= (3, 11):
            exc.add_note(f"boot files kept in {workdir}")
        raise
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if keep:
        return UmlResult(result.stdout, result.stderr, result.returncode, result.console, workdir)
    return result


def _boot_in(
    workdir: Path,
    kernel: Path,
    guest_script: str,
    devices: Sequence[tuple[str | os.PathLike[str], int]],
    timeout: float,
    mem: str,
    env: Mapping[str, str] | None,
    kernel_args: Sequence[str],
) -> UmlResult:
    guest_env = {
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if "PYTHONPATH" in os.environ:
        guest_env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    guest_env.update(env or {})

    guest_py = workdir / "guest.py"
    guest_py.write_text(guest_script, encoding="utf-8")
    init = workdir / "init.sh"
    init.write_text(_init_script(workdir, guest_py, guest_env), encoding="utf-8")
    init.chmod(0o755)

    umid = f"rpmsg-{os.getpid()}-{next(_boot_counter)}"
    args = [
        f"mem={mem}",
        "rootfstype=hostfs",
        "rootflags=/",
        "rw",
        f"init={init}",
        "con=null",
        "con0=fd:0,fd:1",
        "ssl=null",
        f"uml_dir={workdir}",
        f"umid={umid}",
    ]
    for socket_path, device_id in devices:
        sock = os.fspath(socket_path)
        if ":" in sock:
            raise ValueError(f"vhost-user socket path must not contain ':': {sock!r}")
        args.append(f"virtio_uml.device={os.path.abspath(sock)}:{int(device_id)}")
    args.extend(kernel_args)
    for arg in args:
        if not arg or any(c.isspace() for c in arg):
            raise ValueError(f"kernel argument must be non-empty without whitespace: {arg!r}")

    cmd = [str(kernel), *args]
    setpriv = shutil.which("setpriv")
    if setpriv:
        # UML gets SIGKILL if this process dies without cleaning up (its helper processes set
        # the same for themselves), so even a test runner killed hard leaves no UML behind.
        cmd = [setpriv, "--pdeathsig", "KILL", "--", *cmd]
    console, status, timed_out = _run(
        cmd, cwd=workdir, timeout=timeout, console_log=workdir / "console"
    )

    def read(name: str) -> str:
        try:
            return (workdir / name).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    stdout, stderr, code = read("stdout"), read("stderr"), read("exitcode").strip()
    if timed_out:
        guest_err = f"\n--- guest stderr (tail) ---\n{_tail(stderr)}" if stderr else ""
        raise UmlTimeout(
            f"UML did not power off within {timeout:g} s "
            f"(guest exit status: {code or 'not reported'}){guest_err}\n"
            f"--- kernel console (tail) ---\n{_tail(console)}",
            console,
        )
    if not code:
        guest_err = f"\n--- guest stderr (tail) ---\n{_tail(stderr)}" if stderr else ""
        raise UmlError(
            f"the guest program did not report an exit status (UML exited with status {status})"
            f"{guest_err}\n--- kernel console (tail) ---\n{_tail(console)}",
            console,
        )
    return UmlResult(stdout=stdout, stderr=stderr, returncode=int(code), console=console)


def _init_script(workdir: Path, guest_py: Path, env: Mapping[str, str]) -> str:
    q = shlex.quote
    exports = "\n".join(f"export {name}={q(value)}" for name, value in sorted(env.items()))
    return f"""#!/bin/sh
# Guest init (PID 1 in User-Mode Linux), written by tests/kernel/uml.py.
export PATH={q(_GUEST_PATH)}
{exports}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# No devtmpfs (see scripts/uml-kernel): guest_devd.py creates the nodes from uevents.
mount -t tmpfs -o mode=0755,nosuid dev /dev
{q(sys.executable)} {q(str(_DEVD))} || echo "uml.py: guest_devd.py failed" >&2
cd {q(str(workdir))}
{q(sys.executable)} {q(str(guest_py))} </dev/null >stdout 2>stderr
echo $? >exitcode.part
mv exitcode.part exitcode
# Power-off does not flush hostfs data; do it first.
sync
echo o >/proc/sysrq-trigger
# Power-off happens asynchronously; init must not exit meanwhile (that would panic).
while :; do sleep 1; done
"""


def _run(
    cmd: list[str], *, cwd: Path, timeout: float, console_log: Path
) -> tuple[str, int | None, bool]:
    """Run UML; return (console output, exit status or None, whether it timed out).

    Whatever happens, every process of UML's session is killed before this returns.
    """
    with console_log.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
        assert proc.stdout is not None
        out = proc.stdout
        chunks: list[bytes] = []

        def drain() -> None:
            while data := os.read(out.fileno(), 65536):
                chunks.append(data)
                log.write(data)
                log.flush()

        reader = threading.Thread(target=drain, name=f"uml-console-{proc.pid}", daemon=True)
        reader.start()
        exited = False
        try:
            exited = _wait_nowait(proc.pid, time.monotonic() + timeout)
        finally:
            # UML is the leader of its own session (start_new_session, and it calls setsid()
            # itself); while it is not reaped, its session id cannot be reused, so killing by
            # session id reaches exactly its processes.
            survivors = _kill_session(proc.pid)
            status = proc.wait()
            reader.join(timeout=_KILL_GRACE_SECONDS)
            if not reader.is_alive():  # else a survivor holds the pipe; reported below
                out.close()
        console = b"".join(chunks).decode("utf-8", errors="replace")
        if survivors:
            raise UmlError(f"UML processes survived SIGKILL: {survivors}", console)
        return console, (status if exited else None), not exited


def _wait_nowait(pid: int, deadline: float) -> bool:
    """Wait until child *pid* exits or *deadline* passes, without reaping it.

    Returns whether it exited.
    """
    pidfd: int | None = None
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pass
    try:
        while True:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if pidfd is not None:
                select.select([pidfd], [], [], remaining)
            else:
                time.sleep(min(remaining, 0.02))
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _session_members(sid: int) -> list[int]:
    """PIDs of the live (non-zombie) processes in session *sid*."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp session ..."; comm may contain spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 3 and fields[0] != "Z" and int(fields[3]) == sid:
            members.append(int(entry.name))
    return members


def _kill_session(sid: int) -> list[int]:
    """SIGKILL every process of session *sid*; return those still alive after a grace period."""
    try:
        os.killpg(sid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    deadline = time.monotonic() + _KILL_GRACE_SECONDS
    while True:
        members = _session_members(sid)
        if not members or time.monotonic() >= deadline:
            return members
        for pid in members:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)


def _tail(text: str, lines: int = _CONSOLE_TAIL_LINES) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:]) + "\n"
