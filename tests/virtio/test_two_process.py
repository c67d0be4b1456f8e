"""Two processes over a real POSIX shared-memory file and kick socket: the host (driver)
here, the remote (device) in a child process. Names bind, echo works both ways, 100,000
messages arrive complete and in order, and nothing is left in /dev/shm or /tmp."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import uuid
import zlib

import rpmsg

HERE = os.path.dirname(os.path.abspath(__file__))
HEAD = struct.Struct("<II")


def test_two_processes_over_shm() -> None:
    name = f"rpmsg-2p-{uuid.uuid4().hex[:12]}"
    url = f"shm:{name}"
    child = subprocess.Popen([sys.executable, os.path.join(HERE, "remote_echo.py"), url],
                             stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"ready"
        with rpmsg.open(url + "?timeout=20") as host:
            echo = host.create_endpoint("echo")
            check = host.create_endpoint("check")
            assert echo.wait_bound(20) >= 1024
            check.wait_bound(20)
            # Echo both ways: the remote returns what we send, from its own address.
            for size in (0, 1, 100, 496):
                payload = os.urandom(size)
                echo.send(payload)
                msg = echo.recv_message(timeout=10)
                assert msg.data == payload and msg.src == echo.dst
            # 100,000 messages with sequence numbers and checksums, sent in bursts.
            n = 100_000
            burst = []
            for seq in range(n):
                body = seq.to_bytes(4, "little") * (1 + seq % 8)
                burst.append(HEAD.pack(seq, zlib.crc32(body)) + body)
                if len(burst) == 200:
                    assert check.send_many(burst, timeout=20) == 200
                    burst.clear()
            check.send(b"report")
            report = json.loads(check.recv(timeout=30))
            assert report == {"next": n, "bad_seq": 0, "bad_crc": 0, "count": n}
            assert host.stats()["dropped_unknown_dst"] == 0
        assert child.wait(20) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert not os.path.exists(f"/dev/shm/{name}")
    assert not os.path.exists(f"/tmp/{name}.event.0")
