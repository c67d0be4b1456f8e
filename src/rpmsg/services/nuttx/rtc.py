"""rpmsg-rtc both ways (spec §5): give a chip the host's time, or read a chip's time.

:class:`RtcServer` announces ``rpmsg-rtc``. When a chip binds to it as a *client*
(CREATE_ACK), it sends SYNC with the host's UTC time and answers GET; a chip's SET is
refused with ``-EPERM`` (the host clock is never changed), alarms with ``-ENOSYS``. A chip
that is an rtc *server* itself announces ``rpmsg-rtc`` too: such a binding is never served
(no SYNC, no answers), nor is one on which server-only messages (SYNC, ALARM_FIRE) arrive.

:class:`RtcClient` binds a chip's ``rpmsg-rtc`` announcement and reads its time (GET), and
records the SYNC the chip sends on binding.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rpmsg.device import Device
from rpmsg.endpoint import Endpoint
from rpmsg.errors import DecodeError, EndpointClosedError, RpmsgError
from rpmsg.transport import Deadline
from rpmsg.wire.nuttx_errno import name_of, neg, to_nuttx
from rpmsg.wire.nuttx_rtc import (
    RTC_NAME,
    SERVER_COMMANDS,
    RtcCommand,
    RtcMessage,
    RtcTime,
    decode_rtc,
    reply,
)

log = logging.getLogger("rpmsg.services.nuttx")

SEND_TIMEOUT = 5.0
Clock = Callable[[], int]


def bound_by_announcement(ept: Endpoint) -> bool:
    """Whether ``ept`` is bound to an endpoint the remote *announced* (NS CREATE), rather
    than one that bound to our announcement (CREATE_ACK) or just sent us a message.

    Read from the core's record of the endpoint (``EndpointRecord.dst_is_service``); the
    Endpoint API has no public property for it yet.
    """
    with ept.device.lock:
        rec = ept.device.core.endpoints.get(ept.addr)
        return bool(rec is not None and rec.dst == ept.dst and rec.dst_is_service)


@dataclass
class RtcStats:
    syncs_sent: int = 0
    gets: int = 0
    refused: int = 0
    bad_requests: int = 0
    #: Bindings not served because the chip is an rtc server itself.
    servers_ignored: int = 0


class RtcServer:
    """Serves the host's time (``clock``: nanoseconds since the epoch) as ``rpmsg-rtc``.

    ``on_set(time_ns)``, if given, is called for a chip's SET and makes it succeed (then
    every client is sent a fresh SYNC, as NuttX's server does); without it SET gets -EPERM.
    """

    def __init__(self, device: Device, *, clock: Clock = time.time_ns,
                 on_set: Callable[[int], None] | None = None) -> None:
        self.device = device
        self.clock = clock
        self.on_set = on_set
        self.stats = RtcStats()
        self._ignored: set[int] = set()   # bindings (remote addresses) that are servers
        self._lock = threading.Lock()
        self.endpoint = device.create_endpoint(RTC_NAME, announce=True,
                                               callback=self._on_message,
                                               on_bound=self._on_bound)

    def _sync(self) -> RtcTime:
        now = self.clock()
        return RtcTime(RtcCommand.SYNC, now // 1_000_000_000, now % 1_000_000_000)

    def _is_server(self, ept: Endpoint) -> bool:
        with self._lock:
            return ept.dst in self._ignored

    def _ignore(self, ept: Endpoint, why: str) -> None:
        with self._lock:
            if ept.dst in self._ignored:
                return
            self._ignored.add(ept.dst)
        self.stats.servers_ignored += 1
        log.info("rpmsg-rtc: the chip at %#x is an rtc server itself (%s); not serving it",
                 ept.dst, why)

    def _on_bound(self, ept: Endpoint) -> None:
        if bound_by_announcement(ept):
            self._ignore(ept, "it announced rpmsg-rtc")
            return
        with self._lock:
            self._ignored.discard(ept.dst)
        self.send_sync()

    def send_sync(self) -> None:
        """Send the current time to the bound client (also done on every binding)."""
        if not self.endpoint.bound or self._is_server(self.endpoint):
            return
        try:
            self.endpoint.send(self._sync().encode(), timeout=SEND_TIMEOUT)
            self.stats.syncs_sent += 1
        except RpmsgError as exc:
            log.warning("rpmsg-rtc: SYNC not sent: %s", exc)

    def _on_message(self, ept: Endpoint, data: bytes, src: int) -> None:
        if src != ept.dst or self._is_server(ept):
            return
        msg = self._decode(ept, data)
        if msg is None:
            return
        if msg.command in SERVER_COMMANDS:
            self._ignore(ept, f"it sent {RtcCommand(msg.command).name}")
        elif isinstance(msg, RtcTime) and msg.command == RtcCommand.GET:
            self._get(ept, msg)
        elif isinstance(msg, RtcTime) and msg.command == RtcCommand.SET and self.on_set:
            self._set(ept, msg, data, self.on_set)
        else:
            result = neg("EPERM") if msg.command == RtcCommand.SET else neg("ENOSYS")
            self.stats.refused += 1
            self._send(ept, reply(data, result))

    def _decode(self, ept: Endpoint, data: bytes) -> RtcMessage | None:
        """The chip's request, or None (counted, logged, answered -EINVAL if long enough
        to carry a cookie)."""
        try:
            return decode_rtc(data)
        except DecodeError as exc:
            self.stats.bad_requests += 1
            log.warning("rpmsg-rtc: bad request: %s", exc)
            if len(data) >= 16:
                self._send(ept, reply(data, neg("EINVAL")))
            return None

    def _set(self, ept: Endpoint, msg: RtcTime, data: bytes,
             on_set: Callable[[int], None]) -> None:
        """SET through ``on_set``, always answered (the chip's task waits for the answer
        forever): nanoseconds outside 0..999999999 are -EINVAL without calling it (as
        ``clock_settime``), an OSError from it is its errno, any other exception -EINVAL."""
        result = 0
        if not 0 <= msg.nsec < 1_000_000_000:
            result = neg("EINVAL")
        else:
            try:
                on_set(msg.time_ns)
            except OSError as exc:
                result = -to_nuttx(exc.errno) if exc.errno else neg("EINVAL")
            except Exception:  # the application's callback: its bug must not silence us
                log.exception("rpmsg-rtc: on_set failed for the chip's SET")
                result = neg("EINVAL")
        if result:
            self.stats.refused += 1
        self._send(ept, reply(data, result))
        if not result:
            self.send_sync()

    def _get(self, ept: Endpoint, msg: RtcTime) -> None:
        """GET: the host's time, with the chip's base and cookie echoed."""
        self.stats.gets += 1
        now = self._sync()
        self._send(ept, RtcTime(RtcCommand.GET, now.sec, now.nsec, msg.base_sec,
                                msg.base_nsec, msg.cookie, 0).encode())

    def _send(self, ept: Endpoint, data: bytes) -> None:
        try:
            ept.send(data, timeout=SEND_TIMEOUT)
        except RpmsgError as exc:
            log.warning("rpmsg-rtc: answer not sent: %s", exc)

    def close(self) -> None:
        self.endpoint.close()

    def __enter__(self) -> RtcServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class ChipTime:
    """A time the chip reported, with the host time when it arrived."""

    #: The chip's UTC time, nanoseconds since the epoch.
    time_ns: int
    #: Host time (nanoseconds since the epoch) when the answer arrived.
    host_ns: int
    #: Host time when the request was sent (None for a SYNC).
    sent_ns: int | None = None
    base_ns: int = 0

    @property
    def offset(self) -> float:
        """Chip minus host, in seconds (host time taken half-way for a GET)."""
        host = self.host_ns if self.sent_ns is None else (self.host_ns + self.sent_ns) // 2
        return (self.time_ns - host) / 1e9


class RtcClient:
    """Reads the time of a chip that serves ``rpmsg-rtc`` (binds its announcement)."""

    def __init__(self, device: Device, *, timeout: float | None = None) -> None:
        self.device = device
        self.last_sync: ChipTime | None = None
        self._cond = threading.Condition()
        self._cookies = itertools.count(0x7274630000000001)  # "rtc"
        self._answers: dict[int, ChipTime | int] = {}
        self._closed = False
        device.wait_service(RTC_NAME, timeout)  # never announce: that would make us a server
        self.endpoint = device.create_endpoint(RTC_NAME, announce=False,
                                               callback=self._on_message)

    def _on_message(self, ept: Endpoint, data: bytes, src: int) -> None:
        try:
            msg = decode_rtc(data)
        except DecodeError as exc:
            log.warning("rpmsg-rtc client: bad message: %s", exc)
            return
        now = time.time_ns()
        if isinstance(msg, RtcTime) and msg.command == RtcCommand.SYNC:
            base = msg.base_sec * 1_000_000_000 + msg.base_nsec
            with self._cond:
                self.last_sync = ChipTime(msg.time_ns, now, None, base)
                self._cond.notify_all()
            return
        with self._cond:
            if msg.cookie not in self._answers or self._answers[msg.cookie] != -1:
                return  # an answer to nothing we asked
            if isinstance(msg, RtcTime) and msg.command == RtcCommand.GET and msg.result >= 0:
                self._answers[msg.cookie] = ChipTime(msg.time_ns, now)
            else:
                self._answers[msg.cookie] = msg.result if msg.result < 0 else neg("EIO")
            self._cond.notify_all()

    def get(self, timeout: float | None = 5.0) -> ChipTime:
        """Ask the chip for its time (GET)."""
        deadline = Deadline(timeout)
        cookie = next(self._cookies)
        with self._cond:
            if self._closed:
                raise EndpointClosedError("the rtc client is closed")
            self._answers[cookie] = -1
        try:
            sent = time.time_ns()
            self.endpoint.send(RtcTime(RtcCommand.GET, 0, 0, cookie=cookie,
                                       result=neg("ENXIO")).encode(),
                               timeout=deadline.remaining())
            with self._cond:
                while (answer := self._answers[cookie]) == -1:
                    if self._closed:
                        raise EndpointClosedError("the rtc client is closed")
                    if not self._cond.wait(deadline.remaining()) and deadline.expired():
                        raise deadline.timeout_error("waiting for the chip's time")
        finally:
            with self._cond:
                self._answers.pop(cookie, None)
        if isinstance(answer, int):
            raise RpmsgError(f"the chip refused GET: {name_of(answer)} ({answer})")
        return ChipTime(answer.time_ns, answer.host_ns, sent)

    def wait_sync(self, timeout: float | None = 5.0) -> ChipTime:
        """The SYNC the chip sends after binding (waits for it)."""
        deadline = Deadline(timeout)
        with self._cond:
            while self.last_sync is None:
                if not self._cond.wait(deadline.remaining()) and deadline.expired():
                    raise deadline.timeout_error("waiting for the chip's SYNC")
            return self.last_sync

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.endpoint.close()

    def __enter__(self) -> RtcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ChipTime", "RtcClient", "RtcServer", "RtcStats", "bound_by_announcement"]
