"""``rpmsg sniff PORT [PORT2]``: passive decoder of an RPMsg Port UART line.

Reads the bytes one direction of a link carries (e.g. a USB-UART adapter whose RX pin is wired
to the link's TX line; a second port for the other direction), decodes RPMsg Port frames of
either protocol generation, and prints one line per frame, control byte or framing error
and/or writes them to pcapng. It never writes to the ports.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

from rpmsg.capture.describe import ServiceTracker, clock, describe_frame, inner_message
from rpmsg.capture.sniffer import (
    CRC_CHOICES,
    LineSniffer,
    SniffedControl,
    SniffedError,
    SniffedFrame,
    SniffEvent,
)
from rpmsg.cli.terminal import printable
from rpmsg.port.uart.framer import get_protocol
from rpmsg.port.uart.stream import Stream, open_serial
from rpmsg.tap import Direction, Tap

#: The direction each port's bytes are shown as.
DIRECTIONS: tuple[Direction, Direction] = ("tx", "rx")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "sniff", help="decode a raw RPMsg Port UART line passively (never transmits)",
        description="Read the raw bytes of one UART direction (PORT, shown as tx) and "
        "optionally the other (PORT2, shown as rx), decode RPMsg Port frames with their CRC "
        "verdict, control bytes and framing errors, and print them and/or write them to a "
        "pcapng capture (-w). Nothing is ever written to the ports. Ctrl-C to stop.")
    p.add_argument("port", help="serial port or pyserial URL carrying one direction")
    p.add_argument("port2", nargs="?", help="serial port carrying the other direction")
    p.add_argument("--baudrate", type=int, default=115200, help="line speed (default 115200)")
    p.add_argument("--protocol", choices=["current", "legacy"], default="current",
                   help="NuttX >= 12.13 (current, default) or 12.7-12.12 (legacy)")
    p.add_argument("--crc", choices=CRC_CHOICES, default="auto",
                   help="CRC to check frames against (default auto: ARC, else XMODEM)")
    p.add_argument("--write", "-w", metavar="FILE", help="also write a pcapng capture")
    p.add_argument("--level", choices=["frames", "messages"], default="frames",
                   help="what -w records: frames with control bytes (default) or only the "
                   "RPMsg messages of good frames")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing (with -w)")
    p.set_defaults(func=run)


class SniffOutput:
    """Prints and records sniffed events; called from one reader thread per port."""

    def __init__(self, tap: Tap | None, level: str, protocol: str, quiet: bool) -> None:
        self.tap = tap
        self.level = level
        self.protocol = protocol
        self.quiet = quiet
        self.services = ServiceTracker()
        self._lock = threading.Lock()

    def handle(self, port: str, events: list[SniffEvent]) -> None:
        with self._lock:
            for ev in events:
                self._one(port, ev)
            if not self.quiet and events:
                sys.stdout.flush()

    def _one(self, port: str, ev: SniffEvent) -> None:
        if isinstance(ev, SniffedFrame):
            text = self._frame(ev)
        elif isinstance(ev, SniffedControl):
            text = self._control(ev)
        else:
            text = self._error(ev)
        if not self.quiet:
            print(printable(f"{clock(time.time_ns())} {port} {text}"))  # the line's word

    def _frame(self, ev: SniffedFrame) -> str:
        """A frame: recorded as a frame, or (``--level messages``) the message in a good one."""
        info = ev.info(self.protocol)
        if self.tap is not None:
            if self.level == "frames":
                self.tap.frame(ev.direction, "port", ev.data, info)
            elif ev.crc != "bad":
                inner = inner_message("port", ev.data)
                if inner is not None:
                    self.tap.message(ev.direction, *inner)
        return describe_frame(ev.direction, "port", ev.data, info, self.services, None)

    def _control(self, ev: SniffedControl) -> str:
        if self.tap is not None and self.level == "frames":
            self.tap.frame(ev.direction, "uart-control", bytes([ev.byte]),
                           {"name": ev.name, "byte": ev.byte})
        return f"{ev.direction} uart-control {ev.name} ({ev.byte:#04x})"

    def _error(self, ev: SniffEvent) -> str:
        assert isinstance(ev, SniffedError)
        what = f"{ev.reason} ({ev.size} bytes)"
        if self.tap is not None:
            self.tap.event("drop", f"{ev.direction} framing: {what}")
        return f"{ev.direction} framing error: {what}"


def _reader(stream: Stream, port: str, sniffer: LineSniffer, out: SniffOutput,
            stop: threading.Event, errors: list[str]) -> None:
    try:
        while not stop.is_set():
            data = stream.read(max(1, min(stream.in_waiting, 65536)))
            if data:
                out.handle(port, sniffer.feed(data))
    except Exception as exc:  # a port that goes away ends its reader, said once
        if not stop.is_set():
            errors.append(f"{port}: {exc}")
    finally:
        stop.set()


def run(args: argparse.Namespace) -> int:
    ports = [args.port] + ([args.port2] if args.port2 else [])
    streams: list[Stream] = []
    tap: Tap | None = None
    try:
        for port in ports:
            streams.append(open_serial(port, baudrate=args.baudrate))
        if args.write:
            from rpmsg.capture import open_capture
            tap = open_capture(args.write, link_name="sniff:" + "+".join(ports),
                               level=args.level)
        errors = _sniff(args, streams, ports, SniffOutput(tap, args.level, args.protocol,
                                                          args.quiet))
        for err in errors:
            print(printable(f"rpmsg sniff: {err}"), file=sys.stderr)
        return 1 if errors else 0
    finally:
        for s in streams:
            try:
                s.close()
            except Exception:
                pass
        if tap is not None:
            tap.close()


def _sniff(args: argparse.Namespace, streams: list[Stream], ports: list[str],
           out: SniffOutput) -> list[str]:
    """Read every port on a thread of its own until Ctrl-C or a port fails; the errors."""
    protocol = get_protocol(args.protocol)
    stop = threading.Event()
    errors: list[str] = []
    threads = [threading.Thread(target=_reader, daemon=True, name=f"sniff {port}",
                                args=(s, port, LineSniffer(d, protocol, args.crc), out,
                                      stop, errors))
               for s, port, d in zip(streams, ports, DIRECTIONS, strict=False)]
    print(f"rpmsg sniff: listening on {', '.join(ports)} ({args.protocol} protocol, "
          f"crc {args.crc}); Ctrl-C to stop", file=sys.stderr)
    for t in threads:
        t.start()
    while not stop.wait(0.2):
        pass
    for t in threads:
        t.join(5)
    return errors


__all__ = ["SniffOutput", "run"]
