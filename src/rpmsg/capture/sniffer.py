"""Passive decoding of one direction of an RPMsg Port UART line (sans-IO).

Unlike a link's own decoder, a sniffer shows frames the receiver would drop: every frame with
a consistent length is reported with its CRC verdict (``ok``, ``bad``, or ``none`` when the
frame carries no CRC or no algorithm was given), so a corrupted frame is seen rather than
counted. Framing errors (junk between frames, aborted frames, bad escapes) are reported too.
Frame boundaries, escapes and control bytes come from the UART framer of
:mod:`rpmsg.port.uart.framer`, for either protocol generation.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, fields

from rpmsg.errors import ArgumentTypeError, InvalidArgumentError
from rpmsg.port.crc import CrcFunction, frame_crc, get_crc
from rpmsg.port.uart.framer import Control, Frame, FrameDecoder, FrameError, UartProtocol
from rpmsg.tap import Direction
from rpmsg.wire.port import PORT_HEADER

#: CRC choices: a named algorithm, ``none`` (no check) or ``auto`` (ARC, else XMODEM).
CRC_CHOICES = ("auto", "none", "arc", "xmodem")
#: The directions a line can be sniffed in (those of :data:`rpmsg.tap.Direction`).
DIRECTIONS: tuple[str, ...] = typing.get_args(Direction)
#: The largest frame a sniffer accepts (the port header's u16 length).
MAX_FRAME = 0xFFFF


@dataclass(frozen=True)
class SniffedFrame:
    """A port frame as it crossed the line (unescaped), with its CRC verdict."""

    direction: Direction
    data: bytes
    crc: str
    crc_alg: str
    escapes: int

    def info(self, protocol: str) -> dict[str, int | str | bool]:
        out: dict[str, int | str | bool] = {"crc": self.crc, "escapes": self.escapes,
                                            "protocol": protocol}
        if self.crc_alg:
            out["crc_alg"] = self.crc_alg
        return out


@dataclass(frozen=True)
class SniffedControl:
    """A control byte (CONNREQ, STAYWAKE...) seen on the line."""

    direction: Direction
    byte: int
    name: str


@dataclass(frozen=True)
class SniffedError:
    """Bytes the framer could not make into a frame (``reason`` as the framer names it)."""

    direction: Direction
    reason: str
    size: int


SniffEvent = SniffedFrame | SniffedControl | SniffedError


def control_names(protocol: UartProtocol) -> dict[int, str]:
    """Byte value -> name (``CONNREQ``, ``STAYWAKE1``...) of the protocol's commands."""
    names: dict[int, str] = {}
    for f in fields(protocol):
        value = getattr(protocol, f.name)
        if f.name not in ("name", "low") and isinstance(value, int):
            names.setdefault(value, f.name.upper())
    return names


class LineSniffer:
    """Bytes of one direction in, frames, control bytes and framing errors out."""

    def __init__(self, direction: Direction, protocol: UartProtocol, crc: str = "auto") -> None:
        if direction not in DIRECTIONS:
            raise InvalidArgumentError(f"direction must be one of {', '.join(DIRECTIONS)}, "
                                       f"not {direction!r}")
        if not isinstance(protocol, UartProtocol):
            raise ArgumentTypeError(f"protocol must be a UartProtocol (get_protocol('current')"
                                    f"), not {type(protocol).__name__}")
        if crc not in CRC_CHOICES:
            raise InvalidArgumentError(f"unknown CRC {crc!r}; choose one of "
                                       f"{', '.join(CRC_CHOICES)}")
        self.direction = direction
        self.protocol = protocol
        self._decoder = FrameDecoder(protocol, crc="none", max_len=MAX_FRAME)
        algs = ("arc", "xmodem") if crc == "auto" else (() if crc == "none" else (crc,))
        self._crcs: list[tuple[str, CrcFunction]] = []
        for name in algs:
            fn = get_crc(name)
            assert fn is not None
            self._crcs.append((name, fn))
        self._names = control_names(protocol)
        self._specials = bytes(protocol.specials)
        self.frames = 0
        self.bad_crc = 0

    def verdict(self, data: bytes) -> tuple[str, str]:
        """(``ok``/``bad``/``none``, algorithm that matched)."""
        crc = PORT_HEADER.unpack(data)[0]
        if crc == 0 or not self._crcs:
            return "none", ""
        for name, fn in self._crcs:
            if frame_crc(fn, data) == crc:
                return "ok", name
        return "bad", ""

    def feed(self, data: bytes) -> list[SniffEvent]:
        out: list[SniffEvent] = []
        for ev in self._decoder.feed(data):
            if isinstance(ev, Frame):
                body = ev.data
                verdict, alg = self.verdict(body)
                escapes = len(body) - len(body.translate(None, self._specials))
                self.frames += 1
                if verdict == "bad":
                    self.bad_crc += 1
                out.append(SniffedFrame(self.direction, body, verdict, alg, escapes))
            elif isinstance(ev, Control):
                out.append(SniffedControl(self.direction, ev.byte,
                                          self._names.get(ev.byte, f"{ev.byte:#04x}")))
            elif isinstance(ev, FrameError):
                out.append(SniffedError(self.direction, ev.reason, ev.size))
        return out


__all__ = ["CRC_CHOICES", "LineSniffer", "SniffEvent", "SniffedControl", "SniffedError",
           "SniffedFrame", "control_names"]
