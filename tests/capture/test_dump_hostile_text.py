"""``rpmsg dump`` of a capture whose texts a hostile peer or file chose.

Seen from outside the suite: a service name announced with a byte that is not UTF-8 made
``rpmsg dump`` die with ``UnicodeEncodeError`` on a strict UTF-8 stdout (any desktop
locale), and escape sequences in names, event details and link names went to the user's
terminal as commands (set the title, clear the screen). Every text from the file is now
printed with control characters and undecodable bytes as escapes; ``--json`` is untouched.
An empty file, or a pcapng of another link type, printed nothing and exited 0.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

from rpmsg.capture import open_capture
from rpmsg.cli.terminal import printable
from rpmsg.wire.rpmsg import NS_ADDR, NsFlags, NsMessage

ODD = b"svc\xff\x1b[31m".decode("utf-8", "surrogateescape")


def hostile_capture(path: Path) -> None:
    tap = open_capture(str(path), link_name="loop:\x1b]0;title\x07")
    tap.event("link-up", "peer says \x1b[2J\x9b")
    tap.message("rx", 0x400, NS_ADDR, NsMessage(ODD, 0x400, NsFlags.CREATE).encode())
    tap.message("tx", 0x401, 0x400, b"\x1b]52;c;cHduZWQ=\x07")
    tap.close()


def test_dump_escapes_every_text_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "hostile.pcapng"
    hostile_capture(path)
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}  # a desktop's stdout
    out = subprocess.run([sys.executable, "-m", "rpmsg.cli.main", "dump", str(path)],
                         capture_output=True, env=env, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode("utf-8")
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text
    assert "# link #0: loop:\\x1b]0;title\\x07" in text
    assert "peer says \\x1b[2J\\x9b" in text
    assert "svc\\xff\\x1b[31m 1b 5d 35 32" in text  # the service column of the message
    js = subprocess.run([sys.executable, "-m", "rpmsg.cli.main", "dump", "--json", str(path)],
                        capture_output=True, env=env, timeout=120, check=True)
    records = [json.loads(line) for line in js.stdout.splitlines()]
    assert any(r.get("service") == ODD for r in records)  # JSON keeps the exact text


def test_printable_rules() -> None:
    assert printable("a\tb\nc\x00\x1b\x7f\x85\u00a0é") == "a\tb\\x0ac\\x00\\x1b\\x7f\\x85\u00a0é"
    assert printable("l1\nl2\r", newlines=True) == "l1\nl2\\x0d"
    assert printable("\udcff\ud800") == "\\xff\\ud800"
    printable("".join(map(chr, range(0xE000)))).encode("utf-8")  # always writable


def _dump(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rpmsg.cli.main", "dump", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def test_dump_says_when_a_file_holds_nothing_of_ours(tmp_path: Path) -> None:
    """An empty file and a pcapng of another link type printed nothing and exited 0."""
    empty = tmp_path / "empty.pcapng"
    empty.write_bytes(b"")
    out = _dump(str(empty))
    assert out.returncode == 1 and "empty" in out.stderr and out.stderr.count("\n") == 1
    path = tmp_path / "ours.pcapng"
    hostile_capture(path)
    data = bytearray(path.read_bytes())
    at = 0
    while at < len(data):  # every interface becomes Ethernet (link type 1)
        btype, size = struct.unpack_from("<II", data, at)
        if btype == 1:
            struct.pack_into("<H", data, at + 8, 1)
        at += size
    other = tmp_path / "ethernet.pcapng"
    other.write_bytes(bytes(data))
    out = _dump(str(other))
    assert out.returncode == 0 and out.stdout == ""  # an event and two messages:
    assert "3 packet(s) that are not RPMsg capture records skipped" in out.stderr
