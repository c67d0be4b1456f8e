"""Reading captures back: pcapng blocks to messages, link events and frames.

:class:`CaptureReader` iterates a capture file (or any binary stream) record by record, and
with ``follow=True`` keeps waiting for records a running program is still writing (like
``tail -f``). It trusts nothing in the file: every length is checked against the block that
holds it, blocks are bounded in size, and a file that is not a little-endian pcapng capture,
or breaks its block structure, raises :class:`~rpmsg.errors.DecodeError` naming the structure,
field and byte offset. A file cut inside its last block (a capture still being written, or
copied mid-write) raises :class:`TruncatedCaptureError`, after every whole record. Packets that
are not RPMsg capture records (another link type or dissector) are skipped and counted;
records that are malformed inside an intact block are skipped and counted too.
"""

from __future__ import annotations

import io
import os
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from rpmsg import checks
from rpmsg.errors import AccessDeniedError, DecodeError, InvalidArgumentError, NotAvailableError
from rpmsg.wire.capture import (
    BLOCK_HEADER,
    BLOCK_TRAILER,
    BT_EPB,
    BT_IDB,
    BT_SHB,
    BT_SPB,
    BYTE_ORDER_MAGIC,
    DIRECTION_NAMES,
    DISSECTOR_NAME,
    EPB,
    EVENT_KINDS,
    EXP_PDU_TAG,
    EXP_PDU_TAG_DISSECTOR_NAME,
    EXP_PDU_TAG_END_OF_OPT,
    FRAME_KINDS,
    IDB,
    IF_DESCRIPTION,
    IF_NAME,
    IF_TSRESOL,
    LINKTYPE_WIRESHARK_UPPER_PDU,
    MAX_BLOCK_SIZE,
    MIN_BLOCK_SIZE,
    OPT_ENDOFOPT,
    OPTION,
    REC_EVENT,
    REC_FRAME,
    REC_MESSAGE,
    RECORD,
    RECORD_VERSION,
    SHB,
    SPB,
)
from rpmsg.wire.rpmsg import HEADER_SIZE, RPMSG_HEADER


class TruncatedCaptureError(DecodeError):
    """The capture ends inside a block: everything before it was read.

    A program killed while its capture is being written leaves one (a fatal signal cuts a
    large ``write`` between pages). :func:`read_capture` puts the whole records before the
    cut in :attr:`records`, so they are not lost with the exception."""

    #: The records before the cut (filled by :func:`read_capture`).
    records: tuple[Record, ...] = ()


class _Restarted(Exception):
    """Following a file that a new capture truncated: start again from byte 0."""


@dataclass(frozen=True)
class Interface:
    """One captured link (a Device): its id in the section, name (the URL) and clock."""

    id: int
    name: str
    description: str
    linktype: int
    #: Timestamp units per second (10**9 for our captures).
    ts_units: int = 1_000_000


@dataclass(frozen=True)
class CapturedMessage:
    """One RPMsg message sent (``tx``) or received (``rx``) by the captured Device."""

    timestamp_ns: int
    interface: Interface
    direction: str
    src: int
    dst: int
    payload: bytes
    flags: int = 0
    reserved: int = 0
    #: The header's length field; differs from ``len(payload)`` only in a damaged record.
    length: int = 0

    @property
    def timestamp(self) -> float:
        """Wall-clock seconds (as ``time.time()``)."""
        return self.timestamp_ns / 1e9


@dataclass(frozen=True)
class CapturedEvent:
    """A link event (``open``, ``link-up``, ``link-down``, ``restart``, ...)."""

    timestamp_ns: int
    interface: Interface
    kind: str
    detail: str

    @property
    def timestamp(self) -> float:
        return self.timestamp_ns / 1e9


@dataclass(frozen=True)
class CapturedFrame:
    """A frame of the layer below (``port``, ``uart-control``, ``spi``, ``ring``)."""

    timestamp_ns: int
    interface: Interface
    direction: str
    kind: str
    info: dict[str, str] = field(default_factory=dict)
    data: bytes = b""

    @property
    def timestamp(self) -> float:
        return self.timestamp_ns / 1e9


Record = CapturedMessage | CapturedEvent | CapturedFrame


def _options(body: bytes, start: int, structure: str, base: int) -> dict[int, bytes]:
    """The options of a block body from ``start`` (first value of each code wins)."""
    out: dict[int, bytes] = {}
    pos = start
    end = len(body)
    while pos + OPTION.size <= end:
        code, length = OPTION.unpack(body, pos)
        pos += OPTION.size
        if code == OPT_ENDOFOPT:
            break
        if pos + length > end:
            raise DecodeError(structure, "options", base + pos,
                              f"option {code} of {length} bytes overruns the block")
        out.setdefault(code, body[pos:pos + length])
        pos += length + (-length & 3)
    return out


def _ts_units(raw: bytes | None, base: int) -> int:
    if raw is None or len(raw) < 1:
        return 1_000_000
    v = raw[0]
    exp = v & 0x7F
    if v & 0x80:
        if exp > 63:
            raise DecodeError("pcapng_idb", "if_tsresol", base, f"2^-{exp} is out of range")
        return 1 << exp
    if exp > 18:
        raise DecodeError("pcapng_idb", "if_tsresol", base, f"10^-{exp} is out of range")
    return int(10**exp)


def _text(raw: bytes | None) -> str:
    if raw is None:
        return ""
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def parse_info(text: str) -> dict[str, str]:
    """Frame info ``key=value`` lines to a dict (lines without ``=`` are ignored)."""
    out: dict[str, str] = {}
    for line in text.split("\n"):
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value
    return out


def _rpmsg_payload(data: bytes) -> bytes | None:
    """The record part of an exported-PDU packet if its dissector is ours, else None."""
    pos = 0
    name: bytes | None = None
    while True:
        if pos + EXP_PDU_TAG.size > len(data):
            return None
        tag, length = EXP_PDU_TAG.unpack_from(data, pos)
        pos += EXP_PDU_TAG.size
        if tag == EXP_PDU_TAG_END_OF_OPT:
            break
        if pos + length > len(data):
            return None
        if tag == EXP_PDU_TAG_DISSECTOR_NAME and name is None:
            name = data[pos:pos + length].split(b"\0", 1)[0]
        pos += length  # as Wireshark does: writers count any padding in the length
    if name != DISSECTOR_NAME.encode():
        return None
    return data[pos:]


class CaptureReader:
    """Iterate the records of a capture: ``for rec in CaptureReader("x.pcapng"): ...``.

    ``source`` is a path or a binary stream. With ``follow`` the iterator waits at the end
    of the file for more records (polling every ``poll`` seconds) until :meth:`close`; a
    followed file that a new capture truncated is read again from its start
    (:attr:`restarts` counts it).
    """

    def __init__(self, source: str | os.PathLike[str] | BinaryIO, *, follow: bool = False,
                 poll: float = 0.2) -> None:
        # Checked before the file is opened: 0, negative or NaN polled in a busy loop (a
        # core at 100 %), None or inf never looked again after the end of the file, one
        # longer than a wait can last raised OverflowError there (checks.pause).
        seconds = checks.pause(poll, "poll")
        if not seconds > 0:
            raise InvalidArgumentError(f"poll must be a finite number of seconds > 0, "
                                       f"not {poll!r}")
        poll = seconds
        self.name = str(source) if isinstance(source, str | os.PathLike) else "<stream>"
        if isinstance(source, str | os.PathLike):
            try:
                self._stream: BinaryIO = open(source, "rb")  # noqa: SIM115 (closed by close())
            except FileNotFoundError:
                raise NotAvailableError(f"capture file {self.name!r} does not exist") from None
            except IsADirectoryError:
                raise InvalidArgumentError(f"{self.name!r} is a directory") from None
            except PermissionError:
                raise AccessDeniedError(f"capture file {self.name!r}: permission "
                                        "denied") from None
            except OSError as exc:  # a symlink loop, a name too long, no device...
                raise NotAvailableError(f"cannot open capture file {self.name!r}: "
                                        f"{exc.strerror or exc}") from None
            self._owns = True
        else:
            self._stream = source
            self._owns = False
        self.follow = follow
        self.poll = poll
        self._stop = threading.Event()
        self.offset = 0
        self.interfaces: list[Interface] = []
        self._section_seen = False
        #: Packets that are not RPMsg capture records, and records that are malformed.
        self.skipped = 0
        self.malformed = 0
        self.first_malformed = ""
        #: Times a followed file was cut and read again from its start (a new capture).
        self.restarts = 0

    # Stream -----------------------------------------------------------------------------------

    def _read(self, n: int) -> bytes | None:
        """Exactly ``n`` bytes; None at a clean end of file (nothing read)."""
        parts: list[bytes] = []
        have = 0
        while have < n:
            try:
                chunk = self._stream.read(n - have)
            except ValueError:  # closed by close() from another thread
                if self._stop.is_set():
                    return None
                raise
            except OSError as exc:  # EIO, or a stream that is no file (EISDIR, EINVAL)
                raise NotAvailableError(f"cannot read capture {self.name!r} at byte "
                                        f"{self.offset + have}: {exc.strerror or exc}") from None
            if chunk:
                parts.append(chunk)
                have += len(chunk)
                continue
            if self._stop.is_set():
                return None
            if self.follow:
                if self._shrunk(self.offset + have):
                    raise _Restarted
                self._stop.wait(self.poll)
                continue
            if have == 0:
                return None
            raise TruncatedCaptureError("pcapng_block", "total_len", self.offset,
                                        f"the file ends {have} bytes into a block of "
                                        f"{n} bytes (truncated capture)")
        return b"".join(parts)

    def _shrunk(self, position: int) -> bool:
        """Whether the file is now shorter than what was read of it: a new capture started
        over it (the file is truncated, then written from byte 0)."""
        try:
            st = os.fstat(self._stream.fileno())
        except (OSError, ValueError, io.UnsupportedOperation, AttributeError):
            return False  # a pipe or an in-memory stream: it never shrinks
        return stat.S_ISREG(st.st_mode) and st.st_size < position

    def close(self) -> None:
        """Stop following and close the file (if this reader opened it)."""
        self._stop.set()
        if self._owns:
            self._stream.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Blocks -----------------------------------------------------------------------------------

    def blocks(self) -> Iterator[tuple[int, bytes, int]]:
        """(type, body, file offset) of each whole block."""
        while not self._stop.is_set():
            try:
                yield from self._blocks()
                return
            except _Restarted:  # following, the file was cut: read the new capture
                self._stream.seek(0)
                self.offset = 0
                self._section_seen = False
                self.interfaces = []
                self.restarts += 1

    def _blocks(self) -> Iterator[tuple[int, bytes, int]]:
        while not self._stop.is_set():
            base = self.offset
            head = self._read(BLOCK_HEADER.size)
            if head is None:
                if not self._section_seen and base == 0 and not self._stop.is_set():
                    raise TruncatedCaptureError("pcapng_block", "type", 0,
                                                "the file is empty: not a pcapng capture")
                return
            btype, total = BLOCK_HEADER.unpack(head)
            self._check_header(btype, total, head, base)
            rest = self._read(total - BLOCK_HEADER.size)
            if rest is None:
                raise TruncatedCaptureError("pcapng_block", "total_len", base,
                                            f"the file ends after the header of a block of "
                                            f"{total} bytes (truncated capture)")
            (trailer,) = BLOCK_TRAILER.unpack(rest, len(rest) - BLOCK_TRAILER.size)
            if trailer != total:
                raise DecodeError("pcapng_block_trailer", "total_len", base + total - 4,
                                  f"trailing length {trailer} differs from the leading "
                                  f"{total}")
            self.offset = base + total
            yield btype, rest[:-BLOCK_TRAILER.size], base

    def _check_header(self, btype: int, total: int, head: bytes, base: int) -> None:
        """A block header at ``base`` that can start a block here, or DecodeError."""
        if not self._section_seen and btype != BT_SHB:
            raise DecodeError("pcapng_block", "type", base,
                              f"not a pcapng capture (first block type {btype:#x}, "
                              f"expected a section header {BT_SHB:#x})")
        if MIN_BLOCK_SIZE <= total <= MAX_BLOCK_SIZE and not total % 4:
            return
        if btype == BT_SHB and MIN_BLOCK_SIZE <= int.from_bytes(head[4:8], "big") \
                <= MAX_BLOCK_SIZE:
            raise DecodeError("pcapng_shb", "magic", base + 8,
                              "big-endian pcapng sections are not supported")
        raise DecodeError("pcapng_block", "total_len", base + 4,
                          f"block length {total} is not a multiple of 4 in "
                          f"{MIN_BLOCK_SIZE}..{MAX_BLOCK_SIZE}")

    # Records ----------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Record]:
        for btype, body, base in self.blocks():
            if btype == BT_SHB:
                self._section(body, base)
            elif btype == BT_IDB:
                self._interface(body, base)
            elif btype == BT_EPB:
                rec = self._epb(body, base)
                if rec is not None:
                    yield rec
            elif btype == BT_SPB:
                self._spb(body, base)
            # other block types (name resolution, statistics, custom...) are skipped

    def records(self) -> Iterator[Record]:
        return iter(self)

    def _section(self, body: bytes, base: int) -> None:
        data_base = base + BLOCK_HEADER.size
        magic, major, _minor, _length = SHB.unpack(body)
        if magic != BYTE_ORDER_MAGIC:
            if magic == int.from_bytes(BYTE_ORDER_MAGIC.to_bytes(4, "little"), "big"):
                raise DecodeError("pcapng_shb", "magic", data_base,
                                  "big-endian pcapng sections are not supported")
            raise DecodeError("pcapng_shb", "magic", data_base,
                              f"byte-order magic {magic:#x} is not {BYTE_ORDER_MAGIC:#x}")
        if major != 1:
            raise DecodeError("pcapng_shb", "major", data_base + SHB.offset("major"),
                              f"pcapng version {major} is not supported (1 is)")
        self._section_seen = True
        self.interfaces = []

    def _interface(self, body: bytes, base: int) -> None:
        data_base = base + BLOCK_HEADER.size
        linktype, _res, _snap = IDB.unpack(body)
        opts = _options(body, IDB.size, "pcapng_idb", data_base)
        self.interfaces.append(Interface(
            id=len(self.interfaces), name=_text(opts.get(IF_NAME)),
            description=_text(opts.get(IF_DESCRIPTION)), linktype=linktype,
            ts_units=_ts_units(opts.get(IF_TSRESOL), data_base)))

    def _spb(self, body: bytes, base: int) -> None:
        SPB.unpack(body)
        if not self.interfaces:
            raise DecodeError("pcapng_spb", "original_len", base + BLOCK_HEADER.size,
                              "simple packet block before any interface")
        self.skipped += 1  # no timestamp, no direction: not one of ours

    def _epb(self, body: bytes, base: int) -> Record | None:
        data_base = base + BLOCK_HEADER.size
        if_id, ts_hi, ts_lo, caplen, _origlen = EPB.unpack(body)
        if if_id >= len(self.interfaces):
            raise DecodeError("pcapng_epb", "interface_id", data_base,
                              f"interface {if_id} was not described "
                              f"({len(self.interfaces)} known)")
        if EPB.size + caplen > len(body):
            raise DecodeError("pcapng_epb", "captured_len", data_base + EPB.offset(
                "captured_len"), f"{caplen} bytes of packet overrun the block")
        iface = self.interfaces[if_id]
        ts = (ts_hi << 32) | ts_lo
        ts_ns = ts if iface.ts_units == 1_000_000_000 else ts * 1_000_000_000 // iface.ts_units
        data = body[EPB.size:EPB.size + caplen]
        if iface.linktype != LINKTYPE_WIRESHARK_UPPER_PDU:
            self.skipped += 1
            return None
        rec = _rpmsg_payload(data)
        if rec is None:
            self.skipped += 1
            return None
        try:
            return self._record(rec, iface, ts_ns)
        except DecodeError as exc:
            self.malformed += 1
            if not self.first_malformed:
                self.first_malformed = f"block at byte {base}: {exc}"
            return None

    @staticmethod
    def _record(rec: bytes, iface: Interface, ts_ns: int) -> Record | None:
        version, rtype, direction, kind, info_len, _res = RECORD.unpack(rec)
        if version != RECORD_VERSION:
            raise RECORD.error("version", f"record version {version} is not "
                               f"{RECORD_VERSION}")
        if RECORD.size + info_len > len(rec):
            raise RECORD.error("info_len", f"{info_len} bytes of info overrun the record")
        dname = DIRECTION_NAMES.get(direction)
        if dname is None:
            raise RECORD.error("direction", f"unknown direction {direction}")
        make = _RECORD_TYPES.get(rtype)
        if make is None:
            raise RECORD.error("type", f"unknown record type {rtype}")
        info = rec[RECORD.size:RECORD.size + info_len].decode("utf-8", "replace")
        return make(ts_ns, iface, dname, kind, info, rec[RECORD.size + info_len:])


def _message(ts_ns: int, iface: Interface, dname: str, kind: int, info: str,
             data: bytes) -> Record:
    if not dname:
        raise RECORD.error("direction", "a message needs a direction")
    src, dst, reserved, length, flags = RPMSG_HEADER.unpack(data)
    payload = data[HEADER_SIZE:]
    if length != len(payload):
        raise RPMSG_HEADER.error("len", f"length {length} differs from the "
                                 f"{len(payload)} bytes captured", RECORD.size)
    return CapturedMessage(ts_ns, iface, dname, src, dst, payload, flags, reserved, length)


def _event(ts_ns: int, iface: Interface, dname: str, kind: int, info: str,
           data: bytes) -> Record:
    if kind >= len(EVENT_KINDS) or not EVENT_KINDS[kind]:
        raise RECORD.error("kind", f"unknown event kind {kind}")
    return CapturedEvent(ts_ns, iface, EVENT_KINDS[kind], info)


def _frame(ts_ns: int, iface: Interface, dname: str, kind: int, info: str,
           data: bytes) -> Record:
    if kind >= len(FRAME_KINDS) or not FRAME_KINDS[kind]:
        raise RECORD.error("kind", f"unknown frame kind {kind}")
    return CapturedFrame(ts_ns, iface, dname, FRAME_KINDS[kind], parse_info(info), data)


#: How each record type of the capture's RPMsg records is read (after the common header).
_RECORD_TYPES: dict[int, Callable[[int, Interface, str, int, str, bytes], Record]] = {
    REC_MESSAGE: _message, REC_EVENT: _event, REC_FRAME: _frame}


def read_capture(source: str | os.PathLike[str] | BinaryIO | bytes) -> list[Record]:
    """Every record of a whole capture (a path, a stream or the bytes of a file). A capture
    cut inside its last block raises :class:`TruncatedCaptureError` holding the records
    before the cut (``exc.records``)."""
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    out: list[Record] = []
    with CaptureReader(source) as reader:
        try:
            out.extend(reader)
        except TruncatedCaptureError as exc:  # a crashed writer: keep what was whole
            exc.records = tuple(out)
            raise
    return out


__all__ = [
    "CaptureReader",
    "CapturedEvent",
    "CapturedFrame",
    "CapturedMessage",
    "Interface",
    "Record",
    "TruncatedCaptureError",
    "parse_info",
    "read_capture",
]
