"""The capture tap: what a Device and its link call to record their traffic in pcapng.

:func:`open_capture` is the factory ``rpmsg.open`` uses for ``?capture=PATH`` and
``RPMSG_CAPTURE``. Each call adds one interface (named by ``link_name``, the Device's URL) to
the file at ``path``; Devices of one process capturing to the same path share the file.
"""

from __future__ import annotations

import logging
import struct
import threading
from time import time_ns

from rpmsg.capture.blocks import (
    MessageParts,
    encode_batch,
    event_block,
    frame_block,
    message_parts,
)
from rpmsg.capture.writer import WAKE_AT, CaptureFile, expand_path, shared_file
from rpmsg.errors import ArgumentTypeError, InvalidArgumentError
from rpmsg.tap import Direction, EventKind, FrameInfo, FrameKind, MessageBatch, Tap
from rpmsg.wire.capture import DIR_RX, DIR_TX, EVENT_CODES, FRAME_CODES
from rpmsg.wire.layout import Buffer

log = logging.getLogger("rpmsg.capture")

#: Capture levels: ``messages`` (RPMsg messages and link events) or ``frames`` (also the
#: layer below: port frames, UART control bytes, SPI exchanges, virtio ring events).
LEVELS = ("messages", "frames")
_DIRS = {"tx": DIR_TX, "rx": DIR_RX}
#: What a wrong value the data path does not check (direction, address or length range)
#: raises while a record is packed: that record is skipped, said once, the tap goes on.
_BAD_RECORD = (KeyError, struct.error, OverflowError)


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

    Thread-safe and non-blocking: each record is encoded by the caller into its final bytes
    (one ``struct`` pack of 11 values for a message; a received burst, :meth:`message_batch`, in one
    buffer with one clock read and three appends per message) and queued; the file's
    flusher thread only writes. Encoding here costs the caller about what queueing a tuple
    for the flusher did and saves the flusher's pass (the two share the GIL, so the
    process's CPU per message is what counts). Once the tap is closed, fails, or its file
    stops (size limit, write error) its methods are replaced by no-ops, so a stopped
    capture costs one empty call. A call that fails disables the tap and logs it once; a
    record with a wrong value is skipped (logged once); it never raises.
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
        self._bad_logged = False
        self._released = False
        self._close_lock = threading.Lock()
        #: By (direction, payload length): what a single message's block is packed from.
        self._parts: dict[tuple[str, int], MessageParts] = {}
        self._put = file.put
        self._put_blocks = file.put_blocks
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
        self.message_batch = _ignore  # type: ignore[method-assign]
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
        # A hot path: a clock read, the block packed in one go, appended to the queue.
        try:
            q = self._queue
            if len(q) >= WAKE_AT and self._crowded():
                return
            n = len(payload)
            parts = self._parts.get((direction, n))
            if parts is None:
                parts = self._new_parts(direction, n)
            pack, head, middle, tail = parts
            ts = time_ns()
            q.append(pack(head, ts >> 32, ts & 0xFFFFFFFF, middle, src, dst, 0, n, flags,
                          payload if type(payload) is bytes else
                          payload.tobytes() if type(payload) is memoryview else
                          bytes(memoryview(payload)), tail))
        except _BAD_RECORD:
            self._bad_record()
        except Exception:
            self._fail("recording a message")

    def _new_parts(self, direction: Direction, n: int) -> MessageParts:
        parts = message_parts(self.interface, direction, n)
        if len(self._parts) < _PARTS_MAX:
            self._parts[direction, n] = parts
        return parts

    def message_batch(self, direction: Direction, batch: MessageBatch) -> None:
        """Messages of one direction at once (a received burst): one clock read, one
        buffer, one queue entry; items start with ``src, dst, payload``."""
        if len(batch) == 1:  # one pack costs less than a batch's setup
            item = batch[0]
            self.message(direction, item[0], item[1], item[2])
            return
        try:
            blocks = encode_batch(self.interface, time_ns(), direction, batch)
        except _BAD_RECORD:  # one by one: the wrong ones are skipped, the others kept
            for item in batch:
                self.message(direction, item[0], item[1], item[2])
            return
        except Exception:
            self._fail("recording messages")
            return
        self._put_blocks(blocks)

    def _bad_record(self) -> None:
        self.file.lost += 1
        if not self._bad_logged:
            self._bad_logged = True
            log.exception("capture of %s to %s: a record could not be encoded; skipped",
                          self.link_name, self.file.path)

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


#: Entries of a tap's single-message cache (one per direction and payload length seen).
_PARTS_MAX = 2048


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
    if not isinstance(link_name, str):
        raise ArgumentTypeError(f"link_name must be a str, not {type(link_name).__name__}")
    level = check_level(level)
    if max_bytes is not None and (isinstance(max_bytes, bool)
                                  or not isinstance(max_bytes, int)):
        raise ArgumentTypeError(f"capture_max must be an int, not {type(max_bytes).__name__}")
    name = interface_name(link_name)  # every check before the file: it would stay open
    file, _created = shared_file(expand_path(path), max_bytes)
    return CaptureTap(file, name, level)


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
