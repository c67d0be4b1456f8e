"""Encoding of pcapng blocks and RPMsg capture records (layouts: :mod:`rpmsg.wire.capture`).

:func:`message_parts` (one message: one ``struct`` pack of 11 values) and :func:`encode_batch`
(a burst with one timestamp: three appends per message) are the hot paths, run by the taps on the
data path; no per-byte work beyond copying the payload once.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rpmsg.wire.capture import (
    BLOCK_HEADER,
    BLOCK_TRAILER,
    BT_EPB,
    BT_IDB,
    BT_SHB,
    BYTE_ORDER_MAGIC,
    DIR_NONE,
    DIR_RX,
    DIR_TX,
    DIRECTIONS,
    EPB,
    EPB_FLAGS,
    EPB_INBOUND,
    EPB_OUTBOUND,
    EXPORTED_PDU_PREFIX,
    IDB,
    IF_DESCRIPTION,
    IF_NAME,
    IF_TSRESOL,
    LINKTYPE_WIRESHARK_UPPER_PDU,
    OPT_ENDOFOPT,
    OPTION,
    REC_EVENT,
    REC_FRAME,
    REC_MESSAGE,
    RECORD,
    RECORD_VERSION,
    SHB,
    SHB_USERAPPL,
    VERSION_MAJOR,
    VERSION_MINOR,
)
from rpmsg.wire.layout import Buffer
from rpmsg.wire.rpmsg import HEADER_SIZE, RPMSG_HEADER

_MASK32 = 0xFFFFFFFF
_EPB_FLAGS_OF = {DIR_NONE: 0, DIR_TX: EPB_OUTBOUND, DIR_RX: EPB_INBOUND}


def _fmt(layout_format: str) -> str:
    return layout_format.lstrip("<")


def options(items: list[tuple[int, bytes]]) -> bytes:
    """A pcapng option list (each value padded to 4 bytes) ending with opt_endofopt."""
    out = bytearray()
    for code, value in items:
        out += OPTION.pack(code, len(value)) + value + b"\0" * (-len(value) & 3)
    if out:
        out += OPTION.pack(OPT_ENDOFOPT, 0)
    return bytes(out)


def block(block_type: int, body: bytes) -> bytes:
    """A whole block: type, total length, body (padded to 4), total length."""
    body += b"\0" * (-len(body) & 3)
    total = BLOCK_HEADER.size + len(body) + BLOCK_TRAILER.size
    return BLOCK_HEADER.pack(block_type, total) + body + BLOCK_TRAILER.pack(total)


def section_header(application: str) -> bytes:
    """The section header block: little-endian, version 1.0, length unknown."""
    body = SHB.pack(BYTE_ORDER_MAGIC, VERSION_MAJOR, VERSION_MINOR, -1)
    return block(BT_SHB, body + options([(SHB_USERAPPL, application.encode("utf-8"))]))


#: The longest interface name or description written (bytes; the rest is cut): a block must
#: stay within what readers accept (``MAX_BLOCK_SIZE``), whatever URL names the link.
MAX_IF_TEXT = 4096


def interface_description(name: str, description: str) -> bytes:
    """One interface: exported-PDU link type, no snap length, nanosecond timestamps."""
    body = IDB.pack(LINKTYPE_WIRESHARK_UPPER_PDU, 0, 0)
    opts = [(IF_NAME, _cut(name.encode("utf-8", "replace"))),
            (IF_DESCRIPTION, _cut(description.encode("utf-8", "replace"))),
            (IF_TSRESOL, bytes([9]))]
    return block(BT_IDB, body + options(opts))


def _cut(text: bytes) -> bytes:
    """At most MAX_IF_TEXT bytes of UTF-8, cut at a character boundary."""
    if len(text) <= MAX_IF_TEXT:
        return text
    return text[:MAX_IF_TEXT].decode("utf-8", "ignore").encode("utf-8")


def packet_block(interface: int, ts_ns: int, data: bytes, direction: int = DIR_NONE) -> bytes:
    """An enhanced packet block holding ``data``, with the direction in ``epb_flags``."""
    flags = _EPB_FLAGS_OF[direction]
    opts = options([(EPB_FLAGS, flags.to_bytes(4, "little"))]) if flags else b""
    body = EPB.pack(interface, (ts_ns >> 32) & _MASK32, ts_ns & _MASK32, len(data), len(data))
    return block(BT_EPB, body + data + b"\0" * (-len(data) & 3) + opts)


def record(rec_type: int, direction: int, kind: int, info: bytes, data: Buffer) -> bytes:
    """The packet data of one record: exported-PDU tags, record header, info, data."""
    return b"".join((EXPORTED_PDU_PREFIX,
                     RECORD.pack(RECORD_VERSION, rec_type, direction, kind, len(info), 0),
                     info, data))


def info_text(info: Mapping[str, int | str | bool]) -> bytes:
    """Frame info as ``key=value`` lines (newlines in values become spaces)."""
    lines = []
    for key, value in info.items():
        text = ("1" if value else "0") if isinstance(value, bool) else str(value)
        lines.append(f"{key}={text}".replace("\n", " ").replace("\r", " "))
    return "\n".join(lines).encode("utf-8", "replace")


def event_block(interface: int, ts_ns: int, kind: int, detail: str) -> bytes:
    info = detail.encode("utf-8", "replace")[:4096]
    return packet_block(interface, ts_ns, record(REC_EVENT, DIR_NONE, kind, info, b""))


def frame_block(interface: int, ts_ns: int, direction: int, kind: int,
                info: Mapping[str, int | str | bool], data: Buffer) -> bytes:
    return packet_block(interface, ts_ns,
                        record(REC_FRAME, direction, kind, info_text(info), data), direction)


# Hot path: messages ------------------------------------------------------------------------

#: What lies between the EPB body and the RPMsg header of every message: the exported-PDU
#: tags and the record header, by direction code.
_MIDDLE: dict[int | str, bytes] = {
    d: EXPORTED_PDU_PREFIX + RECORD.pack(RECORD_VERSION, REC_MESSAGE, DIRECTIONS[n], 0, 0, 0)
    for n in DIRECTIONS for d in (n, DIRECTIONS[n])}
#: After the (padded) packet data: the epb_flags option and the end of options.
_OPTIONS: dict[int | str, bytes] = {
    d: OPTION.pack(EPB_FLAGS, 4) + _EPB_FLAGS_OF[DIRECTIONS[n]].to_bytes(4, "little")
    + OPTION.pack(OPT_ENDOFOPT, 0) for n in DIRECTIONS for d in (n, DIRECTIONS[n])}
_MID_LEN = len(EXPORTED_PDU_PREFIX) + RECORD.size
_OPT_LEN = OPTION.size + 4 + OPTION.size
_HEAD_FMT = ("<" + _fmt(BLOCK_HEADER.struct.format) + _fmt(EPB.struct.format)
             + f"{_MID_LEN}s" + _fmt(RPMSG_HEADER.struct.format))
_CAP0 = _MID_LEN + HEADER_SIZE
_FIXED = BLOCK_HEADER.size + EPB.size + _CAP0 + _OPT_LEN + BLOCK_TRAILER.size
_Packer = tuple[Callable[..., bytes], int, int]
#: By payload size: (pack of the whole block, padding included; total length; captured
#: length), so a message costs one ``pack``.
_PACKERS: dict[int, _Packer] = {}
_PACKERS_MAX = 4096
#: Block type and length, then the EPB's fixed fields.
_EPB_HEAD = struct.Struct("<" + _fmt(BLOCK_HEADER.struct.format) + _fmt(EPB.struct.format))


def _packer(n: int) -> _Packer:
    entry = _PACKERS.get(n)
    if entry is None:
        pad = -(_CAP0 + n) & 3
        st = struct.Struct(f"{_HEAD_FMT}{n}s{pad}x{_OPT_LEN}s"
                           + _fmt(BLOCK_TRAILER.struct.format))
        entry = (st.pack, _FIXED + n + pad, _CAP0 + n)
        if len(_PACKERS) < _PACKERS_MAX:
            _PACKERS[n] = entry
    return entry


def message_packer(n: int) -> _Packer:
    """For an ``n``-byte payload: (pack of the whole block as :func:`encode_pending` calls
    it, the block's total length, its captured length)."""
    return _PACKERS.get(n) or _packer(n)


#: What :func:`message_parts` gives: (pack, head, middle, tail) for one message block as
#: ``pack(head, ts >> 32, ts & 0xFFFFFFFF, middle, src, dst, 0, n, flags, payload, tail)``.
MessageParts = tuple[Callable[..., bytes], bytes, bytes, bytes]


def message_parts(interface: int, direction: int | str, n: int) -> MessageParts:
    """The pieces of one message's block that depend only on the interface, the direction
    and the payload length ``n``, so a tap packs 11 values instead of 16 (its single-message
    path; keep the result per tap). The payload must be bytes or bytearray. A wrong
    direction raises KeyError."""
    pad = -(_CAP0 + n) & 3
    total = _FIXED + n + pad
    cap = _CAP0 + n
    head = BLOCK_HEADER.struct.pack(BT_EPB, total) + interface.to_bytes(4, "little")
    middle = cap.to_bytes(4, "little") * 2 + _MIDDLE[direction]
    tail = _OPTIONS[direction] + BLOCK_TRAILER.struct.pack(total)
    rpmsg_fmt = _fmt(RPMSG_HEADER.struct.format)
    st = struct.Struct(f"<{len(head)}sII{len(middle)}s{rpmsg_fmt}{n}s{pad}x{len(tail)}s")
    return st.pack, head, middle, tail


class Blocks(bytearray):
    """Whole blocks back to back in one buffer (a batch encoded at once): ``nblocks`` of
    them, each starting with its type and total length (set ``nblocks`` after making it)."""

    __slots__ = ("nblocks",)
    nblocks: int


#: By (direction, src, dst, payload length): (total length, captured length, the bytes
#: between the EPB's fixed fields and the payload, the bytes after the payload). What
#: surrounds a payload depends on nothing else but the interface and the timestamp.
_AROUND: dict[tuple[int | str, int, int, int], tuple[int, int, bytes, bytes]] = {}
_AROUND_MAX = 4096


def _around(direction: int | str, src: int, dst: int, n: int) -> tuple[int, int, bytes, bytes]:
    entry = _AROUND.get((direction, src, dst, n))
    if entry is None:
        pad = -(_CAP0 + n) & 3
        total = _FIXED + n + pad
        entry = (total, _CAP0 + n,
                 _MIDDLE[direction] + RPMSG_HEADER.struct.pack(src, dst, 0, n, 0),
                 b"\0" * pad + _OPTIONS[direction] + BLOCK_TRAILER.struct.pack(total))
        if len(_AROUND) < _AROUND_MAX:
            _AROUND[direction, src, dst, n] = entry
    return entry


def encode_batch(interface: int, ts_ns: int, direction: int | str,
                 batch: Iterable[tuple[Any, ...]]) -> Blocks:
    """The EPBs of several messages of one direction with one timestamp, in one buffer.

    Each item starts with ``src, dst, payload`` (any buffer; more fields are ignored; flags
    0). Around a payload only the EPB's fixed fields depend on the timestamp; the rest
    depends on (direction, src, dst, length) and is kept from earlier batches, so a message
    costs three appends (and a ``pack`` when its triple differs from the previous one's). A
    wrong direction raises KeyError, a value out of range ``struct.error``, a non-buffer
    TypeError.
    """
    out = Blocks()
    head = _EPB_HEAD.pack
    known = _AROUND.get
    hi, lo = ts_ns >> 32, ts_ns & _MASK32
    last_src = last_dst = last_n = -1
    before = after = b""
    count = 0
    for item in batch:
        src, dst, payload = item[0], item[1], item[2]
        n = len(payload)
        if n != last_n or src != last_src or dst != last_dst:
            total, cap, middle, after = (known((direction, src, dst, n))
                                         or _around(direction, src, dst, n))
            before = head(BT_EPB, total, interface, hi, lo, cap, cap) + middle
            last_src, last_dst, last_n = src, dst, n
        out += before
        out += payload
        out += after
        count += 1
    out.nblocks = count
    return out


def message_block(interface: int, ts_ns: int, direction: int, src: int, dst: int,
                  payload: Buffer, flags: int = 0) -> bytes:
    """One message as a whole EPB; the RPMsg header is rebuilt from the arguments."""
    return encode_pending([(interface, ts_ns, direction, src, dst, flags, bytes(payload))])[0]


def encode_pending(items: Iterable[bytes | tuple[int, int, int | str, int, int, int, bytes]]
                   ) -> list[bytes]:
    """Blocks for queued records: bytes pass through; a message tuple ``(interface, ns,
    direction ("tx"/"rx" or its code), src, dst, flags, payload)`` becomes its EPB with one
    ``pack``. A wrong direction raises KeyError, a value out of range ``struct.error``."""
    out: list[bytes] = []
    append = out.append
    packers = _PACKERS
    make = _packer
    middle, opts = _MIDDLE, _OPTIONS
    for item in items:
        if isinstance(item, bytes):
            append(item)
            continue
        iface, ts, d, src, dst, flags, payload = item
        n = len(payload)
        pack, total, cap = packers.get(n) or make(n)
        append(pack(BT_EPB, total, iface, ts >> 32, ts & 0xFFFFFFFF, cap, cap, middle[d], src,
                    dst, 0, n, flags, payload, opts[d], total))
    return out


__all__ = [
    "Blocks",
    "MessageParts",
    "block",
    "encode_batch",
    "encode_pending",
    "event_block",
    "frame_block",
    "info_text",
    "interface_description",
    "message_block",
    "message_packer",
    "message_parts",
    "options",
    "packet_block",
    "record",
    "section_header",
]
