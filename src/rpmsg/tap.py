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

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

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

    # Optional: ``message_batch(direction, batch)``, several messages of one direction at once
    # (a received burst, a send_many): each item starts with ``src, dst, payload`` (more
    # fields, such as a transport's release, are ignored), flags 0. Callers use
    # :func:`show_messages`, which falls back to one :meth:`message` call per item.

    def event(self, kind: EventKind, detail: str = "") -> None:
        """A link event (see :data:`EventKind`)."""

    def frame(self, direction: Direction, kind: FrameKind, data: Buffer,
              info: FrameInfo) -> None:
        """One frame of the layer below (only with ``capture_level=frames``)."""

    def close(self) -> None:
        """The Device closed: flush and release; later calls are ignored."""


#: Items of a batch shown to a tap: tuples that start with ``src, dst, payload``.
MessageBatch = Sequence[tuple[Any, ...]]


def show_messages(tap: Tap, direction: Direction, batch: MessageBatch) -> None:
    """Show a batch to ``tap``: its ``message_batch`` method if it has one, else ``message``
    per item (taps written before batches keep working)."""
    many = getattr(tap, "message_batch", None)
    if many is not None and callable(many):
        many(direction, batch)
        return
    message = tap.message
    for item in batch:
        message(direction, item[0], item[1], item[2])


__all__ = ["Direction", "EventKind", "FrameInfo", "FrameKind", "MessageBatch", "Tap",
           "show_messages"]
