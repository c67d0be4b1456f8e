"""The shm benchmark's own protocol, spoken by the Python and the C peers alike.

The device offers two services, announced by name service: ``bench-echo`` returns every
message to its sender; ``bench-sink`` takes a message shorter than 8 bytes as "expect N
messages" (ASCII decimal, answered ``ok``), then checks that each message starts with its u64
little-endian sequence number, keeps a CRC-32 over the payloads and answers a JSON report
(``received``, ``bad_seq``, ``crc``, ``bytes``) after the N-th. Devices without a name service
(the bare link) serve echo at :data:`ECHO_ADDR` and the sink at :data:`SINK_ADDR`, as the C
device does too. ``c/shm_bench.h`` mirrors these facts for the C programs.
"""

from __future__ import annotations

import json
import struct
import threading
import zlib
from collections.abc import Iterator
from typing import Any

from rpmsg.wire.layout import Buffer

ECHO_NAME = "bench-echo"
SINK_NAME = "bench-sink"
#: Fixed addresses of the services on the C device and the bare-link Python device.
ECHO_ADDR, SINK_ADDR = 1024, 1025
#: The driver's own address on the bare link and in the C driver.
HOST_ADDR = 1024
SEQ = struct.Struct("<Q")
SIZES = (16, 496)
WINDOWS = (1, 16, 64)
_FILL = bytes(range(256)) * 2


def payload(seq: int, size: int) -> bytes:
    """Message ``seq`` of a stream: its sequence number, then bytes 0, 1, 2, ... (mod 256)."""
    return SEQ.pack(seq) + _FILL[: size - SEQ.size]


def payloads(count: int, size: int) -> Iterator[bytes]:
    tail = _FILL[: size - SEQ.size]
    pack = SEQ.pack
    for seq in range(count):
        yield pack(seq) + tail


def control(count: int) -> bytes:
    """The sink's control message: expect ``count`` messages."""
    data = str(count).encode()
    if len(data) >= SEQ.size:
        raise ValueError(f"a stream of {count} messages does not fit the control message")
    return data


class StreamCheck:
    """The sink's receiver-side check: sequence numbers in order and a running CRC-32."""

    def __init__(self) -> None:
        self.reset(0)

    def reset(self, expected: int) -> None:
        self.expected = expected
        self.next = 0
        self.crc = 0
        self.bad_seq = 0
        self.bytes = 0
        self.done = threading.Event()

    def take(self, data: Buffer) -> bool:
        """Account for one message; True when it was the last one expected."""
        (seq,) = SEQ.unpack_from(data, 0)
        if seq != self.next:
            self.bad_seq += 1
        self.next = seq + 1
        self.crc = zlib.crc32(data, self.crc)
        self.bytes += len(data)
        if self.next == self.expected:
            self.done.set()
            return True
        return False

    def report(self) -> bytes:
        return json.dumps({"received": self.next, "bad_seq": self.bad_seq, "crc": self.crc,
                           "bytes": self.bytes}).encode()


def stream_result(report: bytes, count: int, size: int, crc: int,
                  seconds: float) -> dict[str, Any]:
    """The driver's view of a finished stream: rates, and whether the sink saw it intact."""
    got = json.loads(report)
    crc_ok = got["crc"] == crc
    return {"messages": count, "payload": size, "seconds": round(seconds, 4),
            "msgs_per_s": round(count / seconds),
            "mb_per_s": round(count * size / seconds / 1e6, 2),
            "received": got["received"], "bad_seq": got["bad_seq"], "crc_match": crc_ok,
            "complete_in_order": got["received"] == count and got["bad_seq"] == 0 and crc_ok}


def echo_result(window: int, size: int, count: int, seconds: float,
                in_order: bool) -> dict[str, Any]:
    return {"window": window, "payload": size, "messages": count, "seconds": round(seconds, 4),
            "msgs_per_s": round(count / seconds), "in_order": in_order}
