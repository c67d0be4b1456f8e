"""The split virtqueue in both roles, as plain classes over three memoryviews (no I/O).

:class:`DriverRing` fills the avail ring and reaps the used ring; :class:`DeviceRing` pops the
avail ring and pushes the used ring. Indices are free-running u16; notification suppression is
flag-based (``VRING_AVAIL_F_NO_INTERRUPT``, ``VRING_USED_F_NO_NOTIFY``), no event-idx. Every
value read from the peer's half of the ring is checked and a bad one raises :class:`RingError`
naming the ring, the index and the value. Layout facts: ``shared/spec/rpmsg-virtio.md`` §3.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass

from rpmsg.errors import ProtocolError
from rpmsg.virtio.memory import FlatMemory, Memory
from rpmsg.wire.virtio import (
    VRING_AVAIL,
    VRING_AVAIL_ELEM,
    VRING_AVAIL_F_NO_INTERRUPT,
    VRING_DESC,
    VRING_DESC_F_INDIRECT,
    VRING_DESC_F_NEXT,
    VRING_USED_ELEM,
    VRING_USED_F_NO_NOTIFY,
    VringGeometry,
)

_DESC = VRING_DESC.struct
_U16 = VRING_AVAIL_ELEM.struct  # one u16 ring slot; also used for the flags and idx fields
_USED_ELEM = VRING_USED_ELEM.struct
_DESC_SIZE = VRING_DESC.size
_USED_ELEM_SIZE = VRING_USED_ELEM.size
_FLAGS_AT = VRING_AVAIL.offset("flags")  # same offsets in the used ring header
_IDX_AT = VRING_AVAIL.offset("idx")
_RING_AT = VRING_AVAIL.size
_BAD_DESC_FLAGS = VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT

_fence_lock = threading.Lock()


def full_barrier() -> None:
    """A full memory barrier between a flag store and the index load that follows it.

    Python has no fence primitive; acquiring a lock is an atomic read-modify-write, which is a
    full barrier on x86 and arm64. It keeps "re-enable notifications, then re-check the ring"
    from missing the peer's last update (the classic lost-wakeup race).
    """
    _fence_lock.acquire()
    _fence_lock.release()


class RingError(ProtocolError):
    """The peer wrote something impossible into a ring (index, id, length, flags)."""


@dataclass(frozen=True)
class QueueAddrs:
    """Where one virtqueue lives in guest memory: size and the three part addresses.

    vhost-user gives the three addresses separately (``SET_VRING_ADDR``); remoteproc gives one
    ``da`` plus an alignment (:meth:`from_layout`).
    """

    num: int
    desc: int
    avail: int
    used: int

    @classmethod
    def from_layout(cls, da: int, num: int, align: int) -> QueueAddrs:
        """The legacy contiguous layout at ``da`` for ``num`` entries and alignment ``align``."""
        geo = VringGeometry(num, align)
        return cls(num, da + geo.desc_offset, da + geo.avail_offset, da + geo.used_offset)

    def views(self, memory: Memory) -> tuple[memoryview, memoryview, memoryview]:
        """Bounds-checked views of the descriptor table, avail ring and used ring."""
        VringGeometry(self.num, 1)  # validates num (power of two, 1..32768)
        return (memory.view(self.desc, _DESC_SIZE * self.num),
                memory.view(self.avail, _RING_AT + 2 * self.num + 2),
                memory.view(self.used, _RING_AT + _USED_ELEM_SIZE * self.num + 2))


class _Ring:
    """State common to both roles: the three views, size and a name for error messages."""

    def __init__(self, name: str, num: int, desc: memoryview, avail: memoryview,
                 used: memoryview) -> None:
        VringGeometry(num, 1)
        if (len(desc) < _DESC_SIZE * num or len(avail) < _RING_AT + 2 * num + 2
                or len(used) < _RING_AT + _USED_ELEM_SIZE * num + 2):
            raise ValueError(f"{name}: ring views too small for {num} entries")
        self.name = name
        self.num = num
        self.mask = num - 1
        self.desc = desc
        self.avail = avail
        self.used = used
        # u16 views: index, flag and ring-slot accesses become single aligned 2-byte loads and
        # stores (struct's little-endian codes go byte by byte, so a peer could see a torn
        # index). The rings are little-endian, so this needs a little-endian host.
        if sys.byteorder != "little":
            raise NotImplementedError("virtio rings need a little-endian host")
        self.avail16 = avail[: _RING_AT + 2 * num + 2].cast("H")
        self.used16 = used[:_RING_AT].cast("H")

    def read_desc(self, index: int) -> tuple[int, int, int, int]:
        """(addr, len, flags, next) of descriptor ``index``."""
        result: tuple[int, int, int, int] = _DESC.unpack_from(self.desc, index * _DESC_SIZE)
        return result

    def error(self, what: str) -> RingError:
        return RingError(f"{self.name}: {what}")


class DriverRing(_Ring):
    """Driver side of a split ring: adds buffers to avail, reaps returned ones from used.

    The driver owns the descriptor table; a free list keeps the descriptors not in flight.
    ``inflight[i]`` holds the length we offered for head ``i``, or -1 when ``i`` is free.
    """

    def __init__(self, name: str, num: int, desc: memoryview, avail: memoryview,
                 used: memoryview) -> None:
        super().__init__(name, num, desc, avail, used)
        self.reset()

    def reset(self) -> None:
        """Zero the ring memory and start over (remoteproc and OpenAMP zero rings at init)."""
        self.desc[: _DESC_SIZE * self.num] = bytes(_DESC_SIZE * self.num)
        self.avail[: len(self.avail)] = bytes(len(self.avail))
        self.used[: len(self.used)] = bytes(len(self.used))
        self.free = list(range(self.num - 1, -1, -1))  # pop() gives 0, 1, 2, ...
        self.inflight = [-1] * self.num
        self.addrs = [0] * self.num
        self.avail_idx = 0
        self.last_used = 0

    @property
    def num_free(self) -> int:
        return len(self.free)

    def add(self, addr: int, length: int, flags: int) -> int:
        """Write one descriptor and its avail slot (not yet visible); return the head.

        The caller checks :attr:`num_free` first; publishing is :meth:`publish`.
        """
        head = self.free.pop()
        _DESC.pack_into(self.desc, head * _DESC_SIZE, addr, length, flags, 0)
        self.avail16[2 + (self.avail_idx & self.mask)] = head
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        self.inflight[head] = length
        self.addrs[head] = addr
        return head

    def add_many(self, items: list[tuple[int, int]], flags: int) -> list[int]:
        """:meth:`add` for each ``(addr, length)``, in order (the caller checked room);
        returns the heads used."""
        free, desc, avail16 = self.free, self.desc, self.avail16
        inflight, addrs, mask = self.inflight, self.addrs, self.mask
        pack_desc = _DESC.pack_into
        idx = self.avail_idx
        heads = []
        for addr, length in items:
            head = free.pop()
            heads.append(head)
            pack_desc(desc, head * _DESC_SIZE, addr, length, flags, 0)
            avail16[2 + (idx & mask)] = head
            idx = (idx + 1) & 0xFFFF
            inflight[head] = length
            addrs[head] = addr
        self.avail_idx = idx
        return heads

    def publish(self) -> None:
        """Make every added buffer visible to the device (one 2-byte store of avail.idx)."""
        self.avail16[1] = self.avail_idx

    def read_avail_idx(self) -> int:
        """The avail index as published in ring memory."""
        return int(self.avail16[1])

    def used_pending(self) -> bool:
        """Whether the device returned buffers not reaped yet."""
        return bool(self.used16[1] != self.last_used)

    def reap(self, limit: int = 0) -> list[tuple[int, int, int, int]]:
        """Take returned buffers from the used ring: (head, used len, offered len, addr).

        ``offered len`` and ``addr`` are what we wrote, remembered here (never read back from
        the shared descriptor table, which the device could have changed).

        Checks that the used index did not jump past what is in flight and that every id is
        a head we offered and have not got back yet.
        """
        used_idx = self.used16[1]
        pending = (used_idx - self.last_used) & 0xFFFF
        if not pending:
            return []
        in_flight = self.num - len(self.free)
        if pending > in_flight:
            raise self.error(f"used.idx jumped to {used_idx} from {self.last_used}: "
                             f"{pending} entries but only {in_flight} buffers in flight")
        if limit and pending > limit:
            pending = limit
        out = []
        last = self.last_used
        mask = self.mask
        used = self.used
        inflight = self.inflight
        for _ in range(pending):
            slot = last & mask
            head, length = _USED_ELEM.unpack_from(used, _RING_AT + _USED_ELEM_SIZE * slot)
            if head >= self.num:
                raise self.error(f"used.ring[{slot}].id = {head} is not a descriptor index "
                                 f"(ring has {self.num})")
            offered = inflight[head]
            if offered < 0:
                raise self.error(f"used.ring[{slot}].id = {head} is not a buffer in flight")
            inflight[head] = -1
            self.free.append(head)
            out.append((head, length, offered, self.addrs[head]))
            last = (last + 1) & 0xFFFF
        self.last_used = last
        return out

    def peer_wants_notify(self) -> bool:
        """False when the device set ``VRING_USED_F_NO_NOTIFY`` (no kick needed)."""
        return not self.used16[0] & VRING_USED_F_NO_NOTIFY

    def set_interrupts(self, enabled: bool) -> None:
        """Ask the device to interrupt us on returned buffers (or not: NO_INTERRUPT)."""
        self.avail16[0] = 0 if enabled else VRING_AVAIL_F_NO_INTERRUPT


class DeviceRing(_Ring):
    """Device side of a split ring: pops offered buffers from avail, returns them on used.

    ``last_avail`` starts at ``base`` (vhost-user ``SET_VRING_BASE``); the used index
    continues from what the ring memory holds. ``held[i]`` marks heads taken and not yet
    returned, so a driver offering the same head twice is caught.
    """

    def __init__(self, name: str, num: int, desc: memoryview, avail: memoryview,
                 used: memoryview, base: int = 0) -> None:
        super().__init__(name, num, desc, avail, used)
        self.last_avail = base & 0xFFFF
        self.used_idx: int = self.used16[1]
        self.held = bytearray(num)
        self.num_held = 0
        #: Descriptor length of each held head, read once when it was popped: a buffer is
        #: returned with it (never re-read from the table the driver may have changed).
        self.taken_len = [0] * num

    def avail_pending(self) -> int:
        """How many buffers the driver offered that we have not popped; checked against num."""
        idx = self.avail16[1]
        pending: int = (idx - self.last_avail) & 0xFFFF
        if pending > self.num - self.num_held:
            raise self.error(f"avail.idx jumped to {idx} from {self.last_avail}: "
                             f"{pending} new entries, but a ring of {self.num} with "
                             f"{self.num_held} buffers held by the device has room for "
                             f"{self.num - self.num_held}")
        return pending

    def pop(self) -> tuple[int, int, int, int]:
        """Take the next offered buffer: (head, addr, len, flags). Call after avail_pending().

        Chained and indirect descriptors are refused: rpmsg uses one descriptor per message.
        """
        slot = self.last_avail & self.mask
        head = self.avail16[2 + slot]
        if head >= self.num:
            raise self.error(f"avail.ring[{slot}] = {head} is not a descriptor index "
                             f"(ring has {self.num})")
        if self.held[head]:
            raise self.error(f"avail.ring[{slot}] = {head} offers a buffer the device still "
                             "holds")
        addr, length, flags, _next = _DESC.unpack_from(self.desc, head * _DESC_SIZE)
        if flags & _BAD_DESC_FLAGS:
            raise self.error(f"desc[{head}].flags = {flags:#x}: chained or indirect "
                             "descriptors are not used by rpmsg")
        self.last_avail = (self.last_avail + 1) & 0xFFFF
        self.held[head] = 1
        self.num_held += 1
        self.taken_len[head] = length
        return head, addr, length, flags

    def pop_views(self, count: int, memory: Memory,
                  min_len: int) -> list[tuple[int, memoryview, int, int]]:
        """Take ``count`` offered buffers (count from :meth:`avail_pending`), with the checks
        of :meth:`pop`, and map each: (head, view, offset, len) each, the
        buffer being ``view[offset : offset + len]`` (for one flat memory, ``view`` is the
        whole memory: no view is made per buffer).

        A descriptor shorter than ``min_len`` or outside ``memory`` raises :class:`RingError`
        naming it (buffers popped before it stay held: the ring is failing anyway).
        """
        out = []
        desc, held, mask, num = self.desc, self.held, self.mask, self.num
        taken_len = self.taken_len
        avail16, unpack_desc = self.avail16, _DESC.unpack_from
        # Fast path for one flat buffer: bounds-check and slice here instead of a call.
        flat = memory if type(memory) is FlatMemory else None
        mv, base, msize = (flat.mv, flat.base, flat.size) if flat else (None, 0, 0)
        last = self.last_avail
        for _ in range(count):
            slot = last & mask
            head = avail16[2 + slot]
            if head >= num:
                raise self.error(f"avail.ring[{slot}] = {head} is not a descriptor index "
                                 f"(ring has {num})")
            if held[head]:
                raise self.error(f"avail.ring[{slot}] = {head} offers a buffer the device "
                                 "still holds")
            addr, length, flags, _next = unpack_desc(desc, head * _DESC_SIZE)
            if flags & _BAD_DESC_FLAGS:
                raise self.error(f"desc[{head}].flags = {flags:#x}: chained or indirect "
                                 "descriptors are not used by rpmsg")
            held[head] = 1
            taken_len[head] = length
            self.num_held += 1
            last = self.last_avail = (last + 1) & 0xFFFF
            if length < min_len:
                raise self.error(f"desc[{head}].len = {length} is shorter than the "
                                 f"{min_len}-byte rpmsg header")
            off = addr - base
            if mv is not None and off >= 0 and off + length <= msize:
                out.append((head, mv, off, length))
                continue
            try:
                out.append((head, memory.view(addr, length), 0, length))
            except ProtocolError as exc:
                raise self.error(f"desc[{head}].addr = {addr:#x} len {length}: {exc}") from None
        return out

    def give_back_many(self, heads: list[int]) -> list[int]:
        """:meth:`give_back` for each head; returns those given back (held until now)."""
        used, mask, held, taken_len = self.used, self.mask, self.held, self.taken_len
        pack_elem = _USED_ELEM.pack_into
        idx = self.used_idx
        done = []
        for head in heads:
            if not held[head]:
                continue
            pack_elem(used, _RING_AT + _USED_ELEM_SIZE * (idx & mask), head, taken_len[head])
            idx = (idx + 1) & 0xFFFF
            held[head] = 0
            done.append(head)
        self.used_idx = idx
        self.num_held -= len(done)
        return done

    def unpop(self, head: int) -> None:
        """Put back the buffer just popped (nothing was written; used ring untouched)."""
        self.held[head] = 0
        self.num_held -= 1
        self.last_avail = (self.last_avail - 1) & 0xFFFF

    def push(self, head: int, length: int) -> None:
        """Return buffer ``head`` with ``length`` bytes written (not visible until publish)."""
        _USED_ELEM.pack_into(self.used, _RING_AT + _USED_ELEM_SIZE * (self.used_idx & self.mask),
                             head, length)
        self.used_idx = (self.used_idx + 1) & 0xFFFF
        self.held[head] = 0
        self.num_held -= 1

    def push_many(self, items: list[tuple[int, int]]) -> None:
        """:meth:`push` for each ``(head, length)``, in order."""
        used, mask, held = self.used, self.mask, self.held
        pack_elem = _USED_ELEM.pack_into
        idx = self.used_idx
        for head, length in items:
            pack_elem(used, _RING_AT + _USED_ELEM_SIZE * (idx & mask), head, length)
            idx = (idx + 1) & 0xFFFF
            held[head] = 0
        self.used_idx = idx
        self.num_held -= len(items)

    def give_back(self, head: int) -> bool:
        """Return a held buffer unchanged in size (its descriptor length, as OpenAMP does for
        received buffers); False if ``head`` is not held (already returned)."""
        if not self.held[head]:
            return False
        self.push(head, self.taken_len[head])
        return True

    def read_used_idx(self) -> int:
        """The used index as published in ring memory."""
        return int(self.used16[1])

    def publish(self) -> None:
        """Make every pushed entry visible to the driver (one 2-byte store of used.idx)."""
        self.used16[1] = self.used_idx

    def peer_wants_interrupt(self) -> bool:
        """False when the driver set ``VRING_AVAIL_F_NO_INTERRUPT``."""
        return not self.avail16[0] & VRING_AVAIL_F_NO_INTERRUPT

    def set_notifications(self, enabled: bool) -> None:
        """Ask the driver to kick us when it adds buffers (or not: NO_NOTIFY)."""
        self.used16[0] = 0 if enabled else VRING_USED_F_NO_NOTIFY


def driver_ring(name: str, memory: Memory, addrs: QueueAddrs) -> DriverRing:
    """A :class:`DriverRing` over the queue at ``addrs`` (zeroed)."""
    return DriverRing(name, addrs.num, *addrs.views(memory))


def device_ring(name: str, memory: Memory, addrs: QueueAddrs, base: int = 0) -> DeviceRing:
    """A :class:`DeviceRing` over the queue at ``addrs``, continuing from avail index ``base``."""
    return DeviceRing(name, addrs.num, *addrs.views(memory), base=base)
