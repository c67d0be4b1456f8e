"""Kernel errno values of rpmsg_char / rpmsg_ctrl mapped to the library's error types.

Semantics from ``shared/spec/linux-chardev.md`` §5.2-5.3: EMSGSIZE (payload above the MTU),
EAGAIN (empty queue or no TX buffer with O_NONBLOCK), EPIPE / ENETRESET (endpoint gone),
raw errno 512 (``ERESTARTSYS`` leaking after the kernel's 15 s wait for a TX buffer),
EBUSY (single opener), EINVAL (write on a receive-only endpoint, unknown ioctl, ...).
``AccessDeniedError`` is :class:`rpmsg.AccessDeniedError` (both ``RpmsgError`` and
``PermissionError``), re-exported here.
"""

from __future__ import annotations

import errno
import sys
from typing import Literal

from rpmsg.errors import (
    AccessDeniedError,
    AlreadyOpenError,
    MessageTooLargeError,
    NoBufferError,
    NotAvailableError,
    NotBoundError,
    RemoteDisconnectedError,
    RpmsgError,
    RpmsgTimeoutError,
    WouldBlockError,
)

#: The kernel-internal ``ERESTARTSYS``; userspace sees it when no signal is pending.
ERESTARTSYS = 512

Op = Literal["open", "read", "write", "ioctl", "sysfs"]

__all__ = ["ERESTARTSYS", "AccessDeniedError", "AmbiguousEndpointError", "AmbiguousNameError",
           "KernelError", "RemoteprocStateError", "TruncatedMessageError", "map_os_error",
           "not_on_linux"]


class KernelError(RpmsgError, OSError):
    """An rpmsg system call failed with an errno that has no more specific library error."""


class AmbiguousNameError(RpmsgError, LookupError):
    """A name matches several devices (channels, remote processors); give a precise one."""


class AmbiguousEndpointError(AmbiguousNameError):
    """Several endpoint devices match a name/address query; pass the device index instead."""


class RemoteprocStateError(RpmsgError):
    """A remote processor is not in a state that allows the request (start while running,
    stop while offline, new firmware while running). ``state`` is the state sysfs showed."""

    def __init__(self, message: str, state: str | None = None) -> None:
        super().__init__(message)
        self.state = state


class TruncatedMessageError(MessageTooLargeError):
    """A received message was longer than the read buffer; the kernel discarded the rest."""

    def __init__(self, max_size: int) -> None:
        super().__init__(max_size + 1, max_size)
        self.args = (f"a received message was longer than max_size={max_size} bytes and was "
                     "lost (the kernel discards the part that does not fit)",)


def not_on_linux() -> NotAvailableError | None:
    """A NotAvailableError if this is not Linux, else None."""
    plat: str = sys.platform  # a plain str, so that type checkers keep both branches
    if plat.startswith("linux"):
        return None
    return NotAvailableError(f"rpmsg character devices exist only on Linux (this is {plat})")


def map_os_error(exc: OSError, op: Op, what: str, *, size: int = 0,
                 mtu: int = 496) -> RpmsgError:
    """The library error for ``exc`` raised by ``op`` on ``what`` (a path or description).

    ``size``/``mtu`` fill in :class:`MessageTooLargeError` for writes. Returns (does not raise)
    so that callers can ``raise map_os_error(...) from exc``.
    """
    code = exc.errno
    if code == errno.EMSGSIZE:
        return MessageTooLargeError(size, mtu)
    if code == errno.EAGAIN:
        if op == "write":
            return NoBufferError(f"{what}: no free transmit buffer right now")
        return WouldBlockError(f"{what}: nothing to read right now")
    if code in (errno.EPIPE, errno.ENETRESET):
        return RemoteDisconnectedError(
            f"{what}: the remote endpoint is gone ({errno.errorcode.get(code, code)})")
    if code == ERESTARTSYS:
        return RpmsgTimeoutError(
            f"{what}: the kernel found no free transmit buffer within its 15 s wait")
    if code == errno.EBUSY:
        if op == "open":
            return AlreadyOpenError(f"{what} is already open (the kernel allows one opener)")
        return AlreadyOpenError(f"{what}: device or resource busy")
    if code in (errno.EACCES, errno.EPERM):
        from rpmsg.linux.nodes import ACCESS_FIX

        return AccessDeniedError(f"permission denied: {what}: {ACCESS_FIX}")
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO) and op in ("open", "sysfs"):
        return NotAvailableError(f"{what} does not exist ({errno.errorcode.get(code, code)})")
    if code == errno.EINVAL and op == "write":
        return NotBoundError(f"{what}: the kernel refused the write (EINVAL): the endpoint has "
                             "no destination (created with dst ANY, receive-only)")
    if code == errno.EOPNOTSUPP:
        return NotAvailableError(f"{what}: not supported by this rpmsg backend (EOPNOTSUPP)")
    name = errno.errorcode.get(code or 0, str(code))
    return KernelError(code or 0, f"{what}: {op} failed with {name}: {exc.strerror}")
