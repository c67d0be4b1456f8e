"""The library's error hierarchy: every failure a user can meet is one of these types.

All errors derive from :class:`RpmsgError`. Where a built-in exception carries the same
meaning, the error also derives from it (``RpmsgTimeoutError`` is a ``TimeoutError``,
``RemoteDisconnectedError`` a ``ConnectionError``), so generic ``except`` clauses work.
"""

from __future__ import annotations

import errno


class RpmsgError(Exception):
    """Base class of every error raised by this library."""


class MessageTooLargeError(RpmsgError, ValueError):
    """The payload does not fit the transport's buffer (Linux: EMSGSIZE)."""

    def __init__(self, size: int, mtu: int) -> None:
        super().__init__(f"message of {size} bytes exceeds the maximum payload of {mtu} bytes")
        self.size = size
        self.mtu = mtu


class WouldBlockError(RpmsgError, BlockingIOError):
    """The operation cannot complete now and the timeout was 0 (Linux: EAGAIN)."""


class NoBufferError(WouldBlockError):
    """No free transmit buffer is available right now (OpenAMP: RPMSG_ERR_NO_BUFF)."""


class RpmsgTimeoutError(RpmsgError, TimeoutError):
    """The operation did not complete within the given timeout."""


class RemoteDisconnectedError(RpmsgError, ConnectionError):
    """The remote side went away: name-service DESTROY, link down, or reset (Linux: EPIPE)."""


class NotBoundError(RpmsgError):
    """The endpoint has no destination address yet, so it cannot send."""


class EndpointClosedError(RpmsgError):
    """The endpoint (or the device it belongs to) was closed locally."""


class AddressInUseError(RpmsgError, ValueError):
    """The requested local address is already taken or outside the allowed range."""


class AlreadyOpenError(RpmsgError):
    """The device allows a single opener and is already open (Linux: EBUSY)."""


class AccessDeniedError(RpmsgError, PermissionError):
    """A file, socket or device belongs to someone else or is not accessible to us.

    The message names the path and the fix (an option that accepts a foreign owner, or the
    permission to grant).
    """


class InvalidArgumentError(RpmsgError, ValueError):
    """An argument has a value the API does not accept (address, timeout, size, name...).

    Raised before any resource (buffer, descriptor, lock) is taken, so a bad call never
    leaves the link in a different state.
    """


class ArgumentTypeError(RpmsgError, TypeError):
    """An argument has a type the API does not accept (e.g. a ``str`` payload)."""


class InvalidURLError(InvalidArgumentError):
    """A transport URL could not be understood (bad scheme, path or option)."""


class BufferInUseError(InvalidArgumentError, BufferError):
    """A zero-copy buffer cannot be released while views of its memory still exist."""


class ResourceLimitError(RpmsgError, OSError):
    """The system refused a resource the call needed (file descriptors: EMFILE/ENFILE,
    memory: ENOMEM); ``errno`` is the system's."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(code, message)

    def __str__(self) -> str:
        return str(self.strerror)


class NotAvailableError(RpmsgError):
    """The requested transport or device does not exist on this system."""


class NameTooLongError(RpmsgError, ValueError):
    """An endpoint or service name does not fit its 32-byte field (31 bytes plus the NUL)."""


class ProtocolError(RpmsgError):
    """The peer broke the protocol; a transport that raises this is marked broken."""


class DecodeError(ProtocolError, ValueError):
    """Bytes do not form a valid structure; names the structure, field and byte offset."""

    def __init__(self, structure: str, field: str, offset: int, reason: str) -> None:
        super().__init__(f"{structure}.{field} at byte offset {offset}: {reason}")
        self.structure = structure
        self.field = field
        self.offset = offset
        self.reason = reason


class TransportBrokenError(ProtocolError):
    """The transport was marked broken (corrupt ring, bad frame); it can no longer be used."""


#: errno values of a system out of what a call needs: descriptors, memory.
RESOURCE_LIMITS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOMEM))


def unavailable(exc: BaseException, message: str) -> RpmsgError:
    """The typed error for a system call that failed for a reason no caller handles more
    precisely: :class:`ResourceLimitError` (errno kept) for a system out of descriptors or
    memory, which is not about the path or device at all, else :class:`NotAvailableError`."""
    code = getattr(exc, "errno", None)
    if code in RESOURCE_LIMITS:
        return ResourceLimitError(code, message)
    return NotAvailableError(message)


__all__ = [
    "RESOURCE_LIMITS",
    "AccessDeniedError",
    "AddressInUseError",
    "AlreadyOpenError",
    "ArgumentTypeError",
    "BufferInUseError",
    "DecodeError",
    "EndpointClosedError",
    "InvalidArgumentError",
    "InvalidURLError",
    "MessageTooLargeError",
    "NameTooLongError",
    "NoBufferError",
    "NotAvailableError",
    "NotBoundError",
    "ProtocolError",
    "RemoteDisconnectedError",
    "ResourceLimitError",
    "RpmsgError",
    "RpmsgTimeoutError",
    "TransportBrokenError",
    "WouldBlockError",
    "unavailable",
]
