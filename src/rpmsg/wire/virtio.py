"""Virtio split-ring entries, ring geometry and the remoteproc resource table.

Facts: ``shared/spec/rpmsg-virtio.md`` §3 (split ring) and §4 (resource table, vdev entry).
Everything is little-endian: remoteproc never negotiates VERSION_1 and all relevant CPUs are LE.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rpmsg.wire.layout import Buffer, Layout

VIRTIO_ID_RPMSG = 7
#: Feature bit: the device supports the name service (``dfeatures = 0x1``).
VIRTIO_RPMSG_F_NS = 0

# Descriptor flags.
VRING_DESC_F_NEXT = 1
VRING_DESC_F_WRITE = 2
VRING_DESC_F_INDIRECT = 4
#: ``avail.flags``: the driver asks the device not to interrupt it when returning buffers.
VRING_AVAIL_F_NO_INTERRUPT = 1
#: ``used.flags``: the device asks the driver not to kick it when adding buffers.
VRING_USED_F_NO_NOTIFY = 1


class VirtioStatus:
    """Bits of the virtio device status byte."""

    RESET = 0
    ACKNOWLEDGE = 1
    DRIVER = 2
    DRIVER_OK = 4
    FEATURES_OK = 8
    NEEDS_RESET = 0x40
    FAILED = 0x80


VRING_DESC = Layout("vring_desc", [("addr", "Q"), ("len", "I"), ("flags", "H"), ("next", "H")])
#: Header shared by the avail and used rings: flags then the free-running index.
VRING_AVAIL = Layout("vring_avail", [("flags", "H"), ("idx", "H")])
VRING_AVAIL_ELEM = Layout("vring_avail_elem", [("id", "H")])
VRING_USED = Layout("vring_used", [("flags", "H"), ("idx", "H")])
VRING_USED_ELEM = Layout("vring_used_elem", [("id", "I"), ("len", "I")])


def align_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align


@dataclass(frozen=True)
class VringGeometry:
    """Where the three parts of a split ring of ``num`` entries live, for alignment ``align``."""

    num: int
    align: int

    def __post_init__(self) -> None:
        if self.num <= 0 or self.num & (self.num - 1) or self.num > 32768:
            raise ValueError(f"vring size {self.num} is not a power of two in 1..32768")
        if self.align <= 0 or self.align & (self.align - 1):
            raise ValueError(f"vring alignment {self.align} is not a power of two")

    @property
    def desc_offset(self) -> int:
        return 0

    @property
    def avail_offset(self) -> int:
        return VRING_DESC.size * self.num

    @property
    def avail_ring_offset(self) -> int:
        return self.avail_offset + VRING_AVAIL.size

    @property
    def used_event_offset(self) -> int:
        return self.avail_ring_offset + 2 * self.num

    @property
    def used_offset(self) -> int:
        return align_up(VRING_DESC.size * self.num + 6 + 2 * self.num, self.align)

    @property
    def used_ring_offset(self) -> int:
        return self.used_offset + VRING_USED.size

    @property
    def size(self) -> int:
        """Total bytes: ``align_up(18N + 6, A) + 8N + 6``."""
        return self.used_offset + VRING_USED.size + VRING_USED_ELEM.size * self.num + 2


# Resource table ------------------------------------------------------------------------------

RSC_CARVEOUT = 0
RSC_DEVMEM = 1
RSC_TRACE = 2
RSC_VDEV = 3

RSC_TABLE_HEADER = Layout(
    "resource_table", [("ver", "I"), ("num", "I"), ("reserved0", "I"), ("reserved1", "I")]
)
RSC_OFFSET = Layout("resource_table_offset", [("offset", "I")])
FW_RSC_VDEV = Layout(
    "fw_rsc_vdev",
    [
        ("type", "I"),
        ("id", "I"),
        ("notifyid", "I"),
        ("dfeatures", "I"),
        ("gfeatures", "I"),
        ("config_len", "I"),
        ("status", "B"),
        ("num_of_vrings", "B"),
        ("reserved", "H"),
    ],
)
FW_RSC_VDEV_VRING = Layout(
    "fw_rsc_vdev_vring",
    [("da", "I"), ("align", "I"), ("num", "I"), ("notifyid", "I"), ("reserved", "I")],
)
#: Linux accepts at most this many entries in a resource table we parse (sanity bound).
MAX_RSC_ENTRIES = 64


@dataclass
class VringEntry:
    """A vring slot of the vdev entry: device address, alignment, size, notify id."""

    da: int
    align: int
    num: int
    notifyid: int = 0
    reserved: int = 0

    def encode(self) -> bytes:
        return FW_RSC_VDEV_VRING.pack(self.da, self.align, self.num, self.notifyid, self.reserved)


@dataclass
class VdevEntry:
    """The ``RSC_VDEV`` entry that describes the rpmsg virtio device and its two vrings."""

    vrings: list[VringEntry]
    id: int = VIRTIO_ID_RPMSG
    notifyid: int = 0
    dfeatures: int = 1 << VIRTIO_RPMSG_F_NS
    gfeatures: int = 0
    status: int = 0
    config: bytes = b""

    @property
    def size(self) -> int:
        return FW_RSC_VDEV.size + FW_RSC_VDEV_VRING.size * len(self.vrings) + len(self.config)

    def encode(self) -> bytes:
        head = FW_RSC_VDEV.pack(RSC_VDEV, self.id, self.notifyid, self.dfeatures,
                                self.gfeatures, len(self.config), self.status,
                                len(self.vrings), 0)
        return head + b"".join(v.encode() for v in self.vrings) + self.config


@dataclass
class RawEntry:
    """A resource entry this library does not interpret, kept byte for byte."""

    type: int
    body: bytes = b""

    @property
    def size(self) -> int:
        return 4 + len(self.body)

    def encode(self) -> bytes:
        return RSC_OFFSET.pack(self.type) + self.body


@dataclass
class ResourceTable:
    """A version-1 remoteproc resource table: header, offsets, entries."""

    entries: list[VdevEntry | RawEntry] = field(default_factory=list)

    @property
    def header_size(self) -> int:
        return RSC_TABLE_HEADER.size + RSC_OFFSET.size * len(self.entries)

    def entry_offsets(self) -> list[int]:
        """Byte offset of each entry from the start of the table, entries packed in order."""
        offsets = []
        pos = self.header_size
        for entry in self.entries:
            offsets.append(pos)
            pos += entry.size
        return offsets

    def encode(self) -> bytes:
        offsets = self.entry_offsets()
        head = RSC_TABLE_HEADER.pack(1, len(self.entries), 0, 0)
        head += b"".join(RSC_OFFSET.pack(o) for o in offsets)
        return head + b"".join(e.encode() for e in self.entries)

    def vdev(self) -> tuple[int, VdevEntry]:
        """The first rpmsg vdev entry and its offset; LookupError if there is none."""
        for off, entry in zip(self.entry_offsets(), self.entries, strict=True):
            if isinstance(entry, VdevEntry) and entry.id == VIRTIO_ID_RPMSG:
                return off, entry
        raise LookupError("resource table has no rpmsg vdev entry")

    @classmethod
    def decode(cls, data: Buffer) -> ResourceTable:
        """Parse a table, bounds-checking every offset and count against ``len(data)``.

        The returned table re-encodes to the same bytes when entries are packed in order
        without gaps, which is how remoteproc firmware lays them out.
        """
        ver, num, _r0, _r1 = RSC_TABLE_HEADER.unpack(data)
        if ver != 1:
            raise RSC_TABLE_HEADER.error("ver", f"version {ver} is not 1")
        if num > MAX_RSC_ENTRIES:
            raise RSC_TABLE_HEADER.error("num", f"{num} entries is more than {MAX_RSC_ENTRIES}")
        hdr_end = RSC_TABLE_HEADER.size + RSC_OFFSET.size * num
        if hdr_end > len(data):
            raise RSC_OFFSET.error("offset", f"the {num} entry offsets need {hdr_end} bytes, "
                                   f"table is {len(data)}", RSC_TABLE_HEADER.size)
        offsets = [RSC_OFFSET.unpack(data, RSC_TABLE_HEADER.size + 4 * i)[0] for i in range(num)]
        entries: list[VdevEntry | RawEntry] = []
        for i, off in enumerate(offsets):
            where = RSC_TABLE_HEADER.size + 4 * i
            if off < hdr_end or off + 4 > len(data):
                raise RSC_OFFSET.error("offset", f"entry {i} offset {off} is outside the "
                                       f"table body [{hdr_end}, {len(data)})", where)
            later = [o for o in offsets if o > off]
            end = min(later) if later else len(data)
            (kind,) = RSC_OFFSET.unpack(data, off)
            if kind == RSC_VDEV:
                entries.append(_decode_vdev(data, off, end))
            else:
                entries.append(RawEntry(kind, bytes(data[off + 4 : end])))
        return cls(entries)


def _decode_vdev(data: Buffer, off: int, end: int) -> VdevEntry:
    (_t, vid, notifyid, dfeat, gfeat, config_len, status, nvrings, reserved) = FW_RSC_VDEV.unpack(
        data[:end], off
    )
    if reserved != 0:
        raise FW_RSC_VDEV.error("reserved", f"must be 0, is {reserved:#x}", off)
    vrings_at = off + FW_RSC_VDEV.size
    need = vrings_at + FW_RSC_VDEV_VRING.size * nvrings + config_len
    if need > end:
        raise FW_RSC_VDEV.error(
            "num_of_vrings" if vrings_at + FW_RSC_VDEV_VRING.size * nvrings > end else "config_len",
            f"{nvrings} vrings and {config_len} config bytes end at {need}, past the entry end "
            f"{end}", off)
    vrings = []
    for i in range(nvrings):
        da, align, num, vnotify, vres = FW_RSC_VDEV_VRING.unpack(
            data, vrings_at + i * FW_RSC_VDEV_VRING.size)
        vrings.append(VringEntry(da, align, num, vnotify, vres))
    cfg_at = vrings_at + FW_RSC_VDEV_VRING.size * nvrings
    config = bytes(data[cfg_at : cfg_at + config_len])
    return VdevEntry(vrings=vrings, id=vid, notifyid=notifyid, dfeatures=dfeat,
                     gfeatures=gfeat, status=status, config=config)


def vdev_field_offset(vdev_offset: int, name: str) -> int:
    """Absolute offset of a vdev field (e.g. ``status``) given the entry's table offset."""
    return vdev_offset + FW_RSC_VDEV.offset(name)


def vring_field_offset(vdev_offset: int, index: int, name: str) -> int:
    """Absolute offset of field ``name`` of vring ``index`` of the vdev at ``vdev_offset``."""
    return (vdev_offset + FW_RSC_VDEV.size + index * FW_RSC_VDEV_VRING.size
            + FW_RSC_VDEV_VRING.offset(name))
