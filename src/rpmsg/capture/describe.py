"""One-line descriptions of messages, events and frames, shared by ``rpmsg dump`` and the
``rpmsg.trace`` logger, and the name-service bookkeeping that names a message's service.

A message's service is the name announced (NS CREATE or CREATE_ACK, from either side) for its
source or destination address on the same link; a DESTROY forgets it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rpmsg.errors import DecodeError
from rpmsg.port.spi.proto import Cmd
from rpmsg.wire.layout import Buffer
from rpmsg.wire.ping import PING_HEADER, PING_NAME, PingHeader
from rpmsg.wire.port import PORT_HEADER, PORT_HEADER_SIZE
from rpmsg.wire.rpmsg import (
    HEADER_SIZE,
    NS_ADDR,
    NS_MESSAGE_SIZE,
    NsFlags,
    NsMessage,
    decode_message,
)

#: Payload bytes shown in a text line.
HEX_BYTES = 24
#: Link events after which announced addresses are void (the peer announces again).
RESETS = frozenset({"link-down", "restart"})


def decode_ns(dst: int, payload: Buffer) -> NsMessage | None:
    """The name-service message in ``payload`` if it is one (to address 53, 40 bytes)."""
    if dst != NS_ADDR or len(payload) != NS_MESSAGE_SIZE:
        return None
    try:
        return NsMessage.decode(payload)
    except DecodeError:
        return None


def decode_ping(payload: Buffer, *, service: str | None) -> PingHeader | None:
    """The rpmsg-ping header if the message belongs to rpmsg-ping, or (service unknown)
    looks like one: its length field equals the payload length and only known bits are set."""
    if len(payload) < PING_HEADER.size:
        return None
    hdr = PingHeader.decode(payload)
    if service == PING_NAME:
        return hdr
    if service is None and hdr.len == len(payload) and hdr.cmd & ~0x27 == 0:
        return hdr
    return None


class ServiceTracker:
    """Addresses announced by name service, per link and side: which service a message
    belongs to.

    Each side has its own address space (both often start at 0x400), so an announcement
    names an address of the side that sent it: an NS message seen in direction ``tx``
    names an address of the ``tx`` side (the captured Device), ``rx`` one of the peer. A
    message in direction D comes from an address of D's side and goes to one of the other.
    """

    def __init__(self) -> None:
        self._names: dict[tuple[Any, str, int], str] = {}

    def feed(self, link: Any, direction: str, dst: int, payload: Buffer) -> NsMessage | None:
        """Learn from one message; returns its NS content if it is an NS message."""
        ns = decode_ns(dst, payload)
        if ns is not None:
            key = (link, direction, ns.addr)
            if ns.flags == NsFlags.DESTROY:
                if self._names.get(key) == ns.name:
                    del self._names[key]
            else:
                self._names[key] = ns.name
        return ns

    def lookup(self, link: Any, direction: str, src: int, dst: int) -> tuple[str | None, bool]:
        """(service, whether ``dst`` is the address announced for it): the destination's
        name, else the source's; ``("ns", True)`` for the name service itself."""
        if dst == NS_ADDR:
            return "ns", True
        other = "rx" if direction == "tx" else "tx"
        name = self._names.get((link, other, dst))
        if name is not None:
            return name, True
        return self._names.get((link, direction, src)), False

    def service(self, link: Any, direction: str, src: int, dst: int) -> str | None:
        """The service of a message (None: unknown)."""
        return self.lookup(link, direction, src, dst)[0]

    def forget(self, link: Any) -> None:
        """The link went down or the peer restarted: its addresses mean nothing any more."""
        for key in [k for k in self._names if k[0] == link]:
            del self._names[key]


def clock(ts_ns: int) -> str:
    """Local wall-clock time with microseconds, as ``candump -t a`` and tcpdump print it.

    A time the platform cannot convert (a capture's timestamps are the file's word: a
    coarse ``if_tsresol`` makes them up to 2**64 seconds) is printed as seconds since the
    epoch, ``@SECONDS.MICROSECONDS``."""
    sec, ns = divmod(ts_ns, 1_000_000_000)
    try:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(sec))
    except (OverflowError, OSError, ValueError):
        when = f"@{sec}"
    return when + f".{ns // 1000:06d}"


def hexdump(data: Buffer, limit: int = HEX_BYTES) -> str:
    raw = bytes(data[:limit])
    text = raw.hex(" ")
    if len(data) > limit:
        text += " ..."
    return text


def describe_payload(dst: int, payload: Buffer, service: str | None) -> str:
    """NS content, a ping header, or the first payload bytes in hex."""
    ns = decode_ns(dst, payload)
    if ns is not None:
        return f"NS {ns.flags.name} {ns.name!r} addr {ns.addr:#x}"
    ping = decode_ping(payload, service=service)
    if ping is not None:
        kind = "RSP" if ping.is_response else "REQ"
        return (f"PING {kind} cmd {ping.cmd:#x} len {ping.len} cookie {ping.cookie:#x}"
                f"{' ack' if ping.cmd & 1 else ''}")
    return hexdump(payload)


def describe_message(direction: str, src: int, dst: int, payload: Buffer, flags: int = 0,
                     service: str | None = None) -> str:
    """``tx 0x400 -> 0x401 [5] rpmsg-echo 68 65 6c 6c 6f``."""
    svc = f" {service}" if service and service != "ns" else ""
    fl = f" flags {flags:#x}" if flags else ""
    return (f"{direction} {src:#x} -> {dst:#x} [{len(payload)}]{fl}{svc} "
            f"{describe_payload(dst, payload, service)}").rstrip()


def inner_message(kind: str, data: Buffer) -> tuple[int, int, bytes] | None:
    """(src, dst, payload) of the RPMsg message a port or SPI DATA frame carries, if any."""
    if kind not in ("port", "spi") or len(data) < PORT_HEADER_SIZE + HEADER_SIZE:
        return None
    _crc, cmd, _avail, length = PORT_HEADER.unpack(data)
    if kind == "spi" and cmd != Cmd.DATA:
        return None
    end = min(length, len(data))
    try:
        hdr, payload = decode_message(bytes(data[PORT_HEADER_SIZE:end]))
    except DecodeError:
        return None
    return hdr.src, hdr.dst, bytes(payload)


def describe_frame(direction: str, kind: str, data: Buffer, info: Mapping[str, object],
                   services: ServiceTracker | None = None, link: Any = None) -> str:
    """``rx port [64] crc=ok escapes=2 | rx 0x400 -> 0x35 [40] NS CREATE ...``; frames that
    carry no message show their first bytes in hex."""
    if kind == "uart-control" and "name" in info:
        byte = f" ({data[0]:#04x})" if len(data) == 1 else ""
        return f"{direction} uart-control {info['name']}{byte}"
    fields = " ".join(f"{k}={v}" for k, v in info.items())
    head = f"{direction} {kind} [{len(data)}] {fields}".rstrip()
    inner = inner_message(kind, data)
    if inner is None:
        return f"{head} {hexdump(data)}".rstrip()
    src, dst, payload = inner
    service = None
    if services is not None:
        service = services.service(link, direction, src, dst)
        services.feed(link, direction, dst, payload)
    return f"{head} | {describe_message(direction, src, dst, payload, 0, service)}"


__all__ = ["RESETS", "ServiceTracker", "clock", "decode_ns", "decode_ping", "describe_frame",
           "describe_message", "describe_payload", "hexdump", "inner_message"]
