"""Shared memory seen through guest addresses: the translator the virtio engines read and write.

Every address a peer writes into a ring (``desc.addr``, a vring ``da``) is translated here and
bounds-checked; an address range outside the memory raises :class:`MemoryRangeError`, a
:class:`~rpmsg.errors.ProtocolError`, never an ``IndexError`` from deep inside. Any object with
``view(addr, length) -> memoryview`` that raises a ``ProtocolError`` subclass out of range can
stand in (the vhost-user backend passes its own multi-region translator).
"""

from __future__ import annotations

import mmap
from typing import Protocol

from rpmsg.errors import ProtocolError


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
