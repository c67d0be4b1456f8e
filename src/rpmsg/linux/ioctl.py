"""The rpmsg ioctl request numbers, computed from the kernel's ``_IOC`` encoding.

Numbers are derived, not copied: ``include/uapi/asm-generic/ioctl.h`` packs
``dir << 30 | size << 16 | type << 8 | nr`` (x86-64, arm64, riscv, ...). A few older
architectures (powerpc, mips, sparc, alpha) use 3 direction bits and 13 size bits with other
direction values (``arch/*/include/uapi/asm/ioctl.h``); :func:`encoding_for` picks the right one.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

from rpmsg.wire.linux import ENDPOINT_INFO_SIZE

#: ``RPMSG_IOCTL_MAGIC`` / the ioctl "type" byte of ``include/uapi/linux/rpmsg.h``.
RPMSG_MAGIC = 0xB5
#: ``sizeof(int)`` on every Linux ABI, the argument of the flow-control ioctls.
INT_SIZE = 4


@dataclass(frozen=True)
class IocEncoding:
    """One architecture family's ``_IOC`` bit layout."""

    name: str
    size_bits: int
    none: int
    write: int
    read: int

    nr_bits: int = 8
    type_bits: int = 8

    def ioc(self, direction: int, type_: int, nr: int, size: int) -> int:
        """``_IOC(dir, type, nr, size)``."""
        if not 0 <= size < (1 << self.size_bits):
            raise ValueError(f"ioctl argument size {size} does not fit {self.size_bits} bits")
        size_shift = self.nr_bits + self.type_bits
        dir_shift = size_shift + self.size_bits
        return (direction << dir_shift) | (size << size_shift) | (type_ << self.nr_bits) | nr

    def io(self, type_: int, nr: int) -> int:
        """``_IO(type, nr)``: no argument."""
        return self.ioc(self.none, type_, nr, 0)

    def iow(self, type_: int, nr: int, size: int) -> int:
        """``_IOW(type, nr, T)``: userspace writes a ``T`` of ``size`` bytes."""
        return self.ioc(self.write, type_, nr, size)

    def ior(self, type_: int, nr: int, size: int) -> int:
        """``_IOR(type, nr, T)``: userspace reads a ``T`` of ``size`` bytes."""
        return self.ioc(self.read, type_, nr, size)


#: asm-generic: 2 direction bits, 14 size bits, NONE 0, WRITE 1, READ 2.
GENERIC = IocEncoding("asm-generic", size_bits=14, none=0, write=1, read=2)
#: powerpc, mips, sparc, alpha: 3 direction bits, 13 size bits, NONE 1, READ 2, WRITE 4.
DIR3 = IocEncoding("dir3", size_bits=13, none=1, write=4, read=2)

_DIR3_MACHINES = ("ppc", "powerpc", "mips", "sparc", "alpha")


def encoding_for(machine: str) -> IocEncoding:
    """The ``_IOC`` layout used by ``machine`` (a ``platform.machine()`` string)."""
    return DIR3 if machine.lower().startswith(_DIR3_MACHINES) else GENERIC


@dataclass(frozen=True)
class RpmsgIoctls:
    """The six rpmsg ioctl request numbers for one encoding."""

    create_ept: int
    destroy_ept: int
    create_dev: int
    release_dev: int
    get_outgoing_flowcontrol: int
    set_incoming_flowcontrol: int

    @classmethod
    def build(cls, enc: IocEncoding) -> RpmsgIoctls:
        info = ENDPOINT_INFO_SIZE
        return cls(
            create_ept=enc.iow(RPMSG_MAGIC, 1, info),
            destroy_ept=enc.io(RPMSG_MAGIC, 2),
            create_dev=enc.iow(RPMSG_MAGIC, 3, info),
            release_dev=enc.iow(RPMSG_MAGIC, 4, info),
            # Both flow-control ioctls are declared _IOR(.., int) in the uapi header, although
            # SET takes its argument by value (spec linux-chardev.md §5.1).
            get_outgoing_flowcontrol=enc.ior(RPMSG_MAGIC, 5, INT_SIZE),
            set_incoming_flowcontrol=enc.ior(RPMSG_MAGIC, 6, INT_SIZE),
        )


IOCTLS = RpmsgIoctls.build(encoding_for(platform.machine()))

RPMSG_CREATE_EPT_IOCTL = IOCTLS.create_ept
RPMSG_DESTROY_EPT_IOCTL = IOCTLS.destroy_ept
RPMSG_CREATE_DEV_IOCTL = IOCTLS.create_dev
RPMSG_RELEASE_DEV_IOCTL = IOCTLS.release_dev
RPMSG_GET_OUTGOING_FLOWCONTROL = IOCTLS.get_outgoing_flowcontrol
RPMSG_SET_INCOMING_FLOWCONTROL = IOCTLS.set_incoming_flowcontrol
