"""Shared helpers of the capture tests: a sample session written through the Tap interface,
and running the real tshark with the shipped dissector."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rpmsg.capture import CapturedMessage, CaptureReader, plugin_path
from rpmsg.tap import Tap
from rpmsg.wire.ping import PING_ACK, PING_CMD_RSP, PING_HEADER
from rpmsg.wire.rpmsg import NS_ADDR, NsFlags, NsMessage

TSHARK = shutil.which("tshark")


def wait_until(cond: Callable[[], bool], timeout: float = 30.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def ns(name: str, addr: int, flags: NsFlags = NsFlags.CREATE) -> bytes:
    return NsMessage(name, addr, flags).encode()


def ping_payload(cmd: int, cookie: int, data: bytes) -> bytes:
    return PING_HEADER.pack(cmd, PING_HEADER.size + len(data), cookie) + data


def sample_session(tap: Tap) -> None:
    """A short session as a Device would report it: link up, NS both ways, a ping round
    trip, an echo, a drop and close."""
    tap.event("open", "loop:sample")
    tap.event("link-up")
    tap.message("rx", 0x401, NS_ADDR, ns("rpmsg-ping", 0x401))
    tap.message("tx", 0x400, NS_ADDR, ns("rpmsg-ping", 0x400))
    tap.message("tx", 0x400, 0x401, ping_payload(PING_ACK, 0x1234, b"abcd"))
    tap.message("rx", 0x401, 0x400, ping_payload(PING_CMD_RSP, 0x1234, b"abcd"))
    tap.message("rx", 0x402, NS_ADDR, ns("rpmsg-echo", 0x402))
    tap.message("tx", 0x403, 0x402, b"hello", 0)
    tap.message("rx", 0x402, 0x403, memoryview(b"hello"))
    tap.event("drop", "unknown destination 0x999")
    tap.message("rx", 0x402, NS_ADDR, ns("rpmsg-echo", 0x402, NsFlags.DESTROY))
    tap.event("link-down", "peer closed")


def tshark(*args: str, capture: Path | str) -> str:
    """Run the real tshark with our plugin on ``capture``; returns stdout."""
    assert TSHARK is not None, "tshark is not installed (scripts/_env.sh installs it)"
    env = dict(os.environ, HOME=str(Path(capture).parent))  # no user plugins/preferences
    out = subprocess.run(
        [TSHARK, "-n", "-X", f"lua_script:{plugin_path()}", "-r", str(capture), *args],
        capture_output=True, text=True, errors="replace", timeout=120, env=env, check=False)
    assert out.returncode == 0, out.stderr
    for text in (out.stdout, out.stderr):  # a load error, or a run-time error in a packet
        assert "Lua: Error" not in text and "Lua Error" not in text, text[-2000:]
    return out.stdout


def tshark_fields(capture: Path | str, *fields: str,
                  display_filter: str | None = None) -> list[list[str]]:
    """One row per packet (that passes the filter) with the given fields."""
    args = ["-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in fields:
        args += ["-e", f]
    if display_filter:
        args += ["-Y", display_filter]
    text = tshark(*args, capture=capture)
    return [line.split("|") for line in text.splitlines()]


def tshark_json(capture: Path | str, display_filter: str | None = None) -> list[Any]:
    args = ["-T", "json"]
    if display_filter:
        args += ["-Y", display_filter]
    data: list[Any] = json.loads(tshark(*args, capture=capture) or "[]")
    return data


def finish(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    """Close a helper process's stdin (the signal to stop), wait, and return what it printed."""
    if proc.stdin is not None and not proc.stdin.closed:
        proc.stdin.close()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    assert proc.stdout is not None
    return proc.stdout.read()


class Follower:
    """``CaptureReader(path, follow=True)`` read on a thread into :attr:`got` (the message
    payloads, in order) while the test writes; leaving the ``with`` closes the reader and
    joins the thread."""

    def __init__(self, path: Path | str, poll: float = 0.05) -> None:
        self.reader = CaptureReader(str(path), follow=True, poll=poll)
        self.got: list[bytes] = []
        self.thread = threading.Thread(target=self._consume)

    def _consume(self) -> None:
        for rec in self.reader:
            if isinstance(rec, CapturedMessage):
                self.got.append(rec.payload)

    def __enter__(self) -> Follower:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.reader.close()
        self.thread.join(30)
