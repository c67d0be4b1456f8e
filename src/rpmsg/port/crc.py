"""CRC-16 variants used by NuttX RPMsg Port frames: CRC-16/ARC (current) and XMODEM (oldest).

Both are computed over the frame from offset 2 (everything after the ``crc`` field of the port
header). With the ``crc`` extra installed (``pip install rpmsg[crc]``: the Rust-backed
``fastcrc``, wheels for x86-64, aarch64 and armv7, glibc and musl) both come from it. Without
it, XMODEM is :func:`binascii.crc_hqx` (C, in the standard library) and ARC is the fastest
pure-Python method measured on varied data (``rpmsg bench uart`` shows both):

* CRC-16/ARC has init 0 and no final XOR, so it is linear over GF(2): each of the 16 result
  bits is the parity of (data AND a fixed bit mask). :func:`python_crc16_arc` reads the data
  as one big integer and takes 16 ``(mask & data).bit_count()`` parities, C loops over
  machine words instead of a Python step per byte (about 3-4x a byte-table loop and 2x a
  65536-entry table, which also thrashes the cache under load). Short inputs use the byte
  table, where 16 big-integer operations cost more than the loop.
"""

from __future__ import annotations

import binascii
import contextlib
from collections.abc import Callable, Iterator
from typing import Literal, Protocol, cast

from rpmsg.errors import InvalidArgumentError
from rpmsg.wire.layout import Buffer

CrcName = Literal["none", "arc", "xmodem"]
CrcFunction = Callable[[Buffer], int]


class ChainedCrc(Protocol):
    """What an implementation provides: ``fn(data)``, or ``fn(data, crc)`` to continue one."""

    def __call__(self, data: Buffer, crc: int = 0, /) -> int: ...


#: Check values of both variants over b"123456789" (the CRC catalogue's "check").
CHECK_INPUT = b"123456789"
CHECK_ARC = 0xBB3D
CHECK_XMODEM = 0x31C3


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
#: Below this many bytes the byte loop beats the 16 big-integer parities.
_SHORT = 24
#: Bytes per big-integer step; longer inputs are processed in chunks of this size.
_CHUNK = 2048
_MASKS: tuple[int, ...] = ()


def _arc_masks() -> tuple[int, ...]:
    """For each result bit r, the mask of data bits that flip it (data read big-endian).

    Bit ``8k + j`` of the integer is bit j of the byte k places before the end; it flips
    result bit r iff bit r of CRC(byte 1<<j followed by k zero bytes) is set.
    """
    global _MASKS
    if not _MASKS:
        t8 = _ARC8
        rows = [bytearray(_CHUNK) for _ in range(16)]
        values = [t8[1 << j] for j in range(8)]  # k = 0
        for k in range(_CHUNK):
            at = _CHUNK - 1 - k
            for j, value in enumerate(values):
                bit = 1 << j
                r = 0
                while value:
                    if value & 1:
                        rows[r][at] |= bit
                    value >>= 1
                    r += 1
            values = [(v >> 8) ^ t8[v & 0xFF] for v in values]  # one more zero byte
        _MASKS = tuple(int.from_bytes(row, "big") for row in rows)
    return _MASKS


def _arc_bytes(view: memoryview, crc: int) -> int:
    t8 = _ARC8
    for byte in view:
        crc = (crc >> 8) ^ t8[(crc ^ byte) & 0xFF]
    return crc


def _arc_parity(view: memoryview, crc: int, masks: tuple[int, ...]) -> int:
    """CRC of 2.._CHUNK bytes: a start value acts as if XORed into the first two bytes."""
    n = len(view)
    d = int.from_bytes(view, "big")
    if crc:
        d ^= ((crc & 0xFF) << 8 | crc >> 8) << (8 * (n - 2))
    out = 0
    bit = 1
    for mask in masks:
        if (mask & d).bit_count() & 1:
            out |= bit
        bit <<= 1
    return out


def python_crc16_arc(data: Buffer, crc: int = 0) -> int:
    """CRC-16/ARC ("crc16ibm" in NuttX) in pure Python: poly 0x8005 reflected, init 0."""
    view = memoryview(data).cast("B")
    n = len(view)
    if n < _SHORT:
        return _arc_bytes(view, crc)
    masks = _MASKS or _arc_masks()
    for start in range(0, n, _CHUNK):
        chunk = view[start : start + _CHUNK]
        crc = _arc_parity(chunk, crc, masks) if len(chunk) >= 2 else _arc_bytes(chunk, crc)
    return crc


def python_crc16_xmodem(data: Buffer, crc: int = 0) -> int:
    """CRC-16/XMODEM (NuttX ``crc16()`` before 12.10): poly 0x1021, MSB first, init 0."""
    return binascii.crc_hqx(data, crc)


def _load_fast() -> dict[str, ChainedCrc] | None:
    try:
        from fastcrc import crc16
    except ImportError:
        return None
    arc = cast(ChainedCrc, crc16.arc)
    xmodem = cast(ChainedCrc, crc16.xmodem)
    if arc(CHECK_INPUT, 0) != CHECK_ARC or xmodem(CHECK_INPUT, 0) != CHECK_XMODEM:
        return None  # a broken build must not corrupt every frame
    return {"arc": arc, "xmodem": xmodem}


#: The available implementations: ``python`` always, ``fastcrc`` with the ``crc`` extra.
IMPLEMENTATIONS: dict[str, dict[str, ChainedCrc]] = {
    "python": {"arc": python_crc16_arc, "xmodem": python_crc16_xmodem}}
if (_fast := _load_fast()) is not None:
    IMPLEMENTATIONS["fastcrc"] = _fast
#: The implementation in use: the extra when installed.
IMPLEMENTATION = "fastcrc" if "fastcrc" in IMPLEMENTATIONS else "python"


_active: dict[str, ChainedCrc] = dict(IMPLEMENTATIONS[IMPLEMENTATION])


def crc16_arc(data: Buffer, crc: int = 0) -> int:
    """CRC-16/ARC of ``data`` continuing from ``crc`` (see the module docstring)."""
    return _active["arc"](data, crc)


def crc16_xmodem(data: Buffer, crc: int = 0) -> int:
    """CRC-16/XMODEM of ``data`` continuing from ``crc`` (see the module docstring)."""
    return _active["xmodem"](data, crc)


CRC_FUNCTIONS: dict[str, CrcFunction | None] = {"none": None, **_active}


def get_crc(name: str) -> CrcFunction | None:
    """The CRC function called ``name`` (``none`` gives None); InvalidArgumentError (a
    ValueError) if unknown."""
    try:
        fn = CRC_FUNCTIONS[name]
    except KeyError:
        raise InvalidArgumentError(f"unknown CRC {name!r}; choose one of "
                                   f"{', '.join(CRC_FUNCTIONS)}") from None
    if fn is python_crc16_arc:
        _arc_masks()  # build the masks now, not inside the first frame's timing
    return fn


@contextlib.contextmanager
def implementation(name: str) -> Iterator[None]:
    """Make :func:`get_crc` hand out implementation ``name`` for a while (benchmarks, tests).

    Only objects created meanwhile (framers, decoders) use it; KeyError if not installed.
    """
    global IMPLEMENTATION
    chosen = IMPLEMENTATIONS[name]
    saved, saved_name = dict(_active), IMPLEMENTATION
    _active.update(chosen)
    CRC_FUNCTIONS.update(chosen)
    IMPLEMENTATION = name
    try:
        yield
    finally:
        _active.update(saved)
        CRC_FUNCTIONS.update(saved)
        IMPLEMENTATION = saved_name


def frame_crc(fn: CrcFunction, frame: Buffer) -> int:
    """The CRC of a port frame: over bytes [2, len) — cmd, avail, len and everything after."""
    return fn(memoryview(frame)[2:])
