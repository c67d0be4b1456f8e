"""CRC-16 variants used by NuttX RPMsg Port frames: CRC-16/ARC (current) and XMODEM (oldest).

Both are computed over the frame from offset 2 (everything after the ``crc`` field of the port
header). XMODEM uses the C implementation in :mod:`binascii`; ARC uses a 65536-entry table that
consumes two bytes per step, so neither runs a per-byte Python loop.
"""

from __future__ import annotations

import binascii
import sys
from array import array
from collections.abc import Callable
from typing import Literal

from rpmsg.wire.layout import Buffer

CrcName = Literal["none", "arc", "xmodem"]
CrcFunction = Callable[[Buffer], int]


def _arc_table8() -> list[int]:
    """Byte table of the reflected polynomial 0xA001 (0x8005 bit-reversed)."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_ARC8 = _arc_table8()
_ARC16: list[int] | None = None


def _arc_table16() -> list[int]:
    """Table indexed by (crc XOR next little-endian 16-bit word): two bytes per lookup."""
    global _ARC16
    if _ARC16 is None:
        t8 = _ARC8
        table = [0] * 65536
        for word in range(65536):
            crc = t8[word & 0xFF]  # first byte, starting from crc XOR word
            crc = (crc >> 8) ^ t8[(crc ^ (word >> 8)) & 0xFF]
            table[word] = crc
        _ARC16 = table
    return _ARC16


def crc16_arc(data: Buffer, crc: int = 0) -> int:
    """CRC-16/ARC ("crc16ibm" in NuttX): poly 0x8005 reflected, init 0, no final XOR."""
    view = memoryview(data).cast("B")
    n = len(view)
    t8 = _ARC8
    if n < 32:
        for byte in view:
            crc = (crc >> 8) ^ t8[(crc ^ byte) & 0xFF]
        return crc
    t16 = _arc_table16()
    even = n & ~1
    words: memoryview | array[int] = view[:even].cast("H")
    if sys.byteorder != "little":
        words = array("H", bytes(view[:even]))
        words.byteswap()
    for word in words:
        crc = t16[crc ^ word]
    if n & 1:
        crc = (crc >> 8) ^ t8[(crc ^ view[n - 1]) & 0xFF]
    return crc


def crc16_xmodem(data: Buffer, crc: int = 0) -> int:
    """CRC-16/XMODEM (NuttX ``crc16()`` before 12.10): poly 0x1021, MSB first, init 0."""
    return binascii.crc_hqx(data, crc)


CRC_FUNCTIONS: dict[str, CrcFunction | None] = {
    "none": None,
    "arc": crc16_arc,
    "xmodem": crc16_xmodem,
}


def get_crc(name: str) -> CrcFunction | None:
    """The CRC function called ``name`` (``none`` gives None); ValueError if unknown."""
    try:
        fn = CRC_FUNCTIONS[name]
    except KeyError:
        raise ValueError(f"unknown CRC {name!r}; choose one of {', '.join(CRC_FUNCTIONS)}") \
            from None
    if fn is crc16_arc:
        _arc_table16()  # build the 2-byte table now, not inside the first frame's timing
    return fn


def frame_crc(fn: CrcFunction, frame: Buffer) -> int:
    """The CRC of a port frame: over bytes [2, len) — cmd, avail, len and everything after."""
    return fn(memoryview(frame)[2:])
