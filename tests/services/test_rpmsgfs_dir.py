"""rpmsgfs server against a real directory: every command, errors, and escapes refused.

The chip side is :class:`FsClient` (or raw requests through :class:`FsSession`) over ``loop:``
with the NuttX policy; every answer goes through the real server, its worker and the link.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rpmsgfs_helpers import ask

import rpmsg
from rpmsg.services.nuttx import FsClient, FsServer
from rpmsg.services.nuttx.confine import ConfinedDir, EscapeError
from rpmsg.services.nuttx.rpmsgfs import FsSession
from rpmsg.wire.nuttx_rpmsgfs import (
    CH_STAT,
    DIRENT_TYPES,
    FS_HEADER,
    FsCommand,
    FsStat,
    encode_request,
)

_names = itertools.count()


@pytest.fixture
def share(tmp_path: Path) -> Path:
    d = tmp_path / "share"
    (d / "sub").mkdir(parents=True)
    (d / "hello.txt").write_bytes(b"hello\n")
    (tmp_path / "secret.txt").write_bytes(b"outside")
    return d


@pytest.fixture
def fs(share: Path) -> Iterator[tuple[FsClient, FsServer]]:
    name = f"fs-{next(_names)}"
    with rpmsg.open(f"loop:{name}", policy="nuttx") as pc, \
            rpmsg.open(f"loop:{name}", policy="nuttx") as chip:
        server = FsServer(pc, share)
        client = FsClient(chip, "/", timeout=10)
        client.wait_bound(5)
        yield client, server
        assert client.violations == []
        client.shutdown()
        server.close()


def errno_of(fn: object, *args: object) -> int:
    with pytest.raises(OSError) as info:
        fn(*args)  # type: ignore[operator]
    return info.value.errno or 0


def test_create_write_read_seek_stat_list(fs: tuple[FsClient, FsServer], share: Path) -> None:
    c, _ = fs
    data = os.urandom(7000)  # several WRITE chunks (cookie 0 but the last), several READ chunks
    fd = c.open("/new.bin", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o640)
    assert c.write(fd, data) == 7000
    assert c.lseek(fd, 0, os.SEEK_CUR) == 7000
    assert c.lseek(fd, 1000) == 1000
    assert c.read(fd, 6000) == data[1000:7000]
    assert c.read(fd, 100) == b""                       # EOF: a 0-byte chunk ends the read
    st = c.fstat(fd)
    assert st.size == 7000 and stat.S_ISREG(st.mode) and st.mode & 0o777 == 0o640
    assert c.dup(fd) != fd
    c.fsync(fd)
    c.ftruncate(fd, 10)
    c.close(fd)
    assert (share / "new.bin").read_bytes() == data[:10]
    assert c.stat("/").mode & stat.S_IFMT(0xFFFF) == 0x4000
    assert sorted(c.listdir("/")) == [("hello.txt", DIRENT_TYPES["REG"]),
                                      ("new.bin", DIRENT_TYPES["REG"]),
                                      ("sub", DIRENT_TYPES["DIR"])]
    assert errno_of(c.open, "/new.bin", os.O_WRONLY | os.O_CREAT | os.O_EXCL) == errno.EEXIST


def test_mkdir_rename_remove_statfs(fs: tuple[FsClient, FsServer], share: Path) -> None:
    c, _ = fs
    c.mkdir("/d1")
    c.rename("/hello.txt", "/d1/renamed-file-with-a-long-name.txt")
    assert (share / "d1/renamed-file-with-a-long-name.txt").read_bytes() == b"hello\n"
    assert errno_of(c.rmdir, "/d1") == errno.ENOTEMPTY
    c.unlink("/d1/renamed-file-with-a-long-name.txt")
    c.rmdir("/d1")
    assert not (share / "d1").exists()
    s = c.statfs("/")
    sv = os.statvfs(share)
    assert s.type == 0x54534F47 and s.blocks == sv.f_blocks and s.bsize == sv.f_frsize


def test_errors_by_nuttx_name(fs: tuple[FsClient, FsServer]) -> None:
    c, _ = fs
    assert errno_of(c.stat, "/missing") == errno.ENOENT
    assert errno_of(c.open, "/sub", os.O_WRONLY) == errno.EISDIR
    assert errno_of(c.open, "/hello.txt/x") == errno.ENOTDIR
    assert errno_of(c.close, 77) == errno.ENOENT          # unknown handle, as NuttX answers
    assert errno_of(c.read, 77, 10) == errno.ENOENT
    assert errno_of(c.unlink, "/sub") in (errno.EISDIR, errno.EPERM)
    fd = c.open("/hello.txt")
    assert errno_of(c.ioctl, fd, 0x1234, b"abcd") == errno.ENOSYS
    assert errno_of(c.lseek, fd, 0, 7) == errno.EINVAL
    assert errno_of(c.lseek, fd, -5) == errno.EINVAL
    c.close(fd)


def test_chstat_mode_times_and_chown_refused(fs: tuple[FsClient, FsServer],
                                             share: Path) -> None:
    c, _ = fs
    c.chstat("/hello.txt", FsStat(mode=0o4755, mtim_sec=1_000_000_000, mtim_nsec=5),
             CH_STAT["MODE"] | CH_STAT["MTIME"])
    st = os.stat(share / "hello.txt")
    assert st.st_mode & 0o7777 == 0o755  # setuid never reaches the host
    assert st.st_mtime_ns == 1_000_000_000 * 10**9 + 5
    other = (st.st_uid + 1) & 0x7FFF
    assert errno_of(c.chstat, "/hello.txt", FsStat(uid=other), CH_STAT["UID"]) == errno.EPERM
    fd = c.open("/hello.txt", os.O_RDWR)
    c.fchstat(fd, FsStat(size=2), CH_STAT["SIZE"])
    c.close(fd)
    assert (share / "hello.txt").read_bytes() == b"he"


@pytest.mark.parametrize("path", ["/", "", "/sub/..", "/sub/../.", "/here", "/sub/root"])
def test_the_shared_directory_itself_is_not_changed(fs: tuple[FsClient, FsServer],
                                                    share: Path, path: str) -> None:
    """CHSTAT on the root (by any path that leads there) changed the mode and times of the
    served directory itself, which belongs to the host: -EPERM; its stat stays readable."""
    c, _ = fs
    (share / "here").symlink_to(".")
    (share / "sub" / "root").symlink_to(share)
    before = os.stat(share)
    for flags, asked in [(CH_STAT["MODE"], FsStat(mode=0o777)),
                         (CH_STAT["MTIME"] | CH_STAT["ATIME"],
                          FsStat(atim_sec=1, mtim_sec=1_000_000_000)),
                         (CH_STAT["UID"], FsStat(uid=before.st_uid & 0x7FFF)),
                         (CH_STAT["SIZE"], FsStat(size=0))]:
        assert errno_of(c.chstat, path, asked, flags) == errno.EPERM, flags
    fd = c.open(path or "/")  # a handle on the directory itself: FCHSTAT refused as well
    assert errno_of(c.fchstat, fd, FsStat(mode=0o777), CH_STAT["MODE"]) == errno.EPERM
    c.close(fd)
    after = os.stat(share)
    assert (after.st_mode, after.st_mtime_ns, after.st_atime_ns) == (
        before.st_mode, before.st_mtime_ns, before.st_atime_ns)
    assert stat.S_ISDIR(c.stat(path or "/").mode)
    c.chstat("/sub", FsStat(mode=0o700), CH_STAT["MODE"])  # below the root: allowed
    assert os.stat(share / "sub").st_mode & 0o777 == 0o700


@pytest.mark.parametrize("path", [
    "/../secret.txt", "/sub/../../secret.txt", "/../../../../etc/passwd",
    "/link-out/secret.txt", "/abs-out", "/loop", "/sub/up/secret.txt",
])
def test_escapes_are_refused(fs: tuple[FsClient, FsServer], share: Path, path: str) -> None:
    c, server = fs
    (share / "link-out").symlink_to("..")
    (share / "abs-out").symlink_to(share.parent / "secret.txt")
    (share / "loop").symlink_to("loop")
    (share / "sub" / "up").symlink_to("../..")
    code = errno_of(c.read_file, path)
    assert code in (errno.EACCES, errno.ELOOP), code
    assert errno_of(c.write_file, path, b"pwned") in (errno.EACCES, errno.ELOOP)
    assert (share.parent / "secret.txt").read_bytes() == b"outside"
    assert errno_of(c.stat, path) in (errno.EACCES, errno.ELOOP)
    if path.count("/") > 1:  # a directory on the way leads out: renaming into it fails
        assert errno_of(c.rename, "/hello.txt", path.replace("secret.txt", "moved")) in (
            errno.EACCES, errno.ENOENT)
    assert not (share.parent / "moved").exists()
    assert server.stats.escapes_refused >= 1 or code == errno.ELOOP


def test_symlinks_inside_are_followed(fs: tuple[FsClient, FsServer], share: Path) -> None:
    c, _ = fs
    (share / "rel").symlink_to("sub/../hello.txt")
    (share / "abs").symlink_to(share / "hello.txt")
    (share / "sub" / "back").symlink_to("../hello.txt")
    for p in ("/rel", "/abs", "/sub/back", "/sub/../hello.txt"):
        assert c.read_file(p) == b"hello\n", p
    assert errno_of(c.open, "/abs", os.O_RDONLY | os.O_NOFOLLOW) == errno.ELOOP
    assert ("abs", DIRENT_TYPES["LNK"]) in c.listdir("/")


@pytest.fixture(scope="module")
def maze(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ConfinedDir]]:
    """A shared directory full of symlinks, inside and out, and the resolver of it."""
    top = tmp_path_factory.mktemp("maze")
    d = top / "share"
    (d / "sub" / "inner").mkdir(parents=True)
    (d / "hello.txt").write_bytes(b"hi")
    (top / "secret.txt").write_bytes(b"outside")
    for name, target in [("out", ".."), ("rel", "sub/../hello.txt"), ("here", "."),
                         ("abs", str(d / "hello.txt")), ("absdir", str(d / "sub")),
                         ("loop", "loop"), ("sub/up", ".."), ("sub/upup", "../.."),
                         ("sub/inner/top", str(d)), ("etc", "/etc")]:
        (d / name).symlink_to(target)
    root = ConfinedDir(d)
    yield d, root
    root.close()


_PARTS = ["", ".", "..", "sub", "inner", "hello.txt", "missing", "out", "rel", "here", "abs",
          "absdir", "loop", "up", "upup", "top", "etc", "secret.txt"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PARTS), max_size=8), st.booleans(), st.booleans())
def test_any_path_resolves_inside_or_fails_and_leaks_nothing(
        maze: tuple[Path, ConfinedDir], parts: list[str], lead: bool, follow: bool) -> None:
    share, root = maze
    path = ("/" if lead else "") + "/".join(parts)
    fds = len(os.listdir("/proc/self/fd"))
    try:
        r = root.resolve(path.encode(), follow=follow)
    except EscapeError:
        pass
    except OSError as exc:
        assert exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP), exc
    else:
        with r:
            where = Path(os.readlink(f"/proc/self/fd/{r.dir_fd}"))
            assert where == share or share in where.parents, (path, where)
            assert b"/" not in r.name and r.name not in (b"", b"..")
    assert len(os.listdir("/proc/self/fd")) == fds, path


def test_fs_value_is_a_path_inside_the_directory(share: Path) -> None:
    with rpmsg.open("loop:fsroot", policy="nuttx") as pc, \
            rpmsg.open("loop:fsroot", policy="nuttx") as chip:
        server = FsServer(pc, share)
        client = FsClient(chip, "/sub", timeout=10)
        client.write_file("/x.txt", b"in sub")
        assert (share / "sub" / "x.txt").read_bytes() == b"in sub"
        assert errno_of(client.stat, "/../../secret.txt") == errno.EACCES
        client.shutdown()
        server.close()


def test_devices_and_fifos_are_not_served(fs: tuple[FsClient, FsServer], share: Path) -> None:
    c, _ = fs
    os.mkfifo(share / "fifo")
    (share / "null").symlink_to("/dev/null")
    assert errno_of(c.open, "/fifo") == errno.EPERM     # never blocks the server
    assert errno_of(c.open, "/null") == errno.EACCES    # outside (absolute, not below)


def test_read_only(share: Path) -> None:
    with rpmsg.open("loop:fsro", policy="nuttx") as pc, \
            rpmsg.open("loop:fsro", policy="nuttx") as chip:
        server = FsServer(pc, share, read_only=True)
        c = FsClient(chip, timeout=10)
        assert c.read_file("/hello.txt") == b"hello\n"
        for fn, args in [(c.write_file, ("/new", b"x")), (c.mkdir, ("/d",)),
                         (c.unlink, ("/hello.txt",)), (c.rename, ("/hello.txt", "/x")),
                         (c.rmdir, ("/sub",)), (c.open, ("/hello.txt", os.O_RDWR))]:
            assert errno_of(fn, *args) == errno.EROFS, fn
        c.shutdown()
        server.close()
    assert (share / "hello.txt").exists() and not (share / "new").exists()


# Raw requests: what FsClient never sends -----------------------------------------------------


def test_unknown_command_gets_no_answer_and_bad_request_einval(session: FsSession) -> None:
    assert ask(session, FS_HEADER.pack(30, -6, 0x1234)) == []      # NuttX would assert
    assert ask(session, FS_HEADER.pack(0, -6, 0x1234)) == []       # INIT goes the other way
    assert ask(session, b"\x01\x00") == []                          # no cookie to echo
    bad = ask(session, FS_HEADER.pack(FsCommand.STAT, -6, 0x99) + b"x" * 100)  # no NUL
    assert [(r.command, r.result, r.cookie) for r in bad] == [(FsCommand.STAT, -22, 0x99)]
    assert session.stats.unanswerable == 3 and session.stats.bad_requests == 1


def test_dir_handles_start_at_1_and_end_with_enoent(session: FsSession) -> None:
    (h,) = ask(session, encode_request(FsCommand.OPENDIR, 1, path=b"/"))
    assert h.result == 1
    results = [ask(session, encode_request(FsCommand.READDIR, 2, fd=1))[0] for _ in range(3)]
    assert [r.result for r in results] == [0, 0, -2]
    assert ask(session, encode_request(FsCommand.REWINDDIR, 3, fd=1))[0].result == 0
    assert ask(session, encode_request(FsCommand.READDIR, 2, fd=1))[0].result == 0
    assert ask(session, encode_request(FsCommand.CLOSEDIR, 4, fd=1))[0].result == 0


def test_write_chunks_with_cookie_0_are_not_answered_but_errors_carry(
        session: FsSession, share: Path) -> None:
    (o,) = ask(session, encode_request(FsCommand.OPEN, 1, path=b"/hello.txt", flags=0))
    fd = o.result
    assert ask(session, encode_request(FsCommand.WRITE, 0, fd=fd, data=b"abc")) == []
    (w,) = ask(session, encode_request(FsCommand.WRITE, 5, fd=fd, data=b"d"))
    assert w.result == -9  # the read-only fd's EBADF of the cookie-0 chunk, reported here


def test_32_bit_offsets(session: FsSession, share: Path) -> None:
    with open(share / "big", "wb") as f:
        f.truncate(3 << 30)  # sparse 3 GiB
    (o,) = ask(session, encode_request(FsCommand.OPEN, 1, path=b"/big", flags=0))
    (r,) = ask(session, encode_request(FsCommand.LSEEK, 2, fd=o.result, offset=0, whence=2))
    assert r.result == -75  # EOVERFLOW: the offset does not fit the 32-bit result
    (r,) = ask(session, encode_request(FsCommand.LSEEK, 3, fd=o.result, offset=5, whence=0))
    assert r.result == 5


def test_close_answers_queued_requests_with_eio(share: Path) -> None:
    gate = threading.Event()

    with rpmsg.open("loop:fsclose", policy="nuttx") as pc, \
            rpmsg.open("loop:fsclose", policy="nuttx") as chip:
        server = FsServer(pc, share)
        original = FsSession._stat

        def slow_stat(self, req):  # type: ignore[no-untyped-def]
            gate.wait(30)
            return original(self, req)

        a, b = FsClient(chip, timeout=30), FsClient(chip, timeout=30)
        a.wait_bound(5)
        b.wait_bound(5)
        results: dict[str, object] = {}

        def call(name: str, client: FsClient, path: str) -> None:
            try:
                results[name] = client.stat(path)
            except OSError as exc:
                results[name] = exc.errno

        FsSession._stat = slow_stat  # type: ignore[method-assign]
        try:
            t1 = threading.Thread(target=call, args=("first", a, "/hello.txt"))
            t1.start()
            while server.stats.requests < 1:
                threading.Event().wait(0.01)
            t2 = threading.Thread(target=call, args=("queued", b, "/hello.txt"))
            t2.start()
            while len(server._queue) < 1:
                threading.Event().wait(0.01)
            closer = threading.Thread(target=server.close)
            closer.start()
            t2.join(10)
            assert results["queued"] == errno.EIO  # answered, not left waiting forever
            gate.set()
            closer.join(10)
            t1.join(10)
            assert isinstance(results["first"], FsStat)  # the one in progress completed
            assert server.stats.answered_on_close == 1
        finally:
            FsSession._stat = original  # type: ignore[method-assign]
            gate.set()
        assert a.violations == [] and b.violations == []
        a.shutdown()
        b.shutdown()
