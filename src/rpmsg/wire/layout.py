"""Declarative little-endian wire layouts: each structure is declared once, here-style.

A :class:`Layout` names a structure and its fields; it owns the precompiled ``struct.Struct``
that every encoder, decoder and test uses, and turns short input into a :class:`DecodeError`
that names the structure, the first missing field and its byte offset.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rpmsg.errors import DecodeError

Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True)
class Field:
    """One field of a layout: its name, struct code, byte offset and size."""

    name: str
    code: str
    offset: int
    size: int


class Layout:
    """A packed little-endian structure: name, fields in order, total size."""

    def __init__(self, name: str, fields: Sequence[tuple[str, str]]) -> None:
        self.name = name
        self.struct = struct.Struct("<" + "".join(code for _, code in fields))
        self.size = self.struct.size
        offset = 0
        out: list[Field] = []
        for fname, code in fields:
            size = struct.calcsize("<" + code)
            out.append(Field(fname, code, offset, size))
            offset += size
        self.fields: tuple[Field, ...] = tuple(out)
        self._by_name = {f.name: f for f in out}

    def __repr__(self) -> str:
        return f"Layout({self.name!r}, size={self.size})"

    def field(self, name: str) -> Field:
        """The field called ``name``."""
        return self._by_name[name]

    def offset(self, name: str) -> int:
        """Byte offset of field ``name`` from the start of the structure."""
        return self._by_name[name].offset

    def error(self, field: str, reason: str, base: int = 0) -> DecodeError:
        """A DecodeError for ``field`` of this structure placed at ``base`` in the input."""
        return DecodeError(self.name, field, base + self.offset(field), reason)

    def check_size(self, data: Buffer, offset: int = 0) -> None:
        """Raise DecodeError naming the first field that ``data[offset:]`` does not hold."""
        have = len(data) - offset
        if have >= self.size:
            return
        for f in self.fields:
            if f.offset + f.size > have:
                raise DecodeError(
                    self.name,
                    f.name,
                    offset + f.offset,
                    f"input ends after {max(have, 0)} bytes, structure needs {self.size}",
                )

    def unpack(self, data: Buffer, offset: int = 0) -> tuple[Any, ...]:
        """Decode the raw field values at ``offset``; DecodeError if the input is short."""
        if offset < 0:  # struct would count it from the end of the input
            raise DecodeError(self.name, self.fields[0].name, offset, "negative offset")
        if len(data) - offset < self.size:
            self.check_size(data, offset)
        return self.struct.unpack_from(data, offset)

    def pack(self, *values: Any) -> bytes:
        """Encode field values in declaration order."""
        try:
            return self.struct.pack(*values)
        except struct.error as exc:
            raise ValueError(f"cannot encode {self.name}: {exc}") from None

    def pack_into(self, buf: bytearray | memoryview, offset: int, *values: Any) -> None:
        """Encode field values into ``buf`` at ``offset``."""
        try:
            self.struct.pack_into(buf, offset, *values)
        except struct.error as exc:
            raise ValueError(f"cannot encode {self.name}: {exc}") from None


def encode_name(name: str | bytes, structure: str, size: int = 32) -> bytes:
    """Encode a C-string name NUL-padded to ``size``; names of ``size`` bytes or more fail.

    The last byte must stay NUL (Linux forces ``name[31] = 0``), so a 32-byte field holds at
    most 31 bytes of name: longer names are an error, never a silent truncation.
    """
    from rpmsg.errors import NameTooLongError

    raw = name.encode("utf-8", "surrogateescape") if isinstance(name, str) else bytes(name)
    if b"\0" in raw:
        raise NameTooLongError(f"{structure} name {name!r} contains a NUL byte")
    if len(raw) >= size:
        raise NameTooLongError(
            f"{structure} name {name!r} is {len(raw)} bytes; at most {size - 1} fit"
        )
    return raw.ljust(size, b"\0")


def decode_name(raw: bytes) -> str:
    """Decode a C-string name: everything after the first NUL is ignored (peers leave garbage).

    If no NUL is present the last byte is dropped, as Linux does by forcing ``name[31] = 0``.
    Non-UTF-8 bytes survive a round trip through ``surrogateescape``.
    """
    end = raw.find(b"\0")
    if end < 0:
        end = len(raw) - 1
    return raw[:end].decode("utf-8", "surrogateescape")
