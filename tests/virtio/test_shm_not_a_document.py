"""A device never overwrites a file that is not shared memory (outsider QA).

``shm:/dir/file`` names any file, and a device takes over an existing one (a C peer may
have created it). It took over anything of ours: ``rpmsg remote shm:/etc/passwd`` as root
(or a typo naming a document) changed the file's mode to 0600, grew it to 512 KiB and wrote
the resource table over its first 96 bytes. An existing file is now taken over only if it is
empty, zeros where the table goes, or holds a resource table; anything else is refused
untouched.
"""

from __future__ import annotations

import random
import stat
from pathlib import Path

import pytest

import rpmsg
from rpmsg.virtio.layout import ShmLayout

TEXT = b"root:x:0:0:root:/root:/bin/bash\n" * 40


@pytest.mark.parametrize("content", [TEXT, b"\x01" + bytes(5000), random.Random(7).randbytes(100)],
                         ids=["text", "one-byte", "noise"])
def test_a_file_that_is_not_shared_memory_is_refused_untouched(tmp_path: Path,
                                                                content: bytes) -> None:
    path = tmp_path / "document"
    path.write_bytes(content)
    path.chmod(0o644)
    before = path.stat()
    with pytest.raises(rpmsg.NotAvailableError, match="refusing to overwrite it"):
        rpmsg.open(f"shm:{path}?socket={tmp_path}/kick", side="remote")
    after = path.stat()
    assert path.read_bytes() == content
    assert stat.S_IMODE(after.st_mode) == 0o644 and after.st_size == before.st_size
    assert not (tmp_path / "kick").exists()


@pytest.mark.parametrize("kind", ["empty", "zeros", "table"])
def test_files_a_peer_or_a_device_left_are_still_taken_over(tmp_path: Path,
                                                            kind: str) -> None:
    path = tmp_path / "shm"
    layout = ShmLayout.openamp()
    data = {"empty": b"", "zeros": bytes(layout.size),
            "table": layout.resource_table().encode().ljust(layout.size, b"\0")}[kind]
    path.write_bytes(data)
    path.chmod(0o600)
    remote = rpmsg.open(f"shm:{path}?socket={tmp_path}/kick", side="remote")
    try:
        remote.create_endpoint("echo", callback=lambda e, data, src: e.send_to(src, data))
        with rpmsg.open(f"shm:{path}?socket={tmp_path}/kick&timeout=20") as host:
            ept = host.create_endpoint("echo")
            ept.wait_bound(20)
            ept.send(b"ok", timeout=10)
            assert ept.recv(timeout=10) == b"ok"
    finally:
        remote.close()
