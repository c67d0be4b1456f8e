"""rpmsgfs server against a hostile chip and a hostile local user (outsider QA).

The local user may write in the served directory and swaps names between the server's
check and its use; the chip sends what a NuttX client never would.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rpmsgfs_helpers import ask

import rpmsg
from rpmsg.services.nuttx import (
    FsClient,
    FsServer,
    SyslogServer,
    binding,
    confine,
    fs_client,
    rpmsgfs,
)
from rpmsg.services.nuttx.confine import ConfinedDir
from rpmsg.services.nuttx.rpmsgfs import FsSession
from rpmsg.wire.nuttx_rpmsgfs import (
    CH_STAT,
    DIRENT_TYPES,
    FsCommand,
    FsStat,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)
from rpmsg.wire.nuttx_syslog import SyslogTransfer
from rpmsg.wire.rpmsg import NS_ADDR, NsMessage


@pytest.fixture
def share(tmp_path: Path) -> Path:
    d = tmp_path / "share"
    d.mkdir()
    (d / "f").write_bytes(b"inside\n")
    (tmp_path / "secret").write_bytes(b"outside\n")
    (tmp_path / "secret").chmod(0o600)
    return d


@pytest.mark.parametrize("flags", ["MODE", "MTIME", "SIZE"])
def test_chstat_never_follows_a_symlink_swapped_in_after_the_check(
        session: FsSession, share: Path, monkeypatch: pytest.MonkeyPatch, flags: str) -> None:
    """A local user replaces the checked file by a symlink to a host file between CHSTAT's
    check and its change: the host file keeps its mode, times and contents (chmod used to
    follow the swapped name: a root server made any host file world-writable)."""
    secret = share.parent / "secret"
    before = secret.stat()
    checked = FsSession._check_changeable

    def swap_after_check(self: FsSession, current: os.stat_result, flags: int) -> None:
        checked(self, current, flags)
        (share / "f").unlink()
        (share / "f").symlink_to(secret)

    monkeypatch.setattr(FsSession, "_check_changeable", swap_after_check)
    new = FsStat(mode=0o666, mtim_sec=12345, size=0)
    (r,) = ask(session, encode_request(FsCommand.CHSTAT, 7, path=b"/f",
                                       flags=CH_STAT[flags], stat=new.encode()))
    after = secret.stat()
    assert (after.st_mode, after.st_mtime_ns, after.st_size) == (
        before.st_mode, before.st_mtime_ns, before.st_size)
    assert secret.read_bytes() == b"outside\n"
    assert r.result <= 0  # applied to the file that was checked, or refused


def test_many_mounts_together_cannot_take_the_process_descriptors(
        share: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chip announcing mount after mount, each opening all it may: the server's total
    stays at its budget (-EMFILE beyond), freed handles are usable again, and the binding
    keeps answering. Each mount used to have 256 files + 64 directories of its own: four
    mounts filled a 1024-descriptor process, breaking the transport and everything else."""
    with rpmsg.open("loop:fs-budget", policy="nuttx") as pc, \
            rpmsg.open("loop:fs-budget", policy="nuttx") as chip:
        # The default budget, made small (raising=False: the module had none before).
        monkeypatch.setattr(rpmsgfs, "MAX_OPEN", 40, raising=False)
        server = FsServer(pc, share)
        clients = [FsClient(chip, timeout=10) for _ in range(4)]
        try:
            for c in clients:
                c.wait_bound(5)
            before = len(os.listdir("/proc/self/fd"))
            held: list[tuple[FsClient, int]] = []
            refused = 0
            for c in clients:
                for _ in range(30):
                    try:
                        held.append((c, c.open("/f")))
                    except OSError as exc:
                        assert exc.errno == errno.EMFILE
                        refused += 1
            assert len(held) == 40 and refused == 80
            assert len(os.listdir("/proc/self/fd")) - before <= 40
            with pytest.raises(OSError) as info:
                clients[3].listdir("/")
            assert info.value.errno == errno.EMFILE
            c, fd = held.pop()
            c.close(fd)
            assert clients[0].read(clients[0].open("/f"), 100) == b"inside\n"
            clients[1].shutdown()  # a mount that goes away gives its handles back
            wait_for(lambda: server.budget.used < 40 - 5)
            assert clients[2].listdir("/") == [("f", DIRENT_TYPES["REG"])]
        finally:
            for c in clients:
                c.shutdown()
            server.close()
        assert server.budget.used == 0


def wait_for(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.01)


def test_client_against_a_server_that_floods_and_overfills(share: Path) -> None:
    """A chip's rpmsgfs server that answers nothing asked, thousands of times, and a READ
    with more than asked: the client's memory stays bounded (violations counted, the first
    ones described), a read returns at most ``count`` bytes, and it keeps working."""
    kept = getattr(fs_client, "VIOLATIONS_KEPT", 100)  # (the module had no limit before)
    with rpmsg.open("loop:fs-flood", policy="nuttx") as pc, \
            rpmsg.open("loop:fs-flood", policy="nuttx") as chip:
        stray = 3 * kept + 7

        def serve(ept: object, data: bytes, src: int) -> None:
            req = decode_request(data)
            for n in range(stray):  # junk before the answer: cookies nobody asked for
                chip_ept.send(encode_response(req, 0)[:8] + (n + 1).to_bytes(8, "little")
                              + encode_response(req, 0)[16:], timeout=10)
            if req.command == FsCommand.READ:
                chip_ept.send(encode_response(req, 20, b"x" * 20), timeout=10)
            else:
                chip_ept.send(encode_response(req, 3), timeout=10)

        client = FsClient(pc, timeout=30)
        chip.wait_service(client.name, 10)
        chip_ept = chip.create_endpoint(client.name, callback=serve)  # binds the announcement
        client.wait_bound(10)
        assert client.open("/f") == 3
        assert len(client.violations) == kept
        assert client.violation_count == stray
        assert client.read(3, 5) == b"xxxxx"  # 20 sent, 5 asked
        assert client.violation_count == 2 * stray + 1
        assert len(client.violations) == kept
        client.shutdown()


def test_close_cuts_a_huge_read_short(tmp_path: Path) -> None:
    """A chip READs 4 GiB of a 1 GiB sparse file (made with FTRUNCATE): close() ends the
    answer at the next chunk with -EIO instead of streaming on (it streamed the whole
    file: ~20 s here, and past its 30 s join the sessions' descriptors were closed under
    the worker still reading them)."""
    (tmp_path / "big").write_bytes(b"")
    os.truncate(tmp_path / "big", 1 << 30)
    answers: list[tuple[int, int]] = []
    opened = threading.Event()

    def on_answer(ept: object, data: bytes, src: int) -> None:
        r = decode_response(data)
        answers.append((r.command, r.result))
        if r.command == FsCommand.OPEN or len(answers) > 100:
            opened.set()

    with rpmsg.open("loop:fs-bigread", policy="nuttx") as pc, \
            rpmsg.open("loop:fs-bigread", policy="nuttx") as chip:
        server = FsServer(pc, tmp_path)
        ept = chip.create_endpoint("rpmsgfs-0xbad", announce=True, callback=on_answer)
        ept.wait_bound(10)
        ept.send(encode_request(FsCommand.OPEN, 1, path=b"/big", flags=0, mode=0), timeout=10)
        assert opened.wait(30) and answers[0][1] == 0
        opened.clear()
        ept.send(encode_request(FsCommand.READ, 2, fd=0, count=0xFFFFFFFF), timeout=10)
        assert opened.wait(30)  # the answer is streaming
        server.close()
        assert not server._worker.is_alive()
        during = len(answers)
        assert during < (1 << 30) // 2000 // 10  # far from the whole file
        wait_for(lambda: answers[-1] == (FsCommand.READ, -5))  # ended by -EIO


def test_a_chip_announcing_mount_after_mount_leaves_addresses_for_the_rest(
        share: Path, caplog: pytest.LogCaptureFixture) -> None:
    """200 rpmsgfs-* announcements: the server binds a bounded number of them and the host
    can still make endpoints, here the syslog binding the chip asks for afterwards. Every
    announcement used to take one of NuttX's 128 local addresses: after 128 of them no
    other service could bind ("no free dynamic address in 1024..1151")."""
    limit = getattr(binding, "MAX_BINDINGS", 128)
    with rpmsg.open("loop:fs-mounts", policy="nuttx") as pc, \
            rpmsg.open("loop:fs-mounts", policy="nuttx") as chip:
        server = FsServer(pc, share)
        syslog = SyslogServer(pc)
        ns = chip.create_endpoint("", callback=lambda *a: None)
        for i in range(200):
            ns.send_to(NS_ADDR, NsMessage(f"rpmsgfs-{i:#x}", 0x2000 + i).encode(), timeout=10)
        chip_log = chip.create_endpoint("rpmsg-syslog", announce=True)
        chip_log.wait_bound(10)  # the host still had an address to bind it with
        # (name-service messages are handled in order: all 200 were seen before it)
        assert len(server.mounts) == limit < 128
        assert server._binder.refused == 200 - limit
        refusals = [r for r in caplog.records if r.levelno >= logging.WARNING
                    and "not binding" in r.getMessage()]
        assert len(refusals) == 1  # said once, not once per announcement (a log flood)
        chip_log.send(SyslogTransfer(b"still here\n").encode(), timeout=10)
        assert syslog.recv(10).text == "still here"
        syslog.close()
        server.close()


def test_a_lost_write_chunk_fails_the_write_instead_of_a_silent_hole(
        share: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker is busy and the queue full when a cookie-0 WRITE chunk (never answered)
    arrives: it cannot be queued. The write it belongs to must not succeed without it:
    the chunks after it are not written at the wrong offset, and the answered last chunk
    gets -EAGAIN. It used to be dropped silently and the write answered as a success,
    leaving the file without that chunk."""
    gate = threading.Event()
    answers: dict[int, int] = {}
    lock = threading.Lock()

    def on_answer(ept: object, data: bytes, src: int) -> None:
        r = decode_response(data)
        with lock:
            answers[r.cookie] = r.result

    original = FsSession._stat

    def slow_stat(self: FsSession, req: object) -> object:
        gate.wait(60)
        return original(self, req)  # type: ignore[arg-type]

    with rpmsg.open("loop:fs-lost", policy="nuttx") as pc, \
            rpmsg.open("loop:fs-lost", policy="nuttx") as chip:
        server = FsServer(pc, share)
        monkeypatch.setattr(FsSession, "_stat", slow_stat)  # before the session exists
        ept = chip.create_endpoint("rpmsgfs-0x10", announce=True, callback=on_answer)
        ept.wait_bound(10)
        ept.send(encode_request(FsCommand.OPEN, 1, path=b"/out", flags=0x241, mode=0o644),
                 timeout=10)  # O_WRONLY | O_CREAT | O_TRUNC
        wait_for(lambda: 1 in answers)
        fd = answers[1]
        stat = encode_request(FsCommand.STAT, 2, path=b"/f")
        ept.send(stat, timeout=10)  # holds the worker
        wait_for(lambda: server.stats.requests == 2)
        for _ in range(rpmsgfs.QUEUE_LIMIT):
            ept.send(stat, timeout=10)  # fills the queue
        ept.send(encode_request(FsCommand.WRITE, 0, fd=fd, data=b"AAAA"), timeout=10)
        wait_for(lambda: server.stats.overloaded == 1)
        gate.set()
        wait_for(lambda: not server._queue)
        ept.send(encode_request(FsCommand.WRITE, 0, fd=fd, data=b"BBBB"), timeout=10)
        ept.send(encode_request(FsCommand.WRITE, 9, fd=fd, data=b"CCCC"), timeout=10)
        wait_for(lambda: 9 in answers)
        assert answers[9] == -11  # EAGAIN: the chip's write failed, and knows it
        assert (share / "out").read_bytes() == b""  # nothing written at a wrong offset
        ept.send(encode_request(FsCommand.WRITE, 10, fd=fd, data=b"again"), timeout=10)
        wait_for(lambda: 10 in answers)
        assert answers[10] == 5 and (share / "out").read_bytes() == b"again"
        server.close()


def test_an_undecodable_write_chunk_fails_the_write(session: FsSession, share: Path) -> None:
    """A cookie-0 WRITE chunk whose count overruns the message cannot be decoded (nor
    answered): the write's answered chunk reports -EAGAIN instead of success."""
    (o,) = ask(session, encode_request(FsCommand.OPEN, 1, path=b"/f", flags=0x202))  # RDWR|TRUNC
    bad = bytearray(encode_request(FsCommand.WRITE, 0, fd=o.result, data=b"xy"))
    bad[20:24] = (1000).to_bytes(4, "little")  # count says 1000 bytes follow
    assert ask(session, bytes(bad)) == []
    (w,) = ask(session, encode_request(FsCommand.WRITE, 5, fd=o.result, data=b"z"))
    assert w.result == -11
    (w,) = ask(session, encode_request(FsCommand.WRITE, 6, fd=o.result, data=b"ok"))
    assert w.result == 2 and (share / "f").read_bytes() == b"ok"


def test_a_path_through_a_deep_tree_holds_a_bounded_number_of_descriptors(
        share: Path) -> None:
    """A chip makes a tree 300 directories deep (MKDIR after MKDIR) and STATs its bottom:
    the resolution stops at the depth NuttX's paths can reach with ENAMETOOLONG, instead
    of holding one descriptor per level (900 for one 2 KiB request)."""
    root = ConfinedDir(share)
    try:
        os.makedirs(share.joinpath(*["d"] * 300))
        limit = getattr(confine, "MAX_DEPTH", 128)
        with root.resolve(b"/".join([b"d"] * limit) + b"/x") as r:  # as deep as allowed
            assert r.name == b"x"
        with pytest.raises(OSError) as info:
            root.resolve(b"/".join([b"d"] * 300) + b"/x")
        assert info.value.errno == errno.ENAMETOOLONG
        # Going down and up again (d/../d/..) never counts more than the depth reached.
        with root.resolve(b"d/../" * 1000 + b"d") as r:
            assert r.name == b"d"
    finally:
        root.close()


def test_a_flooding_mount_never_gets_another_mount_refused(
        share: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One mount fills the request queue while the worker is busy: its own requests
    beyond the limit get -EAGAIN, but another mount's request still waits its turn and is
    served, even when all mounts together have as many waiting as allowed (the limit was
    one queue for all mounts: the flood got every mount -EAGAIN)."""
    gate = threading.Event()
    answers: dict[tuple[str, int], int] = {}
    original = FsSession._stat

    def slow_stat(self: FsSession, req: object) -> object:
        gate.wait(60)
        return original(self, req)  # type: ignore[arg-type]

    def collect(tag: str) -> Callable[[object, bytes, int], None]:
        def on_answer(ept: object, data: bytes, src: int) -> None:
            r = decode_response(data)
            answers[(tag, r.cookie)] = r.result
        return on_answer

    with rpmsg.open("loop:fs-fair", policy="nuttx") as pc, \
            rpmsg.open("loop:fs-fair", policy="nuttx") as chip:
        server = FsServer(pc, share)
        monkeypatch.setattr(FsSession, "_stat", slow_stat)  # before the sessions exist
        flood = chip.create_endpoint("rpmsgfs-0x20", announce=True, callback=collect("a"))
        polite = chip.create_endpoint("rpmsgfs-0x21", announce=True, callback=collect("b"))
        flood.wait_bound(10)
        polite.wait_bound(10)
        flood2 = chip.create_endpoint("rpmsgfs-0x22", announce=True, callback=collect("c"))
        flood2.wait_bound(10)
        stat = encode_request(FsCommand.STAT, 1, path=b"/f")
        flood.send(stat, timeout=10)  # holds the worker
        wait_for(lambda: server.stats.requests == 1)
        for _ in range(rpmsgfs.QUEUE_LIMIT + 5):
            flood.send(encode_request(FsCommand.STAT, 2, path=b"/f"), timeout=10)
        wait_for(lambda: server.stats.overloaded == 5)
        monkeypatch.setattr(rpmsgfs, "QUEUE_TOTAL", rpmsgfs.QUEUE_LIMIT, raising=False)
        polite.send(encode_request(FsCommand.STAT, 3, path=b"/f"), timeout=10)  # all full
        for _ in range(20):  # a second flood, once all mounts together are at the limit:
            flood2.send(encode_request(FsCommand.STAT, 4, path=b"/f"), timeout=10)
        wait_for(lambda: server.stats.overloaded == 5 + 20 - rpmsgfs.QUEUE_RESERVED)
        wait_for(lambda: ("a", 2) in answers)  # the flood's refusals (-EAGAIN) came back
        assert answers[("a", 2)] == -11
        gate.set()
        wait_for(lambda: ("b", 3) in answers)
        assert answers[("b", 3)] == 0  # served, not refused
        server.close()


def test_directories_being_read_count_every_descriptor_they_hold(
        share: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each directory a chip reads holds two host descriptors (its own and the listing's):
    the server's budget counts both, so directories opened and read never take more
    descriptors than the budget (they took twice as many)."""
    monkeypatch.setattr(rpmsgfs, "MAX_OPEN", 40, raising=False)
    for i in range(30):
        (share / f"d{i}").mkdir()
        for name in ("a", "b"):  # a listing left unfinished keeps its descriptor
            (share / f"d{i}" / name).touch()
    with rpmsg.open("loop:fs-dirs", policy="nuttx") as pc, \
            rpmsg.open("loop:fs-dirs", policy="nuttx") as chip:
        server = FsServer(pc, share)
        client = FsClient(chip, timeout=10)
        client.wait_bound(10)
        before = len(os.listdir("/proc/self/fd"))
        handles = []
        for i in range(30):
            try:
                handles.append(client._call(FsCommand.OPENDIR, f"/d{i}").result)
            except OSError as exc:
                assert exc.errno == errno.EMFILE
        for h in handles:  # start reading each: the listing's descriptor opens now
            client._request(FsCommand.READDIR, {"fd": h})
        assert len(os.listdir("/proc/self/fd")) - before <= 40
        assert len(handles) == 40 // 2
        client.shutdown()
        server.close()


def test_listdir_against_a_server_that_never_ends_the_listing() -> None:
    """A chip's rpmsgfs server that answers every READDIR with another entry and never
    -ENOENT: listdir stops at max_entries with a ProtocolError (the list grew for ever), the
    directory is closed all the same, and scandir still streams for a caller who wants it."""
    closed: list[int] = []
    with rpmsg.open("loop:fs-endless", policy="nuttx") as pc, \
            rpmsg.open("loop:fs-endless", policy="nuttx") as chip:
        counter = iter(range(1 << 30))

        def serve(ept: object, data: bytes, src: int) -> None:
            req = decode_request(data)
            if req.command == FsCommand.READDIR:
                name = b"e%d\0" % next(counter)
                chip_ept.send(encode_response(req, 0, name, type=8), timeout=10)
                return
            if req.command == FsCommand.CLOSEDIR:
                closed.append(req.fields["fd"])  # type: ignore[arg-type]
            chip_ept.send(encode_response(req, 5 if req.command == FsCommand.OPENDIR
                                          else 0), timeout=10)

        client = FsClient(pc, timeout=30)
        chip.wait_service(client.name, 10)
        chip_ept = chip.create_endpoint(client.name, callback=serve)
        client.wait_bound(10)
        with pytest.raises(rpmsg.ProtocolError, match="more than 300 entries"):
            client.listdir("/d", max_entries=300)
        assert closed == [5]
        with pytest.raises(rpmsg.InvalidArgumentError):
            client.listdir("/d", max_entries=-1)
        entries = client.scandir("/d")
        assert [next(entries)[0] for _ in range(3)] == ["e301", "e302", "e303"]
        entries.close()  # type: ignore[attr-defined]
        assert closed == [5, 5]
        client.shutdown()


def test_a_lost_write_chunk_fails_only_its_own_write(session: FsSession, share: Path) -> None:
    """The mark a lost cookie-0 chunk leaves ends with that write: when its last chunk is
    dropped too (answered -EAGAIN at once by an overloaded server, so the chip's write
    already failed), or when the chip closes the file. It stayed on the handle number: the
    next write (a retry, or the first write to another file given the same number) had its
    chunks skipped and failed with -EAGAIN although nothing of it was lost."""
    (o,) = ask(session, encode_request(FsCommand.OPEN, 1, path=b"/f", flags=0x202))  # RDWR|TRUNC
    fd = o.result
    session.lose_write(encode_request(FsCommand.WRITE, 0, fd=fd, data=b"lost"))
    session.lose_write(encode_request(FsCommand.WRITE, 2, fd=fd, data=b"last"))  # dropped too
    (w,) = ask(session, encode_request(FsCommand.WRITE, 3, fd=fd, data=b"retry"))
    assert w.result == 5 and (share / "f").read_bytes() == b"retry"

    session.lose_write(encode_request(FsCommand.WRITE, 0, fd=fd, data=b"lost"))
    (c,) = ask(session, encode_request(FsCommand.CLOSE, 4, fd=fd))
    assert c.result == 0
    (o2,) = ask(session, encode_request(FsCommand.OPEN, 5, path=b"/g", flags=0x241, mode=0o644))
    assert o2.result == fd  # the lowest free handle: the same number
    assert ask(session, encode_request(FsCommand.WRITE, 0, fd=fd, data=b"new ")) == []
    (w,) = ask(session, encode_request(FsCommand.WRITE, 6, fd=fd, data=b"file"))
    assert w.result == 4 and (share / "g").read_bytes() == b"new file"


@pytest.mark.parametrize(("max_open", "error"), [
    ("64", rpmsg.ArgumentTypeError), (1.5, rpmsg.ArgumentTypeError),
    (True, rpmsg.ArgumentTypeError), (-1, rpmsg.InvalidArgumentError)])
def test_a_wrong_max_open_is_a_typed_error_before_anything_is_made(
        share: Path, max_open: object, error: type[Exception]) -> None:
    """FsServer(max_open="64") raised a bare TypeError from min() after the shared
    directory was opened (its descriptor stayed open); -1 made a server that refuses every
    open with -EMFILE."""
    real = os.path.realpath(share)

    def share_open() -> bool:  # a descriptor of the shared directory (ConfinedDir's)
        fds = os.listdir("/proc/self/fd")
        return any(_link(f"/proc/self/fd/{fd}") == real for fd in fds)

    with rpmsg.open("loop:fs-max-open", policy="nuttx") as pc:
        with pytest.raises(error, match="max_open"):
            FsServer(pc, share, max_open=max_open)  # type: ignore[arg-type]
        with pytest.raises(rpmsg.InvalidArgumentError, match="limit"):
            binding.AnnouncementBinder(pc, bool, on_message=print, on_release=print,
                                       limit=-1)
        assert not share_open()


def _link(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:  # closed meanwhile (another thread's descriptor)
        return None
