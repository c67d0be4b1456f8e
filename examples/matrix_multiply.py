"""OpenAMP's matrix-multiply demo, both halves, in Python (our own version, same wire format).

The host sends two square matrices of up to 6 x 6 unsigned ints in one message; the remote
multiplies them and sends the product back; the shutdown word 0xEF56A55A ends the remote.
Each matrix is ``struct { unsigned int size; unsigned int elements[6][6]; }`` (148 bytes,
little-endian), as OpenAMP's demo lays it out, so either half runs against OpenAMP's C one:

    python matrix_multiply.py remote shm:
    python matrix_multiply.py host shm: --rounds 10
"""

from __future__ import annotations

import argparse
import random
import struct
import sys

import rpmsg

SERVICE = "rpmsg-openamp-demo-channel"
SHUTDOWN_MSG = (0xEF56A55A).to_bytes(4, "little")
MAX_SIZE = 6
MATRIX = struct.Struct(f"<I{MAX_SIZE * MAX_SIZE}I")   # 148 bytes

Matrix = list[list[int]]


def pack(m: Matrix) -> bytes:
    flat = [0] * (MAX_SIZE * MAX_SIZE)
    for i, row in enumerate(m):
        flat[i * MAX_SIZE : i * MAX_SIZE + len(row)] = row
    return MATRIX.pack(len(m), *flat)


def unpack(data: bytes, offset: int = 0) -> Matrix:
    size, *flat = MATRIX.unpack_from(data, offset)
    if not 1 <= size <= MAX_SIZE:
        raise ValueError(f"matrix size {size} outside 1..{MAX_SIZE}")
    return [flat[i * MAX_SIZE : i * MAX_SIZE + size] for i in range(size)]


def multiply(a: Matrix, b: Matrix) -> Matrix:
    n = len(a)
    return [[sum(a[i][k] * b[k][j] for k in range(n)) & 0xFFFFFFFF for j in range(n)]
            for i in range(n)]


def remote(url: str) -> int:
    with rpmsg.open(url, side="remote", policy="openamp") as dev:
        ept = dev.create_endpoint(SERVICE)
        print(f"matrix remote: serving {SERVICE!r} on {url}", flush=True)
        try:
            while (msg := ept.recv_message()).data != SHUTDOWN_MSG:
                if len(msg.data) != 2 * MATRIX.size:
                    print(f"matrix remote: ignoring a {len(msg.data)}-byte message")
                    continue
                a, b = unpack(msg.data), unpack(msg.data, MATRIX.size)
                ept.send_to(msg.src, pack(multiply(a, b)))
        except KeyboardInterrupt:
            pass
    return 0


def host(url: str, rounds: int, timeout: float) -> int:
    rng = random.Random(2026)
    with rpmsg.open(url, policy="openamp", timeout=timeout) as dev:
        ept = dev.create_endpoint(SERVICE)
        ept.wait_bound(timeout=timeout)
        for n in range(rounds):
            size = rng.randint(1, MAX_SIZE)
            a, b = ([[rng.randrange(100) for _ in range(size)] for _ in range(size)]
                    for _ in range(2))
            ept.send(pack(a) + pack(b), timeout=timeout)
            product = unpack(ept.recv(timeout=timeout))
            if product != multiply(a, b):
                print(f"round {n}: wrong product {product}", file=sys.stderr)
                return 1
            print(f"round {n}: {size}x{size} product ok, first row {product[0]}")
        ept.send(SHUTDOWN_MSG, timeout=timeout)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("half", choices=["remote", "host"])
    parser.add_argument("url", nargs="?", default="shm:", help="transport URL (shm:)")
    parser.add_argument("--rounds", type=int, default=3, help="host: multiplications (3)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per wait (10)")
    args = parser.parse_args()
    if args.half == "remote":
        return remote(args.url)
    return host(args.url, args.rounds, args.timeout)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except rpmsg.RpmsgError as exc:  # every library error: one line, exit 1
        sys.exit(f"matrix multiply: {exc}")
