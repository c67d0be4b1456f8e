"""Zero-copy streaming: write payloads straight into transport buffers, read them in place.

The sender takes a transmit buffer (``get_tx_buffer``), writes a sequence number and data
into its memoryview and sends it without a copy (``send_buffer``); the receiver's endpoint is
created with ``zero_copy=True``, so ``recv_buffer`` hands out views of the ring buffers that go
back to the transport when released. On ``shm:`` the payload is never copied by the library.

    python zero_copy_stream.py receive shm:stream       # the remote side
    python zero_copy_stream.py send shm:stream --count 100000
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
import zlib

import rpmsg

SERVICE = "zero-copy-stream"
SEQ = struct.Struct("<II")        # sequence number, CRC-32 of the rest


def receive(url: str) -> int:
    with rpmsg.open(url, side="remote") as dev:
        ept = dev.create_endpoint(SERVICE, zero_copy=True)
        print(f"zero-copy receiver on {url}", flush=True)
        expected = nbytes = 0
        start = None
        try:
            while True:
                with ept.recv_buffer() as buf:           # released at the end of the block
                    if len(buf) == 0:                    # the sender's end marker
                        break
                    seq, crc = SEQ.unpack_from(buf.data)
                    if seq != expected or zlib.crc32(buf.data[SEQ.size :]) != crc:
                        print(f"message {expected}: got seq {seq} or a bad CRC", file=sys.stderr)
                        return 1
                    start = start or time.perf_counter()
                    expected += 1
                    nbytes += len(buf)
        except KeyboardInterrupt:
            return 0
        elapsed = time.perf_counter() - (start or time.perf_counter()) or 1e-9
        print(f"received {expected} messages in order, {nbytes / elapsed / 1e6:.1f} MB/s")
        ept.send_to(buf.src, expected.to_bytes(4, "little"))   # tell the sender the count
    return 0


def send(url: str, count: int, timeout: float) -> int:
    with rpmsg.open(url, timeout=timeout) as dev:
        ept = dev.create_endpoint(SERVICE)
        ept.wait_bound(timeout=timeout)
        for seq in range(count):
            buf = ept.get_tx_buffer(timeout=timeout)
            body = buf.payload[SEQ.size :]
            body[:4] = seq.to_bytes(4, "little")          # some data, written in place
            length = SEQ.size + 4 + seq % (buf.capacity - SEQ.size - 4)
            SEQ.pack_into(buf.payload, 0, seq, zlib.crc32(buf.payload[SEQ.size : length]))
            ept.send_buffer(buf, length)
        ept.send(b"", timeout=timeout)                   # end marker
        got = int.from_bytes(ept.recv(timeout=timeout), "little")
    print(f"sent {count} messages; the receiver counted {got}")
    return 0 if got == count else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("half", choices=["receive", "send"])
    parser.add_argument("url", help="transport URL, e.g. shm:stream")
    parser.add_argument("--count", type=int, default=10000, help="send: messages (10000)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per wait (10)")
    args = parser.parse_args()
    if args.half == "receive":
        return receive(args.url)
    return send(args.url, args.count, args.timeout)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except rpmsg.RpmsgError as exc:  # every library error: one line, exit 1
        sys.exit(f"zero-copy stream: {exc}")
