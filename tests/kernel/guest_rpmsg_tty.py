"""Guest program of test_rpmsg_tty.py: runs INSIDE User-Mode Linux, prints one JSON object.

Linux's rpmsg_tty driver made ``/dev/ttyRPMSGn`` for each ``rpmsg-tty`` channel the host
announced. For each tty: open it, put it in raw mode, write lines (and one longer than an
RPMsg message), read the replies back. Uses only the standard library (no rpmsg code runs in
the guest: the kernel is the peer under test).
"""

from __future__ import annotations

import json
import os
import select
import sys
import time
import traceback
import tty

TTYS = int(os.environ.get("RPMSG_TTY_COUNT", "1"))


def wait_node(path: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.02)


def read_exactly(fd: int, size: int, timeout: float = 10.0) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while len(out) < size:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            out += os.read(fd, size - len(out))
    return out


def exercise(path: str) -> dict[str, object]:
    wait_node(path)
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        tty.setraw(fd)
        lines = [b"hello over rpmsg-tty\n", b"second line\n"]
        replies = []
        for line in lines:
            os.write(fd, line)
            replies.append(read_exactly(fd, len(line)).decode("latin-1"))
        big = bytes((i * 7) % 26 + 97 for i in range(1500)) + b"\n"  # > one 496-byte message
        written = 0
        while written < len(big):
            written += os.write(fd, big[written:])
        back = read_exactly(fd, len(big))
        return {"replies": replies, "big_ok": back.lower() == big.lower(),
                "big_len": len(back), "big_upper": back == big.upper()}
    finally:
        os.close(fd)


def main() -> None:
    results: dict[str, object] = {}
    for n in range(TTYS):
        path = f"/dev/ttyRPMSG{n}"
        try:
            results[path] = exercise(path)
        except BaseException as exc:
            results[path] = {"error": f"{type(exc).__name__}: {exc}",
                             "trace": traceback.format_exc()}
    channels = sorted(os.listdir("/sys/bus/rpmsg/devices"))
    results["channels"] = channels
    results["drivers"] = {c: os.path.basename(os.readlink(
        f"/sys/bus/rpmsg/devices/{c}/driver")) for c in channels
        if os.path.exists(f"/sys/bus/rpmsg/devices/{c}/driver")}
    print(json.dumps(results))
    sys.stdout.flush()


main()
