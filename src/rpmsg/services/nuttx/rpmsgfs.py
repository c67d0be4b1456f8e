"""rpmsgfs server: a host directory served to a NuttX chip (``mount -t rpmsgfs``), spec §4.

:class:`FsSession` is the sans-IO part: the file and directory tables of one binding (one
chip mount) and one small handler per command, turning a request into its response(s).
:class:`FsServer` binds every ``rpmsgfs-*`` announcement (pattern A), queues requests to
one worker thread that answers them in order (file I/O never runs on the transport's
thread), and on close answers every request still queued with ``-EIO`` so that no chip task
waits forever (spec §1.5).

Rules from the spec that the handlers follow: NuttX open flags and errno numbers are
translated by name; offsets and lengths are 32-bit; READ answers in chunks of at most
``mtu - 24`` bytes and ends a short read with a 0-byte chunk; WRITE chunks with cookie 0 get
no answer; directory handles start at 1; unknown handles are ``-ENOENT`` as NuttX answers;
requests the host cannot honour get ``-EPERM`` (chown to another owner, devices, FIFOs) or
``-ENOSYS`` (every IOCTL: their numbers and layouts are NuttX build options); a request that
cannot be decoded gets ``-EINVAL`` and a command NuttX does not know gets no answer at all
(answering it would make the chip assert).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import resource
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from rpmsg import checks
from rpmsg.device import Device
from rpmsg.endpoint import Endpoint
from rpmsg.errors import DecodeError, RpmsgError
from rpmsg.services.nuttx.binding import AnnouncementBinder
from rpmsg.services.nuttx.confine import ConfinedDir, EscapeError, Resolved
from rpmsg.wire.nuttx_errno import neg, to_nuttx
from rpmsg.wire.nuttx_rpmsgfs import (
    CH_STAT,
    DIRENT_TYPES,
    FILE_TYPES,
    FS_PREFIX,
    O_ACCMODE,
    OPEN_FLAGS,
    READ_WRITE,
    READDIR,
    RPMSGFS_MAGIC,
    UTIME_NOW,
    UTIME_OMIT,
    FsCommand,
    FsRequest,
    FsStat,
    decode_request,
    encode_response,
    error_response,
)

log = logging.getLogger("rpmsg.services.nuttx")

#: Open files and directories one binding may hold; beyond, OPEN/OPENDIR/DUP get -EMFILE.
MAX_FILES = 256
MAX_DIRS = 64
#: Descriptors the open files and directories of all bindings of one server may hold
#: together (at most half the process's limit): a chip may mount many times, each with its
#: own table. A directory costs DIR_COST: reading it holds a second descriptor (scandir's).
MAX_OPEN = 512
DIR_COST = 2
#: Requests of one mount waiting for the worker; beyond, its requests are answered -EAGAIN
#: at once. Per mount, so that one flooding mount never gets the others refused.
QUEUE_LIMIT = 256
#: Requests of all mounts waiting together (memory: each holds a message), except that a
#: mount with fewer than QUEUE_RESERVED waiting is always queued (several flooding mounts
#: must not get a quiet one refused either).
QUEUE_TOTAL = 1024
QUEUE_RESERVED = 8
#: How long one response may wait for a transmit buffer.
SEND_TIMEOUT = 10.0
#: Permission bits a chip may set: never setuid, setgid or sticky on the host.
MODE_MASK = 0o777
#: Largest ``blksize`` reported: the field is a signed 16-bit integer.
BLKSIZE_MAX = 0x4000
#: Opens a name without following it or opening the file itself (no device side effects).
_O_PIN = getattr(os, "O_PATH", os.O_RDONLY)

Replies = Iterator[bytes]


# Host <-> NuttX translations -------------------------------------------------------------------

_ACCESS = {0: os.O_RDONLY, 1: os.O_WRONLY, 2: os.O_RDWR}
#: NuttX open flags with a host meaning, by name (``O_SYNC`` is NuttX's ``__O_SYNC``).
_HOST_FLAGS = {name: getattr(os, name) for name in (
    "O_CREAT", "O_EXCL", "O_TRUNC", "O_APPEND", "O_NONBLOCK", "O_DSYNC", "O_SYNC",
    "O_DIRECTORY") if hasattr(os, name)}
#: Flags that change nothing for a served file (the server adds O_CLOEXEC/O_NOCTTY itself).
_IGNORED_FLAGS = ("O_TEXT", "O_NOCTTY", "O_ASYNC", "O_DIRECT", "O_LARGEFILE", "O_NOATIME",
                  "O_CLOEXEC", "O_NOFOLLOW")
_REFUSED_FLAGS = {"O_PATH": "EINVAL", "O_TMPFILE": "EOPNOTSUPP"}
_KNOWN_BITS = O_ACCMODE
for _v in OPEN_FLAGS.values():
    _KNOWN_BITS |= _v


def host_open_flags(nuttx_flags: int) -> int:
    """Translate NuttX open flags bit by bit (OSError for what the host cannot do)."""
    access = _ACCESS.get(nuttx_flags & O_ACCMODE)
    if access is None:
        raise OSError(errno.EINVAL, "bad access mode")
    flags = access
    for name, bit in OPEN_FLAGS.items():
        if not nuttx_flags & bit:
            continue
        if name in _REFUSED_FLAGS:
            raise OSError(getattr(errno, _REFUSED_FLAGS[name]), f"{name} is not supported")
        if name in _HOST_FLAGS:
            flags |= _HOST_FLAGS[name]
    if nuttx_flags & ~_KNOWN_BITS:
        log.debug("rpmsgfs: ignoring unknown open flags %#x", nuttx_flags & ~_KNOWN_BITS)
    return flags


def _flag(nuttx_flags: int, name: str) -> bool:
    return bool(nuttx_flags & OPEN_FLAGS[name])


_TYPE_TESTS: list[tuple[Callable[[int], bool], str]] = [
    (stat.S_ISREG, "REG"), (stat.S_ISDIR, "DIR"), (stat.S_ISLNK, "LNK"),
    (stat.S_ISCHR, "CHR"), (stat.S_ISBLK, "BLK"), (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISSOCK, "SOCK"),
]


def _type_name(host_mode: int) -> str:
    for test, name in _TYPE_TESTS:
        if test(host_mode):
            return name
    return "UNKNOWN"


def nuttx_mode(host_mode: int) -> int:
    """A host ``st_mode`` as NuttX mode bits (file type by name, permission bits as is)."""
    return FILE_TYPES.get(_type_name(host_mode), 0) | (host_mode & 0o7777)


def _i16(value: int) -> int:
    """Wrap to a signed 16-bit field (uid/gid are truncated as NuttX's struct does)."""
    return ((value + 0x8000) & 0xFFFF) - 0x8000


def stat_block(st: os.stat_result) -> FsStat:
    """A host ``stat`` as the 88-byte block, narrowed where NuttX's fields are narrow."""
    return FsStat(
        dev=st.st_dev & 0xFFFFFFFF, mode=nuttx_mode(st.st_mode), rdev=st.st_rdev & 0xFFFFFFFF,
        ino=st.st_ino & 0xFFFF, nlink=min(st.st_nlink, 0xFFFF), size=st.st_size,
        atim_sec=st.st_atime_ns // 1_000_000_000, atim_nsec=st.st_atime_ns % 1_000_000_000,
        mtim_sec=st.st_mtime_ns // 1_000_000_000, mtim_nsec=st.st_mtime_ns % 1_000_000_000,
        ctim_sec=st.st_ctime_ns // 1_000_000_000, ctim_nsec=st.st_ctime_ns % 1_000_000_000,
        blocks=st.st_blocks, uid=_i16(st.st_uid), gid=_i16(st.st_gid),
        blksize=min(st.st_blksize, BLKSIZE_MAX))


def _error(exc: OSError) -> int:
    return -to_nuttx(exc.errno)


# One binding ----------------------------------------------------------------------------------


@dataclass
class _File:
    fd: int
    #: An error of a WRITE chunk that had no cookie, reported with the next answered one.
    deferred_error: int = 0


@dataclass
class _Dir:
    fd: int
    entries: Iterator[os.DirEntry[str]] | None = field(default=None)

    def close_iterator(self) -> None:
        it, self.entries = self.entries, None
        if it is not None:
            it.close()  # type: ignore[attr-defined]


class HandleBudget:
    """Host descriptors the open files and directories of several bindings may take
    together (each binding also has its own table limits). Used by one worker thread."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @classmethod
    def for_process(cls, limit: int = MAX_OPEN) -> HandleBudget:
        """``limit``, or half the process's soft descriptor limit if that is lower."""
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY:
            limit = min(limit, soft // 2)
        return cls(limit)

    def take(self, n: int = 1) -> None:
        if self.used + n > self.limit:
            raise OSError(errno.EMFILE, "the server's open files are used up")
        self.used += n

    def give(self, n: int = 1) -> None:
        self.used -= n


@dataclass
class FsStats:
    """Counters of one server (all bindings)."""

    requests: int = 0
    errors: int = 0
    bad_requests: int = 0
    #: Messages that must not be answered (unknown command, too short for a cookie).
    unanswerable: int = 0
    escapes_refused: int = 0
    answered_on_close: int = 0
    overloaded: int = 0
    send_failures: int = 0


class FsSession:
    """The state of one chip mount and the handlers that answer its requests (no I/O
    besides the host file system; the caller sends what :meth:`handle` yields)."""

    def __init__(self, root: ConfinedDir, *, mtu: int, read_only: bool = False,
                 stats: FsStats | None = None, budget: HandleBudget | None = None) -> None:
        self.root = root
        self.mtu = mtu
        self.read_only = read_only
        self.stats = stats if stats is not None else FsStats()
        #: Shared with the server's other bindings (a session alone: its own tables' size).
        self.budget = (budget if budget is not None
                       else HandleBudget(MAX_FILES + DIR_COST * MAX_DIRS))
        self.files: dict[int, _File] = {}
        self.dirs: dict[int, _Dir] = {}
        #: Handles whose write lost a cookie-0 chunk (see :meth:`lose_write`); also
        #: written by the transport's thread, hence the lock.
        self._lost: set[int] = set()
        self._lost_lock = threading.Lock()
        #: Requests of this mount waiting for the server's worker (kept by the server).
        self.queued = 0
        self._handlers: dict[FsCommand, Callable[[FsRequest], Replies]] = {
            FsCommand.OPEN: self._open, FsCommand.CLOSE: self._close,
            FsCommand.READ: self._read, FsCommand.WRITE: self._write,
            FsCommand.LSEEK: self._lseek, FsCommand.IOCTL: self._ioctl,
            FsCommand.SYNC: self._sync, FsCommand.DUP: self._dup,
            FsCommand.FSTAT: self._fstat, FsCommand.FTRUNCATE: self._ftruncate,
            FsCommand.OPENDIR: self._opendir, FsCommand.READDIR: self._readdir,
            FsCommand.REWINDDIR: self._rewinddir, FsCommand.CLOSEDIR: self._closedir,
            FsCommand.STATFS: self._statfs, FsCommand.UNLINK: self._unlink,
            FsCommand.MKDIR: self._mkdir, FsCommand.RMDIR: self._rmdir,
            FsCommand.RENAME: self._rename, FsCommand.STAT: self._stat,
            FsCommand.FCHSTAT: self._fchstat, FsCommand.CHSTAT: self._chstat,
        }

    # Entry point ---------------------------------------------------------------------------

    def handle(self, raw: bytes) -> Replies:
        """The response(s) to one request message, in order (none for a cookie-0 WRITE or
        a message that must not be answered)."""
        self.stats.requests += 1
        try:
            req = decode_request(raw)
        except DecodeError as exc:
            reply = error_response(raw, neg("EINVAL"))
            if reply is None:
                self.lose_write(raw)
                self.stats.unanswerable += 1
                log.warning("rpmsgfs: unanswerable message dropped: %s", exc)
            else:
                self.stats.bad_requests += 1
                log.warning("rpmsgfs: bad request answered -EINVAL: %s", exc)
                yield reply
            return
        try:
            yield from self._handlers[req.command](req)
        except OSError as exc:
            if isinstance(exc, EscapeError):
                self.stats.escapes_refused += 1
                log.warning("rpmsgfs: %s refused: %r leads outside %s", req.command.name,
                            exc.filename, self.root.path)
            self.stats.errors += 1
            if req.command == FsCommand.WRITE and req.cookie == 0:
                self._defer_error(req, _error(exc))
                return
            yield encode_response(req, _error(exc))

    def lose_write(self, raw: bytes) -> None:
        """``raw`` is dropped unanswered (undecodable, or the server is overloaded): if it
        is a WRITE chunk with cookie 0, the write it belongs to fails. Its file's next
        answered WRITE gets ``-EAGAIN`` and the cookie-0 chunks before that are not
        written (they would land at the wrong offset); the chip's write never succeeds
        with a chunk missing. A dropped last chunk (cookie not 0) ends its write (the
        chip's write failed already), so the mark goes: it must not fail the next write."""
        if len(raw) < READ_WRITE.size:
            return
        command, _result, cookie, fd, _count = READ_WRITE.unpack(raw)
        if command == FsCommand.WRITE and 0 <= fd < MAX_FILES:
            with self._lost_lock:
                if cookie == 0:
                    self._lost.add(fd)
                else:
                    self._lost.discard(fd)

    def _write_lost(self, fd: int, final: bool) -> bool:
        """Whether this chunk's write lost a chunk (the final chunk clears the mark)."""
        with self._lost_lock:
            lost = fd in self._lost
            if lost and final:
                self._lost.discard(fd)
        return lost

    def release(self) -> None:
        """Close every file and directory of this binding (the chip went away)."""
        for f in self.files.values():
            os.close(f.fd)
        for d in self.dirs.values():
            d.close_iterator()
            os.close(d.fd)
        self.budget.give(len(self.files) + DIR_COST * len(self.dirs))
        self.files.clear()
        self.dirs.clear()

    # Helpers -------------------------------------------------------------------------------

    def _writable(self) -> None:
        if self.read_only:
            raise OSError(errno.EROFS, "served read-only")

    def _file(self, req: FsRequest) -> _File:
        f = self.files.get(req.num("fd"))
        if f is None:
            raise OSError(errno.ENOENT, "no such open file")
        return f

    def _dir(self, req: FsRequest) -> _Dir:
        d = self.dirs.get(req.num("fd"))
        if d is None:
            raise OSError(errno.ENOENT, "no such open directory")
        return d

    def _resolve(self, path: bytes | None, follow: bool = True) -> Resolved:
        return self.root.resolve(path or b"", follow=follow)

    @staticmethod
    def _slot(table: dict[int, _File] | dict[int, _Dir], first: int, limit: int) -> int:
        for n in range(first, first + limit):
            if n not in table:
                return n
        raise OSError(errno.EMFILE, "too many open files")

    def _add_file(self, fd: int) -> int:
        try:
            n = self._slot(self.files, 0, MAX_FILES)
            self.budget.take()
        except OSError:
            os.close(fd)
            raise
        self.files[n] = _File(fd)
        return n

    def _defer_error(self, req: FsRequest, result: int) -> None:
        f = self.files.get(req.num("fd")) if "fd" in req.fields else None
        if f is not None and not f.deferred_error:
            f.deferred_error = result

    # Files ---------------------------------------------------------------------------------

    def _open(self, req: FsRequest) -> Replies:
        nflags = req.num("flags")
        flags = host_open_flags(nflags)
        if self.read_only and (flags & O_ACCMODE != os.O_RDONLY
                               or flags & (os.O_CREAT | os.O_TRUNC | os.O_APPEND)):
            raise OSError(errno.EROFS, "served read-only")
        no_follow = _flag(nflags, "O_NOFOLLOW") or (_flag(nflags, "O_CREAT")
                                                    and _flag(nflags, "O_EXCL"))
        with self._resolve(req.path, follow=not no_follow) as r:
            fd = os.open(r.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
                         | os.O_NONBLOCK, req.num("mode") & MODE_MASK, dir_fd=r.dir_fd)
        try:
            st = os.fstat(fd)
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                raise OSError(errno.EPERM, "only regular files and directories are served")
            if not _flag(nflags, "O_NONBLOCK"):
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        except OSError:
            os.close(fd)
            raise
        yield encode_response(req, self._add_file(fd))

    def _close(self, req: FsRequest) -> Replies:
        f = self._file(req)
        del self.files[req.num("fd")]
        with self._lost_lock:  # a write that lost a chunk ends with its file
            self._lost.discard(req.num("fd"))
        self.budget.give()
        os.close(f.fd)
        yield encode_response(req, 0)

    def _read(self, req: FsRequest) -> Replies:
        f = self._file(req)
        room = self.mtu - READ_WRITE.size
        remaining = req.num("count")
        if remaining == 0:
            yield encode_response(req, 0)
            return
        while remaining > 0:
            try:
                data = os.read(f.fd, min(room, remaining))
            except OSError as exc:
                yield encode_response(req, _error(exc))
                return
            if not data:  # short read: a 0-byte chunk tells the client it is complete
                yield encode_response(req, 0)
                return
            remaining -= len(data)
            yield encode_response(req, len(data), data)

    def _write(self, req: FsRequest) -> Replies:
        f = self._file(req)
        if self._write_lost(req.num("fd"), final=req.cookie != 0):
            if req.cookie != 0:
                f.deferred_error = 0
                yield encode_response(req, neg("EAGAIN"))
            return
        data = memoryview(req.data)
        result = 0
        try:
            while data:
                n = os.write(f.fd, data)
                data = data[n:]
                result += n
        except OSError as exc:
            result = _error(exc)
        if req.cookie == 0:  # not the last chunk: no answer (spec §4.4)
            if result < 0 and not f.deferred_error:
                f.deferred_error = result
            return
        if f.deferred_error:
            result, f.deferred_error = f.deferred_error, 0
        yield encode_response(req, result)

    def _lseek(self, req: FsRequest) -> Replies:
        f = self._file(req)
        whence = req.num("whence")
        if whence not in (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END):
            raise OSError(errno.EINVAL, "bad whence")
        old = os.lseek(f.fd, 0, os.SEEK_CUR)
        new = os.lseek(f.fd, req.num("offset"), whence)
        if new > 0x7FFFFFFF:  # the result is a 32-bit int on the wire
            os.lseek(f.fd, old, os.SEEK_SET)
            raise OSError(errno.EOVERFLOW, "offset beyond 2 GiB")
        yield encode_response(req, new)

    def _ioctl(self, req: FsRequest) -> Replies:
        self._file(req)
        yield encode_response(req, neg("ENOSYS"))

    def _sync(self, req: FsRequest) -> Replies:
        os.fsync(self._file(req).fd)
        yield encode_response(req, 0)

    def _dup(self, req: FsRequest) -> Replies:
        yield encode_response(req, self._add_file(os.dup(self._file(req).fd)))

    def _fstat(self, req: FsRequest) -> Replies:
        st = os.fstat(self._file(req).fd)
        yield encode_response(req, 0, stat=stat_block(st).encode())

    def _ftruncate(self, req: FsRequest) -> Replies:
        self._writable()
        f = self._file(req)
        length = req.num("length")
        if length < 0:
            raise OSError(errno.EINVAL, "negative length")
        os.ftruncate(f.fd, length)
        yield encode_response(req, 0)

    # Directories ---------------------------------------------------------------------------

    def _opendir(self, req: FsRequest) -> Replies:
        with self._resolve(req.path) as r:
            fd = os.open(r.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=r.dir_fd)
        try:
            handle = self._slot(self.dirs, 1, MAX_DIRS)  # 0 would read as failure
            self.budget.take(DIR_COST)
        except OSError:
            os.close(fd)
            raise
        self.dirs[handle] = _Dir(fd)
        yield encode_response(req, handle)

    def _readdir(self, req: FsRequest) -> Replies:
        d = self._dir(req)
        if d.entries is None:
            d.entries = iter(os.scandir(d.fd))
        entry = next(d.entries, None)
        if entry is None:
            yield encode_response(req, neg("ENOENT"))  # end of directory, as NuttX says it
            return
        try:
            kind = _type_name(entry.stat(follow_symlinks=False).st_mode)
        except OSError:
            kind = "UNKNOWN"
        name = os.fsencode(entry.name)[: self.mtu - READDIR.size - 1]
        yield encode_response(req, 0, name + b"\0", type=DIRENT_TYPES[kind])

    def _rewinddir(self, req: FsRequest) -> Replies:
        self._dir(req).close_iterator()  # closing a scandir of a descriptor rewinds it
        yield encode_response(req, 0)

    def _closedir(self, req: FsRequest) -> Replies:
        d = self._dir(req)
        del self.dirs[req.num("fd")]
        self.budget.give(DIR_COST)
        d.close_iterator()
        os.close(d.fd)
        yield encode_response(req, 0)

    # Paths ---------------------------------------------------------------------------------

    def _statfs(self, req: FsRequest) -> Replies:
        with self._resolve(req.path) as r:
            fd = os.open(r.name, getattr(os, "O_PATH", os.O_RDONLY) | os.O_NOFOLLOW
                         | os.O_CLOEXEC, dir_fd=r.dir_fd)
        try:
            sv = os.statvfs(fd)
        finally:
            os.close(fd)
        yield encode_response(req, 0, type=RPMSGFS_MAGIC, namelen=sv.f_namemax,
                              bsize=sv.f_frsize or sv.f_bsize, blocks=sv.f_blocks,
                              bfree=sv.f_bfree, bavail=sv.f_bavail, files=sv.f_files,
                              ffree=sv.f_ffree)

    def _unlink(self, req: FsRequest) -> Replies:
        self._writable()
        with self._resolve(req.path, follow=False) as r:
            os.unlink(r.name, dir_fd=r.dir_fd)
        yield encode_response(req, 0)

    def _mkdir(self, req: FsRequest) -> Replies:
        self._writable()
        with self._resolve(req.path, follow=False) as r:
            os.mkdir(r.name, req.num("mode") & MODE_MASK, dir_fd=r.dir_fd)
        yield encode_response(req, 0)

    def _rmdir(self, req: FsRequest) -> Replies:
        self._writable()
        with self._resolve(req.path, follow=False) as r:
            if r.name == b"." and r.dir_fd == self.root.fd:
                raise OSError(errno.EBUSY, "the shared directory itself")
            os.rmdir(r.name, dir_fd=r.dir_fd)
        yield encode_response(req, 0)

    def _rename(self, req: FsRequest) -> Replies:
        self._writable()
        with self._resolve(req.path, follow=False) as old, \
                self._resolve(req.new_path, follow=False) as new:
            if b"." in (old.name, new.name):
                raise OSError(errno.EBUSY, "cannot rename a directory reached by '..'")
            os.rename(old.name, new.name, src_dir_fd=old.dir_fd, dst_dir_fd=new.dir_fd)
        yield encode_response(req, 0)

    def _stat(self, req: FsRequest) -> Replies:
        with self._resolve(req.path) as r:
            st = os.stat(r.name, dir_fd=r.dir_fd, follow_symlinks=False)
        yield encode_response(req, 0, stat=stat_block(st).encode())

    def _fchstat(self, req: FsRequest) -> Replies:
        self._writable()
        fd = self._file(req).fd
        self._apply(req, os.fstat(fd), chmod=lambda m: os.chmod(fd, m),
                    utime=lambda ns: os.utime(fd, ns=ns),
                    truncate=lambda n: os.ftruncate(fd, n))
        yield encode_response(req, 0)

    def _chstat(self, req: FsRequest) -> Replies:
        self._writable()
        with self._resolve(req.path) as r:
            fd = os.open(r.name, _O_PIN | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=r.dir_fd)
        # Every change goes through this descriptor (the magic link of /proc/self/fd names
        # its inode, never a path looked up again): a name swapped for a symlink to a host
        # file after the check would otherwise be followed by chmod (as root: any file).
        pinned = f"/proc/self/fd/{fd}"

        def truncate(n: int) -> None:
            wfd = os.open(pinned, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
            try:
                os.ftruncate(wfd, n)
            finally:
                os.close(wfd)

        try:
            self._apply(req, os.fstat(fd), chmod=lambda m: os.chmod(pinned, m),
                        utime=lambda ns: os.utime(pinned, ns=ns), truncate=truncate)
        finally:
            os.close(fd)
        yield encode_response(req, 0)

    def _apply(self, req: FsRequest, current: os.stat_result, *,
               chmod: Callable[[int], None], utime: Callable[[tuple[int, int]], None],
               truncate: Callable[[int], None]) -> None:
        """CHSTAT/FCHSTAT: chmod, then owner (only a no-op is allowed), then times, size."""
        flags = req.num("flags")
        new = req.stat
        self._check_changeable(current, flags)
        if flags & CH_STAT["MODE"]:
            chmod(new.mode & MODE_MASK)
        if ((flags & CH_STAT["UID"] and new.uid != _i16(current.st_uid))
                or (flags & CH_STAT["GID"] and new.gid != _i16(current.st_gid))):
            raise OSError(errno.EPERM, "the chip cannot change a host file's owner")
        if flags & (CH_STAT["ATIME"] | CH_STAT["MTIME"]):
            utime(_new_times(flags, new, current))
        if flags & CH_STAT["SIZE"]:
            if new.size < 0:
                raise OSError(errno.EINVAL, "negative size")
            truncate(new.size)

    def _check_changeable(self, current: os.stat_result, flags: int) -> None:
        """Only regular files and directories below the root are changed: the served
        directory's own mode, owner and times belong to the host (the chip is confined
        inside it; it may read its stat, not change it)."""
        if stat.S_ISLNK(current.st_mode) or not (stat.S_ISREG(current.st_mode)
                                                 or stat.S_ISDIR(current.st_mode)):
            raise OSError(errno.EPERM, "only regular files and directories are served")
        if flags and (current.st_dev, current.st_ino) == self.root.identity:
            raise OSError(errno.EPERM, "the shared directory itself belongs to the host")


def _new_times(flags: int, new: FsStat, current: os.stat_result) -> tuple[int, int]:
    """(atime, mtime) in ns that CHSTAT asks for: each kept unless its flag is set, the
    host's clock for UTIME_NOW."""
    now = time.time_ns()

    def pick(flag: str, sec: int, nsec: int, keep: int) -> int:
        if not flags & CH_STAT[flag] or nsec == UTIME_OMIT:
            return keep
        if nsec == UTIME_NOW:
            return now
        if not 0 <= nsec < 1_000_000_000:
            raise OSError(errno.EINVAL, "bad nanoseconds")
        return sec * 1_000_000_000 + nsec

    return (pick("ATIME", new.atim_sec, new.atim_nsec, current.st_atime_ns),
            pick("MTIME", new.mtim_sec, new.mtim_nsec, current.st_mtime_ns))


# The service ----------------------------------------------------------------------------------


class FsServer:
    """Serves ``directory`` to every rpmsgfs mount of the chip on ``device``.

    ``fs=`` of the chip's mount is a path inside ``directory`` (``fs=/`` is the directory
    itself). With ``read_only`` every request that would change something gets ``-EROFS``.
    All mounts together hold at most ``max_open`` (default :data:`MAX_OPEN`) open files and
    directories (then ``-EMFILE``), whatever the number of mounts.
    """

    def __init__(self, device: Device, directory: str | os.PathLike[str], *,
                 read_only: bool = False, send_timeout: float = SEND_TIMEOUT,
                 max_open: int | None = None) -> None:
        limit = MAX_OPEN if max_open is None else checks.count(max_open, "max_open", 0)
        self.device = device
        self.root = ConfinedDir(directory)
        self.read_only = read_only
        self.send_timeout = send_timeout
        self.stats = FsStats()
        #: Open files and directories of all mounts together (see :data:`MAX_OPEN`).
        self.budget = HandleBudget.for_process(limit)
        self._sessions: dict[int, FsSession] = {}
        self._queue: deque[tuple[Endpoint, FsSession, bytes] | FsSession] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._worker = threading.Thread(target=self._run, name="rpmsgfs-server", daemon=True)
        self._worker.start()
        self._binder = AnnouncementBinder(device, lambda n: n.startswith(FS_PREFIX),
                                          on_message=self._on_message,
                                          on_release=self._on_release)

    @property
    def mounts(self) -> list[str]:
        """Names of the chip endpoints (one per mount) currently bound."""
        return [e.name for e in self._binder.endpoints]

    def _session(self, ept: Endpoint) -> FsSession:
        session = self._sessions.get(id(ept))
        if session is None:
            session = self._sessions[id(ept)] = FsSession(
                self.root, mtu=ept.mtu, read_only=self.read_only, stats=self.stats,
                budget=self.budget)
        return session

    def _on_message(self, ept: Endpoint, data: bytes, src: int) -> None:
        with self._cond:
            closing = self._closing
            if not closing:
                session = self._session(ept)
                if session.queued < QUEUE_RESERVED or (session.queued < QUEUE_LIMIT
                                                       and len(self._queue) < QUEUE_TOTAL):
                    session.queued += 1
                    self._queue.append((ept, session, data))
                    self._cond.notify()
                    return
        if closing:
            self._answer_now(ept, data, neg("EIO"))
        else:
            self.stats.overloaded += 1
            session.lose_write(data)
            self._answer_now(ept, data, neg("EAGAIN"))

    def _answer_now(self, ept: Endpoint, data: bytes, result: int) -> None:
        reply = error_response(data, result)
        if reply is not None:
            self._send(ept, reply, timeout=1.0)

    def _on_release(self, ept: Endpoint) -> None:
        with self._cond:
            session = self._sessions.pop(id(ept), None)
            if session is not None:
                self._queue.append(session)  # closed by the worker, after earlier requests
                self._cond.notify()

    def _send(self, ept: Endpoint, reply: bytes, timeout: float) -> bool:
        try:
            ept.send(reply, timeout=timeout)
            return True
        except RpmsgError as exc:
            self.stats.send_failures += 1
            log.warning("rpmsgfs: reply to %r not sent: %s", ept.name, exc)
            return False

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                item = self._queue.popleft()
                if not isinstance(item, FsSession):
                    item[1].queued -= 1
            if isinstance(item, FsSession):
                item.release()
                continue
            ept, session, data = item
            try:
                for n, reply in enumerate(session.handle(data)):
                    if n and self._closing:  # a long answer (a chip's 4 GiB READ) ends here
                        self._answer_now(ept, data, neg("EIO"))
                        break
                    if not self._send(ept, reply, self.send_timeout):
                        break
            except Exception:  # a bug must not kill the worker: answer, log, go on
                log.exception("rpmsgfs: request failed")
                self._answer_now(ept, data, neg("EIO"))

    def close(self) -> None:
        """Answer every queued request with -EIO, finish the one in progress (one that
        answers in several messages, a READ, is cut short with -EIO), release every
        binding (NS DESTROY) and close the shared directory. Idempotent."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            pending = [i for i in self._queue if not isinstance(i, FsSession)]
            sessions = [i for i in self._queue if isinstance(i, FsSession)]
            self._queue.clear()
            self._cond.notify_all()
        for ept, _session, data in pending:
            self.stats.answered_on_close += 1
            self._answer_now(ept, data, neg("EIO"))
        self._worker.join(timeout=30)
        self._binder.close()  # releases queue the sessions again: collect them below
        with self._cond:
            sessions += [i for i in self._queue if isinstance(i, FsSession)]
            sessions += list(self._sessions.values())
            self._queue.clear()
            self._sessions.clear()
        for s in sessions:
            s.release()
        self.root.close()

    def __enter__(self) -> FsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["FsServer", "FsSession", "FsStats", "HandleBudget", "host_open_flags", "nuttx_mode",
           "stat_block"]
