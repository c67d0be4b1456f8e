"""The command line used carelessly or with hostile arguments: each test is a defect seen.

Outputs that cannot be written (``> /dev/full``, a pipe whose reader left) ended in a
traceback (or, on the transport's thread, in one traceback per log line and no end); pauses
longer than the system can wait (``--wait 1e300``) ended in ``OverflowError``; numbers that
make no sense (``demo --count -5``, ``ping --size -1``) were taken and gave negative rates or
silently other sizes; names no peer can announce (empty, over 31 bytes) were refused only
after the open had waited for the peer; a closed stdin was an AttributeError traceback and a
closed stderr put the diagnostics into stdout; ``send -f /dev/zero`` read until memory ran
out; ``remote`` announced two services under one name; ``replay --linger`` waited without a
word; ``demo`` exited 0 after a failed echo; the URL's own ``timeout=`` was overridden by
every command's default.
"""

from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import rpmsg
from rpmsg.cli.main import main
from rpmsg.cli.terminal import Terminal

WAIT = 120.0  # generous: the machine may be loaded; nothing here is timed for pass/fail
CLI = [sys.executable, "-m", "rpmsg"]


def run_cli(*args: str, stdout: int | None = subprocess.PIPE, stdin: str = "",
            timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], stdout=stdout, stderr=subprocess.PIPE, input=stdin,
                          text=True, timeout=timeout, check=False)


def one_line_error(stderr: str) -> str:
    """The error line of ``stderr``, checked to be the only line about the error."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if "error" in line]
    assert len(errors) == 1, stderr
    return errors[0]


# Outputs that cannot be written ----------------------------------------------------------


@pytest.mark.parametrize("argv", [["transports"], ["wireshark"], ["udev-rules"],
                                  ["demo", "--transport", "loop", "--count", "10"]])
def test_a_full_standard_output_is_one_line(argv: list[str]) -> None:
    with open("/dev/full", "w") as full:
        out = run_cli(*argv, stdout=full.fileno())
    assert out.returncode == 1, out.stderr
    assert one_line_error(out.stderr) == \
        "rpmsg: error: cannot write the output: No space left on device"


@pytest.mark.parametrize("argv", [["transports"], ["udev-rules"], ["wireshark"]])
def test_a_closed_standard_output_is_one_line(argv: list[str]) -> None:
    """Started with stdout closed (>&-) Python has no sys.stdout; the wrapper that reports
    a full disk called None.write: an AttributeError traceback (print() alone had written
    nothing, silently)."""
    out = subprocess.run([*CLI, *argv], stdout=None, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, text=True, timeout=WAIT, check=False,
                         preexec_fn=lambda: os.close(1))
    assert out.returncode == 1, out.stderr
    assert one_line_error(out.stderr) == \
        "rpmsg: error: cannot write the output: standard output is closed"


def test_a_full_standard_output_is_a_json_error_with_json() -> None:
    with open("/dev/full", "w") as full:
        out = run_cli("transports", "--json", stdout=full.fileno())
    assert out.returncode == 1, out.stderr
    assert one_line_error(out.stderr) == ('{"error": "cannot write the output: No space left '
                                          'on device", "type": "OutputError"}')


class _FullDisk(io.RawIOBase):
    """A stdout on a full disk."""

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_term_on_a_full_standard_output_stops_with_one_line() -> None:
    """The receiving thread of rpmsg term died with an OSError traceback and the command
    went on (exit 0) when its output was on a full disk."""
    r, w = os.pipe()
    err = io.StringIO()
    try:
        with open(r, "rb", closefd=False) as stdin:
            term = Terminal(lambda data: None, mode="line", stdin=stdin,
                            stdout=_FullDisk(), stderr=err)  # type: ignore[arg-type]
            term.message(b"first")  # on a receiving thread: must not raise
            term.message(b"second")
            assert term.run() == 1  # returns at once, input still open
    finally:
        os.close(r)
        os.close(w)
    assert err.getvalue() == "rpmsg: error: cannot write the output: No space left on device\n"


_CHIP = textwrap.dedent("""
    import sys
    import rpmsg
    from rpmsg.services.nuttx.sim import SimSyslogClient, Violations
    with rpmsg.open(sys.argv[1], policy="nuttx") as dev:
        log = SimSyslogClient(dev, Violations())
        print("ready", dev.link.describe()["pty"], flush=True)
        log.ept.wait_bound(120)
        for i in range(3):
            log.log(b"chip line %d\\n" % i)
        sys.stdin.read()
        log.close()
""")


@contextmanager
def chip_with_a_log() -> Iterator[str]:
    """A chip on a pseudo-terminal that logs three lines once its rpmsg-syslog is bound,
    then waits for its stdin to close; yields the URL of the other end."""
    chip = subprocess.Popen([sys.executable, "-c", _CHIP, "uart:pty?baudrate=4000000"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert chip.stdout is not None
        line = chip.stdout.readline().split()
        assert line[:1] == ["ready"], line
        yield f"uart:{line[1]}?baudrate=4000000"
    finally:
        assert chip.stdin is not None
        chip.stdin.close()
        try:
            chip.wait(WAIT)
        except subprocess.TimeoutExpired:
            chip.kill()
            chip.wait()


@pytest.mark.timeout(300)
def test_syslog_to_a_full_disk_ends_with_one_line() -> None:
    """rpmsg syslog -o /dev/full printed a traceback for every line the chip logged, on the
    transport's thread, and never ended (nor did --count end it)."""
    with chip_with_a_log() as url:
        out = run_cli("syslog", url, "--no-rtc", "--count", "3", "-o", "/dev/full")
    assert out.returncode == 1, out.stderr
    assert one_line_error(out.stderr) == \
        "rpmsg: error: cannot write the log to '/dev/full': No space left on device"


@pytest.mark.timeout(300)
def test_syslog_to_a_pipe_whose_reader_left_exits_141_quietly() -> None:
    r, w = os.pipe()
    os.close(r)
    try:
        with chip_with_a_log() as url:
            out = run_cli("syslog", url, "--no-rtc", "--count", "3", stdout=w)
    finally:
        os.close(w)
    assert out.returncode == 141, out.stderr
    assert "Traceback" not in out.stderr and "error" not in out.stderr, out.stderr


@pytest.mark.timeout(300)
def test_nuttx_shows_the_log_on_stderr_once_its_log_file_is_full() -> None:
    """rpmsg nuttx --log /dev/full lost every line of the chip's log, each with a
    traceback; now it says so once and shows the log on stderr."""
    with chip_with_a_log() as url:
        out = run_cli("nuttx", url, "--no-rtc", "--log", "/dev/full", "--timeout", "20")
    assert out.returncode == 1  # the chip has no console: rpmsg-tty* never comes
    assert "Traceback" not in out.stderr, out.stderr
    assert out.stderr.count("cannot write the chip's log to '/dev/full': No space left on "
                            "device; showing it here from now on") == 1, out.stderr
    for i in range(3):
        assert f"chip line {i}\n" in out.stderr, out.stderr


# Numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["services", "uart:/dev/null", "--wait", "1e300"],
    ["ping", "uart:/dev/null", "--interval", "1e300"],
    ["ping", "uart:/dev/null", "--interval", "1e10"],
    ["replay", "x.pcapng", "uart:/dev/null", "--linger", "1e300"],
])
def test_pauses_longer_than_the_system_can_wait_are_usage_errors(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # They passed the check and ended in OverflowError from Event.wait / time.sleep.
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "more seconds than a pause can last" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["demo", "--transport", "loop", "--count", "0"],
    ["demo", "--transport", "loop", "--count", "-5"],
    ["ping", "uart:/dev/null", "--size", "-1"],
])
def test_counts_and_sizes_below_their_minimum_are_usage_errors(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # demo printed negative rates (exit 0); ping sent 17-byte pings for --size -1.
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "error: argument" in capsys.readouterr().err


_STREAM_OF_A_HUGE_COUNT = textwrap.dedent("""
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    import rpmsg
    from rpmsg.cli.demo import _stream

    class Endpoint:  # the echo stops after two messages
        received = 0
        def send(self, data, timeout=None):
            raise rpmsg.RemoteDisconnectedError("gone")
        def recv(self, timeout=None):
            raise rpmsg.RemoteDisconnectedError("gone")

    row = _stream(Endpoint(), 496, 10**10)
    print(row["ok"])
""")


def test_demo_makes_its_stream_payloads_as_it_goes() -> None:
    """demo built every payload of --count before sending one: --count 10000000000 ran
    out of memory (a MemoryError under a 1 GiB limit here)."""
    out = subprocess.run([sys.executable, "-c", _STREAM_OF_A_HUGE_COUNT], capture_output=True,
                         text=True, timeout=WAIT, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "False\n"


# Names -----------------------------------------------------------------------------------


LONG = "n" * 32  # one byte more than an RPMsg name holds


@pytest.mark.parametrize("argv", [
    ["send", "{url}", LONG, "hi"],
    ["send", "{url}", "", "hi"],
    ["listen", "{url}", LONG],
    ["term", "{url}", LONG],
    ["term", "{url}", ""],
    ["ping", "{url}", "--service", LONG],
    ["remote", "{url}", "--echo", LONG],
    ["remote", "{url}", "--echo", ""],
    ["remote", "{url}", "--tty", LONG],
    ["console", "{url}", "--name", LONG],
    ["nuttx", "{url}", "--name", LONG],
])
def test_names_no_peer_can_announce_are_usage_errors_before_the_open(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    # Were refused after the open had waited for a peer (30 s by default), or, empty,
    # waited for a binding that could never come.
    url = f"shm:nobody-{uuid.uuid4().hex[:8]}"
    limit = [] if argv[0] == "remote" else ["--timeout", "0.2"]  # (before the fix: rc 1)
    with pytest.raises(SystemExit) as info:
        main([a.format(url=url) for a in argv] + limit)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "name" in err and "no virtio device" not in err, err


def test_the_old_linux_form_still_takes_long_data_where_name_was() -> None:
    # 'rpmsg send /dev/rpmsgN DATA': DATA in NAME's place is no name to check.
    out = run_cli("send", "/dev/rpmsg-none", LONG)
    assert out.returncode == 1
    assert "rpmsg-none" in one_line_error(out.stderr)


# Standard streams that are not there ----------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["send", "shm:nobody-{tag}", "svc", "-", "--timeout", "30"],
    ["term", "shm:nobody-{tag}", "svc", "--timeout", "30"],
    ["dump", "-"],
    ["console", "shm:nobody-{tag}", "--timeout", "30"],
    ["nuttx", "shm:nobody-{tag}", "--timeout", "30"],
])
def test_a_closed_standard_input_is_one_line_before_the_open(argv: list[str]) -> None:
    """Started with stdin closed (<&-) these ended in an AttributeError traceback
    (sys.stdin is None), term and console only after waiting for the peer."""
    tag = uuid.uuid4().hex[:8]
    out = subprocess.run([*CLI, *(a.format(tag=tag) for a in argv)], capture_output=True,
                         text=True, timeout=WAIT, check=False,
                         preexec_fn=lambda: os.close(0))
    assert out.returncode == 1, out.stderr
    assert one_line_error(out.stderr) == ("rpmsg: error: standard input is closed: give the "
                                          "input another way (e.g. < FILE or < /dev/null)")


@pytest.mark.parametrize("argv", [
    ["ping", "shm:nobody-{tag}", "--timeout", "0.1", "--json"],
    ["nosuchcommand"],
])
def test_diagnostics_never_go_to_stdout_when_stderr_is_closed(argv: list[str]) -> None:
    """With stderr closed (2>&-) Python has no sys.stderr and print(file=None) writes to
    stdout: the error (a JSON object with --json) came out among the data."""
    tag = uuid.uuid4().hex[:8]
    out = subprocess.run([*CLI, *(a.format(tag=tag) for a in argv)], stdout=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, text=True, timeout=WAIT, check=False,
                         preexec_fn=lambda: os.close(2))
    assert out.returncode in (1, 2)
    assert out.stdout == ""


# Usage of rpmsg remote -------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "says"), [
    (["--echo", "a", "--echo", "a"], "given twice: 'a'"),
    (["--echo", "rpmsg-ping", "--ping"], "given twice: 'rpmsg-ping'"),
    (["--echo", "a", "--tty", "a"], "given twice: 'a'"),
    (["--tty-exec", "cat"], "--tty-exec needs --tty NAME"),
])
def test_remote_refuses_services_it_cannot_serve_as_usage_errors(
        argv: list[str], says: str, tmp_path: Path) -> None:
    # Two services were announced under one name (a host binds one of them, at random)
    # and the remote served until killed; --tty-exec without --tty exited 1.
    name = f"remote-usage-{uuid.uuid4().hex[:8]}"
    try:
        out = run_cli("remote", f"shm:{name}?socket={tmp_path}/{name}.sock", *argv,
                      timeout=60)
    finally:
        Path(f"/dev/shm/{name}").unlink(missing_ok=True)
    assert out.returncode == 2, out.stderr
    line = one_line_error(out.stderr)
    assert line.startswith("rpmsg remote: error: ") and says in line, line


# Waits -----------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_replay_says_what_it_waits_for_while_it_lingers(tmp_path: Path) -> None:
    """replay --linger S slept S seconds after its last send without a word."""
    name = f"replay-linger-{uuid.uuid4().hex[:8]}"
    url = f"shm:{name}?socket={tmp_path}/{name}.sock"
    remote = subprocess.Popen([*CLI, "remote", url], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    try:
        assert remote.stdout is not None
        assert "serving" in remote.stdout.readline()
        capture = tmp_path / "ping.pcapng"
        out = run_cli("ping", f"{url}&capture={capture}", "--count", "2", "--timeout", "60")
        assert out.returncode == 0, out.stderr
        out = run_cli("replay", str(capture), url, "--timeout", "60", "--linger", "5")
        assert out.returncode == 0, out.stderr
        assert "waiting for replies for 5 s after the last send (--linger)" in out.stderr
    finally:
        remote.send_signal(signal.SIGINT)
        remote.wait(WAIT)
        Path(f"/dev/shm/{name}").unlink(missing_ok=True)


def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


@pytest.mark.parametrize(("argv", "stdin"), [
    (["-f", "/dev/zero"], subprocess.DEVNULL),
    (["-"], "/dev/zero"),
])
def test_send_of_an_endless_input_is_a_usage_error(argv: list[str], stdin: object) -> None:
    """send -f /dev/zero (or an endless pipe on stdin) read until memory ran out: a
    MemoryError traceback under a 1 GiB limit here, the OOM killer without one."""
    with open("/dev/zero", "rb") as zero:
        out = subprocess.run([*CLI, "send", f"shm:nobody-{uuid.uuid4().hex[:8]}", "svc",
                              *argv, "--timeout", "0.1"], capture_output=True, text=True,
                             timeout=WAIT, check=False, preexec_fn=_limit_memory,
                             stdin=zero if stdin == "/dev/zero" else subprocess.DEVNULL)
    assert out.returncode == 2, out.stderr
    assert one_line_error(out.stderr) == ("rpmsg send: error: the input is longer than 16 "
                                          "MiB; rpmsg send is for messages, not streams")


def test_demo_exits_1_when_the_remote_answers_wrong(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """demo printed NO in its table (ok: false in JSON) and still exited 0, so a script
    (or ./scripts/demo in CI) took a broken link for a working one."""
    import rpmsg.cli.remote
    from rpmsg.services import PingService

    def faulty_remote(device: rpmsg.Device, echo: list[str], ping: bool) -> list[object]:
        def corrupt(ept: rpmsg.Endpoint, data: bytes, src: int) -> None:
            ept.send_to(src, bytes(b ^ 0xFF for b in data), timeout=10)

        endpoints = [device.create_endpoint(n, callback=corrupt) for n in echo]
        return [*endpoints, PingService(device)]

    monkeypatch.setattr(rpmsg.cli.remote, "serve", faulty_remote)
    assert main(["demo", "--transport", "loop", "--count", "20"]) == 1
    captured = capsys.readouterr()
    assert "MISMATCH" in captured.out
    assert captured.err == ("rpmsg demo: failed: the echo, echo stream (both ways) of 16 B, "
                            "echo stream (both ways) of 496 B\n")


# The URL's own timeout -------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["ping", "{url}"], ["services", "{url}"], ["send", "{url}", "svc", "hi"],
    ["listen", "{url}", "svc"], ["term", "{url}", "svc"], ["rtc", "{url}"],
    ["syslog", "{url}"],
])
def test_the_timeout_in_the_url_governs_the_open_unless_timeout_is_given(
        argv: list[str]) -> None:
    """Every command passed its own default (5, 10 or 30 s) as the open's timeout, which
    overrides the URL's: 'shm:lab?timeout=0.5' waited 30 s, '?timeout=nan' went unchecked."""
    url = f"shm:nobody-{uuid.uuid4().hex[:8]}?timeout=0.5"
    out = run_cli(*(a.format(url=url) for a in argv))
    assert out.returncode == 1
    assert "no virtio device within 0.5 s" in one_line_error(out.stderr)
    if argv[0] != "syslog":  # (it has no --timeout) --timeout wins over the URL
        out = run_cli(*(a.format(url=url) for a in argv), "--timeout", "0.3")
        assert "no virtio device within 0.3 s" in one_line_error(out.stderr)
    url = f"shm:nobody-{uuid.uuid4().hex[:8]}?timeout=nan"
    out = run_cli(*(a.format(url=url) for a in argv))
    assert out.returncode == 1
    assert one_line_error(out.stderr) == \
        "rpmsg: error: shm: option timeout must be None or >= 0 seconds, not nan"
