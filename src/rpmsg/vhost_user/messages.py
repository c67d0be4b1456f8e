"""Sans-IO framing and payload codecs of vhost-user messages.

:class:`MessageReader` cuts a byte stream (plus the ``SCM_RIGHTS`` file descriptors that came
with it) into :class:`Message` objects; the ``decode_*`` functions turn payloads into typed
values and the ``encode_*`` functions build replies. Nothing here touches a socket; malformed
input raises :class:`~rpmsg.errors.DecodeError` or :class:`VhostUserError`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from rpmsg.errors import ProtocolError
from rpmsg.wire.layout import Buffer
from rpmsg.wire.vhost_user import (
    VHOST_USER_FLAG_NEED_REPLY,
    VHOST_USER_FLAG_REPLY,
    VHOST_USER_HEADER,
    VHOST_USER_MAX_PAYLOAD,
    VHOST_USER_MAX_REGIONS,
    VHOST_USER_MEM_REGION,
    VHOST_USER_MEMORY,
    VHOST_USER_U64,
    VHOST_USER_VERSION,
    VHOST_USER_VERSION_MASK,
    VHOST_USER_VRING_ADDR,
    VHOST_USER_VRING_INDEX_MASK,
    VHOST_USER_VRING_NOFD_MASK,
    VHOST_USER_VRING_STATE,
    Request,
)


class VhostUserError(ProtocolError):
    """The vhost-user front-end sent a message this back-end cannot accept."""


def request_name(code: int) -> str:
    """A readable name for a request code, e.g. ``SET_MEM_TABLE(5)``."""
    try:
        return f"{Request(code).name}({code})"
    except ValueError:
        return f"request {code}"


def close_fds(fds: Iterable[int]) -> None:
    """Close file descriptors, ignoring ones that are already closed."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


@dataclass
class Message:
    """One vhost-user message: request code, flags, payload and attached descriptors.

    The message owns ``fds`` until a consumer takes them; :meth:`close_fds` closes what is left.
    """

    request: int
    flags: int
    payload: bytes
    fds: list[int] = field(default_factory=list)

    @property
    def need_reply(self) -> bool:
        return bool(self.flags & VHOST_USER_FLAG_NEED_REPLY)

    @property
    def name(self) -> str:
        return request_name(self.request)

    def take_fds(self) -> list[int]:
        """Hand the descriptors over to the caller; the message no longer owns them."""
        fds, self.fds = self.fds, []
        return fds

    def close_fds(self) -> None:
        close_fds(self.take_fds())


class MessageReader:
    """Splits a stream of bytes into messages; descriptors go to the message they arrived in.

    On a UNIX stream socket descriptors (``SCM_RIGHTS``) travel with the bytes of the
    ``sendmsg`` that carried them, and a ``recvmsg`` that reaches them stops there. A reader
    that never reads past the message being assembled therefore receives each message's
    descriptors with that message's own bytes: read at most :meth:`want` bytes at a time (the
    rest of the 12-byte header, then the rest of the payload), as libvhost-user does, and feed
    each read with the descriptors that came with it. Chunks spanning messages (tests) work
    too, with descriptors going to the message the chunk completes first.
    """

    def __init__(self, max_payload: int = VHOST_USER_MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self._buf = bytearray()
        self._fds: list[int] = []
        self._header: tuple[int, int, int] | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a whole message."""
        return len(self._buf)

    def want(self) -> int:
        """How many bytes to read next: the rest of the header, or the rest of the payload."""
        if self._header is None:
            return VHOST_USER_HEADER.size - len(self._buf)
        return self._header[2] - len(self._buf)

    def feed(self, data: Buffer, fds: Iterable[int] = ()) -> list[Message]:
        """Add received bytes and descriptors; return the messages completed by them.

        On a malformed header the reader closes every descriptor it holds and raises; the
        connection cannot be resynchronised after that.
        """
        self._fds.extend(fds)
        self._buf += data
        out: list[Message] = []
        try:
            while True:
                if self._header is None:
                    if len(self._buf) < VHOST_USER_HEADER.size:
                        break
                    self._header = self._check_header(VHOST_USER_HEADER.unpack(self._buf))
                    del self._buf[: VHOST_USER_HEADER.size]
                request, flags, size = self._header
                if len(self._buf) < size:
                    break
                payload = bytes(self._buf[:size])
                del self._buf[:size]
                self._header = None
                msg_fds, self._fds = self._fds, []
                out.append(Message(request, flags, payload, msg_fds))
        except ProtocolError:
            for msg in out:
                msg.close_fds()
            self.close()
            raise
        return out

    def _check_header(self, header: tuple[int, int, int]) -> tuple[int, int, int]:
        request, flags, size = header
        if flags & VHOST_USER_VERSION_MASK != VHOST_USER_VERSION:
            raise VHOST_USER_HEADER.error(
                "flags", f"version {flags & VHOST_USER_VERSION_MASK} is not {VHOST_USER_VERSION}")
        if flags & VHOST_USER_FLAG_REPLY:
            raise VHOST_USER_HEADER.error("flags", f"{request_name(request)} is marked as a reply")
        if size > self.max_payload:
            raise VHOST_USER_HEADER.error(
                "size", f"payload of {size} bytes exceeds the limit of {self.max_payload}")
        return request, flags, size

    def close(self) -> None:
        """Drop buffered bytes and close descriptors that no message took."""
        self._buf.clear()
        self._header = None
        close_fds(self._fds)
        self._fds = []


# Payload decoders ------------------------------------------------------------------------------


def _expect_size(msg: Message, size: int, what: str) -> None:
    if len(msg.payload) != size:
        raise VhostUserError(
            f"{msg.name}: payload is {len(msg.payload)} bytes, {what} needs exactly {size}")


def _expect_fds(msg: Message, count: int) -> None:
    if len(msg.fds) != count:
        raise VhostUserError(
            f"{msg.name}: {len(msg.fds)} file descriptor(s) attached, expected {count}")


def expect_no_payload(msg: Message) -> None:
    """Check a request that carries neither payload nor descriptors."""
    _expect_size(msg, 0, "this request")
    _expect_fds(msg, 0)


def decode_u64(msg: Message) -> int:
    """The single u64 of SET_FEATURES, SET_PROTOCOL_FEATURES and similar requests."""
    _expect_size(msg, VHOST_USER_U64.size, "a u64")
    _expect_fds(msg, 0)
    (value,) = VHOST_USER_U64.unpack(msg.payload)
    return int(value)


@dataclass(frozen=True)
class VringState:
    """``{u32 index, u32 num}``: SET_VRING_NUM/BASE/ENABLE and GET_VRING_BASE."""

    index: int
    num: int


def decode_vring_state(msg: Message) -> VringState:
    _expect_size(msg, VHOST_USER_VRING_STATE.size, "a vring state")
    _expect_fds(msg, 0)
    index, num = VHOST_USER_VRING_STATE.unpack(msg.payload)
    return VringState(index, num)


@dataclass(frozen=True)
class VringAddr:
    """SET_VRING_ADDR: the three ring parts in the front-end's user address space."""

    index: int
    flags: int
    desc: int
    used: int
    avail: int
    log: int


def decode_vring_addr(msg: Message) -> VringAddr:
    _expect_size(msg, VHOST_USER_VRING_ADDR.size, "a vring address")
    _expect_fds(msg, 0)
    return VringAddr(*VHOST_USER_VRING_ADDR.unpack(msg.payload))


@dataclass(frozen=True)
class VringFd:
    """SET_VRING_KICK/CALL/ERR: queue index and the attached descriptor (None: polling)."""

    index: int
    fd: int | None


def decode_vring_fd(msg: Message) -> VringFd:
    """Decode the u64 index word; takes the descriptor out of the message."""
    _expect_size(msg, VHOST_USER_U64.size, "a vring index")
    (value,) = VHOST_USER_U64.unpack(msg.payload)
    if value & ~(VHOST_USER_VRING_INDEX_MASK | VHOST_USER_VRING_NOFD_MASK):
        raise VhostUserError(f"{msg.name}: index word {value:#x} has unknown bits set")
    index = value & VHOST_USER_VRING_INDEX_MASK
    if value & VHOST_USER_VRING_NOFD_MASK:
        _expect_fds(msg, 0)
        return VringFd(index, None)
    _expect_fds(msg, 1)
    return VringFd(index, msg.take_fds()[0])


def decode_single_fd(msg: Message) -> int:
    """A request whose only content is one descriptor (SET_BACKEND_REQ_FD)."""
    if msg.payload:
        _expect_size(msg, VHOST_USER_U64.size, "an optional u64")
    _expect_fds(msg, 1)
    return msg.take_fds()[0]


@dataclass(frozen=True)
class MemRegion:
    """One region of SET_MEM_TABLE; ``fd`` maps it at ``mmap_offset``."""

    guest_addr: int
    size: int
    user_addr: int
    mmap_offset: int
    fd: int

    def contains_user(self, addr: int, length: int = 1) -> bool:
        return self.user_addr <= addr and addr + length <= self.user_addr + self.size


def decode_mem_table(msg: Message) -> list[MemRegion]:
    """Decode SET_MEM_TABLE: region count, regions, one descriptor per region (taken)."""
    count, _padding = VHOST_USER_MEMORY.unpack(msg.payload)
    if not 1 <= count <= VHOST_USER_MAX_REGIONS:
        raise VHOST_USER_MEMORY.error(
            "nregions", f"{count} regions; 1..{VHOST_USER_MAX_REGIONS} allowed")
    # UML sends room for two regions even when it uses one; more payload than needed is
    # allowed, less is not.
    need = VHOST_USER_MEMORY.size + count * VHOST_USER_MEM_REGION.size
    most = VHOST_USER_MEMORY.size + VHOST_USER_MAX_REGIONS * VHOST_USER_MEM_REGION.size
    if not need <= len(msg.payload) <= most:
        raise VhostUserError(
            f"{msg.name}: {count} regions need {need}..{most} payload bytes, "
            f"got {len(msg.payload)}")
    _expect_fds(msg, count)
    regions: list[MemRegion] = []
    for i in range(count):
        at = VHOST_USER_MEMORY.size + i * VHOST_USER_MEM_REGION.size
        guest, size, user, offset = VHOST_USER_MEM_REGION.unpack(msg.payload, at)
        if size == 0:
            raise VHOST_USER_MEM_REGION.error("size", f"region {i} is empty", at)
        if guest + size > 1 << 64 or user + size > 1 << 64:
            raise VHOST_USER_MEM_REGION.error("size", f"region {i} wraps around", at)
        regions.append(MemRegion(guest, size, user, offset, -1))
    spans = sorted((r.guest_addr, r.guest_addr + r.size) for r in regions)
    for (_s0, e0), (s1, _e1) in itertools.pairwise(spans):
        if s1 < e0:
            raise VhostUserError(f"{msg.name}: memory regions overlap at {s1:#x}")
    fds = msg.take_fds()
    return [MemRegion(r.guest_addr, r.size, r.user_addr, r.mmap_offset, fd)
            for r, fd in zip(regions, fds, strict=True)]


# Encoders --------------------------------------------------------------------------------------


def encode_message(request: int, payload: bytes = b"", flags: int = VHOST_USER_VERSION) -> bytes:
    """A whole message: header plus payload (what a front-end sends; used by tests)."""
    return VHOST_USER_HEADER.pack(request, flags, len(payload)) + payload


def encode_reply(request: int, payload: bytes) -> bytes:
    """A reply to ``request``: flags are exactly version | REPLY, as UML checks."""
    return encode_message(request, payload, VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY)


def encode_u64_reply(request: int, value: int) -> bytes:
    return encode_reply(request, VHOST_USER_U64.pack(value))


def encode_vring_state_reply(request: int, index: int, num: int) -> bytes:
    return encode_reply(request, VHOST_USER_VRING_STATE.pack(index, num))
