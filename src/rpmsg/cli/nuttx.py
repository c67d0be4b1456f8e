"""Commands for the services a NuttX chip uses: ``console``, ``syslog``, ``fs-serve``, ``rtc``
and ``nuttx`` (all of them at once). See :mod:`rpmsg.services.nuttx`.

Every command except ``rtc`` also serves the host's time to the chip (``rpmsg-rtc``, only to
a chip that binds as a client) unless ``--no-rtc`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import sys
import threading
import tty
from collections.abc import Callable
from typing import IO, Any

import rpmsg
from rpmsg.cli.args import (
    Given,
    OutputError,
    add_policy,
    count,
    open_output,
    open_timeout,
    seconds,
    standard_input,
)
from rpmsg.cli.args import name as name_arg
from rpmsg.cli.serve import serve_until_interrupted
from rpmsg.cli.terminal import Terminal, log_text, printable, strip_sgr, waiting
from rpmsg.device import Device
from rpmsg.errors import RpmsgError
from rpmsg.registry import require_other_process
from rpmsg.services.nuttx import (
    ChipTime,
    Console,
    FsServer,
    NuttxHost,
    RtcClient,
    RtcServer,
    SyslogLine,
    SyslogServer,
    find_tty,
)

WAIT_FOREVER = None
#: Seconds the open may wait for the peer (shm:, vhost-user:) where no --timeout says.
OPEN_TIMEOUT = 30.0


def register(sub: Any) -> None:
    _register_console(sub)
    _register_syslog(sub)
    _register_fs_serve(sub)
    _register_rtc(sub)
    _register_nuttx(sub)


def _common(p: argparse.ArgumentParser, rtc: bool = True) -> None:
    p.add_argument("url", help="transport URL, e.g. uart:/dev/ttyUSB0?baudrate=921600")
    add_policy(p, default="nuttx")
    if rtc:
        p.add_argument("--no-rtc", action="store_true",
                       help="do not serve the host's time to the chip (rpmsg-rtc)")


def _open(args: argparse.Namespace) -> Device:
    """The device, refusing loop: (the chip must be another process) and waiting for the
    peer as long as ``--timeout`` says where the command has one."""
    require_other_process(args.url, f"`rpmsg {args.command}`")
    timeout = getattr(args, "timeout", OPEN_TIMEOUT)
    return rpmsg.open(args.url, policy=args.policy, **open_timeout(args, args.url, timeout))


def _rtc(device: Device, args: argparse.Namespace) -> RtcServer | None:
    return None if args.no_rtc else RtcServer(device)


# console ---------------------------------------------------------------------------------------


def _register_console(sub: Any) -> None:
    p = sub.add_parser(
        "console", help="interactive terminal on a NuttX chip's shell (rpmsg-tty*)",
        description="Open the chip's console: the first announced service whose name starts "
        "with rpmsg-tty (or --name). Raw terminal; Ctrl-] leaves. With --pty the console "
        "becomes a local pseudo-terminal for screen, picocom or pexpect instead.")
    _common(p)
    p.add_argument("--name", type=name_arg,
                   help="tty service name (default: first rpmsg-tty* announced)")
    p.add_argument("--pty", action="store_true",
                   help="expose the console as a local pseudo-terminal (prints its path)")
    p.add_argument("--timeout", action=Given, type=seconds, default=WAIT_FOREVER, metavar="S",
                   help="seconds to wait for the chip and its console, the open included "
                   "(default: forever)")
    p.set_defaults(func=run_console)


def _console_name(device: Device, args: argparse.Namespace) -> str:
    if args.name:
        return str(args.name)
    with waiting(f"the chip's console (a service named rpmsg-tty*) on {args.url}"):
        return find_tty(device, args.timeout)


def run_console(args: argparse.Namespace) -> int:
    if not args.pty:
        standard_input()  # (none: said before the open, not after the wait for the chip)
    with _open(args) as device:
        rtc = _rtc(device, args)
        try:
            name = _console_name(device, args)
            if args.pty:
                return _serve_pty(device, name)
            return _terminal(device, name)
        finally:
            if rtc is not None:
                rtc.close()


def _terminal(device: Device, name: str, *, attach: Callable[[Terminal], None] | None = None,
              host: NuttxHost | None = None) -> int:
    """The console ``name`` of ``device`` in the foreground (raw terminal)."""
    holder: list[Console] = []
    term = Terminal(lambda data: _typed(holder[0] if holder else None, data), mode="raw")
    console = Console(device, name, on_output=term.write)
    holder.append(console)
    if host is not None:
        host.console = console  # closed with the other services
    if attach is not None:
        attach(term)
    try:
        return term.run()
    finally:
        if host is None:
            console.close()


def _typed(console: Console | None, data: bytes) -> None:
    if console is None:
        return
    try:
        console.write(data, timeout=10)
    except RpmsgError as exc:
        print(f"rpmsg: input not delivered: {exc}", file=sys.stderr)


def _serve_pty(device: Device, name: str) -> int:
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)

    def output(data: bytes) -> None:
        try:
            os.write(master, data)
        except OSError:
            pass

    console = Console(device, name, on_output=output)
    print(printable(f"rpmsg console: {name} is on {path} (e.g. picocom {path}); Ctrl-C to "
                    "stop"), flush=True)  # the name is the chip's word

    def pump() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            _typed(console, data)

    threading.Thread(target=pump, name="console-pty", daemon=True).start()
    try:
        return serve_until_interrupted(device)
    finally:
        console.close()
        os.close(slave)
        os.close(master)


# syslog ----------------------------------------------------------------------------------------


def _register_syslog(sub: Any) -> None:
    p = sub.add_parser(
        "syslog", help="print a NuttX chip's log (rpmsg-syslog server)",
        description="Receive the chip's log (rpmsg-syslog), including the backlog it sends "
        "when bound, and print each line with the host time it arrived.")
    _common(p)
    p.add_argument("--output", "-o", metavar="FILE", help="append lines to FILE")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--count", type=count, metavar="N", help="exit after this many lines")
    p.set_defaults(func=run_syslog)


def format_line(line: SyslogLine, as_json: bool, *, colour: bool = False) -> str:
    """One log line as printed: the host time and the text, safe for a terminal (SGR
    colours kept only with ``colour``), or a JSON object (text without SGR colours)."""
    if as_json:
        return json.dumps({**line.as_dict(), "text": strip_sgr(line.text)})
    stamp = datetime.datetime.fromtimestamp(line.time).strftime("%H:%M:%S.%f")[:-3]
    return f"{stamp} {log_text(line.text, colour=colour)}"


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _LogPrinter:
    """Writes each log line to ``out`` until ``count`` of them (None: no limit), then sets
    :attr:`done`; also once ``out`` cannot be written (a full disk, a reader that left),
    keeping the error in :attr:`error`. Called on the transport's thread."""

    def __init__(self, out: IO[str], args: argparse.Namespace) -> None:
        self.out = out
        self.as_json = args.json
        self.colour = not args.output and not args.json and _is_terminal(out)
        self.count = args.count
        self.seen = 0
        self.done = threading.Event()
        self.error: Exception | None = None

    def __call__(self, line: SyslogLine) -> None:
        if self.done.is_set():
            return
        try:
            self.out.write(format_line(line, self.as_json, colour=self.colour) + "\n")
            self.out.flush()
        except (OSError, OutputError) as exc:  # OutputError: stdout (see cli.main)
            self.error = exc
            self.done.set()
            return
        self.seen += 1
        if self.count is not None and self.seen >= self.count:
            self.done.set()


def run_syslog(args: argparse.Namespace) -> int:
    out: IO[str] = open_output(args.output, "log") if args.output else sys.stdout
    printer = _LogPrinter(out, args)
    try:
        with _open(args) as device:
            rtc = _rtc(device, args)
            server = SyslogServer(device, printer)
            try:
                _receive_log(device, server, printer.done, args.url)
            except KeyboardInterrupt:
                pass
            finally:
                server.close()
                if rtc is not None:
                    rtc.close()
    finally:
        if out is not sys.stdout:
            _close_output(out, printer)
    if printer.error is not None:
        raise _log_error(printer.error, args.output)
    return 0


def _close_output(out: IO[str], printer: _LogPrinter) -> None:
    """Close the log file; a failure to write its last bytes is the printer's error."""
    try:
        out.close()
    except OSError as exc:
        printer.error = printer.error or exc


def _log_error(error: Exception, path: str | None) -> Exception:
    """What ends ``rpmsg syslog`` when its output failed: a broken pipe as itself (exit
    141), anything else as one line (exit 1)."""
    if isinstance(error, (BrokenPipeError, OutputError)) or not isinstance(error, OSError):
        return error
    where = repr(path) if path else "the output"
    return OutputError(f"cannot write the log to {where}: {error.strerror or error}")


def _receive_log(device: Device, server: SyslogServer, done: threading.Event,
                 url: str) -> None:
    """Wait for the chip to bind (saying so after a second), then until ``done``; a broken
    transport ends it with its error."""
    with waiting(f"the chip's log (rpmsg-syslog) on {url}"):
        while not server.bound and not done.is_set():
            device.check_not_broken()
            if done.wait(0.1):
                break
    print(f"rpmsg syslog: receiving the chip's log on {url}; Ctrl-C to stop",
          file=sys.stderr, flush=True)
    while not done.wait(0.2):
        device.check_not_broken()


# fs-serve --------------------------------------------------------------------------------------


def _register_fs_serve(sub: Any) -> None:
    p = sub.add_parser(
        "fs-serve", help="serve a host directory to a NuttX chip (rpmsgfs server)",
        description="Serve DIR to the chip: on the chip, mount -t rpmsgfs -o cpu=<name the "
        "chip gives this PC>,fs=/ /mnt. The chip's fs= is a path inside DIR; nothing outside "
        "DIR is reachable (paths, .., symlinks).")
    _common(p)
    p.add_argument("dir", help="directory to serve")
    p.add_argument("--read-only", action="store_true", help="refuse every change (-EROFS)")
    p.set_defaults(func=run_fs_serve)


def run_fs_serve(args: argparse.Namespace) -> int:
    if not os.path.isdir(args.dir):
        raise SystemExit(f"rpmsg fs-serve: {args.dir}: not a directory")
    with _open(args) as device:
        rtc = _rtc(device, args)
        server = FsServer(device, args.dir, read_only=args.read_only)
        mode = "read-only" if args.read_only else "read-write"
        print(f"rpmsg fs-serve: serving {os.path.abspath(args.dir)} ({mode}) on {args.url}; "
              "on the chip: mount -t rpmsgfs -o cpu=<this PC>,fs=/ /mnt; Ctrl-C to stop",
              file=sys.stderr, flush=True)
        try:
            return serve_until_interrupted(device)
        finally:
            server.close()
            if rtc is not None:
                rtc.close()


# rtc -------------------------------------------------------------------------------------------


def _register_rtc(sub: Any) -> None:
    p = sub.add_parser(
        "rtc", help="read a NuttX chip's clock (rpmsg-rtc client)",
        description="Bind the chip's rpmsg-rtc service and print its time (GET), the host's "
        "and the difference.")
    _common(p, rtc=False)
    p.add_argument("--timeout", action=Given, type=seconds, default=10.0, metavar="S",
                   help="seconds to wait for the chip, its service and the answer (default "
                   "10)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_rtc)


def run_rtc(args: argparse.Namespace) -> int:
    with _open(args) as device:
        with waiting(f"the chip's rpmsg-rtc service on {args.url}"):
            client = RtcClient(device, timeout=args.timeout)
        try:
            t = client.get(args.timeout)
        finally:
            client.close()
    print(rtc_report(t, args.json))
    return 0


def _utc(ns: int) -> str:
    """ISO 8601 UTC of ``ns`` since the epoch, or what it is when no calendar date is (a
    chip's clock is a 64-bit count of seconds: garbage in it must not end the command)."""
    try:
        return datetime.datetime.fromtimestamp(ns / 1e9, datetime.timezone.utc).isoformat()
    except (OverflowError, ValueError, OSError):
        return f"{ns // 1_000_000_000} s since 1970 (outside the calendar's range)"


def rtc_report(t: ChipTime, as_json: bool) -> str:
    """What ``rpmsg rtc`` prints for a chip's answer."""
    if as_json:
        return json.dumps({"chip_ns": t.time_ns, "host_ns": t.host_ns,
                           "offset_s": t.offset, "chip": _utc(t.time_ns)})
    return (f"chip: {_utc(t.time_ns)}\nhost: {_utc(t.host_ns)}\n"
            f"offset: {t.offset:+.6f} s (chip - host)")


# nuttx -----------------------------------------------------------------------------------------


def _register_nuttx(sub: Any) -> None:
    p = sub.add_parser(
        "nuttx", help="be a NuttX board's peer: console, log, files and time at once",
        description="Serve time, receive the log (to --log FILE, else stderr), serve --fs DIR "
        "if given, and open the chip's console in the foreground (Ctrl-] leaves): the "
        "PC-side twin of NuttX's rpserver.")
    _common(p)
    p.add_argument("--fs", metavar="DIR", help="directory to serve (rpmsgfs)")
    p.add_argument("--read-only", action="store_true", help="serve --fs read-only")
    p.add_argument("--log", metavar="FILE", help="append the chip's log to FILE")
    p.add_argument("--name", type=name_arg,
                   help="tty service name (default: first rpmsg-tty* announced)")
    p.add_argument("--timeout", action=Given, type=seconds, default=WAIT_FOREVER, metavar="S",
                   help="seconds to wait for the chip and its console, the open included "
                   "(default: forever)")
    p.set_defaults(func=run_nuttx)


def run_nuttx(args: argparse.Namespace) -> int:
    if args.fs is not None and not os.path.isdir(args.fs):
        raise SystemExit(f"rpmsg nuttx: {args.fs}: not a directory")
    standard_input()  # (none: said before the open, not after the wait for the chip)
    log_file = open_output(args.log, "chip's log") if args.log else None
    terminal: list[Terminal] = []
    lock = threading.Lock()

    colour = log_file is None and _is_terminal(sys.stderr)

    log_failed = threading.Event()

    def on_log(line: SyslogLine) -> None:
        text = format_line(line, False, colour=colour)
        if log_file is not None and not log_failed.is_set():
            try:
                log_file.write(text + "\n")
                return
            except OSError as exc:  # a full disk: said once, the log goes on on stderr
                log_failed.set()
                show(f"rpmsg nuttx: cannot write the chip's log to {args.log!r}: "
                     f"{exc.strerror or exc}; showing it here from now on")
        show(text)

    def show(text: str) -> None:
        with lock:
            if not terminal:  # no console yet (perhaps never): straight to stderr, so a
                print(text, file=sys.stderr, flush=True)  # chattering chip costs no memory
                return
        terminal[0].note(text)

    def attach(term: Terminal) -> None:
        with lock:
            terminal.append(term)

    try:
        with _open(args) as device:
            host = NuttxHost(device, fs_dir=args.fs, read_only=args.read_only,
                             rtc=not args.no_rtc, on_log=on_log, console=False)
            try:
                name = _console_name(device, args)
                return _terminal(device, name, attach=attach, host=host)
            finally:
                host.close()
    finally:
        if log_file is not None:
            with contextlib.suppress(OSError):  # (a failure was said when it happened)
                log_file.close()


__all__ = ["format_line", "register", "rtc_report"]
