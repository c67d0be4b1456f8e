"""The service and capture commands tried as a new user and as an adversary would.

Each test is a defect that was seen: ``--timeout nan``/``-1`` and ``--count -1`` accepted
(then a wait or a traceback); an unwritable ``--output``/``--log`` ending in a traceback;
``--timeout`` not governing the open (30 s of waiting for ``rtc --timeout 1``); ``loop:``
URLs waited on though no other process can be their peer; ``rpmsg term`` writing a peer's
escape sequences to the user's terminal and ending the session on a line longer than the
MTU; ``Console.write`` skipping input when a chip claimed to take more than offered;
``rpmsg nuttx`` keeping every log line of a chip without console in memory, unshown;
``rpmsg replay`` dying with ``OverflowError`` on a capture whose timestamps lie, and
``rpmsg rtc`` on a chip clock outside the calendar; ``rpmsg term | head`` killing its
receiving thread with a ``BrokenPipeError`` traceback; services leaving their service
handlers on the Device after close; ``rpmsg syslog``/``nuttx`` writing a chip's escape
sequences to the terminal (colours are kept on a terminal only); ``ping``'s ``--timeout``
not governing the open and its numbers taken unchecked.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import rpmsg
from rpmsg.capture import open_capture, read_capture
from rpmsg.capture.reader import CapturedMessage
from rpmsg.capture.replay import SLEEP_SLICE, Replayer, plan_replay
from rpmsg.cli.main import main
from rpmsg.cli.nuttx import rtc_report
from rpmsg.cli.terminal import Terminal
from rpmsg.rxqueue import RxQueue
from rpmsg.services import EchoService
from rpmsg.services.nuttx import Console, FsServer, RtcClient, SyslogServer, find_tty
from rpmsg.wire.nuttx_rtc import RTC_NAME, RtcCommand, RtcTime, decode_rtc
from rpmsg.wire.nuttx_tty import TtyWrite, TtyWriteResponse, decode_tty
from rpmsg.wire.rpmsg import NS_ADDR, NsFlags, NsMessage

CLI = [sys.executable, "-m", "rpmsg.cli.main"]


def cli(*args: str, timeout: float = 120, stdin: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          input=stdin, check=False)


@pytest.mark.parametrize("argv", [
    ["console", "uart:/dev/null", "--timeout", "nan"],
    ["console", "uart:/dev/null", "--timeout", "-1"],
    ["nuttx", "uart:/dev/null", "--timeout", "x"],
    ["rtc", "uart:/dev/null", "--timeout", "-0.5"],
    ["term", "uart:/dev/null", "svc", "--timeout", "nan"],
    ["syslog", "uart:/dev/null", "--count", "0"],
    ["syslog", "uart:/dev/null", "--count", "-3"],
    ["replay", "x.pcapng", "uart:/dev/null", "--timeout", "nan"],
    ["replay", "x.pcapng", "uart:/dev/null", "--linger", "inf"],
    ["replay", "x.pcapng", "uart:/dev/null", "--linger", "-1"],
    ["ping", "uart:/dev/null", "--count", "0"],
    ["ping", "uart:/dev/null", "--timeout", "nan"],
    ["ping", "uart:/dev/null", "--timeout", "inf"],
    ["ping", "uart:/dev/null", "--interval", "-1"],
    ["listen", "uart:/dev/null", "svc", "--count", "0"],
    ["listen", "uart:/dev/null", "svc", "--timeout", "-1"],
    ["send", "uart:/dev/null", "svc", "x", "--timeout", "nan"],
    ["services", "uart:/dev/null", "--wait", "inf"],
])
def test_wrong_numbers_are_usage_errors(argv: list[str],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "error: argument" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["syslog", "uart:/dev/null", "--output", "/nonexistent-dir/log.txt"],
    ["syslog", "uart:/dev/null", "--output", "/"],
    ["nuttx", "uart:/dev/null", "--log", "/nonexistent-dir/log.txt"],
])
def test_an_unwritable_output_file_is_one_line(argv: list[str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("rpmsg: error: cannot write the ") and err.count("\n") == 1


@pytest.mark.parametrize("argv", [
    ["console", "loop:x"], ["nuttx", "loop:x"], ["syslog", "loop:x"],
    ["fs-serve", "loop:x", "/tmp"], ["rtc", "loop:x"], ["term", "loop:x", "svc"],
    ["replay", "/nonexistent.pcapng", "loop:x"],
])
def test_loop_urls_are_refused_at_once(argv: list[str],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    # Without the check console and nuttx would wait for a peer for ever.
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "live in one process" in err and err.count("\n") == 1


def test_the_open_is_governed_by_timeout() -> None:
    name = f"shm:nobody-{uuid.uuid4().hex[:8]}"
    for argv in (["rtc", name, "--timeout", "1"], ["term", name, "svc", "--timeout", "1"],
                 ["console", name, "--timeout", "1"], ["ping", name, "--timeout", "1"]):
        out = cli(*argv, stdin="")
        assert out.returncode == 1, out.stderr
        # The open's own error, with the command's 1 s (not the default 30 s).
        assert "within 1.0 s" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


def test_open_timeout_none_waits_without_limit() -> None:
    prepared = rpmsg.prepare("shm:whatever", {"timeout": None})
    assert prepared.timeout is None
    assert rpmsg.prepare("shm:whatever").timeout == 30.0


def test_term_shows_control_characters_as_escapes() -> None:
    out = io.BytesIO()
    term = Terminal(lambda data: None, mode="line", stdout=out)
    term.message(b"hi\x1b]0;pwned\x07\x1b[2J\r\n")
    term.message("\u009b31m\tok\rx".encode())
    text = out.getvalue()
    assert text == b"hi\\x1b]0;pwned\\x07\\x1b[2J\n\\x9b31m\tok\\x0dx\n"
    assert b"\x1b" not in text and b"\x07" not in text and b"\r" not in text


@pytest.mark.timeout(120)
def test_term_keeps_the_session_after_a_line_too_long() -> None:
    name = f"cli-edges-{uuid.uuid4().hex[:8]}"
    remote = subprocess.Popen([*CLI, "remote", f"shm:{name}"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        assert remote.stdout is not None
        remote.stdout.readline()  # serving
        out = cli("term", f"shm:{name}", "rpmsg-echo", "--timeout", "60",
                  stdin="A" * 600 + "\n" + "after\x1b[2J\n")
        assert out.returncode == 0, out.stderr
        assert "line not sent" in out.stderr and "496" in out.stderr
        assert out.stdout.splitlines() == ["after\\x1b[2J"]
    finally:
        remote.send_signal(2)
        remote.wait(30)


_CHIP_WITHOUT_CONSOLE = textwrap.dedent("""
    import sys, threading
    import rpmsg
    from rpmsg.services.nuttx.sim import SimSyslogClient, Violations
    with rpmsg.open(sys.argv[1], policy="nuttx") as dev:
        log = SimSyslogClient(dev, Violations())
        print("ready", dev.link.describe()["pty"], flush=True)
        log.ept.wait_bound(60)
        for i in range(3):
            log.log(b"chip line %d\\x1b[32m\\x1b]0;t\\x07\\n" % i)
        sys.stdin.read()
        log.close()
""")


@pytest.mark.timeout(180)
def test_nuttx_shows_the_log_of_a_chip_whose_console_never_comes() -> None:
    chip = subprocess.Popen([sys.executable, "-c", _CHIP_WITHOUT_CONSOLE,
                             "uart:pty?baudrate=4000000"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert chip.stdout is not None
        line = chip.stdout.readline().split()
        assert line[:1] == ["ready"], line
        out = cli("nuttx", f"uart:{line[1]}?baudrate=4000000", "--no-rtc", "--timeout", "8",
                  stdin="")
        assert out.returncode == 1  # no rpmsg-tty* within 8 s
        assert "rpmsg-tty" in out.stderr
        for i in range(3):  # shown as it came, escaped (stderr is no terminal: no colour)
            assert f"chip line {i}\\x1b]0;t\\x07\n" in out.stderr, out.stderr
        assert "\x1b" not in out.stderr and "\x07" not in out.stderr
    finally:
        assert chip.stdin is not None
        chip.stdin.close()
        chip.wait(30)


def test_replay_waits_out_any_gap_in_slices_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "lying.pcapng"
    tap = open_capture(str(path), link_name="loop:lying")
    tap.message("rx", 0x400, NS_ADDR, NsMessage("rpmsg-echo", 0x400, NsFlags.CREATE).encode())
    tap.close()
    base = read_capture(str(path))[0]
    gaps = (0.0, 3 * 86400.0, 2**63 / 1e9)  # three days, then a timestamp near u64's end
    msgs = [CapturedMessage(base.timestamp_ns + int(t * 1e9), base.interface, "tx", 0x401,
                            0x400, bytes([i])) for i, t in enumerate(gaps)]
    plan = plan_replay([base, *msgs], "tx")
    now = [0.0]
    slices: list[float] = []

    def sleep(seconds: float) -> None:  # a fake clock: a million seconds pass per second
        slices.append(seconds)
        now[0] += seconds * 1e6

    said: list[str] = []
    name = f"edges-{uuid.uuid4().hex[:8]}"
    with rpmsg.open(f"loop:{name}", side="remote") as remote, \
            rpmsg.open(f"loop:{name}") as host:
        EchoService(remote, "rpmsg-echo")
        replayer = Replayer(host, plan, speed=1.0, clock=lambda: now[0], sleep=sleep)
        replayer.bind()
        result = replayer.run(said.append)
        replayer.close()
    assert result.sent == 3
    # time.sleep overflows past ~292 years: no single sleep is longer than a slice.
    assert slices and max(slices) <= SLEEP_SLICE
    assert sum("waiting" in s and "--speed max" in s for s in said) == 2


def test_console_never_skips_input_when_a_chip_claims_more_than_offered() -> None:
    """A chip answering a WRITE with more bytes taken than were offered made Console.write
    skip that many bytes of the input: the following chunks were never sent."""
    name = f"loop:{uuid.uuid4().hex}"
    got = bytearray()
    with rpmsg.open(name, policy="nuttx") as host, rpmsg.open(name, policy="nuttx") as chip:
        def boastful(ept: rpmsg.Endpoint, data: bytes, src: int) -> None:
            msg = decode_tty(data)
            if isinstance(msg, TtyWrite):
                got.extend(msg.data)
                ept.send(TtyWriteResponse(100_000, msg.cookie, 100_000).encode(), timeout=10)

        chip.create_endpoint("rpmsg-ttyboast", callback=boastful)
        console = Console(host, "rpmsg-ttyboast")
        console.wait_bound(timeout=20)
        text = bytes(range(256)) * 8  # 2048 bytes: five WRITEs at this MTU
        console.write(text, timeout=20)
        console.close()
    assert bytes(got) == text
    assert console.stats["tx_bytes"] == len(text)


def test_fileno_of_a_closed_queue_makes_no_descriptor() -> None:
    queue = RxQueue(0x400)
    queue.close()
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(rpmsg.EndpointClosedError):
        queue.fileno()
    assert len(os.listdir("/proc/self/fd")) == before


class _GoneReader(io.RawIOBase):
    """A stdout whose reader left (``rpmsg term ... | head -1``)."""

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_terminal_stops_when_its_output_goes_away() -> None:
    """The receiving thread of rpmsg term died with a BrokenPipeError traceback when the
    reader of its output left, and the command went on until its input ended."""
    r, w = os.pipe()
    try:
        with open(r, "rb", closefd=False) as stdin:
            term = Terminal(lambda data: None, mode="line", stdin=stdin,
                            stdout=_GoneReader(), stderr=io.StringIO())  # type: ignore[arg-type]
            term.message(b"first")  # on a receiving thread: must not raise
            term.message(b"second")
            assert term.output_closed
            assert term.run() == 141  # returns at once, input still open
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("sec", [2**62, -2**63, 2**63 - 1])
def test_rtc_report_of_a_chip_clock_outside_the_calendar(sec: int) -> None:
    """A chip answering GET with garbage in its 64-bit seconds made rpmsg rtc end with an
    OverflowError/ValueError traceback while formatting the date."""
    name = f"loop:{uuid.uuid4().hex}"
    with rpmsg.open(name, policy="nuttx") as host, rpmsg.open(name, policy="nuttx") as chip:
        def serve(ept: rpmsg.Endpoint, data: bytes, src: int) -> None:
            msg = decode_rtc(data)
            ept.send_to(src, RtcTime(RtcCommand.GET, sec, 0, cookie=msg.cookie,
                                     result=0).encode(), timeout=10)

        chip.create_endpoint(RTC_NAME, callback=serve)
        client = RtcClient(host, timeout=20)
        answer = client.get(timeout=20)
        client.close()
    assert answer.time_ns == sec * 1_000_000_000
    text = rtc_report(answer, False)
    assert text.startswith(f"chip: {sec} s since 1970 (outside the calendar's range)\nhost: ")
    assert json.loads(rtc_report(answer, True))["chip_ns"] == answer.time_ns


def test_services_leave_no_service_handler_behind(tmp_path: Path) -> None:
    """Every SyslogServer, FsServer and console lookup added a handler to the Device that
    stayed after close (called on each later announcement, for the Device's lifetime)."""
    name = f"loop:{uuid.uuid4().hex}"
    with rpmsg.open(name, policy="nuttx") as host, rpmsg.open(name, policy="nuttx") as chip:
        chip.create_endpoint("rpmsg-ttyx", announce=True)
        assert find_tty(host, timeout=20) == "rpmsg-ttyx"
        before = len(host._service_handlers)
        for _ in range(20):
            SyslogServer(host).close()
            FsServer(host, tmp_path).close()
            assert find_tty(host, timeout=20) == "rpmsg-ttyx"
            with pytest.raises(rpmsg.RpmsgTimeoutError):
                find_tty(host, timeout=0, prefix="none-")
        assert len(host._service_handlers) == before
        calls: list[str] = []
        remove = host.on_service(None, lambda _d, n, _a: calls.append(n))
        assert calls == ["rpmsg-ttyx"]  # offered at once
        remove()
        remove()  # idempotent
        chip.create_endpoint("later", announce=True)
        host.wait_service("later", timeout=20)
        assert calls == ["rpmsg-ttyx"]


_CHIP_WITH_COLOURS = textwrap.dedent("""
    import sys
    import rpmsg
    from rpmsg.services.nuttx.sim import SimSyslogClient, Violations
    with rpmsg.open(sys.argv[1], policy="nuttx") as dev:
        log = SimSyslogClient(dev, Violations())
        log.log(b"\\x1b[1;31mred\\x1b[0m plain\\x1b]0;title\\x07\\n"
                b"second \\x1b[2J\\xc2\\x9b6n\\x1b[31\\n")
        print("ready", dev.link.describe()["pty"], flush=True)
        sys.stdin.read()
        log.close()
""")
_STAMP = r"\d\d:\d\d:\d\d\.\d{3} "


def _read_all(fd: int, proc: subprocess.Popen[str]) -> bytes:
    """Everything a pseudo-terminal's master reads until its process has ended."""
    out = bytearray()
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the slave side is closed (the process exited)
            break
        if not data:
            break
        out += data
    proc.wait(60)
    return bytes(out)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("how", ["tty", "pipe", "json", "output"])
def test_syslog_keeps_colours_on_a_terminal_and_escapes_everything_else(
        how: str, tmp_path: Path) -> None:
    """rpmsg syslog wrote a chip's log lines raw: a chip could drive the user's terminal
    (title, cleared screen, a reply typed into the shell). SGR colours (NuttX colours its
    log) stay on a terminal only; every other control character is an escape."""
    import re

    chip = subprocess.Popen([sys.executable, "-c", _CHIP_WITH_COLOURS,
                             "uart:pty?baudrate=4000000"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert chip.stdout is not None
        ready = chip.stdout.readline().split()
        assert ready[:1] == ["ready"], ready
        argv = [*CLI, "syslog", f"uart:{ready[1]}?baudrate=4000000", "--no-rtc", "--count",
                "2", *({"json": ["--json"], "output": ["-o", str(tmp_path / "log")]}.get(
                    how, []))]
        if how == "tty":
            master, slave = os.openpty()
            proc = subprocess.Popen(argv, stdout=slave, stderr=subprocess.DEVNULL,
                                    stdin=subprocess.DEVNULL, text=True)
            os.close(slave)
            try:
                text = _read_all(master, proc).decode().replace("\r\n", "\n")
            finally:
                os.close(master)
        else:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            text = (tmp_path / "log").read_text() if how == "output" else done.stdout
    finally:
        assert chip.stdin is not None
        chip.stdin.close()
        chip.wait(30)
    lines = text.splitlines()
    assert len(lines) == 2, lines
    if how == "json":
        assert [json.loads(line)["text"] for line in lines] == [
            "red plain\x1b]0;title\x07", "second \x1b[2J\x9b6n\x1b[31"]
        return
    colour = ["\x1b[1;31m", "\x1b[0m"] if how == "tty" else ["", ""]
    reset = "\x1b[0m" if how == "tty" else ""
    assert re.fullmatch(_STAMP + re.escape(
        f"{colour[0]}red{colour[1]} plain\\x1b]0;title\\x07{reset}"), lines[0]), lines
    assert re.fullmatch(_STAMP + re.escape("second \\x1b[2J\\x9b6n\\x1b[31"), lines[1]), lines
