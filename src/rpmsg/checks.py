"""Argument checks shared by every API entry point: timeouts, addresses, payloads.

One rule each, applied before any resource (buffer, lock, descriptor) is taken, so a wrong
argument is an :class:`~rpmsg.errors.InvalidArgumentError` or
:class:`~rpmsg.errors.ArgumentTypeError` on every transport alike and never leaves a link
with a buffer missing.
"""

from __future__ import annotations

import math
import threading
from numbers import Real

from rpmsg.errors import ArgumentTypeError, InvalidArgumentError
from rpmsg.wire.layout import Buffer

#: Largest RPMsg address (the header fields are u32).
ADDR_MAX = 0xFFFFFFFF
#: Endpoint and service names: a 32-byte field with its NUL (see rpmsg.wire.layout.encode_name).
NAME_MAX = 31

_PLAIN = frozenset((int, float))
_DAY = 86400.0


def timeout(value: object, what: str = "timeout") -> float | None:
    """A pyserial-style timeout: None (or ``inf``) waits forever, 0 polls, x > 0 waits x s.

    NaN, negative values and non-numbers are refused. Huge finite values are fine: waits
    are cut into slices the OS accepts (see :class:`rpmsg.transport.Deadline`).
    """
    if value is None or (type(value) in _PLAIN and 0 <= value < _DAY):  # type: ignore[operator]
        return value  # type: ignore[return-value]  # the common case, on every send/recv
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ArgumentTypeError(f"{what} must be None or a number of seconds, "
                                f"not {type(value).__name__}")
    seconds = float(value)
    if math.isnan(seconds) or seconds < 0:
        raise InvalidArgumentError(f"{what} must be None or >= 0 seconds, not {value!r}")
    return None if math.isinf(seconds) else seconds


def pause(value: object, what: str = "interval") -> float:
    """A pause that must end: finite seconds >= 0, at most :data:`threading.TIMEOUT_MAX`
    (some 292 years; ``time.sleep`` and ``Event.wait`` raise ``OverflowError`` beyond it)."""
    seconds = timeout(value, what)
    if seconds is None:
        raise InvalidArgumentError(f"{what} must be a finite number of seconds, not {value!r}")
    if seconds > threading.TIMEOUT_MAX:
        raise InvalidArgumentError(f"{what} {value!r} is more seconds than a pause can last "
                                   f"(at most {threading.TIMEOUT_MAX:.0f})")
    return seconds


def address(value: object, what: str = "address") -> int:
    """An RPMsg address: an int in 0..0xFFFFFFFF (``ADDR_ANY`` included)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value <= ADDR_MAX:
        raise InvalidArgumentError(f"{what} {value} is outside 0..{ADDR_MAX:#x}")
    return value


def count(value: object, what: str, minimum: int = 1) -> int:
    """A whole number of at least ``minimum`` (queue sizes, batch sizes, lengths)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise InvalidArgumentError(f"{what} must be >= {minimum}, not {value}")
    return value


def name(value: object, what: str = "endpoint name") -> str:
    """An endpoint or service name: a str of at most 31 UTF-8 bytes without NUL ("" = none)."""
    if not isinstance(value, str):
        raise ArgumentTypeError(f"{what} must be a str, not {type(value).__name__}")
    if "\0" in value:
        raise InvalidArgumentError(f"{what} {value!r} contains a NUL character")
    try:
        size = len(value.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:  # a lone surrogate no peer could have sent (not \udc80..ff)
        raise InvalidArgumentError(f"{what} {value!r} cannot be encoded as UTF-8") from None
    if size > NAME_MAX:
        from rpmsg.errors import NameTooLongError

        raise NameTooLongError(f"{what} {value!r} is {size} bytes; at most {NAME_MAX} fit")
    return value


def payload(data: object) -> Buffer:
    """A payload whose ``len()`` is its size in bytes: any C-contiguous buffer.

    ``bytes`` and ``bytearray`` pass through unchanged (the hot path); any other buffer
    becomes a memoryview cast to bytes, so ``memoryview(array('I', ...))`` measures 4 bytes
    per item in every transport and MTU check.
    """
    if type(data) is bytes or type(data) is bytearray:
        return data
    if isinstance(data, str):
        raise ArgumentTypeError("payload must be bytes-like, not str (encode it first)")
    try:
        view = memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        raise ArgumentTypeError(
            f"payload must be a bytes-like object, not {type(data).__name__}") from None
    if not view.c_contiguous:
        raise InvalidArgumentError("payload must be a C-contiguous buffer")
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


__all__ = ["ADDR_MAX", "NAME_MAX", "address", "count", "name", "payload", "timeout"]
