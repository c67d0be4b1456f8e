"""Shared memory seen through guest addresses: the translator the virtio engines read and write.

Every address a peer writes into a ring (``desc.addr``, a vring ``da``) is translated here and
bounds-checked; an address range outside the memory raises :class:`MemoryRangeError`, a
:class:`~rpmsg.errors.ProtocolError`, never an ``IndexError`` from deep inside. Any object with
``view(addr, length) -> memoryview`` that raises a ``ProtocolError`` subclass out of range can
stand in (the vhost-user backend passes its own multi-region translator).
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
from typing import Protocol

from rpmsg.errors import NotAvailableError, ProtocolError


class MemoryRangeError(ProtocolError):
    """A guest address range lies (partly) outside the shared memory."""


class Memory(Protocol):
    """What the virtio engines need from shared memory: bounds-checked views by address."""

    def view(self, addr: int, length: int) -> memoryview:
        """A writable view of ``[addr, addr + length)``; MemoryRangeError if out of range."""
        ...


class FlatMemory:
    """One contiguous writable buffer (bytearray, mmap) mapped at guest address ``base``.

    The OpenAMP Linux machine uses ``base = 0``: a "physical address" is a file offset.
    """

    def __init__(self, buffer: bytearray | mmap.mmap | memoryview, base: int = 0) -> None:
        self.mv = memoryview(buffer).cast("B")
        if self.mv.readonly:
            raise ValueError("shared memory must be writable")
        self.base = base
        self.size = len(self.mv)

    def offset(self, addr: int, length: int) -> int:
        """Offset into :attr:`mv` of ``[addr, addr + length)``; MemoryRangeError if outside."""
        off = addr - self.base
        if off < 0 or length < 0 or off + length > self.size:
            raise MemoryRangeError(
                f"address range {addr:#x}+{length:#x} is outside the shared memory "
                f"[{self.base:#x}, {self.base + self.size:#x})")
        return off

    def view(self, addr: int, length: int) -> memoryview:
        off = self.offset(addr, length)
        return self.mv[off : off + length]

    def release(self) -> None:
        """Drop the view on the buffer (so an mmap can be closed)."""
        self.mv.release()


def shm_path(name: str) -> str:
    """Filesystem path of a POSIX shared-memory object (``shm_open`` name) or a file path."""
    if name.startswith("/") and os.path.dirname(name) != "/":
        return name  # an absolute path with directories: a plain file
    return os.path.join("/dev/shm", name.lstrip("/"))


class SharedFile:
    """A shared-memory file (``/dev/shm/NAME`` or any path) mapped read-write.

    ``create=True`` makes the file if missing and extends it to ``size`` (under ``flock``, as
    libmetal does); :attr:`created` says whether this object made it, so that :meth:`close`
    only unlinks what it created when asked to.
    """

    def __init__(self, path: str, size: int, *, create: bool) -> None:
        self.path = path
        self.created = False
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        if create and not os.path.exists(path):
            try:
                fd = os.open(path, flags | os.O_EXCL, 0o600)
                self.created = True
            except FileExistsError:
                fd = os.open(path, flags, 0o600)
        else:
            try:
                fd = os.open(path, flags, 0o600)
            except FileNotFoundError:
                raise NotAvailableError(f"shared memory {path} does not exist") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                have = os.fstat(fd).st_size
                if have < size:
                    if not create:
                        raise NotAvailableError(
                            f"shared memory {path} is {have} bytes, {size} needed")
                    os.ftruncate(fd, size)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
            self.map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(fd)
            if self.created:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            raise
        self.fd = fd
        self.size = size
        self.memory = FlatMemory(self.map)

    def close(self, unlink: bool = False) -> None:
        """Unmap and close; with ``unlink`` also remove the file. Idempotent."""
        if self.fd < 0:
            return
        self.memory.release()
        try:
            self.map.close()
        except BufferError:  # a zero-copy view is still exported; the mapping dies with it
            pass
        os.close(self.fd)
        self.fd = -1
        if unlink:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
