"""Following a capture file that a new capture starts over: the reader reads the new one.

Seen from outside the suite: ``rpmsg dump -f /tmp/c.pcapng`` while the captured program ran
again (its new capture truncates the file and writes it from byte 0) printed nothing more,
for ever: the reader waited at the old end of file, past everything the new capture wrote.
"""

from __future__ import annotations

from pathlib import Path

from capture_helpers import Follower, wait_until

from rpmsg.capture import open_capture


def test_a_followed_file_cut_by_a_new_capture_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "again.pcapng"
    first = open_capture(str(path), link_name="loop:first")
    for i in range(50):
        first.message("tx", 1, 2, b"first %d" % i)
    first.close()
    with Follower(path) as follower:
        got = follower.got
        assert wait_until(lambda: len(got) == 50, timeout=30)
        second = open_capture(str(path), link_name="loop:second")  # truncates
        try:
            for i in range(3):
                second.message("rx", 3, 4, b"second %d" % i)
            second.flush()  # type: ignore[attr-defined]
            assert wait_until(lambda: len(got) == 53, timeout=30), got[50:]
        finally:
            second.close()
    assert not follower.thread.is_alive()
    assert got[50:] == [b"second %d" % i for i in range(3)]
    assert follower.reader.restarts == 1
    assert [i.name for i in follower.reader.interfaces] == ["loop:second"]
