"""Run inside a private mount namespace with a 1 MiB tmpfs at ``DIR`` (see
test_shm_space.py): open shm on it with a layout that does not fit, as device and as the
driver of a C-style device whose file is sparse, and print what each raised as JSON."""

from __future__ import annotations

import json
import os
import socket
import sys

import rpmsg
from rpmsg.virtio.layout import ShmLayout

BIG = "buffers=256&buffer_size=8192"  # 4 MiB of buffers on a 1 MiB filesystem


def outcome(fn: object) -> dict[str, object]:
    try:
        link = fn()  # type: ignore[operator]
    except Exception as exc:
        return {"error": type(exc).__name__, "rpmsg": isinstance(exc, rpmsg.RpmsgError),
                "text": str(exc)}
    link.close()
    return {"error": None}


def main(root: str) -> None:
    results = {}
    results["device"] = outcome(lambda: rpmsg.open(
        f"shm:{root}/dev?{BIG}&socket={root}/dev.sock", side="remote"))
    results["device_left_files"] = sorted(os.listdir(root))
    # A C-style device: a sparse file holding its table, and a kick socket.
    layout = ShmLayout.openamp(buffers=256, buffer_size=8192)
    fd = os.open(f"{root}/c", os.O_RDWR | os.O_CREAT, 0o600)
    os.ftruncate(fd, layout.size)
    os.pwrite(fd, layout.resource_table().encode(), 0)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(f"{root}/c.sock")
    srv.listen(1)
    results["driver"] = outcome(lambda: rpmsg.open(
        f"shm:{root}/c?{BIG}&socket={root}/c.sock&timeout=10"))
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1])
