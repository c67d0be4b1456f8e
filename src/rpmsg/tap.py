"""The observer interface a Device and its link report traffic to (capture, tracing).

A :class:`Tap` sees every message a :class:`~rpmsg.device.Device` sends and delivers (name
service included: those are messages to or from address 53), the link's events, and, when
asked for with ``capture_level=frames``, the layer below: RPMsg Port frames (UART/SPI) and
virtio ring events. ``rpmsg.capture`` writes them to pcapng; a tracing tap logs them.

Rules for callers: a tap is optional and off costs one attribute test (``if tap is not
None``); it is called from transport threads and user threads alike, so an implementation
must be thread-safe, must not block and must not raise (a failing tap disables itself and
says so once). ``payload``/``data`` are valid only during the call: copy what you keep.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Protocol

from rpmsg.wire.layout import Buffer

Direction = Literal["tx", "rx"]
#: Link events: ``open`` (detail: the URL), ``link-up``, ``link-down`` (detail: reason),
#: ``restart`` (the peer restarted while up), ``broken`` (detail: the error), ``drop``
#: (detail: reason, e.g. "unknown destination 0x401" or "queue full on 'rpmsg-raw'"),
#: ``close``.
EventKind = Literal["open", "link-up", "link-down", "restart", "broken", "drop", "close"]
#: Frame layers: ``port`` (an RPMsg Port frame as carried, after unescaping: port header,
#: rpmsg header, payload; info: ``crc`` "ok"/"bad"/"none", ``escapes``, ``protocol``),
#: ``uart-control`` (a UART control byte; info: ``name``, ``byte``), ``spi`` (one SPI
#: exchange header; info: ``cmd``, ``credits``, ``crc``), ``ring`` (a virtio ring event,
#: ``data`` empty; info: ``event`` "kick"/"notify"/"pop"/"push", ``queue``, ``id``, ``len``).
FrameKind = Literal["port", "uart-control", "spi", "ring"]
FrameInfo = Mapping[str, "int | str | bool"]


class Tap(Protocol):
    """What a Device and (at frame level) its link call for each thing on the link."""

    def message(self, direction: Direction, src: int, dst: int, payload: Buffer,
                flags: int = 0) -> None:
        """One RPMsg message sent (``tx``) or received (``rx``) by this Device."""

    def event(self, kind: EventKind, detail: str = "") -> None:
        """A link event (see :data:`EventKind`)."""

    def frame(self, direction: Direction, kind: FrameKind, data: Buffer,
              info: FrameInfo) -> None:
        """One frame of the layer below (only with ``capture_level=frames``)."""

    def close(self) -> None:
        """The Device closed: flush and release; later calls are ignored."""


__all__ = ["Direction", "EventKind", "FrameInfo", "FrameKind", "Tap"]
