"""``poll(2)`` without a clock read, for the receive path of kernel endpoints.

CPython 3.11's ``select.poll().poll(timeout)`` reads the monotonic clock before every wait
that has a timeout (to resume after a signal, PEP 475). Where the clock has no vDSO, as on
User-Mode Linux (15-30 µs per read measured there), that is one system call per received
message more than a C client makes: ``write``, clock, ``poll``, ``read`` instead of
``write``, ``poll``, ``read``. :class:`Poller` calls libc's ``poll`` through :mod:`ctypes`
instead (the GIL is released, as for any foreign call) and reads the clock only when a signal
interrupts the wait; it falls back to :mod:`select` where ctypes or libc's ``poll`` is
missing.

A wait interrupted by a signal runs the signal's Python handler (which may raise, e.g.
KeyboardInterrupt) and resumes for the rest of its timeout counted from the interruption, so
in that one case it may last up to twice its timeout.
"""

from __future__ import annotations

import ctypes
import errno
import math
import os
import select
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

#: ``struct pollfd`` of <poll.h>: int fd, short events, short revents (8 bytes, no padding).
_POLLFD = struct.Struct("=ihh")


def _find_libc_poll() -> Callable[..., int] | None:
    try:
        fn: Any = ctypes.CDLL(None, use_errno=True).poll
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


#: libc's poll, or None (then :class:`Poller` uses :mod:`select`).
LIBC_POLL = _find_libc_poll()


class Poller:
    """A fixed set of ``(fd, events)`` to wait on, like a registered ``select.poll``.

    After :meth:`wait`, what descriptor ``i`` reported is ``view[4 * i + 3]`` (the
    ``revents`` of the ``pollfd`` array as 16-bit integers; :meth:`revents` says the same
    more slowly): hot loops read it without making an object per call.
    """

    __slots__ = ("_buf", "_count", "_fallback", "_fds", "_poll", "_ptr", "view")

    def __init__(self, fds: Sequence[tuple[int, int]], *,
                 libc_poll: Callable[..., int] | None = LIBC_POLL) -> None:
        self._fds = [fd for fd, _ev in fds]
        self._count = len(fds)
        self._poll = libc_poll
        self._buf = bytearray(_POLLFD.size * self._count)
        for i, (fd, ev) in enumerate(fds):
            _POLLFD.pack_into(self._buf, i * _POLLFD.size, fd, ev, 0)
        #: The pollfd array as 16-bit integers: revents of descriptor i at 4 * i + 3.
        self.view = memoryview(self._buf).cast("h")
        self._ptr = ctypes.addressof((ctypes.c_char * len(self._buf)).from_buffer(self._buf))
        self._fallback: select.poll | None = None
        if libc_poll is None:
            self._fallback = select.poll()
            for fd, ev in fds:
                self._fallback.register(fd, ev)

    def wait(self, ms: int | None) -> int:
        """Wait until a descriptor is ready or ``ms`` milliseconds passed (None: no limit,
        0: do not wait); how many are ready (0: the time passed)."""
        if self._fallback is not None:
            found = dict(self._fallback.poll(ms))
            for i, fd in enumerate(self._fds):
                self.view[4 * i + 3] = found.get(fd, 0)
            return len(found)
        ptr, count, poll = self._ptr, self._count, self._poll
        assert poll is not None
        wait = -1 if ms is None else ms
        end = None
        while True:
            ready = poll(ptr, count, wait)
            if ready >= 0:
                return ready
            code = ctypes.get_errno()
            if code != errno.EINTR:
                raise OSError(code, os.strerror(code))
            # A signal: its Python handler runs before the next bytecode (it may raise);
            # then wait for the rest of the timeout, counted from now.
            if wait > 0:
                now = time.monotonic()
                end = end or now + wait / 1000
                wait = max(0, math.ceil((end - now) * 1000))

    def revents(self, index: int) -> int:
        """What descriptor number ``index`` (in the order given) reported at the last wait."""
        return self.view[4 * index + 3] & 0xFFFF

    def poll(self, ms: int | None) -> list[tuple[int, int]]:
        """``[(fd, revents), ...]`` of the ready descriptors, as ``select.poll().poll``."""
        if not self.wait(ms):
            return []
        return [(fd, r) for i, fd in enumerate(self._fds) if (r := self.revents(i))]


__all__ = ["LIBC_POLL", "Poller"]
