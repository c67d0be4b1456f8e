"""Shared-memory files, their names and the UNIX sockets beside them, handled as a hostile
local user could arrange them.

* :func:`shm_file_path` turns the path of a ``shm:`` URL into a file path, or refuses it
  (:class:`~rpmsg.errors.InvalidURLError`, no I/O): ``shm:NAME`` and ``shm:/NAME`` are
  ``/dev/shm/NAME`` (NAME one path component), ``shm:/dir/file`` is that file.
* :class:`ShmFile` opens such a file without following symlinks, only if it is a regular
  file owned by us (or with ``allow_foreign``), creates it with mode ``perm`` (0600 unless
  widened), and holds the device's lifetime lock: an open-file-description lock (``F_OFD_SETLK``)
  that the kernel drops when the holder dies, that no other descriptor of the same process can
  release, and that does not conflict with the ``flock`` libmetal takes around ``ftruncate``.
* :func:`listen_socket` binds a UNIX socket born with mode ``perm``, taking over a path only if
  it is a stale socket of our own; :func:`unlink_if_ours` removes only the socket we bound.
* :class:`SealedMemory` is a memfd sealed against shrinking (and growing): two rpmsg processes
  share it over the kick socket, so no process can truncate memory under them (the SIGBUS
  that would kill them cannot happen). A named file gives no such guarantee: any process that
  can write it can truncate it, and Python cannot survive the SIGBUS that follows (see
  ``docs/security.md``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import mmap
import os
import pwd
import socket
import stat
import struct

from rpmsg.errors import (
    AccessDeniedError,
    AlreadyOpenError,
    InvalidURLError,
    NotAvailableError,
    ProtocolError,
    unavailable,
)
from rpmsg.virtio.memory import FlatMemory
from rpmsg.wire.virtio import ResourceTable

log = logging.getLogger("rpmsg.shm")

SHM_DIR = "/dev/shm"
NAME_MAX = 255
PATH_MAX = 4096
#: Bytes of a UNIX socket path (``sockaddr_un.sun_path`` holds 108 with the NUL).
SUN_PATH_MAX = 107
#: Mode of the files and sockets this library creates, unless ``perm=`` widens it.
DEFAULT_PERM = 0o600
_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
# struct flock for F_OFD_* (native layout: l_type, l_whence, l_start, l_len, l_pid).
_FLOCK = struct.Struct("@hhqqi")
_FLOCK_SIZE = (_FLOCK.size + 7) // 8 * 8


# Names ---------------------------------------------------------------------------------

def shm_file_path(text: str, default: str) -> str:
    """The file a ``shm:`` URL path names; InvalidURLError for any name that could escape.

    ``""`` is ``/dev/shm/<default>``; ``NAME`` and ``/NAME`` are ``/dev/shm/NAME`` where NAME
    is one path component (no ``/``, not ``.`` or ``..``, at most 255 bytes); a path with a
    directory, ``/dir/file``, is that file.
    """
    if "\0" in text:
        raise InvalidURLError(f"shm: the name {text!r} contains a NUL byte")
    if not text:
        return os.path.join(SHM_DIR, default)
    if text.startswith("/") and "/" in text.lstrip("/"):
        return _check_file_path(text)
    name = text.lstrip("/") if text.startswith("/") else text
    _check_component(name, text)
    return os.path.join(SHM_DIR, name)


def _check_component(name: str, text: str) -> None:
    hint = ("shm:NAME names /dev/shm/NAME (one path component); give a file as "
            "shm:/dir/file")
    if not name or name in (".", ".."):
        raise InvalidURLError(f"shm: {text!r} names no shared-memory object; {hint}")
    if "/" in name:
        raise InvalidURLError(f"shm: {text!r} is not one path component; {hint}")
    if len(os.fsencode(name)) > NAME_MAX:
        raise InvalidURLError(f"shm: the name is {len(os.fsencode(name))} bytes; at most "
                              f"{NAME_MAX} fit in one path component")


def _check_file_path(path: str) -> str:
    raw = os.fsencode(path)
    if len(raw) >= PATH_MAX:
        raise InvalidURLError(f"shm: the path is {len(raw)} bytes; at most {PATH_MAX - 1}")
    parts = path.split("/")
    if not parts[-1] or parts[-1] in (".", ".."):
        raise InvalidURLError(f"shm: {path!r} names a directory, not a file")
    for part in parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise InvalidURLError(f"shm: a component of {path!r} is longer than {NAME_MAX} "
                                  "bytes")
    return path


def check_socket_path(path: str, option: str = "socket") -> str:
    """A UNIX socket path that fits ``sun_path``; InvalidURLError naming ``option`` if not."""
    if not path or "\0" in path:
        raise InvalidURLError(f"{option}={path!r} is not a socket path")
    size = len(os.fsencode(path))
    if size > SUN_PATH_MAX:
        raise InvalidURLError(
            f"socket path {path!r} is {size} bytes; a UNIX socket path holds at most "
            f"{SUN_PATH_MAX}: give a shorter one with {option}=")
    return path


def parse_perm(text: str, option: str = "perm") -> int:
    """The mode of created files and sockets: octal (``0600``, ``660``, ``0o666``), owner
    read/write always included, no other bits than rwx for owner, group and others."""
    raw = text.strip().lower().removeprefix("0o")
    try:
        mode = int(raw, 8)
    except ValueError:
        raise InvalidURLError(f"{option}={text!r} is not an octal mode such as 0600 or "
                              "0660") from None
    if mode & ~0o777 or mode & 0o600 != 0o600:
        raise InvalidURLError(f"{option}={text!r}: give read and write for the owner and "
                              "nothing but rwx bits, e.g. 0600 (default), 0660 or 0666")
    return mode


# Sockets ---------------------------------------------------------------------------------

def peer_credentials(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of a connected UNIX socket."""
    pid, uid, _gid = _CRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))
    return pid, uid



def listen_socket(path: str, perm: int, what: str) -> tuple[socket.socket, tuple[int, int]]:
    """A listening UNIX socket at ``path`` with mode ``perm``, and its (device, inode).

    The path is taken over only if it is a stale socket of ours (see
    :func:`take_over_stale_socket`); the socket file never exists with a wider mode than
    ``perm``. Errors are typed and name the path.
    """
    take_over_stale_socket(path, what)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        os.fchmod(sock.fileno(), perm)  # the socket file is born with (at most) this mode
        sock.bind(path)
        st = os.lstat(path)
        if stat.S_IMODE(st.st_mode) != perm:
            os.chmod(path, perm)  # widen past the umask; it was only narrower before
        sock.listen(4)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise AlreadyOpenError(f"{what} {path} was created by another process "
                                   "meanwhile") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise AccessDeniedError(f"no permission to create the {what} {path}: "
                                    f"{exc.strerror}; choose another path") from None
        raise unavailable(exc, f"cannot listen on {what} {path}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock, (st.st_dev, st.st_ino)


def take_over_stale_socket(path: str, what: str) -> None:
    """Make ``path`` free for our socket: nothing there, or a stale socket of ours (removed).

    A live socket is AlreadyOpenError naming the process behind it, another user's
    AccessDeniedError, anything that is not a socket NotAvailableError (never removed).
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except PermissionError as exc:  # a directory on the way we may not search
        raise AccessDeniedError(f"no permission to look at the {what} {path}: "
                                f"{exc.strerror}; choose another path") from None
    except OSError as exc:  # a file where a directory should be, a name too long
        raise unavailable(exc, f"cannot use {path} for the {what}: {exc.strerror}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise NotAvailableError(f"{path} exists and is not a socket; refusing to replace "
                                f"it: remove it or choose another path for the {what}")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        probe.connect(path)
    except OSError:
        pass  # nobody listens: stale
    else:
        pid, _uid = peer_credentials(probe)
        raise AlreadyOpenError(f"{describe_pid(pid)} already listens on {path}; stop it "
                               "first, or choose another path")
    finally:
        probe.close()
    if st.st_uid != os.geteuid():
        raise AccessDeniedError(
            f"stale {what} {path} belongs to {user_name(st.st_uid)}; it cannot be replaced: "
            "remove it as its owner, or choose another path")
    unlink_if_ours(path, (st.st_dev, st.st_ino))


def unlink_if_ours(path: str, ident: tuple[int, int] | None) -> None:
    """Unlink ``path`` only if it is still the socket ``ident`` (device, inode) names."""
    if ident is None:
        return
    with contextlib.suppress(OSError):
        st = os.lstat(path)
        if stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) == ident:
            os.unlink(path)



# Owners and lock holders ----------------------------------------------------------------

def user_name(uid: int) -> str:
    """``name (uid N)`` where the user database knows the uid, else ``uid N``."""
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def check_owner(st: os.stat_result, path: str, what: str, allow_foreign: bool) -> None:
    """Refuse a file or socket another user owns, unless ``allow_foreign`` says it is meant."""
    if st.st_uid == os.geteuid() or allow_foreign:
        return
    raise AccessDeniedError(
        f"{what} {path} belongs to {user_name(st.st_uid)}, not to {user_name(os.geteuid())}: "
        "that user could read and write the rings. Remove it (as its owner) or choose "
        "another name; if that user is meant to share it (e.g. a device run as root), pass "
        "allow_foreign=1")


def describe_pid(pid: int) -> str:
    """``pid N (command line)`` as far as /proc shows it."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read(300).replace(b"\0", b" ").strip().decode("utf-8", "replace")
    except OSError:
        return f"pid {pid}"
    # The process chose its command line: no control characters into logs and errors.
    cmd = cmd.encode("unicode_escape").decode("ascii")
    return f"pid {pid} ({cmd})" if cmd else f"pid {pid}"


def lock_holders(st: os.stat_result, byte: int | None = None) -> list[int]:
    """Processes (visible to us) holding a lock on the file of ``st`` (on ``byte`` only, if
    given), from /proc fdinfo."""
    tag = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino} "
    if byte is not None:
        tag += f"{byte} {byte}\n"
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fdinfo")
        except OSError:
            continue
        for fd in fds:
            try:
                with open(f"/proc/{entry}/fdinfo/{fd}") as f:
                    text = f.read()
            except OSError:
                continue
            if "lock:" in text and tag in text:
                found.append(int(entry))
                break
    return found


# Named files -----------------------------------------------------------------------------

#: The bytes of the named file locked (OFD locks) by the device for its lifetime and by a
#: driver that polls (``kick=poll``) for its session.
DEVICE_LOCK_BYTE = 0
DRIVER_LOCK_BYTE = 1
#: Bytes of an existing file read to tell shared memory from anything else.
TABLE_PROBE = 4096


class ShmMissingError(NotAvailableError):
    """The shared-memory file does not exist (yet)."""


def reserve(fd: int, size: int, what: str) -> None:
    """Give the first ``size`` bytes of the file backing store now.

    A mapped page of a tmpfs file (``/dev/shm``, 64 MiB in a default container) or a memfd
    that the filesystem cannot back when it is first touched kills the process with SIGBUS;
    reserved up front, a layout that does not fit is a :class:`NotAvailableError` instead.
    Filesystems that cannot reserve are left as they are.
    """
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.ENOMEM, errno.EFBIG, errno.EDQUOT):
            raise NotAvailableError(
                f"no room for {size} bytes of shared memory in {what} ({exc.strerror}); free "
                "some space (df) or use a smaller layout (num, buffers, buffer_size)"
            ) from None
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENODEV):
            raise NotAvailableError(f"cannot reserve shared memory in {what}: "
                                    f"{exc.strerror}") from None


class ShmFile:
    """A named shared-memory file opened safely (see the module docstring)."""

    def __init__(self, path: str, fd: int, created: bool) -> None:
        self.path = path
        self.fd = fd
        self.created = created
        self.locked = False
        st = os.fstat(fd)
        self.dev, self.ino = st.st_dev, st.st_ino
        self._maps: list[tuple[mmap.mmap, FlatMemory]] = []
        #: The open file description our locks belong to: one of its own, because a mapping
        #: keeps a duplicate of ``fd``, and a mapping that cannot be closed yet (a view still
        #: exported) would keep the locks of ``fd``'s description after close().
        self._lock_fd = -1

    @classmethod
    def create(cls, path: str, *, perm: int = DEFAULT_PERM, allow_foreign: bool = False,
               table_at: int = 0) -> ShmFile:
        """Device: create ``path`` (mode ``perm``) or take over an existing one we may use.

        An existing file is taken over only if it can be shared memory of a virtio device:
        empty or zeros where the resource table goes (a C peer created it) or holding a
        resource table at ``table_at`` (a device's leftover). Anything else (``shm:/etc/passwd``,
        a typo naming a document) is refused untouched: the device would truncate it and
        write its table over the first bytes.
        """
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, perm)
        except FileExistsError:
            file = cls.open(path, allow_foreign=allow_foreign)
            try:
                file._check_shared_memory(table_at)
                st = os.fstat(file.fd)
                if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != perm:
                    os.fchmod(file.fd, perm)
            except BaseException:
                file.close()
                raise
            return file
        except OSError as exc:
            raise _open_error(path, exc) from None
        try:
            os.fchmod(fd, perm)  # exactly perm, whatever the umask
        except OSError:
            os.close(fd)
            raise
        return cls(path, fd, created=True)

    @classmethod
    def open(cls, path: str, *, allow_foreign: bool = False,
             perm: int | None = None) -> ShmFile:
        """Open an existing file: no symlink, a regular file, ours unless ``allow_foreign``.

        With ``perm`` (a device taking over its own leftover file) the mode is set to it.
        """
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            raise ShmMissingError(f"shared memory {path} does not exist") from None
        except OSError as exc:
            raise _open_error(path, exc) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise NotAvailableError(f"{path} is not a regular file; a shared-memory "
                                        "file was expected")
            check_owner(st, path, "shared memory", allow_foreign)
            if perm is not None and st.st_uid == os.geteuid() and \
                    stat.S_IMODE(st.st_mode) != perm:
                os.fchmod(fd, perm)
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, created=False)

    def _check_shared_memory(self, table_at: int) -> None:
        """NotAvailableError unless this file can be shared memory (see :meth:`create`)."""
        if self.size() == 0:
            return
        head = self.pread(table_at, TABLE_PROBE)
        if not head.strip(b"\0"):
            return
        try:
            ResourceTable.decode(head).vdev()
            return
        except (ProtocolError, LookupError, ValueError):
            pass
        raise NotAvailableError(
            f"{self.path} exists and holds data that is not shared memory of a virtio device "
            f"({self.size()} bytes, no resource table); refusing to overwrite it: remove it "
            "or choose another name")

    # Lifetime locks: byte 0 the device's, byte 1 a polling driver's -------------------

    def lock(self, what: str) -> None:
        """Take the device's lifetime lock, or raise AlreadyOpenError naming its holder."""
        self._lock_byte(DEVICE_LOCK_BYTE, what, "serves")
        self.locked = True

    def lock_driver(self, what: str) -> None:
        """Take the driver's lock (``kick=poll``, where no kick socket tells a second driver
        that the device is busy), or raise AlreadyOpenError naming its holder."""
        self._lock_byte(DRIVER_LOCK_BYTE, what, "drives")

    def _locking_fd(self) -> int:
        if self._lock_fd < 0:
            try:  # a new open file description of the same file
                fd = os.open(f"/proc/self/fd/{self.fd}", os.O_RDWR | os.O_CLOEXEC)
            except OSError:  # no /proc: the locks live as long as every mapping
                return self.fd
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != (self.dev, self.ino):
                os.close(fd)
                return self.fd
            self._lock_fd = fd
        return self._lock_fd

    def _lock_byte(self, byte: int, what: str, verb: str) -> None:
        arg = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, byte, 1, 0).ljust(_FLOCK_SIZE, b"\0")
        try:
            fcntl.fcntl(self._locking_fd(), fcntl.F_OFD_SETLK, arg)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise unavailable(exc, f"cannot lock {self.path}: {exc.strerror}") from None
            holders = lock_holders(os.fstat(self.fd), byte)
            who = ", ".join(describe_pid(p) for p in holders) or \
                "a process this user cannot see"
            raise AlreadyOpenError(
                f"{what}: {who} already {verb} {self.path}; stop it first, or choose another "
                "name (a device serves one driver: to watch a session, capture it instead)"
            ) from None

    # I/O without mapping (no SIGBUS if the file was cut short) ------------------------

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def pread(self, offset: int, length: int) -> bytes:
        return os.pread(self.fd, length, offset)

    def pwrite(self, offset: int, data: bytes) -> None:
        os.pwrite(self.fd, data, offset)

    def ensure_size(self, size: int) -> None:
        """Grow the file to ``size`` if smaller, under ``flock`` as libmetal does."""
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            if os.fstat(self.fd).st_size < size:
                os.ftruncate(self.fd, size)
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        reserve(self.fd, size, self.path)

    def map(self, size: int) -> FlatMemory:
        """Map the first ``size`` bytes (the file must hold them); unmapped by :meth:`close`."""
        have = self.size()
        if have < size:
            raise NotAvailableError(f"shared memory {self.path} is {have} bytes, {size} needed")
        reserve(self.fd, size, self.path)
        m = mmap.mmap(self.fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        memory = FlatMemory(m)
        self._maps.append((m, memory))
        return memory

    def is_same_file(self) -> bool:
        """Whether ``path`` still names the file we opened (nobody replaced it)."""
        try:
            st = os.lstat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == (self.dev, self.ino)

    def close(self, unlink: bool = False) -> None:
        """Unmap, optionally unlink (only if ``path`` is still our file), close. Idempotent."""
        if self.fd < 0:
            return
        for m, memory in self._maps:
            _unmap(m, memory)
        self._maps = []
        if unlink and self.is_same_file():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # drops the locks, after the unlink
            self._lock_fd = -1
        os.close(self.fd)
        self.fd = -1


def _open_error(path: str, exc: OSError) -> Exception:
    if exc.errno == errno.EISDIR:
        return NotAvailableError(f"{path} is a directory, not a regular file")
    if exc.errno == errno.ELOOP:
        return AccessDeniedError(f"{path} is a symbolic link; shared memory is never opened "
                                 "through one (give the real path)")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return AccessDeniedError(
            f"no permission to open {path}: {exc.strerror}. Its owner may widen it with "
            "perm=0660 (group) or perm=0666, or run both sides as the same user")
    return unavailable(exc, f"cannot open shared memory {path}: {exc.strerror}")


def _unmap(m: mmap.mmap, memory: FlatMemory) -> None:
    memory.release()
    try:
        m.close()
    except BufferError:  # a zero-copy view is still exported; the mapping dies with it
        pass


# Sealed memory ---------------------------------------------------------------------------

def seal_against_shrink(fd: int) -> str | None:
    """Seal a received memory file against shrinking; None when it is (now) sealed, else why
    not (not a memfd, or sealing forbidden by its creator)."""
    try:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
        return None
    except OSError as exc:
        try:
            seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        except OSError:
            return f"it is not a memfd ({exc.strerror})"
        if seals & fcntl.F_SEAL_SHRINK:
            return None
        if exc.errno == errno.EINVAL:
            return "it is not a memfd"
        return "its creator did not allow sealing"


class SealedMemory:
    """A memfd no process can shrink or grow, mapped read-write (see the module docstring)."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self._map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.memory = FlatMemory(self._map)

    @classmethod
    def create(cls, size: int, name: str = "rpmsg-shm") -> SealedMemory:
        fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(fd, size)
            reserve(fd, size, "a memfd")
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
            return cls(fd, size)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def adopt(cls, fd: int, size: int) -> SealedMemory:
        """Map a memfd received from the peer; takes ``fd`` (closed on failure).

        It must be sealed against shrinking (we seal it if the peer did not forbid it) and
        hold at least ``size`` bytes; checked after sealing, so the check cannot race.
        """
        try:
            why = seal_against_shrink(fd)
            if why is not None:
                raise NotAvailableError(f"the device's shared memory cannot be sealed: {why}")
            have = os.fstat(fd).st_size
            if have < size:
                raise NotAvailableError(f"the device's shared memory is {have} bytes, "
                                        f"{size} needed")
            try:
                memory = cls(fd, size)
            except (OSError, ValueError) as exc:  # sealed against writes, opened read-only
                raise NotAvailableError(f"the device's shared memory cannot be mapped for "
                                        f"reading and writing: {exc}") from None
        except BaseException:
            os.close(fd)
            raise
        try:
            reserve(fd, size, "the device's memfd")
        except BaseException:
            memory.close()  # closes fd
            raise
        return memory

    def close(self) -> None:
        """Unmap and close; idempotent."""
        if self.fd < 0:
            return
        _unmap(self._map, self.memory)
        os.close(self.fd)
        self.fd = -1


__all__ = [
    "DEFAULT_PERM",
    "SHM_DIR",
    "SUN_PATH_MAX",
    "SealedMemory",
    "ShmFile",
    "ShmMissingError",
    "check_owner",
    "check_socket_path",
    "describe_pid",
    "listen_socket",
    "lock_holders",
    "parse_perm",
    "peer_credentials",
    "reserve",
    "seal_against_shrink",
    "shm_file_path",
    "take_over_stale_socket",
    "unlink_if_ours",
    "user_name",
]
