"""The ``rpmsg.trace`` logger: one log line per message (and event, and frame) of a Device.

Off by default, even under ``-vv`` (DEBUG on the root logger): it traces only when its own
level was set, ``logging.getLogger("rpmsg.trace").setLevel(logging.DEBUG)``, before the Device
is opened (:func:`trace_enabled`). :func:`trace_tap` returns the tap ``rpmsg.open`` installs
then, and :func:`combine` joins it with a capture tap.
"""

from __future__ import annotations

import logging
import threading

from rpmsg.capture.describe import ServiceTracker, describe_frame, describe_message
from rpmsg.tap import Direction, EventKind, FrameInfo, FrameKind, Tap
from rpmsg.wire.layout import Buffer

TRACE_LOGGER = "rpmsg.trace"
trace_log = logging.getLogger(TRACE_LOGGER)

_internal = logging.getLogger("rpmsg.capture")


class TraceTap:
    """Logs each message, event and frame of one Device at DEBUG on ``rpmsg.trace``."""

    def __init__(self, link_name: str, logger: logging.Logger = trace_log) -> None:
        self.link_name = link_name
        self.log = logger
        self._services = ServiceTracker()
        self._lock = threading.Lock()
        self._closed = False

    def _fail(self) -> None:
        if not self._closed:
            self._closed = True
            _internal.exception("rpmsg.trace for %s failed; tracing disabled", self.link_name)

    def message(self, direction: Direction, src: int, dst: int, payload: Buffer,
                flags: int = 0) -> None:
        if self._closed:
            return
        try:
            with self._lock:
                self._services.feed(None, direction, dst, payload)
                service = self._services.service(None, direction, src, dst)
            self.log.debug("%s %s", self.link_name,
                           describe_message(direction, src, dst, payload, flags, service))
        except Exception:
            self._fail()

    def event(self, kind: EventKind, detail: str = "") -> None:
        if self._closed:
            return
        try:
            self.log.debug("%s %s%s", self.link_name, kind, f" ({detail})" if detail else "")
        except Exception:
            self._fail()

    def frame(self, direction: Direction, kind: FrameKind, data: Buffer,
              info: FrameInfo) -> None:
        if self._closed:
            return
        try:
            self.log.debug("%s %s", self.link_name, describe_frame(direction, kind, data, info))
        except Exception:
            self._fail()

    def close(self) -> None:
        self._closed = True


class TeeTap:
    """Several taps as one (capture and trace together)."""

    def __init__(self, *taps: Tap) -> None:
        self.taps = taps

    def message(self, direction: Direction, src: int, dst: int, payload: Buffer,
                flags: int = 0) -> None:
        for t in self.taps:
            t.message(direction, src, dst, payload, flags)

    def event(self, kind: EventKind, detail: str = "") -> None:
        for t in self.taps:
            t.event(kind, detail)

    def frame(self, direction: Direction, kind: FrameKind, data: Buffer,
              info: FrameInfo) -> None:
        for t in self.taps:
            t.frame(direction, kind, data, info)

    def close(self) -> None:
        for t in self.taps:
            t.close()


def trace_enabled() -> bool:
    """Whether ``rpmsg.trace`` was turned on: its own level set, and DEBUG enabled."""
    return trace_log.level != logging.NOTSET and trace_log.isEnabledFor(logging.DEBUG)


def trace_tap(link_name: str) -> TraceTap | None:
    """A tracing tap for the Device on ``link_name`` if ``rpmsg.trace`` is enabled, else None."""
    return TraceTap(link_name) if trace_enabled() else None


def combine(*taps: Tap | None) -> Tap | None:
    """One tap from any number of optional ones (None when there is none)."""
    present = [t for t in taps if t is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return TeeTap(*present)


__all__ = ["TRACE_LOGGER", "TeeTap", "TraceTap", "combine", "trace_enabled", "trace_tap"]
