"""Remote process for the two-process test: a virtio device serving ``echo`` and ``check``.

``echo`` returns every message to its sender. ``check`` verifies a stream (u32 sequence
number, then CRC-32 of the rest, then filler) and, on the message ``b"report"``, answers with
a JSON summary. The process exits when the host it served goes away.
"""

from __future__ import annotations

import json
import struct
import sys
import threading
import time
import zlib

import rpmsg

HEAD = struct.Struct("<II")


def main(url: str) -> None:
    dev = rpmsg.open(url, side="remote")
    served = threading.Event()
    state = {"next": 0, "bad_seq": 0, "bad_crc": 0, "count": 0}

    def on_echo(ept: rpmsg.Endpoint, data: bytes, src: int) -> None:
        served.set()
        ept.send_to(src, data)

    def on_check(ept: rpmsg.Endpoint, data: bytes, src: int) -> None:
        if data == b"report":
            ept.send_to(src, json.dumps(state).encode())
            return
        served.set()
        seq, crc = HEAD.unpack_from(data)
        state["bad_seq"] += seq != state["next"]
        state["bad_crc"] += crc != zlib.crc32(data[HEAD.size :])
        state["next"] = seq + 1
        state["count"] += 1

    dev.create_endpoint("echo", callback=on_echo)
    dev.create_endpoint("check", callback=on_check)
    print("ready", flush=True)
    # Served a driver, then the link went down: the driver left (a session may be shorter
    # than one poll of is_up, so "was up" is what it received, not what was sampled).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and dev.broken_error is None:
        if served.is_set() and not dev.is_up:
            break
        time.sleep(0.02)
    dev.close()


if __name__ == "__main__":
    main(sys.argv[1])
