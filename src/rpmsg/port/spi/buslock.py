"""Who is on a simulated SPI bus: one lock file, ``PATH.lock``, with a byte-range lock per role.

Open file description locks (Linux ``F_OFD_SETLK``) belong to one open of the file, so two
ends in one process exclude each other as two processes do, and the kernel drops them when the
process dies (``kill -9`` included). Byte 0 is held by the end that owns (listens on) the bus
socket, byte 1 by the master, byte 2 by the slave: a second master or slave gets
:class:`~rpmsg.errors.AlreadyOpenError` at once instead of waiting on a bus it can never join.

The file is created ``perm`` (0600 unless widened), never through a symlink, and must be an
empty regular file (a lock file holds no data: one with some is somebody else's, e.g.
``spisim:yarn`` next to ``yarn.lock``) owned by us (or, with ``perm`` widened for a group,
by a user of that group's choosing: then only its type is checked). The last end to close
removes it, and only while holding a lock on the whole file and after checking that the
path still names the file it
locked, so a file another end just created is never removed.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import struct
import time

from rpmsg.errors import AccessDeniedError, AlreadyOpenError, NotAvailableError, unavailable

#: ``struct flock`` with the platform's alignment (``off_t`` is 64-bit in CPython builds).
_FLOCK = struct.Struct("@hhqqi")
_FLOCK_PAD = bytes(32)
OWNER_BYTE = 0
ROLE_BYTES = {"master": 1, "slave": 2}
#: How long to retry while another end removes the lock file (it holds the whole file).
_REMOVE_RACE_RETRIES = 50
#: How long a role held by another end is retried before AlreadyOpenError: a process that
#: was just killed releases its locks only when its last thread has exited.
DYING_OWNER_WAIT = 0.5


def _lock(fd: int, kind: int, start: int, length: int, *, test: bool = False) -> bool | int:
    """Try an OFD lock (or test for a conflicting one). True/False for set; for a test,
    the conflicting lock's length (0 = whole file) or -1 if none conflicts."""
    cmd = fcntl.F_OFD_GETLK if test else fcntl.F_OFD_SETLK
    arg = _FLOCK.pack(kind, os.SEEK_SET, start, length, 0) + _FLOCK_PAD
    try:
        out = fcntl.fcntl(fd, cmd, arg)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    if not test:
        return True
    got_kind, _whence, _start, got_len, _pid = _FLOCK.unpack_from(out)
    return -1 if got_kind == fcntl.F_UNLCK else int(got_len)


class BusLock:
    """This end's hold on ``PATH.lock``: its role byte, and the owner byte once it listens."""

    def __init__(self, path: str, role: str, perm: int = 0o600) -> None:
        if not hasattr(fcntl, "F_OFD_SETLK"):
            raise NotAvailableError("spisim: needs Linux open file description locks")
        self.path = path + ".lock"
        self.bus = path
        self.role = role
        self.perm = perm
        self.owner = False
        for _ in range(_REMOVE_RACE_RETRIES):
            fd = self._open()
            try:
                if self._take_role(fd) and _same_file(fd, self.path):
                    self.fd = fd
                    return
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # the file was being removed; open the new one
            time.sleep(0.01)
        raise AlreadyOpenError(f"spisim:{path}: {self.path} keeps being replaced; "
                               "is something else removing it?")

    def _open(self) -> int:
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, self.perm)
        except FileNotFoundError:
            raise NotAvailableError(
                f"spisim:{self.bus}: directory {os.path.dirname(self.path) or '.'} does not "
                "exist; create it or choose another path") from None
        except PermissionError:
            raise AccessDeniedError(
                f"spisim:{self.bus}: cannot create or open {self.path}: permission denied; "
                "choose a directory you can write, or ask its owner for perm=0660") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise AccessDeniedError(
                    f"spisim:{self.bus}: {self.path} is a symbolic link; refusing to follow "
                    "it (remove it or choose another path)") from None
            raise unavailable(exc, f"spisim:{self.bus}: cannot open {self.path}: {exc}") \
                from None
        try:
            check_ours(fd, self.path, self.bus, shared=bool(self.perm & 0o077))
            if self.perm & 0o077:
                os.fchmod(fd, self.perm)  # widen on purpose whatever the umask did
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _take_role(self, fd: int) -> bool:
        """Lock the role byte; False if a remover holds the whole file (retry)."""
        byte = ROLE_BYTES[self.role]
        end = time.monotonic() + DYING_OWNER_WAIT
        while not _lock(fd, fcntl.F_WRLCK, byte, 1):
            if _lock(fd, fcntl.F_WRLCK, byte, 1, test=True) == 0:
                return False  # a whole-file lock: the last end is removing the file
            if time.monotonic() >= end:
                break
            time.sleep(0.01)
        else:
            return True
        other = "slave" if self.role == "master" else "master"
        raise AlreadyOpenError(
            f"spisim:{self.bus} already has a {self.role}; a bus has one master and one "
            f"slave, so this end must be role={other} (or use another bus path)")

    def try_own(self) -> bool:
        """Become the end that listens on the bus socket, if no other end is."""
        if not self.owner and _lock(self.fd, fcntl.F_WRLCK, OWNER_BYTE, 1):
            self.owner = True
        return self.owner

    def release(self) -> None:
        """Drop every lock; remove the file if no other end holds a lock on it."""
        fd = self.fd
        try:
            if _lock(fd, fcntl.F_WRLCK, 0, 0) and _same_file(fd, self.path) \
                    and not os.fstat(fd).st_size:
                os.unlink(self.path)
        except OSError:
            pass
        finally:
            os.close(fd)


def _same_file(fd: int, path: str) -> bool:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def check_ours(fd: int, path: str, bus: str, *, shared: bool) -> None:
    """Refuse a lock file that is not a regular file, or that another user owns (unless
    the bus is shared with ``perm``)."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise AccessDeniedError(f"spisim:{bus}: {path} is not a regular file; refusing it")
    if st.st_size:  # a lock file stays empty: this is somebody's file (yarn.lock, ...)
        raise NotAvailableError(
            f"spisim:{bus}: {path} exists and is not a bus lock file ({st.st_size} bytes); "
            "refusing to use or remove it: choose another bus path")
    if st.st_uid != os.geteuid() and not shared:
        raise AccessDeniedError(
            f"spisim:{bus}: {path} belongs to uid {st.st_uid}, not to us; remove it, or "
            "share the bus on purpose with perm=0660 on both ends")


__all__ = ["OWNER_BYTE", "ROLE_BYTES", "BusLock", "check_ours"]
