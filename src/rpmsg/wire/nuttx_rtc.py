"""Messages of NuttX's ``rpmsg-rtc`` service (``drivers/timers/rpmsg_rtc.c``).

Facts: ``shared/spec/nuttx-services.md`` §5. A 16-byte header (``command`` u32, ``result``
i32, ``cookie`` u64); SET, GET and SYNC carry a 40-byte time structure whose 64-bit fields
come first (``base_sec`` @16, ``sec`` @24) and then ``nsec`` @32 before ``base_nsec`` @36.
The server announces; the client binds and sends SET/GET/ALARM_*; the server sends SYNC
and ALARM_FIRE, which are never answered.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from rpmsg.wire.layout import Buffer, Layout

RTC_NAME = "rpmsg-rtc"

RTC_HEADER = Layout("rpmsg_rtc_header", [("command", "I"), ("result", "i"), ("cookie", "Q")])
RTC_TIME = Layout("rpmsg_rtc_set", [("command", "I"), ("result", "i"), ("cookie", "Q"),
                                     ("base_sec", "q"), ("sec", "q"), ("nsec", "i"),
                                     ("base_nsec", "i")])
RTC_ALARM_SET = Layout("rpmsg_rtc_alarm_set", [("command", "I"), ("result", "i"),
                                               ("cookie", "Q"), ("sec", "q"), ("nsec", "i"),
                                               ("id", "i")])
RTC_ALARM_ID = Layout("rpmsg_rtc_alarm_cancel", [("command", "I"), ("result", "i"),
                                                 ("cookie", "Q"), ("id", "i")])


class RtcCommand(enum.IntEnum):
    SET = 0
    GET = 1
    ALARM_SET = 2
    ALARM_CANCEL = 3
    ALARM_FIRE = 4
    SYNC = 5


#: Commands a client sends (and a server answers), with the layout of the request.
REQUEST_LAYOUTS: dict[int, Layout] = {
    RtcCommand.SET: RTC_TIME,
    RtcCommand.GET: RTC_TIME,
    RtcCommand.ALARM_SET: RTC_ALARM_SET,
    RtcCommand.ALARM_CANCEL: RTC_ALARM_ID,
}
#: Commands only a server sends; a client never answers them.
SERVER_COMMANDS = frozenset({RtcCommand.ALARM_FIRE, RtcCommand.SYNC})


@dataclass(frozen=True, slots=True)
class RtcTime:
    """A SET, GET or SYNC message: UTC time ``sec``.``nsec`` plus the server's base time."""

    command: RtcCommand
    sec: int
    nsec: int
    base_sec: int = 0
    base_nsec: int = 0
    cookie: int = 0
    result: int = 0

    def encode(self) -> bytes:
        return RTC_TIME.pack(self.command, self.result, self.cookie, self.base_sec, self.sec,
                             self.nsec, self.base_nsec)

    @property
    def time_ns(self) -> int:
        """``sec``.``nsec`` as integer nanoseconds since the epoch."""
        return self.sec * 1_000_000_000 + self.nsec


@dataclass(frozen=True, slots=True)
class RtcHeader:
    """Any other message, by its header: ALARM_* or a command this side does not know."""

    command: int
    result: int
    cookie: int
    body: bytes = b""


RtcMessage = RtcTime | RtcHeader


def decode_rtc(data: Buffer) -> RtcMessage:
    """Decode one message; a SET/GET/SYNC shorter than 40 bytes is a DecodeError."""
    command, result, cookie = RTC_HEADER.unpack(data)
    if command in (RtcCommand.SET, RtcCommand.GET, RtcCommand.SYNC):
        _c, _r, _k, base_sec, sec, nsec, base_nsec = RTC_TIME.unpack(data)
        return RtcTime(RtcCommand(command), sec, nsec, base_sec, base_nsec, cookie, result)
    return RtcHeader(command, result, cookie, bytes(data[RTC_HEADER.size:]))


def reply(request: Buffer, result: int) -> bytes:
    """The answer a server gives to a client request it does not carry out.

    Known requests are echoed at their own size with ``result`` set (short ones padded with
    zeros); anything else gets the 16-byte header only, as NuttX's server answers -ENOSYS.
    """
    command, _result, cookie = RTC_HEADER.unpack(request)
    layout = REQUEST_LAYOUTS.get(command)
    if layout is None:
        return RTC_HEADER.pack(command, result, cookie)
    body = bytes(request[RTC_HEADER.size:layout.size]).ljust(layout.size - RTC_HEADER.size,
                                                              b"\0")
    return RTC_HEADER.pack(command, result, cookie) + body


__all__ = [
    "REQUEST_LAYOUTS",
    "RTC_ALARM_ID",
    "RTC_ALARM_SET",
    "RTC_HEADER",
    "RTC_NAME",
    "RTC_TIME",
    "SERVER_COMMANDS",
    "RtcCommand",
    "RtcHeader",
    "RtcMessage",
    "RtcTime",
    "decode_rtc",
    "reply",
]
