"""The kernel's errno values become the library's error types."""

from __future__ import annotations

import errno

import pytest

from rpmsg.errors import (
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
from rpmsg.linux.errors import AccessDeniedError, KernelError, map_os_error

CASES = [
    (errno.EMSGSIZE, "write", MessageTooLargeError),
    (errno.EAGAIN, "write", NoBufferError),
    (errno.EAGAIN, "read", WouldBlockError),
    (errno.EPIPE, "read", RemoteDisconnectedError),
    (errno.EPIPE, "write", RemoteDisconnectedError),
    (errno.ENETRESET, "open", RemoteDisconnectedError),
    (512, "write", RpmsgTimeoutError),
    (errno.EBUSY, "open", AlreadyOpenError),
    (errno.EACCES, "open", AccessDeniedError),
    (errno.ENOENT, "open", NotAvailableError),
    (errno.EINVAL, "write", NotBoundError),
    (errno.EOPNOTSUPP, "ioctl", NotAvailableError),
    (errno.EIO, "read", KernelError),
]


@pytest.mark.parametrize(("code", "op", "kind"), CASES)
def test_errno_mapping(code: int, op: str, kind: type[Exception]) -> None:
    err = map_os_error(OSError(code, "x"), op, "/dev/rpmsg0", size=600)  # type: ignore[arg-type]
    assert type(err) is kind
    assert isinstance(err, RpmsgError)
    assert "\n" not in str(err)


def test_message_too_large_carries_sizes() -> None:
    err = map_os_error(OSError(errno.EMSGSIZE, "x"), "write", "/dev/rpmsg0", size=600)
    assert isinstance(err, MessageTooLargeError)
    assert (err.size, err.mtu) == (600, 496)


def test_builtin_bases_still_catch() -> None:
    assert isinstance(map_os_error(OSError(512, "x"), "write", "d"), TimeoutError)
    assert isinstance(map_os_error(OSError(errno.EPIPE, "x"), "read", "d"), ConnectionError)
    assert isinstance(map_os_error(OSError(errno.EACCES, "x"), "open", "d"), PermissionError)
    kernel = map_os_error(OSError(errno.EIO, "Input/output error"), "read", "d")
    assert isinstance(kernel, OSError) and kernel.errno == errno.EIO
