"""``rpmsg dump FILE``: a capture as text, one line per record (like ``candump``/``tcpdump -r``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rpmsg.capture import (
    CapturedEvent,
    CapturedFrame,
    CapturedMessage,
    CaptureReader,
    Interface,
    Record,
)
from rpmsg.capture.describe import (
    RESETS,
    ServiceTracker,
    clock,
    decode_ns,
    decode_ping,
    describe_frame,
    describe_message,
)
from rpmsg.cli.args import standard_input
from rpmsg.cli.terminal import printable
from rpmsg.errors import InvalidArgumentError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "dump", help="print a capture (pcapng) as text, one line per message",
        description="Print the messages, link events and frames of a capture written with "
        "capture=PATH or RPMSG_CAPTURE, one line each: time, #link, direction, src -> dst, "
        "[length], service, and the name-service, rpmsg-ping or first payload bytes. Each "
        "link's URL is printed once ('# link #0: URL') before its first line.")
    p.add_argument("file", help="capture file (pcapng)")
    p.add_argument("--name", action="append", default=[], metavar="SERVICE",
                   help="only messages of this service (named by the capture's name-service "
                   "messages; 'ns' for the name service itself); repeatable")
    p.add_argument("--addr", action="append", default=[], type=_address, metavar="ADDR",
                   help="only messages from or to this address (e.g. 0x400); repeatable")
    p.add_argument("--dir", choices=["tx", "rx"], help="only one direction")
    p.add_argument("--no-events", action="store_true", help="leave out link events and frames")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--follow", "-f", action="store_true",
                   help="keep reading as the capture grows (Ctrl-C to stop)")
    p.set_defaults(func=run)


def _address(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an address: {text!r}") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"address {text} is outside 0..0xffffffff")
    return value


def message_json(rec: CapturedMessage, service: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "message", "time": rec.timestamp, "time_ns": rec.timestamp_ns,
        "link": rec.interface.name, "dir": rec.direction, "src": rec.src, "dst": rec.dst,
        "len": len(rec.payload), "flags": rec.flags, "service": service,
        "payload": rec.payload.hex(),
    }
    ns = decode_ns(rec.dst, rec.payload)
    if ns is not None:
        out["ns"] = {"op": ns.flags.name, "name": ns.name, "addr": ns.addr}
    else:
        ping = decode_ping(rec.payload, service=service)
        if ping is not None:
            out["ping"] = {"cmd": ping.cmd, "len": ping.len, "cookie": ping.cookie,
                           "response": ping.is_response}
    return out


def event_json(rec: CapturedEvent) -> dict[str, Any]:
    return {"type": "event", "time": rec.timestamp, "time_ns": rec.timestamp_ns,
            "link": rec.interface.name, "event": rec.kind, "detail": rec.detail}


def frame_json(rec: CapturedFrame) -> dict[str, Any]:
    return {"type": "frame", "time": rec.timestamp, "time_ns": rec.timestamp_ns,
            "link": rec.interface.name, "dir": rec.direction, "kind": rec.kind,
            "info": rec.info, "data": rec.data.hex()}


def _prefix(rec: Record) -> str:
    """What every text line starts with: the time and the link's number."""
    return f"{clock(rec.timestamp_ns)} #{rec.interface.id}"


class Dumper:
    """Filters and formats records; keeps the name-service state of the capture."""

    def __init__(self, *, names: list[str], addrs: list[int], direction: str | None,
                 events: bool, as_json: bool) -> None:
        self.names = set(names)
        self.addrs = set(addrs)
        self.direction = direction
        self.events = events
        self.as_json = as_json
        self.services = ServiceTracker()

    def line(self, rec: Record) -> str | None:
        """The output line for ``rec``, or None when the filters leave it out."""
        if isinstance(rec, CapturedMessage):
            return self._message(rec)
        if isinstance(rec, CapturedEvent) and rec.kind in RESETS:
            self.services.forget(rec.interface.id)
        if not self.events or self.names or self.addrs:  # events and frames: not asked for
            return None
        if isinstance(rec, CapturedEvent):
            return self._event(rec)
        return self._frame(rec)

    def _message(self, rec: CapturedMessage) -> str | None:
        link = rec.interface.id
        service = self.services.service(link, rec.direction, rec.src, rec.dst)
        self.services.feed(link, rec.direction, rec.dst, rec.payload)
        if not self._wanted(rec, service):
            return None
        if self.as_json:
            return json.dumps(message_json(rec, service))
        text = describe_message(rec.direction, rec.src, rec.dst, rec.payload, rec.flags,
                                service)
        return f"{_prefix(rec)} {text}"

    def _wanted(self, rec: CapturedMessage, service: str | None) -> bool:
        """Whether the filters keep a message (of a wanted service: its announcement too)."""
        if self.direction and rec.direction != self.direction:
            return False
        if self.addrs and rec.src not in self.addrs and rec.dst not in self.addrs:
            return False
        if not self.names or (service or "") in self.names:
            return True
        ns = decode_ns(rec.dst, rec.payload)
        return ns is not None and ns.name in self.names

    def _event(self, rec: CapturedEvent) -> str:
        if self.as_json:
            return json.dumps(event_json(rec))
        detail = f" ({rec.detail})" if rec.detail else ""
        return f"{_prefix(rec)} -- {rec.kind}{detail}"

    def _frame(self, rec: Record) -> str | None:
        assert isinstance(rec, CapturedFrame)
        if self.direction and rec.direction != self.direction:
            return None
        if self.as_json:
            return json.dumps(frame_json(rec))
        text = describe_frame(rec.direction, rec.kind, rec.data, rec.info, self.services,
                              rec.interface.id)
        return f"{_prefix(rec)} {text}"


def run(args: argparse.Namespace) -> int:
    if args.follow and args.file == "-":
        raise InvalidArgumentError("--follow needs a file, not standard input")
    dumper = Dumper(names=args.name, addrs=args.addr, direction=args.dir,
                    events=not args.no_events, as_json=args.json)
    source: Any = standard_input() if args.file == "-" else args.file
    with CaptureReader(source, follow=args.follow) as reader:
        if args.follow:
            print(f"rpmsg dump: following {args.file}; Ctrl-C to stop", file=sys.stderr)
        _print_records(reader, dumper, args.json, args.follow)
        _say_skipped(reader)
    return 0


def _print_records(reader: CaptureReader, dumper: Dumper, as_json: bool,
                   follow: bool) -> None:
    """Every line the dumper keeps; in text, each link's URL once before its first line.
    Every text in a capture is the file's word: printed escaped (JSON escapes its own)."""
    announced: set[Interface] = set()
    for rec in reader:
        line = dumper.line(rec)
        if line is None:
            continue
        if as_json:
            print(line, flush=follow)
            continue
        if rec.interface not in announced:
            announced.add(rec.interface)
            print(printable(f"# link #{rec.interface.id}: {rec.interface.name}"))
        print(printable(line), flush=follow)


def _say_skipped(reader: CaptureReader) -> None:
    """On stderr: the packets that were not RPMsg records and the malformed ones."""
    if reader.skipped:
        print(f"rpmsg dump: {reader.skipped} packet(s) that are not RPMsg capture records "
              "skipped (another link type or dissector: not an rpmsg capture?)",
              file=sys.stderr)
    if reader.malformed:
        print(printable(f"rpmsg dump: {reader.malformed} malformed record(s) skipped; "
                        f"first: {reader.first_malformed}"), file=sys.stderr)
