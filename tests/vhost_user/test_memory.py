"""Guest memory: mmap of memory-table regions and bounds-checked address translation."""

from __future__ import annotations

import os

import pytest

from rpmsg.vhost_user.memory import GuestAddressError, GuestMemory, memfd_region
from rpmsg.vhost_user.messages import MemRegion


def test_map_regions_at_mmap_offset_and_translate() -> None:
    fd = memfd_region(0x6000)
    os.pwrite(fd, b"hello", 0x2000 + 0x10)
    mem = GuestMemory.map_regions([MemRegion(0x10_0000, 0x4000, 0x7F00_0000, 0x2000, fd)])
    try:
        assert bytes(mem.view(0x10_0010, 5)) == b"hello"
        mem.view(0x10_0020, 3)[:] = b"abc"
        assert mem.user_to_guest(0x7F00_0100) == 0x10_0100
        with pytest.raises(GuestAddressError):
            mem.view(0x10_3FFF, 2)  # crosses the end
        with pytest.raises(GuestAddressError):
            mem.view(0xFFFF, 1)  # below the start
        with pytest.raises(GuestAddressError):
            mem.user_to_guest(0x10_0000)  # a guest address is not a user address
    finally:
        mem.close()
    with pytest.raises(OSError):
        os.fstat(fd)  # the region descriptor was closed after mapping
    with pytest.raises(GuestAddressError):
        mem.view(0x10_0010, 1)


def test_two_regions_and_written_bytes_reach_the_file() -> None:
    a, b = bytearray(0x1000), bytearray(0x1000)
    mem = GuestMemory.from_buffers([(0x0, a), (0x10_0000, b)])
    mem.view(0x10_0FFC, 4)[:] = b"\1\2\3\4"
    assert b[-4:] == b"\1\2\3\4"
    with pytest.raises(GuestAddressError):
        mem.view(0x0FFF, 2)  # spans the gap
    assert mem.regions == [(0, 0x1000), (0x10_0000, 0x1000)]


def test_unmappable_region_is_typed_error_and_fd_closed() -> None:
    fd = os.open("/dev/null", os.O_RDONLY)
    with pytest.raises(GuestAddressError, match="cannot map"):
        GuestMemory.map_regions([MemRegion(0, 0x1000, 0, 0, fd)])
    with pytest.raises(OSError):
        os.fstat(fd)
