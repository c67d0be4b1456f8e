"""A pcapng capture file being written: safe creation, buffering, a flusher thread, limits.

Callers (taps, on any thread) hand whole encoded blocks to :meth:`CaptureFile.put` (one block)
or :meth:`CaptureFile.put_blocks` (a batch in one buffer), which only append to a deque: no
lock, no system call, never blocks. A daemon thread writes the queued blocks at least once a
second (sooner when many are queued) with one ``writev`` per flush (the kernel gathers the
buffers; nothing is joined or encoded there), so after a crash the file is a valid capture up
to the last flush. A write that fails (disk full, file size limit) is cut back to the last
whole block, reported once in the log, and ends the capture; so does reaching ``max_bytes``
(which may cut a batch, at a block boundary). Neither raises into the data path.

Every Device capturing to the same path in one process shares one file and gets its own
interface (:meth:`CaptureFile.add_interface`); the file is closed when the last one releases.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import logging
import os
import stat
import struct
import threading
import time
from collections import deque
from typing import Protocol

from rpmsg import __version__
from rpmsg.capture.blocks import Blocks, interface_description, section_header
from rpmsg.errors import (
    AccessDeniedError,
    AlreadyOpenError,
    InvalidArgumentError,
    NotAvailableError,
    RpmsgError,
)

log = logging.getLogger("rpmsg.capture")

#: The longest a written record waits in memory before it reaches the file.
FLUSH_INTERVAL = 0.5
#: Queued records that wake the flusher before its interval ends.
WAKE_AT = 1024
#: Queued records beyond which new ones are dropped (the disk cannot keep up); counted.
MAX_QUEUED = 65_536
#: Queued bytes of batches that wake the flusher, and beyond which batches are dropped
#: (a batch is one record in the queue but may hold many messages).
WAKE_BYTES = 1 << 20
MAX_QUEUED_BYTES = 64 << 20

#: Buffers per writev call (Linux's IOV_MAX).
_IOV_MAX = 1024


class Switchable(Protocol):
    """A producer the file turns off when the capture stops (a :class:`CaptureTap`)."""

    def switch_off(self) -> None: ...


#: What the queue holds: one whole block, a batch of them, or (after ``capture_max`` cut a
#: batch) the whole blocks of a batch that still fit.
Chunk = bytes | Blocks | memoryview
#: The smallest ``max_bytes`` accepted: room for the headers and some records.
MIN_MAX_BYTES = 4096


def expand_path(path: str, pid: int | None = None) -> str:
    """``%p`` becomes the process id and ``%%`` a single ``%``."""
    pid = os.getpid() if pid is None else pid
    out: list[str] = []
    i = 0
    while i < len(path):
        c = path[i]
        if c == "%" and i + 1 < len(path) and path[i + 1] in "p%":
            out.append(str(pid) if path[i + 1] == "p" else "%")
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def open_private(path: str) -> int:
    """Open ``path`` for writing as a fresh capture: create it mode 0600, never through a
    symlink, never a file of another user, a hard-linked file or a non-regular file (FIFO,
    device), never a file another capture is writing (an exclusive ``flock`` held while the
    descriptor is open), then truncate it. Returns the descriptor."""
    flags = (os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise _create_error(path, exc) from None
    try:
        st = os.fstat(fd)
        _check_private(path, st)
        _lock(path, fd)
        os.set_blocking(fd, True)
        os.ftruncate(fd, 0)
        if stat.S_IMODE(st.st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    except RpmsgError:
        os.close(fd)
        raise
    except OSError as exc:  # a file that cannot be truncated or chmod'ed (procfs, sysfs...)
        os.close(fd)
        raise _create_error(path, exc) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _create_error(path: str, exc: OSError) -> RpmsgError:
    """The typed error of a capture file that could not be opened, saying why."""
    code = exc.errno
    if code == errno.ELOOP:
        return AccessDeniedError(f"capture file {path!r} is a symbolic link; "
                                 "refusing to follow it (give the real path)")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return AccessDeniedError(f"cannot create capture file {path!r}: {exc.strerror}")
    if code in (errno.ENOENT, errno.ENOTDIR):
        return NotAvailableError(f"cannot create capture file {path!r}: "
                                 f"{exc.strerror} (does the directory exist?)")
    if code in (errno.ENXIO, errno.ENODEV, errno.EOPNOTSUPP):  # FIFO, socket...
        return AccessDeniedError(f"capture path {path!r} is not a regular file")
    if code == errno.EISDIR:
        return InvalidArgumentError(f"capture path {path!r} is a directory")
    return NotAvailableError(f"cannot create capture file {path!r}: {exc.strerror}")


def _lock(path: str, fd: int) -> None:
    """Hold an exclusive lock on the capture for as long as ``fd`` (or a fork's copy) is
    open: a second capture to the same file (another process, or this one through another
    path) would truncate it and write over its blocks from offset 0."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise AlreadyOpenError(f"capture file {path!r} is being written by another capture "
                               "(use %p in the path for one file per process)") from None
    except OSError as exc:  # a file system without locks: capture without one
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise NotAvailableError(f"cannot lock capture file {path!r}: "
                                    f"{exc.strerror}") from None


def _check_private(path: str, st: os.stat_result) -> None:
    """The file opened is ours alone to overwrite: regular, our uid, one link."""
    if not stat.S_ISREG(st.st_mode):
        raise AccessDeniedError(f"capture path {path!r} is not a regular file")
    if st.st_uid != os.geteuid():
        raise AccessDeniedError(f"capture file {path!r} belongs to uid {st.st_uid}, "
                                "not to us; remove it or choose another path")
    if st.st_nlink != 1:
        raise AccessDeniedError(f"capture file {path!r} has {st.st_nlink} hard links; "
                                "refusing to overwrite it")


class CaptureFile:
    """One pcapng file: section header at once, then interfaces and packets as queued."""

    def __init__(self, path: str, *, max_bytes: int | None = None,
                 flush_interval: float = FLUSH_INTERVAL) -> None:
        if max_bytes is not None:
            if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
                raise InvalidArgumentError(f"capture_max must be a number of bytes, "
                                           f"not {max_bytes!r}")
            if max_bytes < MIN_MAX_BYTES:
                raise InvalidArgumentError(f"capture_max={max_bytes} is too small; "
                                           f"at least {MIN_MAX_BYTES} bytes")
        self.path = path
        self.max_bytes = max_bytes
        self.flush_interval = flush_interval
        self._fd = open_private(path)
        self._queue: deque[Chunk] = deque()
        #: Bytes of batches queued since the last flush (approximate: producers on several
        #: threads may lose an update; each flush starts it again from 0).
        self.queued_bytes = 0
        self._wake = threading.Event()
        self._write_lock = threading.Lock()
        self._if_lock = threading.Lock()
        self._interfaces = 0
        self._names: set[str] = set()
        self._users = 0
        self._taps: set[Switchable] = set()
        self.size = 0
        #: Blocks written, and blocks lost (queue overflow, size limit, write error).
        self.written = 0
        self.lost = 0
        #: Records dropped because the queue was full (the writer could not keep up).
        self.overflowed = 0
        self._overflow_reported = 0
        #: False once the capture ended early (limit reached, write failed) or closed.
        self.accepting = True
        self.stop_reason = ""
        self._closed = False
        self.put(section_header(f"python-rpmsg {__version__}"))
        self.flush()
        self._thread = threading.Thread(target=self._run, name=f"rpmsg-capture {path}",
                                        daemon=True)
        self._thread.start()

    # Producers ------------------------------------------------------------------------------

    def put(self, data: bytes) -> None:
        """Queue one whole block (any thread; never blocks, never raises)."""
        q = self._queue
        if len(q) >= WAKE_AT and self.crowded():
            return
        q.append(data)

    def put_blocks(self, blocks: Blocks) -> None:
        """Queue a batch of whole blocks (any thread; never blocks, never raises)."""
        queued = self.queued_bytes + len(blocks)
        if (queued >= WAKE_BYTES or len(self._queue) >= WAKE_AT) and \
                self.crowded(blocks.nblocks, queued):
            return
        self.queued_bytes = queued
        self._queue.append(blocks)

    @property
    def queue(self) -> deque[Chunk]:
        """The queue itself, for producers that append a block without a call (check
        :meth:`crowded` first when it holds :data:`WAKE_AT` records or more)."""
        return self._queue

    def crowded(self, records: int = 1, queued_bytes: int = 0) -> bool:
        """The queue is long: wake the flusher; True if the ``records`` must be dropped."""
        if len(self._queue) >= MAX_QUEUED or queued_bytes >= MAX_QUEUED_BYTES:
            self.lost += records
            self.overflowed += records
            return True
        if not self._wake.is_set():
            self._wake.set()
        return False

    def add_interface(self, name: str, description: str, user: Switchable | None = None
                      ) -> int:
        """Queue an interface description; returns its id for the packet blocks. ``user``
        (the tap) is switched off when the capture stops early."""
        with self._if_lock:
            ident = self._interfaces
            self._interfaces += 1
            self._users += 1
            if user is not None:
                self._taps.add(user)
            # Two Devices on one URL (the two ends of a loop:) must stay apart in Wireshark.
            unique = name
            n = 2
            while unique in self._names:
                unique = f"{name} ({n})"
                n += 1
            self._names.add(unique)
            self.put(interface_description(unique, description))
        return ident

    # Writing --------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # never let the flusher die silently
                log.exception("capture to %s: flush failed", self.path)
                self._stop("internal error")

    def _report_overflow(self) -> None:
        if self.overflowed and not self._overflow_reported:
            log.warning("capture to %s could not keep up: records are being dropped "
                        "(counted; the total is logged at close)", self.path)
        self._overflow_reported = self.overflowed

    def flush(self) -> None:
        """Write every queued block now (whole blocks only)."""
        if self._fd < 0:  # closed, or abandoned in a forked child (whose locks may be held)
            self._queue.clear()
            return
        self._report_overflow()
        with self._write_lock:
            q = self._queue
            n = len(q)
            if n == 0:
                return
            pending = [q.popleft() for _ in range(n)]
            self.queued_bytes = 0
            if not self.accepting or self._fd < 0:
                self.lost += _count(pending)
                return
            if self.max_bytes is not None:
                pending = self._fit(pending)
                if not pending:
                    return
            total, error = self._writev(pending)
            if error is not None:
                self._write_failed(error, pending, total)
                return
            self.size += total
            self.written += _count(pending)

    def _writev(self, pending: list[Chunk]) -> tuple[int, OSError | None]:
        """Write ``pending`` in gathered writes (no join: the kernel gathers): the bytes
        written and the error that stopped the writing, if one did."""
        total = 0
        for i in range(0, len(pending), _IOV_MAX):
            chunk = pending[i:i + _IOV_MAX]
            want = sum(map(len, chunk))
            try:
                done = os.writev(self._fd, chunk)
            except OSError as exc:
                return total, exc
            total += done
            if done != want:  # the disk or the file size limit is full
                return total, OSError(errno.ENOSPC, "short write (disk or file size limit "
                                      "full)")
        return total, None

    def _fit(self, pending: list[Chunk]) -> list[Chunk]:
        """What still fits under ``max_bytes``, whole blocks only (a batch may be cut)."""
        assert self.max_bytes is not None
        room = self.max_bytes - self.size
        for i, chunk in enumerate(pending):
            if len(chunk) <= room:
                room -= len(chunk)
                continue
            kept = pending[:i]
            lost = _count(pending[i:])
            if isinstance(chunk, Blocks):
                cut, blocks = _whole_blocks(chunk, room)
                if blocks:
                    part = Blocks(memoryview(chunk)[:cut])  # copied once, at the limit
                    part.nblocks = blocks  # so the written/lost counters stay exact
                    kept.append(part)
                    lost -= blocks
            self.lost += lost
            self._stop(f"reached capture_max={self.max_bytes} bytes")
            return kept
        return pending

    def _write_failed(self, exc: OSError, pending: list[Chunk], written: int) -> None:
        """Keep the whole blocks among the ``written`` bytes of ``pending`` (a full disk
        takes what fits: the records just before the failure are the interesting ones),
        cut the rest so the file stays valid, and stop."""
        kept = blocks = 0
        left = written
        for chunk in pending:
            if len(chunk) <= left:
                left -= len(chunk)
                kept += len(chunk)
                blocks += _count([chunk])
                continue
            if isinstance(chunk, (Blocks, memoryview)):
                cut, whole = _whole_blocks(chunk, left)
                kept += cut
                blocks += whole
            break
        try:
            os.ftruncate(self._fd, self.size + kept)
            os.lseek(self._fd, self.size + kept, os.SEEK_SET)
            self.size += kept
            self.written += blocks
        except OSError:  # could not cut: at least the last flush's end is valid
            try:
                os.ftruncate(self._fd, self.size)
                os.lseek(self._fd, self.size, os.SEEK_SET)
            except OSError:
                pass
            blocks = 0
        self.lost += max(0, _count(pending) - blocks)
        self._stop(f"write failed: {exc.strerror or exc}")

    def _stop(self, reason: str) -> None:
        if self.accepting:
            self.accepting = False
            self.stop_reason = reason
            log.warning("capture to %s stopped: %s; the file holds everything before "
                        "(%d bytes)", self.path, reason, self.size)
            with self._if_lock:
                taps = list(self._taps)
            for tap in taps:
                tap.switch_off()

    # Lifecycle ------------------------------------------------------------------------------

    def release(self, user: Switchable | None = None) -> None:
        """One interface user is done; the last one flushes and closes the file."""
        with self._if_lock:
            self._users -= 1
            self._taps.discard(user)
            last = self._users <= 0
        if last:
            self.close()

    def close(self) -> None:
        """Flush, stop the flusher and close the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(10)
        self.flush()
        with self._write_lock:
            self.accepting = False
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
        if self.overflowed:
            log.warning("capture to %s: %d record(s) dropped because the writer could not "
                        "keep up", self.path, self.overflowed)
        _forget(self)

    def _abandon(self) -> None:
        """In a forked child: this process does not own the file (nor its flusher)."""
        self._closed = True
        self.accepting = False
        for tap in list(self._taps):
            tap.switch_off()
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = -1

    @property
    def closed(self) -> bool:
        return self._closed


def _count(chunks: list[Chunk]) -> int:
    """Blocks in queued chunks (a plain loop: this runs over every single message)."""
    count = len(chunks)
    for chunk in chunks:
        if type(chunk) is Blocks:
            count += chunk.nblocks - 1
    return count


_BLOCK_LEN = struct.Struct("<4xI")


def _whole_blocks(blocks: Blocks | memoryview, room: int) -> tuple[int, int]:
    """(bytes, blocks) of the leading whole blocks of ``blocks`` that fit in ``room``."""
    at = count = 0
    while at < len(blocks):
        (size,) = _BLOCK_LEN.unpack_from(blocks, at)
        if at + size > room:
            break
        at += size
        count += 1
    return at, count


# Files shared by the Devices of one process ------------------------------------------------

_files: dict[str, CaptureFile] = {}
_files_lock = threading.Lock()


def shared_file(path: str, max_bytes: int | None) -> tuple[CaptureFile, bool]:
    """The open capture file for ``path`` in this process, or a new one; (file, created)."""
    key = os.path.abspath(path)
    with _files_lock:
        f = _files.get(key)
        if f is not None and not f.closed:
            return f, False
        f = CaptureFile(path, max_bytes=max_bytes)
        _files[key] = f
        return f, True


def _forget(f: CaptureFile) -> None:
    with _files_lock:
        for key, value in list(_files.items()):
            if value is f:
                del _files[key]


def flush_all() -> None:
    """Write everything queued in every open capture file (at interpreter exit)."""
    with _files_lock:
        files = list(_files.values())
    for f in files:
        try:
            f.flush()
        except Exception:
            pass


def _after_fork_in_child() -> None:
    global _files_lock
    _files_lock = threading.Lock()
    for f in list(_files.values()):
        f._abandon()
    _files.clear()


atexit.register(flush_all)
os.register_at_fork(after_in_child=_after_fork_in_child)

#: Wall clock in nanoseconds: the capture timestamp source.
now_ns = time.time_ns

__all__ = ["FLUSH_INTERVAL", "MAX_QUEUED", "MAX_QUEUED_BYTES", "WAKE_AT", "WAKE_BYTES",
           "CaptureFile", "Chunk", "expand_path", "flush_all", "open_private", "shared_file"]
