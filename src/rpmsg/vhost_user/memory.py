"""The front-end's memory as the back-end sees it: regions of SET_MEM_TABLE mapped with mmap.

:class:`GuestMemory` maps each region's descriptor at its ``mmap_offset`` and translates guest
physical addresses (descriptor addresses) and front-end user addresses (ring addresses of
SET_VRING_ADDR) into memoryviews. Anything outside the regions raises
:class:`GuestAddressError`, so a bad address from the front-end never reaches memory.
"""

from __future__ import annotations

import logging
import mmap
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from rpmsg.errors import ProtocolError
from rpmsg.vhost_user.messages import MemRegion, close_fds
from rpmsg.virtio.shm_files import seal_against_shrink

log = logging.getLogger("rpmsg.vhost_user")
#: Files already reported as unsealable (device, inode): said once each.
_said_unsealed: set[tuple[int, int]] = set()


class GuestAddressError(ProtocolError):
    """An address range given by the front-end lies outside every memory region."""


@dataclass
class _Mapping:
    guest_addr: int
    user_addr: int
    size: int
    map: mmap.mmap | None
    view: memoryview  # the region's bytes, starting at guest_addr


class GuestMemory:
    """Mapped memory regions with bounds-checked address translation.

    ``view(addr, length)`` is the memory translator the device-role virtio engine uses.
    Build it with :meth:`map_regions` (takes ownership of the region descriptors and closes
    them once mapped) or :meth:`from_buffers` (in-process memory, for tests).
    """

    def __init__(self, mappings: Sequence[_Mapping] = ()) -> None:
        self._maps = sorted(mappings, key=lambda m: m.guest_addr)
        self._closed = False

    @classmethod
    def map_regions(cls, regions: Sequence[MemRegion]) -> GuestMemory:
        """mmap every region (read/write, shared); the descriptors are closed in all cases."""
        page = mmap.ALLOCATIONGRANULARITY
        maps: list[_Mapping] = []
        try:
            for i, r in enumerate(regions):
                _seal_and_check(i, r)
                start = r.mmap_offset - r.mmap_offset % page
                delta = r.mmap_offset - start
                try:
                    m = mmap.mmap(r.fd, r.size + delta, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE, offset=start)
                except (OSError, ValueError, OverflowError) as exc:
                    raise GuestAddressError(
                        f"cannot map memory region guest {r.guest_addr:#x} size {r.size:#x} "
                        f"at file offset {r.mmap_offset:#x}: {exc}") from exc
                view = memoryview(m)[delta:delta + r.size]
                maps.append(_Mapping(r.guest_addr, r.user_addr, r.size, m, view))
        except BaseException:
            for mp in maps:
                mp.view.release()
                if mp.map is not None:
                    mp.map.close()
            raise
        finally:
            close_fds(r.fd for r in regions)
        return cls(maps)

    @classmethod
    def from_buffers(cls, regions: Sequence[tuple[int, bytearray | memoryview]],
                     user_offset: int = 0) -> GuestMemory:
        """In-process regions ``(guest_addr, buffer)``; user address = guest + ``user_offset``."""
        return cls([_Mapping(g, g + user_offset, len(b), None, memoryview(b).cast("B"))
                    for g, b in regions])

    @property
    def regions(self) -> list[tuple[int, int]]:
        """``(guest_addr, size)`` of each region, in address order."""
        return [(m.guest_addr, m.size) for m in self._maps]

    def _find(self, addr: int, length: int, user: bool) -> _Mapping:
        if self._closed:
            raise GuestAddressError("guest memory is no longer mapped")
        if length < 0 or addr < 0:
            raise GuestAddressError(f"invalid range {addr:#x}+{length}")
        for m in self._maps:
            base = m.user_addr if user else m.guest_addr
            if base <= addr and addr + length <= base + m.size:
                return m
        kind = "user" if user else "guest"
        raise GuestAddressError(
            f"{kind} address range [{addr:#x}, {addr + length:#x}) is outside the memory "
            f"regions {', '.join(f'[{m.guest_addr:#x}+{m.size:#x}]' for m in self._maps)}")

    def view(self, addr: int, length: int) -> memoryview:
        """Writable view of ``length`` bytes at guest physical address ``addr``."""
        m = self._find(addr, length, user=False)
        off = addr - m.guest_addr
        return m.view[off:off + length]

    def user_to_guest(self, addr: int, length: int = 1) -> int:
        """Translate a front-end user address (SET_VRING_ADDR) to a guest physical address."""
        m = self._find(addr, length, user=True)
        return addr - m.user_addr + m.guest_addr

    def close(self) -> None:
        """Unmap every region; idempotent.

        Views handed out must have been released; if one is still alive the mapping stays
        until it is garbage-collected (mmap refuses to close under exported buffers).
        """
        if self._closed:
            return
        self._closed = True
        for m in self._maps:
            m.view.release()
            if m.map is not None:
                try:
                    m.map.close()
                except BufferError:
                    pass  # a view is still exported; the GC unmaps it later
        self._maps = []


def _seal_and_check(index: int, region: MemRegion) -> None:
    """Keep the front-end from cutting a region short under us, where the kernel allows it.

    A memfd is sealed against shrinking (``F_SEAL_SHRINK``); then the size check below cannot
    race, and touching the mapping can never raise SIGBUS. Other files (UML's memory file,
    hugetlbfs) cannot be sealed: said once per file at INFO, the size still checked.
    """
    why = seal_against_shrink(region.fd)
    st = os.fstat(region.fd)
    if why is not None and (st.st_dev, st.st_ino) not in _said_unsealed:
        _said_unsealed.add((st.st_dev, st.st_ino))
        log.info("vhost-user: memory region %d (guest %#x, %#x bytes) cannot be sealed "
                 "against shrinking (%s): a front-end that truncates it can crash this "
                 "process with SIGBUS, which Python cannot catch (see docs/security.md)",
                 index, region.guest_addr, region.size, why)
    if stat.S_ISREG(st.st_mode) and region.mmap_offset + region.size > st.st_size:
        raise GuestAddressError(
            f"memory region {index} (guest {region.guest_addr:#x}) ends at file offset "
            f"{region.mmap_offset + region.size:#x}, past the end of its file "
            f"({st.st_size:#x} bytes)")


def memfd_region(size: int, name: str = "rpmsg-guest", *, sealable: bool = True) -> int:
    """A sized anonymous memory file, as a front-end would share (tests, fake front-ends);
    sealable as QEMU's memfd backend makes it, unless ``sealable`` is false."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC | (os.MFD_ALLOW_SEALING if sealable else 0))
    os.ftruncate(fd, size)
    return fd
