"""The capture tap: what a Device and its link call to record their traffic in pcapng.

:func:`open_capture` is the factory ``rpmsg.open`` uses for ``?capture=PATH`` and
``RPMSG_CAPTURE``. Each call adds one interface (named by ``link_name``, the Device's URL) to
the file at ``path``; Devices of one process capturing to the same path share the file.
"""

from __future__ import annotations

import logging
import threading
from time import time_ns

from rpmsg.capture.blocks import event_block, frame_block
from rpmsg.capture.writer import WAKE_AT, CaptureFile, expand_path, shared_file
from rpmsg.errors import ArgumentTypeError, InvalidArgumentError
from rpmsg.tap import Direction, EventKind, FrameInfo, FrameKind, Tap
from rpmsg.wire.capture import DIR_RX, DIR_TX, EVENT_CODES, FRAME_CODES
from rpmsg.wire.layout import Buffer

log = logging.getLogger("rpmsg.capture")

#: Capture levels: ``messages`` (RPMsg messages and link events) or ``frames`` (also the
#: layer below: port frames, UART control bytes, SPI exchanges, virtio ring events).
LEVELS = ("messages", "frames")
_DIRS = {"tx": DIR_TX, "rx": DIR_RX}


def check_level(level: object) -> str:
    """``messages`` or ``frames``; anything else is an InvalidArgumentError."""
    if not isinstance(level, str):
        raise ArgumentTypeError(f"capture level must be a str, not {type(level).__name__}")
    if level not in LEVELS:
        raise InvalidArgumentError(f"capture level {level!r} is not one of "
                                   f"{', '.join(LEVELS)}")
    return level


class CaptureTap:
    """Writes what one Device reports to its interface of a :class:`CaptureFile`.

    Thread-safe and non-blocking: a message costs the caller a clock read and a tuple on a
    queue (the file's flusher thread encodes it); events and frames are encoded at once.
    Once the tap is closed, fails, or its file stops (size limit, write error) its methods
    are replaced by no-ops, so a stopped capture costs one empty call. A call that fails
    disables the tap and logs it once; it never raises.
    """

    def __init__(self, file: CaptureFile, link_name: str, level: str = "messages") -> None:
        self.file = file
        self.link_name = link_name
        self.level = check_level(level)
        self.frames = level == "frames"
        desc = "RPMsg messages and link events" + (
            ", with the frames of the layer below" if self.frames else "")
        self.interface = file.add_interface(link_name, desc, self)
        self._off = False
        self._failed = False
        self._released = False
        self._close_lock = threading.Lock()
        self._put = file.put
        self._queue = file.queue
        self._crowded = file.crowded
        if not file.accepting:
            self.switch_off()

    @property
    def path(self) -> str:
        return self.file.path

    def switch_off(self) -> None:
        """From now on every call does nothing (any thread; idempotent)."""
        self._off = True
        self.message = _ignore  # type: ignore[method-assign]
        self.event = _ignore  # type: ignore[method-assign]
        self.frame = _ignore  # type: ignore[method-assign]

    def _fail(self, what: str) -> None:
        if not self._failed:
            self._failed = True
            self.switch_off()
            log.exception("capture of %s to %s: %s failed; capture disabled",
                          self.link_name, self.file.path, what)

    def message(self, direction: Direction, src: int, dst: int, payload: Buffer,
                flags: int = 0) -> None:
        # The hot path: a clock read, a copy of a non-bytes payload, a tuple on the queue.
        # A wrong direction or address is found by the flusher (skipped, logged once).
        try:
            q = self._queue
            if len(q) >= WAKE_AT and self._crowded():
                return
            q.append((self.interface, time_ns(), direction, src, dst, flags,
                      payload if type(payload) is bytes else
                      payload.tobytes() if type(payload) is memoryview else
                      bytes(memoryview(payload))))
        except Exception:
            self._fail("recording a message")

    def event(self, kind: EventKind, detail: str = "") -> None:
        try:
            self._put(event_block(self.interface, time_ns(), EVENT_CODES[kind], str(detail)))
        except Exception:
            self._fail(f"recording event {kind!r}")

    def frame(self, direction: Direction, kind: FrameKind, data: Buffer,
              info: FrameInfo) -> None:
        if not self.frames:
            return
        try:
            self._put(frame_block(self.interface, time_ns(), _DIRS[direction],
                                  FRAME_CODES[kind], info, data))
        except Exception:
            self._fail(f"recording a {kind!r} frame")

    def flush(self) -> None:
        """Write what is queued now (normally the flusher does it within a second)."""
        self.file.flush()

    def close(self) -> None:
        """Stop recording for this Device; the file closes with its last Device."""
        with self._close_lock:
            if self._released:
                return
            self._released = True
        self.switch_off()
        self.file.release(self)

    def __repr__(self) -> str:
        return (f"<CaptureTap {self.link_name!r} -> {self.file.path!r} "
                f"if={self.interface} {self.level}>")


def _ignore(*args: object, **kwargs: object) -> None:
    """What a switched-off tap does."""


def open_capture(path: str, *, link_name: str, level: str = "messages",
                 max_bytes: int | None = None) -> Tap:
    """A tap recording one Device to the pcapng file ``path`` (``%p`` = the pid).

    ``level`` is ``messages`` or ``frames``; ``max_bytes`` caps the file size (later records
    are dropped, reported once). The file is created mode 0600 and never through a symbolic
    link (:class:`~rpmsg.errors.AccessDeniedError`).
    """
    if not isinstance(path, str) or not path:
        raise InvalidArgumentError(f"capture path must be a non-empty str, not {path!r}")
    level = check_level(level)
    if max_bytes is not None and (isinstance(max_bytes, bool)
                                  or not isinstance(max_bytes, int)):
        raise ArgumentTypeError(f"capture_max must be an int, not {type(max_bytes).__name__}")
    file, _created = shared_file(expand_path(path), max_bytes)
    return CaptureTap(file, interface_name(link_name), level)


#: URL options that say how to capture, not what the link is: left out of interface names.
CAPTURE_OPTIONS = ("capture", "capture_level", "capture_max")


def interface_name(url: str) -> str:
    """The URL without its capture options (``shm:x?capture=/tmp/c&socket=s`` ->
    ``shm:x?socket=s``)."""
    base, sep, query = url.partition("?")
    if not sep:
        return url
    kept = [kv for kv in query.split("&") if kv and kv.partition("=")[0] not in CAPTURE_OPTIONS]
    return base + ("?" + "&".join(kept) if kept else "")


__all__ = ["CAPTURE_OPTIONS", "LEVELS", "CaptureTap", "check_level", "interface_name",
           "open_capture"]
