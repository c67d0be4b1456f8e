"""The capture writer: round trip through the reader, file safety, flushing, limits, write
errors, crashes, concurrency, and a tap that never raises into the data path."""

from __future__ import annotations

import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from capture_helpers import Follower, ns, ping_payload, sample_session, wait_until

from rpmsg.capture import (
    CapturedEvent,
    CapturedFrame,
    CapturedMessage,
    TruncatedCaptureError,
    open_capture,
    read_capture,
)
from rpmsg.capture.tap import interface_name
from rpmsg.capture.writer import MIN_MAX_BYTES, expand_path
from rpmsg.errors import AccessDeniedError, ArgumentTypeError, InvalidArgumentError
from rpmsg.wire.ping import PING_ACK
from rpmsg.wire.rpmsg import NS_ADDR


def test_sample_session_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s.pcapng"
    tap = open_capture(str(path), link_name="loop:sample")
    sample_session(tap)
    tap.close()
    recs = read_capture(str(path))
    kinds = [(type(r).__name__, getattr(r, "direction", getattr(r, "kind", ""))) for r in recs]
    assert kinds[0] == ("CapturedEvent", "open")
    msgs = [r for r in recs if isinstance(r, CapturedMessage)]
    assert [(m.direction, m.src, m.dst) for m in msgs] == [
        ("rx", 0x401, NS_ADDR), ("tx", 0x400, NS_ADDR), ("tx", 0x400, 0x401),
        ("rx", 0x401, 0x400), ("rx", 0x402, NS_ADDR), ("tx", 0x403, 0x402),
        ("rx", 0x402, 0x403), ("rx", 0x402, NS_ADDR)]
    assert msgs[0].payload == ns("rpmsg-ping", 0x401)
    assert msgs[2].payload == ping_payload(PING_ACK, 0x1234, b"abcd")
    assert msgs[6].payload == b"hello"  # from a memoryview
    events = [(e.kind, e.detail) for e in recs if isinstance(e, CapturedEvent)]
    assert events == [("open", "loop:sample"), ("link-up", ""),
                      ("drop", "unknown destination 0x999"), ("link-down", "peer closed")]
    assert all(r.interface.name == "loop:sample" for r in recs)
    assert all(r.interface.ts_units == 10**9 for r in recs)
    stamps = [r.timestamp_ns for r in recs]
    assert stamps == sorted(stamps)


def test_frames_only_at_frame_level(tmp_path: Path) -> None:
    path = tmp_path / "f.pcapng"
    msgs = open_capture(str(path), link_name="uart:a", level="messages")
    frames = open_capture(str(path), link_name="uart:b", level="frames")
    for tap in (msgs, frames):
        tap.frame("rx", "port", b"\x00" * 8, {"crc": "bad", "escapes": 2, "protocol": "current"})
        tap.frame("tx", "uart-control", b"\x7e", {"name": "CONNREQ", "byte": 0x7E})
        tap.frame("tx", "ring", b"", {"event": "kick", "queue": "tx", "id": 3, "len": 40,
                                      "spin": True})
    msgs.close()
    frames.close()
    recs = read_capture(str(path))
    got = [r for r in recs if isinstance(r, CapturedFrame)]
    assert [r.interface.name for r in got] == ["uart:b"] * 3
    assert got[0].info == {"crc": "bad", "escapes": "2", "protocol": "current"}
    assert got[0].data == b"\x00" * 8 and got[0].direction == "rx"
    assert got[1].kind == "uart-control" and got[1].data == b"\x7e"
    assert got[2].info == {"event": "kick", "queue": "tx", "id": "3", "len": "40", "spin": "1"}


def test_two_devices_share_one_file_with_an_interface_each(tmp_path: Path) -> None:
    path = str(tmp_path / "two.pcapng")
    a = open_capture(path, link_name="loop:x host")
    b = open_capture(path, link_name="loop:x remote")
    a.message("tx", 0x400, 0x401, b"ping")
    b.message("rx", 0x400, 0x401, b"ping")
    a.close()
    b.message("tx", 0x401, 0x400, b"pong")  # the file stays open for b
    b.flush()  # type: ignore[attr-defined]
    assert [(r.interface.name, r.direction, r.payload) for r in read_capture(path)
            if isinstance(r, CapturedMessage)] == [
        ("loop:x host", "tx", b"ping"), ("loop:x remote", "rx", b"ping"),
        ("loop:x remote", "tx", b"pong")]
    b.close()
    c = open_capture(path, link_name="loop:x host")  # a new file, so the name is free again
    c.close()
    same = [open_capture(path, link_name="loop:y") for _ in range(3)]
    for tap in same:
        tap.event("link-up")
        tap.close()
    assert [r.interface.name for r in read_capture(path)] == ["loop:y", "loop:y (2)",
                                                            "loop:y (3)"]


def test_interface_names_leave_out_the_capture_options() -> None:
    assert interface_name("shm:x?capture=/tmp/c&socket=/s&capture_level=frames") == \
        "shm:x?socket=/s"
    assert interface_name("loop:a?capture=/tmp/c&capture_max=9999") == "loop:a"
    assert interface_name("uart:/dev/ttyS0") == "uart:/dev/ttyS0"


def test_file_is_private_and_pid_is_expanded(tmp_path: Path) -> None:
    tap = open_capture(str(tmp_path / "cap-%p.pcapng"), link_name="loop:p")
    tap.close()
    path = tmp_path / f"cap-{os.getpid()}.pcapng"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert expand_path("a%%p-%p", pid=42) == "a%p-42"


def test_existing_file_is_truncated_and_made_private(tmp_path: Path) -> None:
    path = tmp_path / "old.pcapng"
    path.write_bytes(b"x" * 100_000)
    path.chmod(0o644)
    tap = open_capture(str(path), link_name="loop:p")
    tap.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_size < 1000
    assert read_capture(str(path)) == []


def test_symlink_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_bytes(b"keep me")
    link = tmp_path / "cap.pcapng"
    link.symlink_to(target)
    with pytest.raises(AccessDeniedError, match="symbolic link"):
        open_capture(str(link), link_name="loop:p")
    dangling = tmp_path / "dangling.pcapng"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(AccessDeniedError):
        open_capture(str(dangling), link_name="loop:p")
    assert not (tmp_path / "nowhere").exists()
    assert target.read_bytes() == b"keep me"


def test_hard_link_fifo_and_directory_are_refused(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_bytes(b"keep me")
    os.link(target, tmp_path / "hard.pcapng")
    with pytest.raises(AccessDeniedError, match="hard link"):
        open_capture(str(tmp_path / "hard.pcapng"), link_name="loop:p")
    assert target.read_bytes() == b"keep me"
    os.mkfifo(tmp_path / "fifo.pcapng")
    with pytest.raises(AccessDeniedError, match="regular"):  # and no hang on the open
        open_capture(str(tmp_path / "fifo.pcapng"), link_name="loop:p")
    with pytest.raises(InvalidArgumentError):
        open_capture(str(tmp_path), link_name="loop:p")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_file_of_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "theirs.pcapng"
    path.write_bytes(b"theirs")
    os.chown(path, 65534, 65534)
    with pytest.raises(AccessDeniedError, match="belongs to uid 65534"):
        open_capture(str(path), link_name="loop:p")
    assert path.read_bytes() == b"theirs"


def test_bad_arguments(tmp_path: Path) -> None:
    p = str(tmp_path / "a.pcapng")
    with pytest.raises(InvalidArgumentError):
        open_capture(p, link_name="x", level="bytes")
    with pytest.raises(ArgumentTypeError):
        open_capture(p, link_name="x", level=3)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        open_capture(p, link_name="x", max_bytes=10)
    with pytest.raises(ArgumentTypeError):
        open_capture(p, link_name="x", max_bytes="1k")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        open_capture("", link_name="x")
    assert not os.path.exists(p)


def test_records_reach_the_file_within_a_second_without_close(tmp_path: Path) -> None:
    path = tmp_path / "live.pcapng"
    tap = open_capture(str(path), link_name="loop:live")
    try:
        tap.message("tx", 0x400, 0x401, b"first")

        def has_first() -> bool:
            return any(isinstance(r, CapturedMessage) and r.payload == b"first"
                       for r in read_capture(str(path)))
        assert wait_until(has_first, timeout=30)
    finally:
        tap.close()


def test_max_bytes_caps_the_file_and_warns_once(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "cap.pcapng"
    tap = open_capture(str(path), link_name="loop:cap", max_bytes=MIN_MAX_BYTES * 2)
    caplog.set_level(logging.WARNING, logger="rpmsg.capture")
    for i in range(2000):
        tap.message("tx", 0x400, 0x401, i.to_bytes(4, "little") * 8)
        if i % 100 == 0:
            tap.flush()  # type: ignore[attr-defined]
    tap.close()
    size = path.stat().st_size
    assert MIN_MAX_BYTES <= size <= MIN_MAX_BYTES * 2
    recs = read_capture(str(path))
    assert len(recs) > 10
    assert [r.payload[:4] for r in recs] == [i.to_bytes(4, "little") for i in range(len(recs))]
    warnings = [r for r in caplog.records if "capture_max" in r.getMessage()]
    assert len(warnings) == 1


WRITE_FAILS = textwrap.dedent("""
    import logging, resource, signal, sys
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # the write fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
    from rpmsg.capture import open_capture
    tap = open_capture(sys.argv[1], link_name="loop:full")
    for i in range(3000):
        tap.message("tx", 0x400, 0x401, i.to_bytes(4, "little") * 16)
        if i % 50 == 0:
            tap.flush()
    tap.close()
    print("survived", flush=True)
""")


def test_write_error_is_reported_once_and_the_file_stays_valid(tmp_path: Path) -> None:
    """A real kernel write error (file size limit, EFBIG) as a full disk would give."""
    path = tmp_path / "full.pcapng"
    out = subprocess.run([sys.executable, "-c", WRITE_FAILS, str(path)], capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "survived"
    lines = [ln for ln in out.stderr.splitlines() if "stopped" in ln]
    assert len(lines) == 1 and "write failed" in lines[0], out.stderr
    assert path.stat().st_size <= 20000
    recs = read_capture(str(path))  # whole blocks only: no TruncatedCaptureError
    assert len(recs) > 20
    assert [r.payload[:4] for r in recs] == [i.to_bytes(4, "little") for i in range(len(recs))]


CRASHES = textwrap.dedent("""
    import sys, time
    from rpmsg.capture import open_capture
    tap = open_capture(sys.argv[1], link_name="loop:crash")
    for i in range(500):
        tap.message("tx", 0x400, 0x401, i.to_bytes(4, "little"))
    tap.flush()
    print("flushed", flush=True)
    i = 500
    while True:   # keeps writing until killed
        tap.message("tx", 0x400, 0x401, i.to_bytes(4, "little"))
        i += 1
        if i % 1000 == 0:
            time.sleep(0.001)
""")


def test_file_is_valid_after_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "crash.pcapng"
    proc = subprocess.Popen([sys.executable, "-c", CRASHES, str(path)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "flushed"
        # Wait for at least one flush by the writer thread after the explicit one.
        first = path.stat().st_size
        assert wait_until(lambda: path.stat().st_size > first, timeout=30)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    try:
        recs = read_capture(str(path))
    except TruncatedCaptureError as exc:  # killed inside a write: only the last block is cut
        recs = list(exc.records)
    assert len(recs) >= 500
    assert [r.payload for r in recs] == [i.to_bytes(4, "little") for i in range(len(recs))]


def test_concurrent_writers_lose_and_mix_nothing(tmp_path: Path) -> None:
    path = tmp_path / "conc.pcapng"
    taps = [open_capture(str(path), link_name=f"loop:{i}") for i in range(4)]

    def work(k: int) -> None:
        tap = taps[k]
        for i in range(3000):
            tap.message("tx" if i % 2 else "rx", k, i, bytes([k]) * (i % 64))
            if i % 500 == 0:
                tap.event("drop", f"{k}:{i}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for tap in taps:
        tap.close()
    recs = read_capture(str(path))
    for k in range(4):
        mine = [r for r in recs if isinstance(r, CapturedMessage) and r.interface.id == k]
        assert [(r.src, r.dst, r.payload) for r in mine] == [
            (k, i, bytes([k]) * (i % 64)) for i in range(3000)]
        assert len([r for r in recs if isinstance(r, CapturedEvent)
                    and r.interface.id == k]) == 6


def test_tap_never_raises_and_disables_itself_once(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "bad.pcapng"
    tap = open_capture(str(path), link_name="loop:bad")
    tap.message("tx", 0x400, 0x401, b"good")
    tap.message("tx", 0x400, 0x401, 12345)  # type: ignore[arg-type]  # not a buffer
    tap.message("sideways", 0x400, 0x401, b"x")  # type: ignore[arg-type]
    tap.event("nonsense")  # type: ignore[arg-type]
    tap.message("tx", 0x400, 0x401, b"after")  # disabled now: not recorded
    tap.close()
    tap.close()
    failures = [r for r in caplog.records if "capture disabled" in r.getMessage()]
    assert len(failures) == 1
    assert [r.payload for r in read_capture(str(path))] == [b"good"]


def test_bad_records_are_skipped_by_the_writer(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """Values the data path does not check (direction, address range) are found when the
    flusher encodes them: that record is skipped and said once, the others are kept."""
    path = tmp_path / "skip.pcapng"
    tap = open_capture(str(path), link_name="loop:skip")
    tap.message("tx", 0x400, 0x401, b"one")
    tap.message("sideways", 0x400, 0x401, b"bad direction")  # type: ignore[arg-type]
    tap.message("tx", 2**40, 0x401, b"bad address")
    tap.message("rx", 0x401, 0x400, b"two")
    tap.close()
    assert [r.payload for r in read_capture(str(path))] == [b"one", b"two"]
    logged = [r for r in caplog.records if "could not be encoded" in r.getMessage()]
    assert len(logged) == 1


def test_a_full_queue_drops_counts_and_says_so(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer that cannot keep up: records beyond the queue limit are dropped, counted and
    reported (once while it happens, with the total at close); the file stays valid."""
    import rpmsg.capture.tap as tap_module
    import rpmsg.capture.writer as writer

    monkeypatch.setattr(writer, "MAX_QUEUED", 50)
    monkeypatch.setattr(tap_module, "WAKE_AT", 10)
    path = tmp_path / "full.pcapng"
    tap = open_capture(str(path), link_name="loop:full")
    file = tap.file  # type: ignore[attr-defined]
    with file._write_lock:  # the flusher is stuck writing (a slow disk)
        for i in range(80):
            tap.message("tx", 0x400, 0x401, i.to_bytes(2, "little"))
    tap.close()
    assert file.overflowed == 80 - 49  # the queue held the interface block and 49 messages
    recs = read_capture(str(path))
    assert [r.payload for r in recs] == [i.to_bytes(2, "little") for i in range(49)]
    msgs = [r.getMessage() for r in caplog.records]
    assert len([m for m in msgs if "could not keep up" in m]) == 2  # once, then the total
    assert any("31 record(s) dropped" in m for m in msgs)


def test_reader_follows_a_file_being_written(tmp_path: Path) -> None:
    path = tmp_path / "follow.pcapng"
    tap = open_capture(str(path), link_name="loop:follow")
    tap.flush()  # type: ignore[attr-defined]
    try:
        with Follower(path) as follower:
            for i in range(5):
                tap.message("tx", 1, 2, bytes([i]))
                tap.flush()  # type: ignore[attr-defined]
            assert wait_until(lambda: len(follower.got) == 5, timeout=30)
    finally:
        tap.close()
    assert follower.got == [bytes([i]) for i in range(5)]
    assert not follower.thread.is_alive()


FORKS = textwrap.dedent("""
    import os, sys
    from rpmsg.capture import open_capture
    tap = open_capture(sys.argv[1], link_name="loop:fork")
    tap.message("tx", 1, 2, b"parent before")
    pid = os.fork()
    if pid == 0:  # the child inherits the tap but not the file: its records go nowhere
        tap.message("tx", 1, 2, b"child")
        tap.close()
        os._exit(0)
    os.waitpid(pid, 0)
    tap.message("tx", 1, 2, b"parent after")
    tap.close()
""")


def test_a_forked_child_does_not_write_into_the_parents_capture(tmp_path: Path) -> None:
    path = tmp_path / "fork.pcapng"
    out = subprocess.run([sys.executable, "-c", FORKS, str(path)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert [r.payload for r in read_capture(str(path))] == [b"parent before", b"parent after"]
