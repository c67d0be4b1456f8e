"""NuttX errno numbers, and their translation to and from the host's by *name*.

NuttX services answer with negative NuttX errno values. Most equal Linux's, some do not
(``ENOTSUP`` is 138 in NuttX 13, 95 on Linux), and the host need not be Linux at all, so
numbers cross the wire only through this table. Facts: ``apache/nuttx`` ``include/errno.h``
(1..125) and ``shared/spec/nuttx-services.md`` §1.1 (``ENOTSUP`` 138 in 13.0.0).
"""

from __future__ import annotations

import errno as _host

#: NuttX errno numbers by name (``include/errno.h`` of NuttX 13.0.0).
NUTTX_ERRNO: dict[str, int] = {
    "EPERM": 1, "ENOENT": 2, "ESRCH": 3, "EINTR": 4, "EIO": 5, "ENXIO": 6, "E2BIG": 7,
    "ENOEXEC": 8, "EBADF": 9, "ECHILD": 10, "EAGAIN": 11, "ENOMEM": 12, "EACCES": 13,
    "EFAULT": 14, "ENOTBLK": 15, "EBUSY": 16, "EEXIST": 17, "EXDEV": 18, "ENODEV": 19,
    "ENOTDIR": 20, "EISDIR": 21, "EINVAL": 22, "ENFILE": 23, "EMFILE": 24, "ENOTTY": 25,
    "ETXTBSY": 26, "EFBIG": 27, "ENOSPC": 28, "ESPIPE": 29, "EROFS": 30, "EMLINK": 31,
    "EPIPE": 32, "EDOM": 33, "ERANGE": 34, "EDEADLK": 35, "ENAMETOOLONG": 36, "ENOLCK": 37,
    "ENOSYS": 38, "ENOTEMPTY": 39, "ELOOP": 40, "ENOMSG": 42, "EIDRM": 43, "ENOSTR": 60,
    "ENODATA": 61, "ETIME": 62, "ENOSR": 63, "ENOLINK": 67, "EPROTO": 71, "EMULTIHOP": 72,
    "EBADMSG": 74, "EOVERFLOW": 75, "EBADFD": 77, "EILSEQ": 84, "EUSERS": 87,
    "ENOTSOCK": 88, "EDESTADDRREQ": 89, "EMSGSIZE": 90, "EPROTOTYPE": 91,
    "ENOPROTOOPT": 92, "EPROTONOSUPPORT": 93, "ESOCKTNOSUPPORT": 94, "EOPNOTSUPP": 95,
    "EPFNOSUPPORT": 96, "EAFNOSUPPORT": 97, "EADDRINUSE": 98, "EADDRNOTAVAIL": 99,
    "ENETDOWN": 100, "ENETUNREACH": 101, "ENETRESET": 102, "ECONNABORTED": 103,
    "ECONNRESET": 104, "ENOBUFS": 105, "EISCONN": 106, "ENOTCONN": 107, "ESHUTDOWN": 108,
    "ETOOMANYREFS": 109, "ETIMEDOUT": 110, "ECONNREFUSED": 111, "EHOSTDOWN": 112,
    "EHOSTUNREACH": 113, "EALREADY": 114, "EINPROGRESS": 115, "ESTALE": 116,
    "EREMOTEIO": 121, "EDQUOT": 122, "ENOMEDIUM": 123, "EMEDIUMTYPE": 124,
    "ECANCELED": 125, "ENOTSUP": 138,
}
#: Host names that are aliases of a name above (same meaning, one NuttX number).
_ALIASES = {"EWOULDBLOCK": "EAGAIN", "EDEADLOCK": "EDEADLK"}
_BY_NUMBER = {number: name for name, number in NUTTX_ERRNO.items()}

#: What a host error without a NuttX twin becomes on the wire.
FALLBACK = "EIO"


def to_nuttx(host_errno: int | None) -> int:
    """The NuttX number (positive) for a host ``errno`` value; unknown ones become EIO."""
    name = _host.errorcode.get(host_errno or 0, FALLBACK)
    name = _ALIASES.get(name, name)
    return NUTTX_ERRNO.get(name, NUTTX_ERRNO[FALLBACK])


def from_nuttx(nuttx_errno: int) -> int:
    """The host ``errno`` value for a NuttX number (positive); unknown ones become EIO."""
    name = _BY_NUMBER.get(abs(nuttx_errno), FALLBACK)
    value = getattr(_host, name, None)
    return value if isinstance(value, int) else _host.EIO


def name_of(nuttx_errno: int) -> str:
    """The symbolic name of a NuttX errno number (sign ignored), or ``E<number>``."""
    return _BY_NUMBER.get(abs(nuttx_errno), f"E{abs(nuttx_errno)}")


def neg(name: str) -> int:
    """``-NUTTX_ERRNO[name]``: the value a NuttX response carries for that error."""
    return -NUTTX_ERRNO[name]


__all__ = ["FALLBACK", "NUTTX_ERRNO", "from_nuttx", "name_of", "neg", "to_nuttx"]
