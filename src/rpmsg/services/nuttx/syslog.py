"""rpmsg-syslog both ways (spec §2): receive a chip's log, or send Python's log to a chip.

:class:`SyslogServer` binds the chip's ``rpmsg-syslog`` announcement (the chip is the client
and pushes its 4 KiB backlog as soon as we bind), reassembles lines from TRANSFER messages
that cut text anywhere, and hands out :class:`SyslogLine` objects (a callback, or
:meth:`~SyslogServer.recv` and iteration). :meth:`~SyslogServer.flush` uses SYNC as the spec's
flush barrier.

:class:`SyslogHandler` is a :class:`logging.Handler` for the other direction: it announces
``rpmsg-syslog`` as a client, and a NuttX syslog server prints each record on its console.
It answers SYNC as a client must (echo it unchanged), or a NuttX task would wait forever.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rpmsg.device import Device
from rpmsg.endpoint import Endpoint
from rpmsg.errors import DecodeError, EndpointClosedError, RpmsgError
from rpmsg.services.nuttx.binding import AnnouncementBinder
from rpmsg.transport import Deadline
from rpmsg.wire.nuttx_syslog import (
    SYSLOG_NAME,
    SyslogCommand,
    SyslogControl,
    SyslogSync,
    SyslogTransfer,
    decode_syslog,
    transfer_chunks,
)

log = logging.getLogger("rpmsg.services.nuttx")

#: A line longer than this is handed out in pieces (``partial=True``): memory stays bounded.
MAX_LINE = 4096
#: Lines kept for :meth:`SyslogServer.recv` when nobody reads; the oldest go first (counted).
QUEUE_LIMIT = 10000
SEND_TIMEOUT = 5.0


@dataclass(frozen=True)
class SyslogLine:
    """One line of a chip's log, without its line end."""

    text: str
    #: Host time (``time.time()``) when the line was complete.
    time: float
    #: The chip's endpoint (``rpmsg-syslog``) and address.
    service: str
    addr: int
    #: True if the line was cut: too long, or the chip went away before its newline.
    partial: bool = False

    def as_dict(self) -> dict[str, object]:
        return {"time": self.time, "text": self.text, "service": self.service,
                "addr": self.addr, "partial": self.partial}


class LineAssembler:
    """Text cut at arbitrary places in, complete lines out (``\\r\\n`` or ``\\n``)."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._pending = bytearray()
        self._cut = False  # pieces of an over-long line went out: its end is partial too

    def feed(self, data: bytes) -> list[tuple[bytes, bool]]:
        """Lines completed by ``data``, each with its ``partial`` flag (every piece of a
        line longer than ``max_line``, its last one included, is partial)."""
        out: list[tuple[bytes, bool]] = []
        pending = self._pending
        pending += data
        while True:
            end = pending.find(b"\n", 0, self.max_line + 1)
            if end >= 0:
                out.append((bytes(pending[:end]).rstrip(b"\r"), self._cut))
                self._cut = False
                del pending[:end + 1]
            elif len(pending) > self.max_line:
                out.append((bytes(pending[:self.max_line]), True))
                self._cut = True
                del pending[:self.max_line]
            else:
                return out

    def flush(self) -> bytes | None:
        """The unfinished line, if any (the binding ended)."""
        if not self._pending:
            return None
        text = bytes(self._pending).rstrip(b"\r")
        self._pending.clear()
        self._cut = False
        return text


@dataclass
class SyslogStats:
    transfers: int = 0
    bytes: int = 0
    lines: int = 0
    bad_messages: int = 0
    unexpected_syncs: int = 0
    #: Lines dropped because nobody read them (queue mode only).
    dropped_lines: int = 0


class SyslogServer:
    """Receives the log of every chip on ``device`` that announces ``rpmsg-syslog``.

    With ``callback`` each :class:`SyslogLine` is passed to it on the transport's thread;
    otherwise lines queue (at most :data:`QUEUE_LIMIT`) for :meth:`recv` and iteration.
    """

    def __init__(self, device: Device, callback: Callable[[SyslogLine], None] | None = None,
                 *, name: str = SYSLOG_NAME, max_line: int = MAX_LINE) -> None:
        self.device = device
        self.name = name
        self.callback = callback
        self.max_line = max_line
        self.stats = SyslogStats()
        self._lines: deque[SyslogLine] = deque()
        self._cond = threading.Condition()
        self._assemblers: dict[int, LineAssembler] = {}
        self._cookies = itertools.count(0x5359534C00000001)  # "SYSL": ours, never the chip's
        self._syncs: set[int] = set()
        self._closed = False
        self._binder = AnnouncementBinder(device, lambda n: n == name,
                                          on_message=self._on_message,
                                          on_release=self._on_release)

    # Receiving -----------------------------------------------------------------------------

    def _on_message(self, ept: Endpoint, data: bytes, src: int) -> None:
        try:
            msg = decode_syslog(data)
        except DecodeError as exc:
            self.stats.bad_messages += 1
            log.warning("rpmsg-syslog: bad message from %#x ignored: %s", src, exc)
            return
        if isinstance(msg, SyslogTransfer):
            self.stats.transfers += 1
            self.stats.bytes += len(msg.data)
            with self._cond:
                asm = self._assemblers.setdefault(id(ept), LineAssembler(self.max_line))
                lines = asm.feed(msg.data)
            for text, partial in lines:
                self._emit(ept, text, partial)
        elif isinstance(msg, SyslogSync):
            with self._cond:
                if msg.cookie in self._syncs:
                    self._syncs.discard(msg.cookie)
                    self._cond.notify_all()
                    return
            self.stats.unexpected_syncs += 1  # a NuttX server ignores it too (no chardev)
        else:
            self.stats.bad_messages += 1  # SUSPEND/RESUME go the other way

    def _on_release(self, ept: Endpoint) -> None:
        with self._cond:
            asm = self._assemblers.pop(id(ept), None)
        rest = asm.flush() if asm is not None else None
        if rest is not None:
            self._emit(ept, rest, True)

    def _emit(self, ept: Endpoint, text: bytes, partial: bool) -> None:
        line = SyslogLine(text.decode("utf-8", "replace"), time.time(), ept.name, ept.dst,
                          partial)
        self.stats.lines += 1
        if self.callback is not None:
            self.callback(line)
            return
        with self._cond:
            if len(self._lines) >= QUEUE_LIMIT:
                self._lines.popleft()
                self.stats.dropped_lines += 1
                if self.stats.dropped_lines == 1:
                    log.warning("rpmsg-syslog: lines are not being read; dropping the oldest")
            self._lines.append(line)
            self._cond.notify_all()

    def recv(self, timeout: float | None = None) -> SyslogLine:
        """The next line (queue mode); RpmsgTimeoutError after ``timeout`` seconds."""
        deadline = Deadline(timeout)
        with self._cond:
            while not self._lines:
                if self._closed:
                    raise EndpointClosedError("the syslog server is closed")
                if not self._cond.wait(deadline.remaining()) and deadline.expired():
                    raise deadline.timeout_error("waiting for a syslog line")
            return self._lines.popleft()

    def __iter__(self) -> Iterator[SyslogLine]:
        while True:
            try:
                yield self.recv()
            except EndpointClosedError:
                return

    @property
    def bound(self) -> bool:
        """Whether a chip's syslog is bound now."""
        return bool(self._binder.endpoints)

    # Sending to the chip --------------------------------------------------------------------

    def flush(self, timeout: float | None = 5.0) -> int:
        """Make every bound chip send all the log it holds (SYNC, spec §2.3): when this
        returns, every line logged before the call has arrived. Returns the number of chips."""
        deadline = Deadline(timeout)
        sent: list[int] = []
        for ept in self._binder.endpoints:
            cookie = next(self._cookies)
            with self._cond:
                self._syncs.add(cookie)
            try:
                deadline.pass_on(lambda left: ept.send(SyslogSync(cookie).encode(), left),  # noqa: B023
                                 f"sending SYNC to {ept.name!r}")
                sent.append(cookie)
            except RpmsgError:
                with self._cond:
                    self._syncs.discard(cookie)
                raise
        with self._cond:
            while any(c in self._syncs for c in sent):
                if not self._cond.wait(deadline.remaining()) and deadline.expired():
                    self._syncs.difference_update(sent)
                    raise deadline.timeout_error("waiting for the chip to flush its log")
        return len(sent)

    def suspend(self) -> None:
        """Ask the chips to stop their delayed transfers (a full ring still sends)."""
        self._control(SyslogCommand.SUSPEND)

    def resume(self) -> None:
        """Let the chips transfer again (they send what they hold at once)."""
        self._control(SyslogCommand.RESUME)

    def _control(self, command: SyslogCommand) -> None:
        for ept in self._binder.endpoints:
            ept.send(SyslogControl(command).encode(), timeout=SEND_TIMEOUT)

    def close(self) -> None:
        """Release every binding (the chips keep logging into their ring until a server
        binds again). Idempotent."""
        self._binder.close()
        with self._cond:
            self._closed = True
            self._syncs.clear()
            self._cond.notify_all()

    def __enter__(self) -> SyslogServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SyslogHandler(logging.Handler):
    """A :class:`logging.Handler` that sends records to a NuttX syslog server (spec §2.4).

    It announces ``name`` as a syslog client on ``device``; records wait up to ``timeout``
    seconds for the server to bind and for transmit buffers, then count as failed
    (:meth:`logging.Handler.handleError`). The server prints complete lines only, so every
    record ends in a newline. While the server has sent SUSPEND, records are kept (at most
    ``hold`` bytes, oldest first out) and sent on RESUME.
    """

    def __init__(self, device: Device, *, name: str = SYSLOG_NAME, timeout: float = 5.0,
                 level: int = logging.NOTSET, hold: int = 64 * 1024) -> None:
        super().__init__(level)
        self.timeout = timeout
        self.hold = hold
        self._local = threading.local()
        self._suspended = False
        self._held: deque[bytes] = deque()
        self._held_bytes = 0
        self.dropped = 0
        self.endpoint = device.create_endpoint(name, announce=True, callback=self._on_message)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._local, "busy", False):
            return  # a record logged while sending one (e.g. by rpmsg itself): not again
        self._local.busy = True
        try:
            text = (self.format(record) + "\n").encode("utf-8", "replace")
            if self._suspended:
                self._hold_text(text)
                return
            self._send(text)
        except Exception:
            self.handleError(record)
        finally:
            self._local.busy = False

    def _send(self, text: bytes) -> None:
        deadline = Deadline(self.timeout)
        ept = self.endpoint
        ept.wait_bound(deadline.remaining())
        for chunk in transfer_chunks(text, ept.mtu):
            deadline.pass_on(lambda left: ept.send(chunk, left),  # noqa: B023
                             f"sending log text to {ept.name!r}")

    def _hold_text(self, text: bytes) -> None:
        self._held.append(text)
        self._held_bytes += len(text)
        while self._held_bytes > self.hold and self._held:
            self._held_bytes -= len(self._held.popleft())
            self.dropped += 1

    def _on_message(self, ept: Endpoint, data: bytes, src: int) -> None:
        try:
            msg = decode_syslog(data)
        except DecodeError as exc:
            log.debug("rpmsg-syslog client: bad message ignored: %s", exc)
            return
        try:
            if isinstance(msg, SyslogSync):
                # Everything emitted before this SYNC arrived is sent: echo it unchanged,
                # the server's task waits for it (spec §2.4).
                ept.send_to(src, data, timeout=SEND_TIMEOUT)
            elif isinstance(msg, SyslogControl):
                # Under the handler's lock, as emit() runs: a record is either held
                # before the release or sent after it, never left behind or interleaved.
                with self.lock if self.lock is not None else contextlib.nullcontext():
                    if msg.command == SyslogCommand.SUSPEND:
                        self._suspended = True
                    else:
                        self._suspended = False
                        self._release_held()
        except RpmsgError as exc:
            log.debug("rpmsg-syslog client: answer not sent: %s", exc)

    def _release_held(self) -> None:
        """Send the records held while suspended; those that cannot go are counted in
        :attr:`dropped` (they are not kept: the server may suspend again)."""
        records, self._held = self._held, deque()
        self._held_bytes = 0
        if not records:
            return
        try:
            self._send(b"".join(records))
        except RpmsgError as exc:
            self.dropped += len(records)
            log.debug("rpmsg-syslog client: %d held records not sent: %s", len(records), exc)

    def close(self) -> None:
        self.endpoint.close()
        super().close()


__all__ = ["LineAssembler", "SyslogHandler", "SyslogLine", "SyslogServer", "SyslogStats"]
