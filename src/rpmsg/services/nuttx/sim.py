"""A simulated NuttX chip speaking console, syslog, rpmsgfs and rtc, written from the spec.

It behaves the way the spec says NuttX 13 does where it matters to a PC peer: its tty keeps
one WRITE in flight, cuts output at the MTU, stops on a partial accept until WAKEUP, and
holds output produced while unbound until a WAKEUP or its next write; its syslog client
pushes a 4 KiB ring (empty TRANSFER on bind, chunks at the MTU, flush + echo on SYNC); its
rpmsgfs mount STATs the root before every path operation and accepts only responses to the
request in flight. Every message a real chip would crash on (a wrong cookie, an unknown
command, an undecodable message) is recorded in :attr:`NuttxSim.violations` instead.

Roles: ``proxy`` (like ``sim:rpproxy_uart``: the PC serves; the chip runs NSH on
``rpmsg-ttyproxy``, logs, mounts, takes time) and ``server`` (like ``rpserver_uart``: the chip
prints a PC's log, exports a directory, serves time). Run it from the shell::

    python -m rpmsg.services.nuttx.sim uart:/dev/pts/5 [--role server --export DIR]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shlex
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable

import rpmsg
from rpmsg.device import Device
from rpmsg.endpoint import Endpoint
from rpmsg.errors import DecodeError, RpmsgError
from rpmsg.services.nuttx.binding import AnnouncementBinder
from rpmsg.services.nuttx.fs_client import FsClient
from rpmsg.services.nuttx.rpmsgfs import FsServer
from rpmsg.services.nuttx.rtc import RtcServer
from rpmsg.transport import Deadline
from rpmsg.wire.nuttx_errno import name_of
from rpmsg.wire.nuttx_rpmsgfs import FS_HEADER, REQUESTS, FsCommand, FsResponse
from rpmsg.wire.nuttx_rtc import RTC_NAME, RtcCommand, RtcTime, decode_rtc
from rpmsg.wire.nuttx_syslog import (
    SYSLOG_NAME,
    SyslogCommand,
    SyslogControl,
    SyslogSync,
    SyslogTransfer,
    decode_syslog,
    transfer_chunks,
)
from rpmsg.wire.nuttx_tty import (
    WRITE_OVERHEAD,
    TtyWakeup,
    TtyWrite,
    TtyWriteResponse,
    decode_tty,
    response_to,
)

RING = 4096                   # tty rings and the syslog buffer of the sim (4096 bytes)
SYSLOG_DELAY = 0.1            # CONFIG_SYSLOG_RPMSG_WORK_DELAY, seconds
SEND_TIMEOUT = 10.0
UART_COOKIE = 0x7F4298A11300  # the tty's "uart_dev_s pointer" in its WRITE requests
PROMPT_ERASE = b"\x1b[K"


class Violations:
    """What a real chip would have crashed or hung on, recorded instead."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._lock = threading.Lock()

    def add(self, what: str) -> None:
        with self._lock:
            self.items.append(what)
        print(f"sim: VIOLATION: {what}", file=sys.stderr, flush=True)


# tty -----------------------------------------------------------------------------------------


class SimTty:
    """The chip side of ``rpmsg-tty<name>`` (``uart_rpmsg.c`` as the spec describes it)."""

    def __init__(self, device: Device, name: str, violations: Violations,
                 ring: int = RING) -> None:
        self.ring = ring
        self.violations = violations
        self.tx = bytearray()
        self.rx = bytearray()
        self.cond = threading.Condition()
        self.in_flight: int | None = None
        self.stopped = False
        self.rx_full = False
        self.closed = False
        self._send_lock = threading.Lock()
        self.ept = device.create_endpoint(name, callback=self._on_message,
                                          on_unbound=self._on_unbound)

    def write(self, data: bytes) -> None:
        """Output (blocks while the transmit ring is full, as a NuttX writer does)."""
        view = memoryview(data)
        while view:
            with self.cond:
                while len(self.tx) >= self.ring and not self.closed:
                    self.cond.wait(0.5)
                if self.closed:
                    return
                n = min(len(view), self.ring - len(self.tx))
                self.tx += view[:n]
                view = view[n:]
            self._kick()

    def _kick(self) -> None:
        """Send the next chunk if nothing is in flight (run on writes and WAKEUP only)."""
        with self.cond:
            if (self.in_flight is not None or self.stopped or not self.tx
                    or not self.ept.bound or self.closed):
                return
            n = min(len(self.tx), self.ept.mtu - WRITE_OVERHEAD)
            chunk = bytes(self.tx[:n])
            self.in_flight = n
        try:
            with self._send_lock:
                self.ept.send(TtyWrite(chunk, UART_COOKIE).encode(), timeout=SEND_TIMEOUT)
        except RpmsgError:
            with self.cond:
                self.in_flight = None

    def _on_unbound(self, ept: Endpoint) -> None:
        with self.cond:  # the link went away: an in-flight transmit counts as done
            if self.in_flight is not None:
                del self.tx[:self.in_flight]
            self.in_flight = None
            self.cond.notify_all()

    def _on_message(self, ept: Endpoint, data: bytes, src: int) -> None:
        try:
            msg = decode_tty(data)
        except DecodeError as exc:
            self.violations.add(f"tty: undecodable message: {exc}")
            return
        if isinstance(msg, TtyWriteResponse):
            with self.cond:
                if self.in_flight is None:
                    self.violations.add("tty: a WRITE response to nothing in flight")
                    return
                if msg.count != self.in_flight:
                    self.violations.add(f"tty: response count {msg.count} != {self.in_flight}")
                taken = msg.taken
                del self.tx[:taken]
                self.stopped = taken < self.in_flight
                self.in_flight = None
                self.cond.notify_all()
            self._kick()
        elif isinstance(msg, TtyWrite):
            with self.cond:
                take = max(0, min(len(msg.data), self.ring - len(self.rx)))
                self.rx += msg.data[:take]
                if take < len(msg.data):
                    self.rx_full = True
                self.cond.notify_all()
            try:
                ept.send_to(src, response_to(msg, take).encode(), timeout=SEND_TIMEOUT)
            except RpmsgError:
                pass
        else:
            with self.cond:
                self.stopped = False
            self._kick()

    def read_input(self, timeout: float) -> bytes:
        """Keyboard input for the shell; sends WAKEUP when a full ring drained."""
        with self.cond:
            if not self.rx:
                self.cond.wait(timeout)
            data = bytes(self.rx)
            self.rx.clear()
            wake = self.rx_full and data
            self.rx_full = False if wake else self.rx_full
        if wake:
            try:
                self.ept.send(TtyWakeup(UART_COOKIE).encode(), timeout=SEND_TIMEOUT)
            except RpmsgError:
                pass
        return data

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.ept.close()


# syslog --------------------------------------------------------------------------------------


class SimSyslogClient:
    """The chip's log going to the PC (``syslog_rpmsg.c``): a ring, oldest text dropped."""

    def __init__(self, device: Device, violations: Violations, ring: int = RING) -> None:
        self.ring = ring
        self.violations = violations
        self.buf = bytearray()
        self.cond = threading.Condition()
        self.suspended = False
        self.closed = False
        self.lost = 0
        self._due: float | None = None
        self._send_lock = threading.Lock()
        self.ept = device.create_endpoint(SYSLOG_NAME, callback=self._on_message,
                                          on_bound=lambda e: self._schedule(0.0))
        self._worker = threading.Thread(target=self._run, name="sim-syslog", daemon=True)
        self._worker.start()

    def log(self, text: bytes) -> None:
        with self.cond:
            self.buf += text
            if len(self.buf) > self.ring:  # nobody bound: the oldest text is lost
                self.lost += len(self.buf) - self.ring
                del self.buf[:len(self.buf) - self.ring]
            full = len(self.buf) > self.ring * 3 // 4
        self._schedule(0.0 if full else SYSLOG_DELAY)

    def _schedule(self, delay: float) -> None:
        with self.cond:
            due = time.monotonic() + delay
            if self._due is None or due < self._due:
                self._due = due
            self.cond.notify_all()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.closed and (self._due is None
                                           or time.monotonic() < self._due):
                    wait = None if self._due is None else self._due - time.monotonic()
                    self.cond.wait(wait)
                if self.closed:
                    return
                self._due = None
                if self.suspended:
                    continue
            self.transfer()

    def transfer(self) -> None:
        """Send everything in the ring (an empty TRANSFER when it is empty)."""
        if not self.ept.bound:
            return
        with self._send_lock:
            with self.cond:
                text = bytes(self.buf)
                self.buf.clear()
            try:
                for chunk in transfer_chunks(text, self.ept.mtu):
                    self.ept.send(chunk, timeout=SEND_TIMEOUT)
            except RpmsgError:
                with self.cond:
                    self.buf[0:0] = text

    def _on_message(self, ept: Endpoint, data: bytes, src: int) -> None:
        try:
            msg = decode_syslog(data)
        except DecodeError as exc:
            self.violations.add(f"syslog client: undecodable message: {exc}")
            return
        if isinstance(msg, SyslogSync):
            self.transfer()
            try:
                ept.send_to(src, data, timeout=SEND_TIMEOUT)  # echoed unchanged
            except RpmsgError:
                pass
        elif isinstance(msg, SyslogControl):
            with self.cond:
                self.suspended = msg.command == SyslogCommand.SUSPEND
            if not self.suspended:
                self._schedule(0.0)
        else:
            self.violations.add("syslog client: a TRANSFER sent to the client")

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self._worker.join(5)
        self.ept.close()


class SimSyslogServer:
    """The chip printing a peer's log (``syslog_rpmsg_server.c``): complete lines only,
    a remainder joined to the next line if both fit 256 bytes."""

    MAXLEN = 256

    def __init__(self, device: Device, printer: Callable[[str], None]) -> None:
        self.printer = printer
        self.lines: list[str] = []
        self._rest: dict[int, bytes] = {}
        self._binder = AnnouncementBinder(device, lambda n: n == SYSLOG_NAME,
                                          on_message=self._on_message,
                                          on_release=self._on_release)

    def _print(self, text: bytes) -> None:
        line = text.decode("utf-8", "replace")
        self.lines.append(line)
        self.printer(line)

    def _on_message(self, ept: Endpoint, data: bytes, src: int) -> None:
        try:
            msg = decode_syslog(data)
        except DecodeError:
            return
        if not isinstance(msg, SyslogTransfer):
            return  # SYNC without SYSLOG_RPMSG_SERVER_CHARDEV: ignored, as NuttX does
        text = self._rest.pop(id(ept), b"") + msg.data
        *complete, rest = text.split(b"\n")
        for line in complete:
            self._print(line)
        if rest:
            self._rest[id(ept)] = rest

    def _on_release(self, ept: Endpoint) -> None:
        rest = self._rest.pop(id(ept), b"")
        if rest:
            self._print(rest)

    def close(self) -> None:
        self._binder.close()


# rpmsgfs -------------------------------------------------------------------------------------


class SimMount(FsClient):
    """A chip's ``mount -t rpmsgfs``: STAT of the root before every path operation."""

    def _call(self, command: FsCommand, path: str | None = None,
              **kwargs: int | bytes) -> FsResponse:
        if path is not None or command == FsCommand.RENAME:
            deadline = Deadline(self.timeout)
            while True:  # rpmsgfs_mkpath: retry every 10 ms while the budget lasts
                resp = self._request(FsCommand.STAT, {"path": self._path("")})[0]
                if resp.result >= 0 or deadline.expired():
                    break
                time.sleep(0.01)
        return super()._call(command, path, **kwargs)


class SimFsServer(FsServer):
    """The chip exporting its VFS: a command it does not know makes it assert."""

    def __init__(self, device: Device, directory: str, violations: Violations) -> None:
        self.violations = violations
        super().__init__(device, directory)

    def _on_message(self, ept: Endpoint, data: bytes, src: int) -> None:
        if len(data) >= FS_HEADER.size:
            command = FS_HEADER.unpack(data)[0]
            if command not in REQUESTS:
                self.violations.add(f"rpmsgfs server: command {command} (NuttX asserts)")
                return
        super()._on_message(ept, data, src)


# rtc -----------------------------------------------------------------------------------------


class SimClock:
    """The chip's CLOCK_REALTIME: uptime since 1970 until a SYNC sets it."""

    def __init__(self) -> None:
        self.boot = time.monotonic_ns()
        self.base: int | None = None
        self.synced_at = 0

    def now_ns(self) -> int:
        mono = time.monotonic_ns()
        if self.base is None:
            return mono - self.boot
        return self.base + (mono - self.synced_at)

    def set(self, time_ns: int) -> None:
        self.base, self.synced_at = time_ns, time.monotonic_ns()


class SimRtcClient:
    """``RTC_RPMSG`` without the server: binds the peer's ``rpmsg-rtc``, takes its SYNC."""

    def __init__(self, device: Device, clock: SimClock, violations: Violations) -> None:
        self.clock = clock
        self.violations = violations
        self.syncs = 0
        self.ept: Endpoint | None = None
        self._cookies = itertools.count(0x7F4298A72000, 0x40)
        self._pending: dict[int, RtcTime | None] = {}
        self._cond = threading.Condition()
        device.on_service(RTC_NAME, self._announced)

    def _announced(self, device: Device, name: str, addr: int) -> None:
        if self.ept is None:
            self.ept = device.create_endpoint(RTC_NAME, announce=False,
                                              callback=self._on_message)

    def _on_message(self, ept: Endpoint, data: bytes, src: int) -> None:
        try:
            msg = decode_rtc(data)
        except DecodeError as exc:
            self.violations.add(f"rtc client: undecodable message: {exc}")
            return
        if isinstance(msg, RtcTime) and msg.command == RtcCommand.SYNC:
            self.clock.set(msg.time_ns)
            self.syncs += 1
            return
        with self._cond:
            if msg.cookie not in self._pending:
                self.violations.add(f"rtc client: answer with unknown cookie {msg.cookie:#x}")
                return
            self._pending[msg.cookie] = msg if isinstance(msg, RtcTime) else None
            self._cond.notify_all()

    def get(self, timeout: float = 5.0) -> RtcTime | None:
        if self.ept is None:
            return None
        cookie = next(self._cookies)
        with self._cond:
            self._pending[cookie] = None
        self.ept.send(RtcTime(RtcCommand.GET, 0, 0, cookie=cookie, result=-6).encode(),
                      timeout=SEND_TIMEOUT)
        deadline = Deadline(timeout)
        with self._cond:
            while self._pending.get(cookie) is None and not deadline.expired():
                self._cond.wait(deadline.remaining())
            return self._pending.pop(cookie, None)


# The shell -----------------------------------------------------------------------------------


def _mount_options(args: list[str]) -> tuple[str, dict[str, str]]:
    """``mount``'s ``-t TYPE`` and ``-o key=value,...`` before its last word, the target
    (other words skipped)."""
    fstype = ""
    opts: dict[str, str] = {}
    i = 0
    while i < len(args) - 1:
        if args[i] == "-t":
            fstype, i = args[i + 1], i + 2
        elif args[i] == "-o":
            opts = dict(o.split("=", 1) for o in args[i + 1].split(",") if "=" in o)
            i += 2
        else:
            i += 1
    return fstype, opts


class NuttxSim:
    """A simulated NuttX chip on ``device`` (see the module docstring)."""

    def __init__(self, device: Device, *, role: str = "proxy", export: str | None = None,
                 tty_name: str = "rpmsg-ttyproxy", peer_cpu: str = "server",
                 printer: Callable[[str], None] | None = None) -> None:
        if role not in ("proxy", "server"):
            raise ValueError(f"role must be proxy or server, not {role!r}")
        self.device = device
        self.role = role
        self.hostname = role
        self.peer_cpu = peer_cpu
        self.violations = Violations()
        self.clock = SimClock()
        self.mounts: dict[str, SimMount] = {}
        self._mount_ids = itertools.count(0x7F4298A25238, 0x1000)
        self._printer = printer or (lambda line: print(line, file=sys.stderr, flush=True))
        self.tty = SimTty(device, tty_name, self.violations)
        self.syslog: SimSyslogClient | None = None
        self.syslog_server: SimSyslogServer | None = None
        self.fs_server: SimFsServer | None = None
        self.rtc_client: SimRtcClient | None = None
        self.rtc_server: RtcServer | None = None
        if role == "proxy":
            self.syslog = SimSyslogClient(device, self.violations)
            self.rtc_client = SimRtcClient(device, self.clock, self.violations)
        else:
            self.clock.set(time.time_ns())  # rpserver's RTC is backed by the host's clock
            self.syslog_server = SimSyslogServer(device, self._printer)
            self.rtc_server = RtcServer(device, clock=self.clock.now_ns, on_set=self.clock.set)
            if export is not None:
                self.fs_server = SimFsServer(device, export, self.violations)
        self.log("sim: NuttX simulator booting")
        self.tty.write(b"\r\nNuttShell (NSH) NuttX-13.0.0\r\n" + self.prompt)  # held
        self._closed = False
        self._shell = threading.Thread(target=self._run_shell, name="sim-nsh", daemon=True)
        self._shell.start()

    @property
    def prompt(self) -> bytes:
        return f"{self.hostname}> ".encode() + PROMPT_ERASE

    def log(self, text: str) -> None:
        """syslog(): with NuttX's uptime and task prefix."""
        line = f"[{self.clock_uptime():12.6f}] [{self.hostname}] {text}\n".encode()
        if self.syslog is not None:
            self.syslog.log(line)
        else:
            self._printer(line.decode().rstrip("\n"))

    def clock_uptime(self) -> float:
        return (time.monotonic_ns() - self.clock.boot) / 1e9

    def _run_shell(self) -> None:
        line = bytearray()
        last = 0
        while not self._closed:
            for b in self.tty.read_input(0.2):
                self._key(b, last, line)
                last = b

    def _key(self, b: int, last: int, line: bytearray) -> None:
        """One byte typed (after ``last``): a line end runs ``line`` (CR LF is one end),
        backspace/DEL erases, printable bytes and tab are echoed; the rest is ignored."""
        if b in (0x0D, 0x0A):
            if b == 0x0A and last == 0x0D:
                return
            self.tty.write(b"\r\n")
            out = self.execute(line.decode("utf-8", "replace"))
            line.clear()
            if out:
                self.tty.write(out.replace("\n", "\r\n").encode())
            self.tty.write(self.prompt)
        elif b in (0x08, 0x7F):
            if line:
                line.pop()
                self.tty.write(b"\b \b")
        elif b >= 0x20 or b == 0x09:
            line.append(b)
            self.tty.write(bytes([b]))

    # Commands --------------------------------------------------------------------------------

    def execute(self, line: str) -> str:
        """Run one NSH command line; returns its output ("\\n" line ends)."""
        try:
            argv = shlex.split(line)
        except ValueError:
            return "nsh: syntax error\n"
        if not argv:
            return ""
        redirect = None
        if len(argv) >= 2 and argv[-2] == ">":
            redirect, argv = argv[-1], argv[:-2]
        handler = getattr(self, f"_cmd_{argv[0]}", None)
        if handler is None:
            return f"nsh: {argv[0]}: command not found\n"
        try:
            out: str = handler(argv[1:])
        except OSError as exc:
            return f"nsh: {argv[0]}: {exc.strerror or exc}: {exc.errno}\n"
        except RpmsgError as exc:
            return f"nsh: {argv[0]}: {exc}\n"
        if redirect is not None:
            self._redirect(redirect, out)
            return ""
        return out

    def _redirect(self, path: str, text: str) -> None:
        if path in ("/dev/ttyS1", "/dev/log"):  # the syslog chardev
            self.log(text.rstrip("\n"))
            return
        mount, rel = self._mounted(path)
        mount.write_file(rel, text.encode())

    def _mounted(self, path: str) -> tuple[SimMount, str]:
        for point, mount in self.mounts.items():
            if path == point or path.startswith(point + "/"):
                return mount, path[len(point):] or "/"
        raise OSError(2, "open failed")

    def _cmd_help(self, args: list[str]) -> str:
        names = sorted(n[5:] for n in dir(self) if n.startswith("_cmd_"))
        return "help usage:  help [-v] [<cmd>]\n\n  " + "  ".join(names) + "\n"

    def _cmd_echo(self, args: list[str]) -> str:
        return " ".join(args) + "\n"

    def _cmd_uname(self, args: list[str]) -> str:
        if "-a" in args:
            return f"NuttX {self.hostname} 13.0.0 rpmsg-sim Nov 29 2026 00:30:54 sim sim\n"
        return "NuttX\n"

    def _cmd_date(self, args: list[str]) -> str:
        sec = self.clock.now_ns() // 1_000_000_000
        return time.strftime("%a, %b %d %H:%M:%S %Y", time.gmtime(sec)) + "\n"

    def _cmd_rtcget(self, args: list[str]) -> str:
        if self.rtc_client is None:
            return "rtcget: no rtc server\n"
        t = self.rtc_client.get()
        if t is None:
            return "rtcget: failed\n"
        if t.result < 0:
            return f"rtcget: {name_of(t.result)}\n"
        return f"{t.sec}.{t.nsec:09d}\n"

    def _cmd_mount(self, args: list[str]) -> str:
        if not args:
            return "".join(f"  {p} type rpmsgfs\n" for p in self.mounts)
        fstype, opts = _mount_options(args)
        if fstype != "rpmsgfs":
            return "nsh: mount: mount failed: 19\n"
        if opts.get("cpu") != self.peer_cpu:
            return "nsh: mount: mount failed: 19\n"  # no rpmsg device of that CPU name
        timeout = int(opts.get("timeout", "10000")) / 1000
        name = f"rpmsgfs-{next(self._mount_ids):#x}"
        mount = SimMount(self.device, opts.get("fs", "/"), name=name, timeout=timeout)
        mount.violations = self.violations.items
        try:
            mount.wait_bound(timeout)
        except RpmsgError:
            mount.shutdown()
            return "nsh: mount: mount failed: 110\n"
        self.mounts[args[-1].rstrip("/")] = mount
        return ""

    def _cmd_umount(self, args: list[str]) -> str:
        mount = self.mounts.pop(args[0].rstrip("/"), None) if args else None
        if mount is None:
            return "nsh: umount: umount failed: 22\n"
        mount.shutdown()
        return ""

    def _cmd_ls(self, args: list[str]) -> str:
        path = args[-1] if args and not args[-1].startswith("-") else "/mnt"
        mount, rel = self._mounted(path)
        names = sorted(n + ("/" if t == 4 else "") for n, t in mount.listdir(rel))
        return f"{path}:\n" + "".join(f" {n}\n" for n in names)

    def _cmd_cat(self, args: list[str]) -> str:
        out = ""
        for path in args:
            mount, rel = self._mounted(path)
            out += mount.read_file(rel).decode("utf-8", "replace")
        return out

    def _cmd_mkdir(self, args: list[str]) -> str:
        mount, rel = self._mounted(args[0])
        mount.mkdir(rel)
        return ""

    def _cmd_rmdir(self, args: list[str]) -> str:
        mount, rel = self._mounted(args[0])
        mount.rmdir(rel)
        return ""

    def _cmd_rm(self, args: list[str]) -> str:
        mount, rel = self._mounted(args[0])
        mount.unlink(rel)
        return ""

    def _cmd_mv(self, args: list[str]) -> str:
        mount, old = self._mounted(args[0])
        _mount, new = self._mounted(args[1])
        mount.rename(old, new)
        return ""

    def _cmd_df(self, args: list[str]) -> str:
        out = "  Block  Number\n  Size   Blocks     Used Available Mounted on\n"
        for point, mount in self.mounts.items():
            s = mount.statfs("/")
            out += f"{s.bsize:7} {s.blocks:8} {s.blocks - s.bfree:8} {s.bavail:9} {point}\n"
        return out

    # Lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        self._closed = True
        self._shell.join(5)
        for mount in self.mounts.values():
            mount.shutdown()
        for svc in (self.syslog, self.syslog_server, self.fs_server, self.rtc_server):
            if svc is not None:
                svc.close()
        self.tty.close()


def _wait_for_the_end() -> None:
    """Block until Ctrl-C/SIGTERM, or EOF on stdin if stdin is a pipe (a test driving us)."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        piped = stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode)
    except (OSError, ValueError):
        piped = False
    if piped:
        sys.stdin.read()
    else:
        while True:
            signal.pause()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rpmsg.services.nuttx.sim",
                                     description="A simulated NuttX chip on a transport URL. "
                                     "Prints 'ready [PTY]' once open (uart:pty: the path to "
                                     "connect to), then runs until Ctrl-C or SIGTERM, or until "
                                     "its stdin closes when that is a pipe.")
    parser.add_argument("url", help="transport URL, e.g. uart:/dev/pts/5")
    parser.add_argument("--role", choices=["proxy", "server"], default="proxy")
    parser.add_argument("--export", metavar="DIR", help="directory the server role exports")
    args = parser.parse_args(argv)
    with rpmsg.open(args.url, policy="nuttx") as device:
        sim = NuttxSim(device, role=args.role, export=args.export)
        pty = device.link.describe().get("pty")
        print(f"ready {pty}" if pty else "ready", flush=True)
        try:
            _wait_for_the_end()
        except KeyboardInterrupt:
            pass
        sim.close()
        if sim.violations.items:
            print(f"sim: {len(sim.violations.items)} violations", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
