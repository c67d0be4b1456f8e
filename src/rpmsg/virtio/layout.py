"""Where things live in the shared-memory file; the OpenAMP Linux-machine preset.

The preset reproduces ``openamp-system-reference``'s generic Linux machine (spec §7.2):
``/dev/shm/openamp.shm`` of 0x80000 bytes, the 88-byte resource table at 0 (status byte at
0x2C), vring 0 at 0x4000 and vring 1 at 0x8000 (256 entries, alignment 0x1000, notify ids 1
and 2), 512-byte buffers from 0x10000 (256 RX, then TX from 0x30000), kick socket
``/tmp/openamp.event.0``. Every value is a parameter; the preset only sets defaults, and a
larger ring or more buffers move the later parts up instead of overlapping.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from rpmsg.virtio.engine import MIN_BUFFER_SIZE
from rpmsg.virtio.vring import QueueAddrs
from rpmsg.wire.rpmsg import DEFAULT_BUFFER_SIZE, HEADER_SIZE, MIN_MTU
from rpmsg.wire.virtio import (
    VIRTIO_RPMSG_F_NS,
    ResourceTable,
    VdevEntry,
    VringEntry,
    VringGeometry,
    align_up,
    vdev_field_offset,
    vring_field_offset,
)

#: Room kept for the vdev config space an rpmsg device writes (wire.shm_hello.SHM_CAPS).
CONFIG_SPACE = 16
OPENAMP_SHM_NAME = "openamp.shm"
OPENAMP_KICK_SOCKET = "/tmp/openamp.event.0"
OPENAMP_SHM_SIZE = 0x80000
_PAGE = 0x1000


@dataclass(frozen=True)
class ShmLayout:
    """Offsets and sizes of the resource table, both vrings and the buffer pool.

    Addresses are offsets in the file (the OpenAMP machine's "physical address" is the file
    offset). ``rx_buffers``/``tx_buffers`` are per-direction counts, capped at ``num``.
    """

    num: int = 256
    align: int = 0x1000
    buffer_size: int = DEFAULT_BUFFER_SIZE
    rx_buffers: int = 256
    tx_buffers: int = 256
    rsc_offset: int = 0
    vring0: int = 0x4000
    vring_stride: int = 0x4000
    buffer_base: int = 0x10000
    min_size: int = OPENAMP_SHM_SIZE
    vdev_notifyid: int = 0
    vring_notifyids: tuple[int, int] = (1, 2)
    features: int = 1 << VIRTIO_RPMSG_F_NS

    def __post_init__(self) -> None:
        VringGeometry(self.num, self.align)
        if self.buffer_size < MIN_BUFFER_SIZE:
            raise ValueError(f"buffer_size={self.buffer_size} is below {MIN_BUFFER_SIZE}: a "
                             f"buffer holds the {HEADER_SIZE}-byte header and at least a "
                             f"{MIN_MTU}-byte name-service message")
        if self.rx_buffers < 1 or self.tx_buffers < 1:
            raise ValueError("need at least one buffer each way")

    @classmethod
    def openamp(cls, *, num: int = 256, align: int = 0x1000,
                buffer_size: int = DEFAULT_BUFFER_SIZE, buffers: int = 256) -> ShmLayout:
        """The OpenAMP Linux-machine layout, adjusted so larger rings or pools still fit."""
        ring = align_up(VringGeometry(num, align).size, _PAGE)
        stride = max(0x4000, ring)
        base = max(0x10000, align_up(0x4000 + 2 * stride, _PAGE))
        return cls(num=num, align=align, buffer_size=buffer_size, rx_buffers=buffers,
                   tx_buffers=buffers, vring_stride=stride, buffer_base=base)

    # Derived values -------------------------------------------------------------------

    @property
    def vdev_offset(self) -> int:
        return self.rsc_offset + self.resource_table().vdev()[0]

    @property
    def status_offset(self) -> int:
        """Offset of the virtio status byte (0x2C in the preset)."""
        return vdev_field_offset(self.vdev_offset, "status")

    @property
    def gfeatures_offset(self) -> int:
        return vdev_field_offset(self.vdev_offset, "gfeatures")

    def vring_da_offset(self, index: int) -> int:
        return vring_field_offset(self.vdev_offset, index, "da")

    @property
    def vring_das(self) -> tuple[int, int]:
        return self.vring0, self.vring0 + self.vring_stride

    def queues(self) -> tuple[QueueAddrs, QueueAddrs]:
        a, b = self.vring_das
        return (QueueAddrs.from_layout(a, self.num, self.align),
                QueueAddrs.from_layout(b, self.num, self.align))

    def rx_buffer_addrs(self) -> list[int]:
        """Driver receive buffers (queued on vq0): from ``buffer_base`` up."""
        n = min(self.rx_buffers, self.num)
        return [self.buffer_base + i * self.buffer_size for i in range(n)]

    def tx_buffer_addrs(self) -> list[int]:
        """Driver transmit buffers: after the receive buffers (0x30000 in the preset)."""
        start = self.buffer_base + self.rx_buffers * self.buffer_size
        n = min(self.tx_buffers, self.num)
        return [start + i * self.buffer_size for i in range(n)]

    @property
    def size(self) -> int:
        """File size: the preset's 0x80000, or more if the parts need it."""
        end = self.buffer_base + (self.rx_buffers + self.tx_buffers) * self.buffer_size
        return max(self.min_size, align_up(end, _PAGE))

    def resource_table(self, config: bytes = b"") -> ResourceTable:
        """The table the device writes: one rpmsg vdev with two vrings (88 bytes), plus
        ``config`` as the vdev's config space (an rpmsg device's capabilities, if any)."""
        a, b = self.vring0, self.vring0 + self.vring_stride
        n0, n1 = self.vring_notifyids
        vrings = [VringEntry(a, self.align, self.num, n0), VringEntry(b, self.align, self.num, n1)]
        return ResourceTable([VdevEntry(vrings=vrings, notifyid=self.vdev_notifyid,
                                        dfeatures=self.features, config=config)])

    def check(self) -> None:
        """Raise ValueError if table, rings and buffers overlap or leave the file."""
        table = self.resource_table(bytes(CONFIG_SPACE))
        geo = VringGeometry(self.num, self.align)
        parts = [("resource table", self.rsc_offset, len(table.encode()))]
        for i, da in enumerate(self.vring_das):
            parts.append((f"vring {i}", da, geo.size))
        total = (self.rx_buffers + self.tx_buffers) * self.buffer_size
        parts.append(("buffers", self.buffer_base, total))
        parts.sort(key=lambda p: p[1])
        for (n1, a1, s1), (n2, a2, _s2) in itertools.pairwise(parts):
            if a1 + s1 > a2:
                raise ValueError(f"shared memory layout: {n1} at {a1:#x}+{s1:#x} overlaps {n2} "
                                 f"at {a2:#x}")
        last = parts[-1]
        if last[1] + last[2] > self.size:
            raise ValueError(f"shared memory layout: {last[0]} ends past {self.size:#x}")


#: The exact OpenAMP Linux-machine layout of spec §7.2.
OPENAMP_LINUX = ShmLayout()
