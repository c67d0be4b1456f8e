"""Sans-IO byte framing of NuttX RPMsg Port UART: escaping, START/END, CRC, control bytes.

:class:`FrameEncoder` turns port frames into wire bytes; :class:`FrameDecoder` turns any byte
stream into events (:class:`Frame`, :class:`Control`, :class:`FrameError`) and never raises on
peer input. Both protocol generations are described by a :class:`UartProtocol` (spec
``rpmsg-port.md`` §3.1-3.3, §3.8). Unlike NuttX, a frame with a bad length, CRC or escape is
dropped and counted, never delivered; with a CRC configured, a frame whose CRC field is 0
(NuttX's "no CRC" marker) passes only if its computed CRC is 0 too, unless the receiver opts
in with ``crc_optional``.

Speed: escaping is one ``bytes.replace`` per control value (C loops); decoding finds frame
boundaries with ``bytes.find``, checks the bytes in between with one ``translate`` and
unescapes by splitting on the escape byte; no per-byte Python loop runs on the hot path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rpmsg.errors import InvalidArgumentError
from rpmsg.port.crc import CrcFunction, frame_crc, get_crc
from rpmsg.wire.layout import Buffer
from rpmsg.wire.port import PORT_HEADER, PORT_HEADER_SIZE

_PORT = PORT_HEADER.struct
_CRC_OFFSET = PORT_HEADER.offset("crc")


@dataclass(frozen=True)
class UartProtocol:
    """The byte values of one UART protocol generation.

    Every byte in ``low..0x7f`` is special: it never appears raw inside a frame, so control
    bytes are recognised anywhere.
    """

    name: str
    low: int
    start: int
    end: int
    escape: int
    connreq: int
    connack: int
    suspend: int | None = None
    resume: int | None = None
    staywake1: int | None = None
    staywakeack1: int | None = None
    relaxwake: int | None = None
    poweroff: int | None = None
    staywake2: int | None = None
    staywakeack2: int | None = None

    @property
    def specials(self) -> range:
        return range(self.low, 0x80)

    @property
    def commands(self) -> frozenset[int]:
        """Control bytes that are neither START, END nor ESCAPE (known or reserved)."""
        return frozenset(self.specials) - {self.start, self.end, self.escape}

    @property
    def known_commands(self) -> frozenset[int]:
        values = (self.connreq, self.connack, self.suspend, self.resume, self.staywake1,
                  self.staywakeack1, self.relaxwake, self.poweroff, self.staywake2,
                  self.staywakeack2)
        return frozenset(v for v in values if v is not None)

    @property
    def has_staywake(self) -> bool:
        return self.staywake1 is not None

    def control_names(self) -> dict[int, str]:
        """Byte value -> name of every control byte of this protocol (for logs and captures)."""
        names = {"START": self.start, "END": self.end, "ESCAPE": self.escape,
                 "CONNREQ": self.connreq, "CONNACK": self.connack, "SUSPEND": self.suspend,
                 "RESUME": self.resume, "STAYWAKE1": self.staywake1,
                 "STAYWAKEACK1": self.staywakeack1, "RELAXWAKE": self.relaxwake,
                 "POWEROFF": self.poweroff, "STAYWAKE2": self.staywake2,
                 "STAYWAKEACK2": self.staywakeack2}
        return {v: k for k, v in names.items() if v is not None}


#: NuttX 12.13.0, 13.0.0 and master.
CURRENT = UartProtocol(
    "current", low=0x70, start=0x7F, end=0x70, escape=0x7C, connreq=0x7E, connack=0x7D,
    suspend=0x7B, resume=0x7A, staywake1=0x79, staywakeack1=0x78, relaxwake=0x77,
    poweroff=0x76, staywake2=0x75, staywakeack2=0x74)
#: NuttX 12.7.0 - 12.12.0 and open-vela 2024-12.
LEGACY = UartProtocol("legacy", low=0x7B, start=0x7F, end=0x7E, escape=0x7B, connreq=0x7D,
                      connack=0x7C)
PROTOCOLS = {"current": CURRENT, "legacy": LEGACY}

#: XOR applied to an escaped byte.
ESCAPE_XOR = 0x20


def _class(values: Iterable[int]) -> bytes:
    return b"[" + b"".join(re.escape(bytes([v])) for v in sorted(values)) + b"]"


# Events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    """A complete, checked port frame (port header + rpmsg header + payload), unescaped.

    ``escapes`` counts the escaped bytes it had on the wire; ``crc`` is ``"ok"`` when a CRC
    was checked, ``"none"`` when the receiver has none configured (or accepted a frame
    without one under ``crc_optional``).
    """

    data: bytes
    escapes: int = 0
    crc: str = "none"


@dataclass(frozen=True, slots=True)
class Control:
    """A control byte (CONNREQ, STAYWAKE...) seen on the line, inside or outside a frame."""

    byte: int


@dataclass(frozen=True, slots=True)
class FrameError:
    """Bytes or a frame were discarded; ``reason`` is also the statistics key.

    For a frame that was complete but failed a check (``bad_crc``, ``no_crc``,
    ``bad_length``, ``short``), ``data`` is its unescaped bytes and ``escapes`` as in
    :class:`Frame`, so a capture can show what was dropped.
    """

    reason: str
    size: int = 0
    data: bytes = b""
    escapes: int = 0


Event = Frame | Control | FrameError

#: Every reason a decoder may report; each is a counter in :attr:`FrameDecoder.errors`.
ERROR_REASONS = ("junk", "stray_end", "stray_escape", "unknown_control", "aborted",
                 "too_long", "bad_escape", "short", "bad_length", "bad_crc", "no_crc")
#: What each reason means, for DEBUG logs.
ERROR_TEXT = {
    "junk": "bytes outside a frame",
    "stray_end": "END outside a frame",
    "stray_escape": "ESCAPE outside a frame",
    "unknown_control": "unknown control byte",
    "aborted": "frame cut short by START or a connect byte",
    "too_long": "frame longer than the RX buffer",
    "bad_escape": "invalid escape sequence",
    "short": "frame shorter than the port header",
    "bad_length": "decoded length differs from the port header's len",
    "bad_crc": "CRC mismatch",
    "no_crc": "CRC field 0 (peer sends no CRC?) while a CRC is configured",
}


# Encoder ------------------------------------------------------------------------------------


class FrameEncoder:
    """Port frames to wire bytes: optional CRC, escaping, START and END."""

    def __init__(self, protocol: UartProtocol = CURRENT, crc: str = "none") -> None:
        self.protocol = protocol
        self.crc_name = crc
        self._crc: CrcFunction | None = get_crc(crc)
        esc = protocol.escape
        # The escape byte goes first: later replacements insert escape bytes that must stay.
        order = [esc, *(b for b in protocol.specials if b != esc)]
        self._pairs = [(bytes([b]), bytes([esc, b ^ ESCAPE_XOR])) for b in order]
        self._start = bytes([protocol.start])
        self._end = bytes([protocol.end])
        self._special = re.compile(_class(protocol.specials))

    def seal(self, frame: Buffer) -> Buffer:
        """The frame as sent: with CRC on, a copy with the ``crc`` field filled in."""
        if self._crc is None:
            return frame
        if len(frame) < PORT_HEADER_SIZE:
            raise ValueError(f"a port frame is at least {PORT_HEADER_SIZE} bytes")
        body = bytearray(frame)
        crc = frame_crc(self._crc, body)
        body[_CRC_OFFSET:_CRC_OFFSET + 2] = crc.to_bytes(2, "little")
        return body

    def wrap(self, body: Buffer) -> bytes:
        """START + escaped ``body`` + END (the CRC must already be in place)."""
        return self._start + self.escape(body) + self._end

    def escape(self, data: Buffer) -> bytes:
        """Escape every special byte of ``data``."""
        out = bytes(data)
        if self._special.search(out) is None:
            return out
        for raw, escaped in self._pairs:
            out = out.replace(raw, escaped)
        return out

    def encode(self, frame: Buffer) -> bytes:
        """One frame on the wire. With CRC on, the ``crc`` field is computed and filled in."""
        return self._start + self.escape(self.seal(frame)) + self._end

    def encode_many(self, frames: Iterable[Buffer]) -> bytes:
        return b"".join(self.encode(f) for f in frames)


# Decoder ------------------------------------------------------------------------------------


class FrameDecoder:
    """Byte stream to events; resynchronises at the next START after any error.

    ``max_len`` is the largest frame accepted (the RX buffer size); longer frames are
    discarded as ``too_long`` without being buffered. A frame is delivered only if its
    decoded length equals the port header's ``len`` and, when a CRC is configured, its CRC
    matches; a ``crc`` field of 0 passes only when the computed CRC is 0 as well, or with
    ``crc_optional`` (a peer that sends CRCs on some builds and none on others).
    """

    def __init__(self, protocol: UartProtocol = CURRENT, crc: str = "none",
                 max_len: int = 2048, *, crc_optional: bool = False) -> None:
        if max_len < PORT_HEADER_SIZE:
            raise ValueError(f"max_len must be at least {PORT_HEADER_SIZE}")
        self.protocol = protocol
        self.crc_name = crc
        self._crc: CrcFunction | None = get_crc(crc)
        self.crc_optional = crc_optional
        self.max_len = max_len
        self._max_escaped = 2 * max_len
        p = protocol
        self._start, self._end, self._esc = p.start, p.end, p.escape
        self._esc_byte = bytes([p.escape])
        self._known = p.known_commands
        self._abort_on = frozenset((p.connreq, p.connack))
        self._special = re.compile(_class(p.specials))
        self._stop = re.compile(_class(set(p.specials) - {p.escape}))
        self._start_byte, self._end_byte = bytes([p.start]), bytes([p.end])
        self._specials_bytes = bytes(p.specials)
        #: Bytes that interrupt the body of a frame other than END (START and commands).
        self._frame_controls = bytes(sorted(set(p.specials) - {p.escape, p.end}))
        #: Escaped value -> original byte; None for values no escape may carry.
        self._unescape: list[bytes | None] = [None] * 256
        for b in p.specials:
            self._unescape[b ^ ESCAPE_XOR] = bytes([b])
        self._in_frame = False
        self._discarding = False
        self._parts: list[bytes] = []
        self._size = 0
        self.errors: dict[str, int] = dict.fromkeys(ERROR_REASONS, 0)
        self.frames = 0
        self.controls = 0
        self.bytes_in = 0

    @property
    def in_frame(self) -> bool:
        return self._in_frame

    def reset(self) -> None:
        """Forget a partial frame (without counting it)."""
        self._in_frame = False
        self._discarding = False
        self._parts = []
        self._size = 0

    def feed(self, data: Buffer) -> list[Event]:
        """Consume ``data``; return the events it completes, in stream order."""
        events: list[Event] = []
        data = bytes(data)
        n = len(data)
        self.bytes_in += n
        pos = 0
        start, end = self._start_byte, self._end_byte
        while pos < n:
            # Fast paths: find the next END (in a frame) or START (outside) with bytes.find
            # and check the bytes skipped for other control bytes with one translate.
            if self._in_frame:
                i = data.find(end, pos)
                stop = n if i < 0 else i
                seg = data[pos:stop]
                if seg and len(seg.translate(None, self._frame_controls)) != len(seg):
                    pos = self._slow_step(data, pos, events)
                    continue
                if seg:
                    self._append(seg, events)
                if i < 0:
                    break
                pos = i + 1
                self._finish(events)
            else:
                k = data.find(start, pos)
                stop = n if k < 0 else k
                if stop > pos:
                    seg = data[pos:stop]
                    if len(seg.translate(None, self._specials_bytes)) != len(seg):
                        pos = self._slow_step(data, pos, events)
                        continue
                    self._error("junk", stop - pos, events)
                if k < 0:
                    break
                pos = k + 1
                self._begin()
        return events

    def _slow_step(self, data: bytes, pos: int, events: list[Event]) -> int:
        """Handle bytes up to and including the next special byte; return the new position."""
        if self._in_frame:
            m = self._stop.search(data, pos)
            assert m is not None  # the caller saw a control byte ahead
            i = m.start()
            if i > pos:
                self._append(data[pos:i], events)
            byte = data[i]
            if byte == self._end:
                self._finish(events)
            elif byte == self._start:
                self._error("aborted", self._size, events)
                self._begin()
            else:
                self._command(byte, events)
            return i + 1
        m = self._special.search(data, pos)
        assert m is not None
        i = m.start()
        if i > pos:
            self._error("junk", i - pos, events)
        byte = data[i]
        if byte == self._start:
            self._begin()
        elif byte == self._end:
            self._error("stray_end", 1, events)
        elif byte == self._esc:
            self._error("stray_escape", 1, events)
        else:
            self._command(byte, events)
        return i + 1

    # Internals ---------------------------------------------------------------------------

    def _error(self, reason: str, size: int, events: list[Event]) -> None:
        self.errors[reason] += 1
        events.append(FrameError(reason, size))

    def _begin(self) -> None:
        self._in_frame = True
        self._discarding = False
        self._parts = []
        self._size = 0

    def _append(self, chunk: bytes, events: list[Event]) -> None:
        if self._discarding:
            return
        self._size += len(chunk)
        if self._size > self._max_escaped:
            self._error("too_long", self._size, events)
            self._discarding = True
            self._parts = []
            return
        self._parts.append(chunk)

    def _command(self, byte: int, events: list[Event]) -> None:
        if byte not in self._known:
            self._error("unknown_control", 1, events)
            return
        if self._in_frame and byte in self._abort_on:
            if not self._discarding:
                self._error("aborted", self._size, events)
            self.reset()
        self.controls += 1
        events.append(Control(byte))

    def _finish(self, events: list[Event]) -> None:
        discarding = self._discarding
        raw = b"".join(self._parts)
        self.reset()
        if discarding:
            return
        body = raw
        pieces = raw.split(self._esc_byte)
        escapes = len(pieces) - 1
        if escapes:
            # Every piece after the first starts with an escaped byte.
            table = self._unescape
            try:
                body = pieces[0] + b"".join([table[p[0]] + p[1:]  # type: ignore[operator]
                                             for p in pieces[1:]])
            except (IndexError, TypeError):  # escape at the end, or an invalid escaped value
                self._error("bad_escape", len(raw), events)
                return
        size = len(body)
        if size > self.max_len:
            self._error("too_long", size, events)
            return
        if size < PORT_HEADER_SIZE:
            self._bad_frame("short", body, escapes, events)
            return
        crc, _cmd, _avail, length = _PORT.unpack_from(body, 0)
        if length != size:
            self._bad_frame("bad_length", body, escapes, events)
            return
        verdict = "none"
        if self._crc is not None:
            computed = frame_crc(self._crc, body)
            if crc == 0 and computed != 0:
                if not self.crc_optional:
                    self._bad_frame("no_crc", body, escapes, events)
                    return
            elif computed != crc:
                self._bad_frame("bad_crc", body, escapes, events)
                return
            else:
                verdict = "ok"
        self.frames += 1
        events.append(Frame(body, escapes, verdict))

    def _bad_frame(self, reason: str, body: bytes, escapes: int,
                   events: list[Event]) -> None:
        self.errors[reason] += 1
        events.append(FrameError(reason, len(body), body, escapes))


def get_protocol(name: str) -> UartProtocol:
    """The protocol called ``current`` or ``legacy``; InvalidArgumentError (a ValueError)
    otherwise."""
    try:
        return PROTOCOLS[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name
        raise InvalidArgumentError(f"unknown UART protocol {name!r}; choose current or "
                                   "legacy") from None


__all__ = [
    "CURRENT",
    "ERROR_REASONS",
    "ERROR_TEXT",
    "LEGACY",
    "PROTOCOLS",
    "Control",
    "Event",
    "Frame",
    "FrameDecoder",
    "FrameEncoder",
    "FrameError",
    "UartProtocol",
    "get_protocol",
]
