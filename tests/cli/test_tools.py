"""rpmsg send/listen/services, ping's Ctrl-C statistics and the CLI's habits, as processes.

Every command runs as its own process against a peer in another process or in this one, over
shared memory (``shm:``) and over a pair of pseudo-terminals joined like a null-modem cable
(``uart:``): ``rpmsg remote`` for the services it announces, or this process as the remote
(``rpmsg.open(..., side="remote")``) to see exactly what ``send`` sent and to send what
``listen`` must print.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import rpmsg

#: A name a hostile remote chose: a byte that is not UTF-8, then an escape sequence.
ODD = b"svc\xff\x1b[31m".decode("utf-8", "surrogateescape")
WAIT = 60.0  # generous: the machine may be loaded; nothing here is timed for pass/fail
LINE = re.compile(r"\d\d:\d\d:\d\d\.\d{6} (0x[0-9a-f]+|any) -> (0x[0-9a-f]+) \[(\d+)\] (.*)")
_names = itertools.count()


def cli(*args: str, stdin: bytes | None = None, timeout: float = WAIT,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "rpmsg", *args], capture_output=True,
                          input=None if stdin is None else stdin.decode("latin-1"),
                          text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL if stdin is None else None,
                          env=None if env is None else {**os.environ, **env})
    return proc


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "rpmsg", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)


def read_line_with(proc: subprocess.Popen[str], stream: str, text: str) -> str:
    """Read ``proc``'s ``stream`` line by line until one contains ``text``."""
    pipe = getattr(proc, stream)
    deadline = time.monotonic() + WAIT
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([pipe], [], [], 0.1)
        if ready:
            line = pipe.readline()
            if text in line:
                return str(line)
            seen.append(line)
            if not line and proc.poll() is not None:
                break
    raise AssertionError(f"no {text!r} on {stream} of {proc.args}: {seen}")


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


class NullModem:
    """Two pseudo-terminals whose masters a thread joins: a serial cable between two paths."""

    def __init__(self) -> None:
        self.ends = []
        for _ in range(2):
            master, slave = os.openpty()
            os.set_blocking(master, False)
            self.ends.append((master, slave, os.ttyname(slave)))
        self.paths = (self.ends[0][2], self.ends[1][2])
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        peer = {self.ends[0][0]: self.ends[1][0], self.ends[1][0]: self.ends[0][0]}
        while True:
            ready, _, _ = select.select([self._stop_r, *peer], [], [])
            if self._stop_r in ready:
                return
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                    os.write(peer[fd], data)
                except (BlockingIOError, OSError):
                    pass  # nobody reads that end: the bytes are lost, as on a cable

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join(WAIT)
        for master, slave, _ in self.ends:
            os.close(master)
            os.close(slave)
        os.close(self._stop_r)
        os.close(self._stop_w)


@pytest.fixture(params=["shm", "uart"])
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(URL of the remote's side, URL of the host's side) of one link in two processes."""
    if request.param == "shm":
        name = f"h7-tools-{os.getpid()}-{next(_names)}"
        url = f"shm:{name}?socket={tmp_path}/{name}.sock"
        yield url, url
        Path(f"/dev/shm/{name}").unlink(missing_ok=True)
    else:
        cable = NullModem()
        try:
            yield f"uart:{cable.paths[0]}", f"uart:{cable.paths[1]}"
        finally:
            cable.close()


@contextmanager
def rpmsg_remote(url: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    proc = start("remote", url, *args)
    try:
        read_line_with(proc, "stdout", "serving")
        yield proc
    finally:
        stop(proc)


# send -----------------------------------------------------------------------------------


def test_send_text_hex_file_stdin_and_split(urls: tuple[str, str], tmp_path: Path) -> None:
    remote_url, url = urls
    got: list[bytes] = []
    arrived = threading.Condition()

    def collect(_ept: rpmsg.Endpoint, data: bytes, _src: int) -> None:
        with arrived:
            got.append(bytes(data))
            arrived.notify_all()

    def wait_for(n: int) -> list[bytes]:
        with arrived:
            assert arrived.wait_for(lambda: len(got) >= n, WAIT), got
            out = got[:]
            got.clear()
            return out

    blob = tmp_path / "blob"
    with rpmsg.open(remote_url, side="remote") as remote:
        remote.create_endpoint("sink", callback=collect)
        mtu = remote.mtu
        r = cli("send", url, "sink", "hello")
        assert r.returncode == 0, r.stderr
        assert wait_for(1) == [b"hello"]
        r = cli("send", url, "sink", "--hex", "de ad be ef")  # the option before DATA
        assert r.returncode == 0, r.stderr
        assert wait_for(1) == [b"\xde\xad\xbe\xef"]
        blob.write_bytes(bytes(range(256)))
        r = cli("send", url, "sink", "-f", str(blob))
        assert r.returncode == 0, r.stderr
        assert wait_for(1) == [bytes(range(256))]
        r = cli("send", url, "sink", "-", stdin=b"from stdin\x00")
        assert r.returncode == 0, r.stderr
        assert wait_for(1) == [b"from stdin\x00"]
        big = os.urandom(2 * mtu + 7)
        blob.write_bytes(big)
        r = cli("send", url, "sink", "-f", str(blob))  # too large for one message
        assert r.returncode == 1 and "exceeds" in r.stderr and r.stderr.count("\n") == 1
        r = cli("send", url, "sink", "--split", "-f", str(blob))
        assert r.returncode == 0, r.stderr
        assert wait_for(3) == [big[:mtu], big[mtu:2 * mtu], big[2 * mtu:]]


def test_send_usage_errors() -> None:
    for args, text in [(("shm:x", "name"), "no DATA"),
                       (("shm:x", "name", "a", "-f", "/nonexistent"), "not both"),
                       (("shm:x", "name", "-f", "/nonexistent/file"), "cannot read"),
                       (("shm:x", "name", "--hex", "zz"), "not hexadecimal"),
                       (("shm:x",), "NAME is missing")]:
        r = cli("send", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert text in r.stderr and "Traceback" not in r.stderr


def test_send_to_a_name_the_remote_did_not_announce(urls: tuple[str, str]) -> None:
    remote_url, url = urls
    with rpmsg_remote(remote_url):
        r = cli("send", url, "rpmsg-echo", "hi")
        assert r.returncode == 0, r.stderr
        r = cli("send", url, "no-such-service", "hi", "--timeout", "3")
        assert r.returncode == 1
        err = r.stderr.splitlines()
        assert err[-1].startswith("rpmsg: error: ") and "no-such-service" in err[-1]
        assert "'rpmsg-echo' at 0x" in err[-1]  # says what the remote did announce
        assert any("waiting for 'no-such-service'" in line for line in err[:-1])
        r = cli("ping", url, "--service", "no-such-service", "--timeout", "3")
        assert r.returncode == 1
        err = r.stderr.splitlines()
        assert err[-1].startswith("rpmsg: error: ") and "'rpmsg-echo'" in err[-1]
        assert any("waiting for the remote to announce 'no-such-service'" in line
                   for line in err[:-1])


# listen ---------------------------------------------------------------------------------


def test_listen_prints_each_message_with_time_addresses_and_length(
        urls: tuple[str, str]) -> None:
    remote_url, url = urls
    with rpmsg.open(remote_url, side="remote") as remote:
        # Not announced: it binds to (and sends to) whoever announces "news" (each listener).
        news = remote.create_endpoint("news", announce=False)
        for args in (["--json"], [], ["--hex"]):
            listener = start("listen", url, "news", "--count", "3", *args)
            try:
                dst = news.wait_bound(WAIT)  # the listener's endpoint announced itself
                for data in (b"one", b"\x00\x01", "grüße".encode()):
                    news.send(data, timeout=WAIT)
                out, err = listener.communicate(timeout=WAIT)
            finally:
                stop(listener)
            assert listener.returncode == 0, err
            lines = out.splitlines()
            if args == ["--json"]:
                docs = [json.loads(line) for line in lines]
                assert [(d["src"], d["dst"], d["len"], d["hex"], d["name"], d["url"])
                        for d in docs] == [(news.addr, dst, 3, "6f6e65", "news", url),
                                           (news.addr, dst, 2, "0001", "news", url),
                                           (news.addr, dst, 7, "grüße".encode().hex(),
                                            "news", url)]
                assert docs[2]["text"] == "grüße"
                assert all(abs(d["time"] - time.time()) < WAIT for d in docs)
            else:
                matches = [LINE.fullmatch(line) for line in lines]
                assert all(matches), lines
                fields = [(m[1], m[2], m[3], m[4]) for m in matches if m]
                payloads = ["6f 6e 65", "00 01", "67 72 c3 bc c3 9f 65"] if args else \
                    ["one", "b'\\x00\\x01'", "grüße"]
                assert fields == [(f"{news.addr:#x}", f"{dst:#x}", n, p)
                                  for n, p in zip(["3", "2", "7"], payloads, strict=True)]
            remote_down(news)


def remote_down(ept: rpmsg.Endpoint) -> None:
    """Wait until the listener that bound ``ept`` has gone (its endpoint unbound)."""
    deadline = time.monotonic() + WAIT
    while ept.bound and time.monotonic() < deadline:
        time.sleep(0.05)


def test_listen_says_what_it_waits_for_and_stops_at_its_time_limit(
        urls: tuple[str, str]) -> None:
    remote_url, url = urls
    with rpmsg_remote(remote_url):
        r = cli("listen", url, "quiet", "--timeout", "2.5")
        assert r.returncode == 0 and r.stdout == ""
        assert "rpmsg: waiting for messages to 'quiet'" in r.stderr
        r = cli("listen", url, "quiet", "--timeout", "1.5", "--count", "2", "--json")
        assert r.returncode == 1 and r.stdout == ""
        error = json.loads(r.stderr.splitlines()[-1])
        assert error["type"] == "RpmsgTimeoutError" and "received 0 of 2" in error["error"]


# services -------------------------------------------------------------------------------


def test_services_lists_what_rpmsg_remote_announced(urls: tuple[str, str]) -> None:
    remote_url, url = urls
    with rpmsg_remote(remote_url, "--echo", "alpha", "--echo", "beta", "--ping"):
        r = cli("services", url, "--json")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert sorted(s["name"] for s in doc) == ["alpha", "beta", "rpmsg-ping"]
        assert len({s["addr"] for s in doc}) == 3
        assert all(isinstance(s["addr"], int) and s["addr"] >= 0x400 for s in doc)
        r = cli("services", url)
        assert r.returncode == 0, r.stderr
        table = dict(line.split() for line in r.stdout.splitlines())
        assert table == {s["name"]: f"{s['addr']:#x}" for s in doc}


def test_a_remotes_words_never_drive_the_terminal(urls: tuple[str, str]) -> None:
    """A service name with a byte that is not UTF-8 and an escape sequence: rpmsg services
    died with UnicodeEncodeError on a strict UTF-8 stdout (a desktop's) and, elsewhere, wrote
    the escape to the terminal; error lines quoting it are escaped as well."""
    remote_url, url = urls
    strict = {"PYTHONIOENCODING": "utf-8:strict"}
    with rpmsg.open(remote_url, side="remote") as remote:
        remote.create_endpoint(ODD, announce=True)
        r = cli("services", url, env=strict)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["svc\\xff\\x1b[31m", r.stdout.split()[1]]
        r = cli("services", url, "--json", env=strict)
        assert r.returncode == 0, r.stderr
        assert [s["name"] for s in json.loads(r.stdout)] == [ODD]  # JSON: the exact text
        r = cli("send", url, "nosuch", "hi", "--timeout", "3", env=strict)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert "nosuch" in r.stderr and "svc\\udcff\\x1b[31m" in r.stderr
        assert "\x1b" not in r.stdout + r.stderr


# one owner per link ---------------------------------------------------------------------


def test_a_second_process_is_told_who_owns_the_link(urls: tuple[str, str]) -> None:
    remote_url, url = urls
    with rpmsg_remote(remote_url):
        owner = start("listen", url, "rpmsg-echo", "-v")
        try:
            read_line_with(owner, "stderr", "bound to")  # the owner is connected
            for json_flag in ([], ["--json"]):
                r = cli("ping", url, "--count", "1", *json_flag)
                assert r.returncode == 1 and r.stdout == ""
                lines = r.stderr.splitlines()
                assert len(lines) == 1, lines
                text = json.loads(lines[0])["error"] if json_flag else lines[0]
                if json_flag:
                    assert json.loads(lines[0])["type"] == "AlreadyOpenError"
                else:
                    assert text.startswith("rpmsg: error: ")
                if url.startswith("shm:"):
                    assert f"pid {owner.pid}" in text and "listen" in text  # the owner
                else:
                    # A pty is also held open by the test's cable; the uart transport names
                    # the first process it finds with the line open, not the lock holder.
                    assert "already open by pid " in text
                assert "capture" in text and "rpmsg term" in text      # and the ways out
        finally:
            stop(owner)


# ping on Ctrl-C, -v after the subcommand, waits and errors --------------------------------


def test_ping_prints_its_statistics_on_ctrl_c() -> None:
    url = f"shm:h7-ping-{os.getpid()}"
    with rpmsg_remote(url):
        ping = start("ping", url, "--count", "100000", "--interval", "0.01", "-v")
        try:
            read_line_with(ping, "stderr", "bound to")  # pinging from now on
            time.sleep(0.3)
            ping.send_signal(signal.SIGINT)
            out, err = ping.communicate(timeout=WAIT)
        finally:
            stop(ping)
    assert ping.returncode == 130, err
    assert "Traceback" not in err
    lines = out.splitlines()
    assert lines[0] == "--- interrupted ---"
    m = re.fullmatch(r"(\d+) sent, (\d+) received, 0 lost, 0 corrupt, 0 late", lines[-1])
    assert m, lines
    sent, received = int(m[1]), int(m[2])
    assert 0 <= sent - received <= 1  # at most the one in flight when Ctrl-C came
    if received:
        assert any(line.startswith("avg: ") for line in lines)


def test_v_is_accepted_after_the_subcommand() -> None:
    url = f"shm:h7-v-{os.getpid()}"
    with rpmsg_remote(url):
        quiet = cli("ping", url, "--count", "1")
        after = cli("ping", url, "--count", "1", "-v")
        before = cli("-v", "ping", url, "--count", "1")
        debug = cli("ping", url, "-vv", "--count", "1")
    assert quiet.returncode == after.returncode == before.returncode == 0
    assert "INFO" not in quiet.stderr
    assert "INFO rpmsg" in after.stderr and "INFO rpmsg" in before.stderr
    assert "DEBUG" in debug.stderr and "DEBUG" not in after.stderr


def test_a_wait_over_a_second_is_announced_without_v(tmp_path: Path) -> None:
    name = f"h7-nobody-{os.getpid()}"
    r = cli("services", f"shm:{name}?socket={tmp_path}/none.sock", "--timeout", "2.5")
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert any(line.startswith("rpmsg: waiting for") and f"shm:{name}" in line
               for line in lines), lines
    assert lines[-1].startswith("rpmsg: error: ")


@pytest.mark.parametrize("argv", [
    ["remote", "loop:x"], ["ping", "loop:x"], ["send", "loop:x", "svc", "hi"],
    ["listen", "loop:x", "svc"], ["services", "loop:x"],
])
def test_loop_is_refused_where_a_peer_in_another_process_is_needed(argv: list[str]) -> None:
    """rpmsg remote loop:x served for ever though no other process can reach it, and the
    client commands waited for a peer that can never come."""
    r = cli(*argv)
    assert r.returncode == 1 and r.stdout == "", r.stdout
    (line,) = r.stderr.splitlines()
    assert line.startswith("rpmsg: error: loop:x: ") and "live in one process" in line
    assert f"`rpmsg {argv[0]}`" in line and "shm:" in line


def test_listen_shows_a_payload_a_terminal_would_act_on_as_a_literal() -> None:
    from rpmsg.cli.tools import format_message
    from rpmsg.endpoint import Message

    for data in (b"\x1b]0;title\x07", b"\xc2\x9b2J", "\u202eevil".encode(), b"a\rb",
                 b"\xff\x1b[31m"):
        line = format_message(Message(data, 0x400, 0x401), 0.0, False)
        payload = line.split("] ", 1)[1]
        assert payload == repr(data) and payload.isprintable() and payload.isascii(), line


def test_errors_of_json_commands_are_json_on_stderr() -> None:
    for argv in (["ping", "nosuch:thing", "--json"], ["services", "nosuch:x", "--json"],
                 ["listen", "nosuch:x", "n", "--json"]):
        r = cli(*argv)
        assert r.returncode == 1 and r.stdout == "", argv
        (line,) = r.stderr.splitlines()
        doc = json.loads(line)
        assert doc["type"] == "InvalidURLError" and "nosuch" in doc["error"], doc
    r = cli("ping", "nosuch:thing")
    assert r.stderr.startswith("rpmsg: error: ")
