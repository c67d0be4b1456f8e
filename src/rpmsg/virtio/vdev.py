"""The resource table's rpmsg vdev entry in shared memory: where the status handshake happens.

The device writes a fresh table (status 0); the driver reads it, writes the negotiated
features and the vring addresses it chose, fills the rings and sets ``DRIVER_OK``; either side
resets the status to end a session (spec §4). :class:`VdevTable` is that handshake over one
memory, without I/O of its own: every value read from the table is checked, and a bad one is
a :class:`~rpmsg.errors.ProtocolError` naming it.
"""

from __future__ import annotations

from rpmsg.errors import ProtocolError
from rpmsg.virtio.layout import ShmLayout
from rpmsg.virtio.memory import FlatMemory
from rpmsg.virtio.vring import QueueAddrs
from rpmsg.wire.virtio import (
    FW_RSC_VDEV,
    ResourceTable,
    VdevEntry,
    VirtioStatus,
    vring_field_offset,
)

#: Bytes of memory handed to the resource-table parser.
RSC_MAX = 0x1000
#: A vring ``da`` of this value asks the driver to choose the address (spec §4.1).
ANY_DA = 0xFFFFFFFF
#: Status of a driver that has found the device and knows how to drive it (before OK).
DRIVER_FOUND = VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER
#: Status of a driver that has set up the rings: the device may use them.
DRIVER_READY = DRIVER_FOUND | VirtioStatus.DRIVER_OK


def parse_vdev(data: bytes) -> tuple[int, VdevEntry]:
    """(offset, entry) of the rpmsg vdev in a resource table's bytes; ProtocolError if none."""
    table = ResourceTable.decode(data)
    try:
        return table.vdev()
    except LookupError:
        raise ProtocolError("resource table has no rpmsg vdev entry") from None


class VdevTable:
    """The rpmsg vdev entry of the resource table at ``layout.rsc_offset`` in ``memory``."""

    def __init__(self, memory: FlatMemory, layout: ShmLayout) -> None:
        self.memory = memory
        self.layout = layout
        #: Where the vdev entry is: the layout's place until :meth:`read` found the real one.
        self.vdev_at = layout.vdev_offset

    @property
    def status_at(self) -> int:
        return self.vdev_at + FW_RSC_VDEV.offset("status")

    def write_fresh(self, table: ResourceTable | None = None) -> None:
        """Device: write the layout's table (status 0) before any driver may use it."""
        raw = (table or self.layout.resource_table()).encode()
        at = self.layout.rsc_offset
        self.memory.view(at, len(raw))[:] = raw
        self.vdev_at = self.layout.vdev_offset

    def read(self) -> VdevEntry:
        """Parse the table and return its rpmsg vdev entry (remembering where it is)."""
        at = self.layout.rsc_offset
        vdev_off, vdev = parse_vdev(bytes(self.memory.view(at, min(RSC_MAX,
                                                                   self.memory.size - at))))
        self.vdev_at = at + vdev_off
        return vdev

    def queues(self, vdev: VdevEntry, *, allocate: bool) -> list[QueueAddrs]:
        """The two vrings of ``vdev``; with ``allocate`` (driver) a ``da`` of ANY gets the
        layout's address, written back into the table as Linux does (spec §4.1)."""
        if len(vdev.vrings) != 2:
            raise ProtocolError(f"rpmsg vdev has {len(vdev.vrings)} vrings, 2 expected")
        queues = []
        for i, vr in enumerate(vdev.vrings):
            da = vr.da
            if da == ANY_DA:
                if not allocate:
                    raise ProtocolError(f"vring {i} has no device address (da = ANY)")
                da = self.layout.vring_das[i]
                at = vring_field_offset(self.vdev_at, i, "da")
                self.memory.mv[at : at + 4] = da.to_bytes(4, "little")
            try:
                queues.append(QueueAddrs.from_layout(da, vr.num, vr.align))
            except ValueError as exc:
                raise ProtocolError(f"vring {i}: {exc}") from None
        return queues

    def status(self) -> int:
        return int(self.memory.mv[self.status_at])

    def set_status(self, value: int) -> None:
        self.memory.mv[self.status_at] = value

    def driver_ok(self) -> bool:
        return bool(self.memory.mv[self.status_at] & VirtioStatus.DRIVER_OK)

    def write_features(self, features: int) -> None:
        """Driver: the negotiated feature set (``gfeatures``), before DRIVER_OK."""
        at = self.vdev_at + FW_RSC_VDEV.offset("gfeatures")
        self.memory.mv[at : at + 4] = features.to_bytes(4, "little")


__all__ = ["ANY_DA", "DRIVER_FOUND", "DRIVER_READY", "RSC_MAX", "VdevTable", "parse_vdev"]
