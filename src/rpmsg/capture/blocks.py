"""Encoding of pcapng blocks and RPMsg capture records (layouts: :mod:`rpmsg.wire.capture`).

:func:`message_block` is the hot path (called for every message while capturing): one clock
read is done by the caller, then two ``struct`` packs and one join, no per-byte work.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping

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


def interface_description(name: str, description: str) -> bytes:
    """One interface: exported-PDU link type, no snap length, nanosecond timestamps."""
    body = IDB.pack(LINKTYPE_WIRESHARK_UPPER_PDU, 0, 0)
    opts = [(IF_NAME, name.encode("utf-8", "replace")),
            (IF_DESCRIPTION, description.encode("utf-8", "replace")),
            (IF_TSRESOL, bytes([9]))]
    return block(BT_IDB, body + options(opts))


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
    "block",
    "encode_pending",
    "event_block",
    "frame_block",
    "info_text",
    "interface_description",
    "message_block",
    "options",
    "packet_block",
    "record",
    "section_header",
]
