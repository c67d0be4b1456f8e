"""Opening rpmsg device nodes safely, and naming who holds one open.

A ``/dev/rpmsgN`` or ``/dev/rpmsg_ctrlN`` path is trusted only if it is a character device
whose number is the one the kernel reports for that device (``/sys/class/rpmsg/<name>/dev``,
or, without sysfs, a major ``/proc/devices`` lists for an rpmsg driver). A symbolic link,
regular file, FIFO or other device in its place is refused *before* it is opened (opening a
FIFO or a tty has effects of its own), and the opened descriptor is checked again with
``fstat``, so a node swapped in meanwhile is caught too. Aliases such as udev's
``/dev/rpmsg/<rproc>/<name>`` links are followed to the node they name, which must pass the
same checks. ``rpmsg_char`` allows one opener per endpoint device (EBUSY): :func:`holders`
finds the processes that have a node open, so the error can name them.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from rpmsg.errors import AccessDeniedError, AlreadyOpenError, NotAvailableError

if TYPE_CHECKING:
    from rpmsg.linux.sysfs import Sysfs

#: A device index in a node, class device or URL name (``rpmsg3``, ``remoteproc0``): ASCII
#: digits only (``\d`` also takes other scripts' digits: ``rpmsg٣`` opened /dev/rpmsg3), and
#: few enough that ``int()`` never refuses them (5000 digits raised a bare ValueError).
INDEX = "[0-9]{1,9}"
#: Canonical node names: the class device names of rpmsg_char and rpmsg_ctrl.
NODE_NAME_RE = re.compile(rf"rpmsg(?:_ctrl)?{INDEX}")
_INDEX_RE = re.compile(INDEX)
_PID_RE = re.compile("[0-9]{1,10}")
#: A sysfs ``dev`` attribute: ``MAJOR:MINOR`` in decimal.
_DEV_RE = re.compile(rb"([0-9]{1,10}):([0-9]{1,10})")
#: Character device region names of the rpmsg drivers in ``/proc/devices``: ``rpmsg_char``
#: and ``rpmsg_ctrl`` (``alloc_chrdev_region`` in drivers/rpmsg/rpmsg_char.c and rpmsg_ctrl.c
#: since 5.18), ``rpmsg`` before the split.
RPMSG_REGIONS = frozenset({"rpmsg", "rpmsg_char", "rpmsg_ctrl"})
#: At most this many holders are named in an error (the scan stops there).
MAX_HOLDERS = 3
#: How a user gets access to the nodes without root (``rpmsg udev-rules`` prints the rules).
ACCESS_FIX = ("run as root, or give a group access with a udev rule: `rpmsg udev-rules "
              "--group rpmsg | sudo tee /etc/udev/rules.d/60-rpmsg.rules`, then add your user "
              "to that group")


def canonical_path(path: str | os.PathLike[str]) -> str:
    """``path`` if its last component is a node name (``rpmsgN``), else the node an alias
    (e.g. ``/dev/rpmsg/m4/my-ept``) links to. A link *named* like a node is not followed."""
    text = os.fspath(path)
    if NODE_NAME_RE.fullmatch(os.path.basename(text)):
        return text
    return os.path.realpath(text)


def expected_rdev(name: str, sysfs: Sysfs | None) -> int | None:
    """The device number sysfs gives for class device ``name`` (``rpmsg3``), or None."""
    if sysfs is None:
        return None
    from rpmsg.linux.sysfs import read_attr

    raw = read_attr(sysfs.class_dir / name / "dev")
    m = _DEV_RE.fullmatch(raw.strip()) if raw is not None else None
    if m is None:
        return None
    try:
        return os.makedev(int(m[1]), int(m[2]))
    except OverflowError:  # more than the kernel's 12-bit major and 20-bit minor
        return None


def rpmsg_majors(proc_devices: str = "/proc/devices") -> frozenset[int] | None:
    """Majors of the rpmsg character device regions, or None if /proc/devices is unreadable."""
    try:
        text = Path(proc_devices).read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    chars = text.split("Block devices:")[0]
    majors = set()
    for line in chars.splitlines():
        number, _, name = line.strip().partition(" ")
        if _INDEX_RE.fullmatch(number) and name.strip() in RPMSG_REGIONS:
            majors.add(int(number))
    return frozenset(majors)


def _refuse(path: str, what: str) -> NotAvailableError:
    return NotAvailableError(f"{path} is {what}, not an rpmsg character device: refused "
                             "(remove it; the kernel's node comes from devtmpfs or udev)")


def check_node(path: str, st: os.stat_result, sysfs: Sysfs | None) -> None:
    """Raise NotAvailableError unless ``st`` (an lstat of ``path``) is the rpmsg device."""
    if stat.S_ISLNK(st.st_mode):
        raise _refuse(path, "a symbolic link")
    if not stat.S_ISCHR(st.st_mode):
        kind = "a regular file" if stat.S_ISREG(st.st_mode) else (
            "a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO, socket or block device")
        raise _refuse(path, kind)
    number = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    expected = expected_rdev(os.path.basename(path), sysfs)
    if expected is not None:
        if st.st_rdev != expected:
            raise _refuse(path, f"character device {number} while sysfs says "
                          f"{os.major(expected)}:{os.minor(expected)}")
        return
    majors = rpmsg_majors()
    if majors is not None and os.major(st.st_rdev) not in majors:
        raise _refuse(path, f"character device {number} of no rpmsg driver")


def check_path(path: str, sysfs: Sysfs | None) -> str:
    """The canonical node of ``path`` once :func:`check_node` accepts it (nothing is opened);
    ``FileNotFoundError`` if there is none."""
    node = canonical_path(path)
    check_node(node, os.lstat(node), sysfs)
    return node


def open_node(path: str, flags: int, sysfs: Sysfs | None) -> int:
    """Open rpmsg device node ``path`` after :func:`check_node`; re-checked with fstat.

    ``FileNotFoundError`` passes through (the caller may wait for udev); EBUSY becomes
    :class:`~rpmsg.errors.AlreadyOpenError` naming the holders, EACCES/EPERM
    :class:`~rpmsg.errors.AccessDeniedError` naming the fix; other OSErrors pass through.
    """
    node = canonical_path(path)
    st = os.lstat(node)
    check_node(node, st, sysfs)
    try:
        fd = os.open(node, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # swapped for a link since the lstat
            raise _refuse(node, "a symbolic link") from None
        if exc.errno == errno.EBUSY:
            raise busy_error(node) from exc
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise access_error(node, st) from exc
        raise
    try:
        now = os.fstat(fd)
        if not stat.S_ISCHR(now.st_mode) or now.st_rdev != st.st_rdev:
            raise _refuse(node, "a different file than the one checked (replaced meanwhile)")
    except BaseException:
        os.close(fd)
        raise
    return fd


def access_error(path: str, st: os.stat_result | None = None) -> AccessDeniedError:
    """The AccessDeniedError for a node this process may not open, with its owner and fix."""
    owner = ""
    if st is not None:
        owner = f" (owner {_user(st.st_uid)}:{_group(st.st_gid)}, mode " \
                f"{stat.S_IMODE(st.st_mode):04o})"
    return AccessDeniedError(f"permission denied opening {path}{owner}: {ACCESS_FIX}")


def busy_error(path: str) -> AlreadyOpenError:
    """The AlreadyOpenError for a single-opener node, naming who has it open if visible."""
    found = holders(path)
    if found:
        who = ", ".join(f"pid {pid} ({cmd})" if cmd else f"pid {pid}" for pid, cmd in found)
        tail = f"held by {who}"
    else:
        tail = "held by a process this user cannot see (try as root: `fuser -v " \
               f"{path}`)"
    return AlreadyOpenError(f"{path} is already open (the kernel allows one opener): {tail}")


def holders(path: str, proc: str = "/proc", limit: int = MAX_HOLDERS) -> list[tuple[int, str]]:
    """Processes (pid, command line) with ``path`` open, as far as /proc lets us see."""
    try:
        target = os.stat(path)
    except OSError:
        return []
    key = (target.st_dev, target.st_ino)
    found: list[tuple[int, str]] = []
    me = os.getpid()
    try:
        pids = sorted(int(p) for p in os.listdir(proc) if _PID_RE.fullmatch(p))
    except OSError:
        return []
    for pid in pids:
        if pid == me:
            continue
        if _has_open(f"{proc}/{pid}/fd", key):
            found.append((pid, _cmdline(f"{proc}/{pid}/cmdline")))
            if len(found) >= limit:
                break
    return found


def _has_open(fd_dir: str, key: tuple[int, int]) -> bool:
    try:
        fds = os.listdir(fd_dir)
    except OSError:  # gone, or another user's process
        return False
    for fd in fds:
        try:
            st = os.stat(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == key:
            return True
    return False


def _cmdline(path: str) -> str:
    try:
        raw = Path(path).read_bytes()
    except OSError:
        return ""
    text = raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")
    return text[:80] + ("..." if len(text) > 80 else "")


def _user(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


def _group(gid: int) -> str:
    try:
        import grp

        return grp.getgrgid(gid).gr_name
    except (ImportError, KeyError):
        return str(gid)
