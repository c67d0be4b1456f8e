"""Messages of NuttX's rpmsgfs (``fs/rpmsgfs/rpmsgfs.h``): a remote file system over RPMsg.

Facts: ``shared/spec/nuttx-services.md`` §4. Every message starts with ``command`` u32,
``result`` i32 and ``cookie`` u64 (the client's pointer: echo it). Each command has a fixed
part (declared once below, header included) that a path, data or a name may follow; the
response has the same command code and cookie and a fixed size given by NuttX's
``sizeof`` (:data:`RESPONSE_SIZE`). NuttX open flags, ``S_IF*`` mode bits and ``DT_*`` types
live here too, so every translation uses one table.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from rpmsg.errors import DecodeError
from rpmsg.wire.layout import Buffer, Layout

#: Clients announce ``rpmsgfs-<pointer>``; a server binds every name with this prefix.
FS_PREFIX = "rpmsgfs-"
#: ``f_type`` NuttX's client puts in every statfs result (``RPMSGFS_MAGIC``).
RPMSGFS_MAGIC = 0x54534F47
#: What NuttX puts in the ``result`` of a request (-ENXIO).
REQUEST_RESULT = -6


class FsCommand(enum.IntEnum):
    INIT = 0
    OPEN = 1
    CLOSE = 2
    READ = 3
    WRITE = 4
    LSEEK = 5
    IOCTL = 6
    SYNC = 7
    DUP = 8
    FSTAT = 9
    FTRUNCATE = 10
    OPENDIR = 11
    READDIR = 12
    REWINDDIR = 13
    CLOSEDIR = 14
    STATFS = 15
    UNLINK = 16
    MKDIR = 17
    RMDIR = 18
    RENAME = 19
    STAT = 20
    FCHSTAT = 21
    CHSTAT = 22


#: Commands a client sends. INIT is server to client; 23 and above make NuttX assert.
REQUESTS = frozenset(FsCommand) - {FsCommand.INIT}

_H = [("command", "I"), ("result", "i"), ("cookie", "Q")]
FS_HEADER = Layout("rpmsgfs_header", _H)

#: The 88-byte ``rpmsgfs_stat_priv_s``: note the 16-bit ino, uid, gid and blksize.
STAT_BLOCK = Layout("rpmsgfs_stat_priv", [
    ("dev", "I"), ("mode", "I"), ("rdev", "I"), ("ino", "H"), ("nlink", "H"), ("size", "q"),
    ("atim_sec", "q"), ("atim_nsec", "q"), ("mtim_sec", "q"), ("mtim_nsec", "q"),
    ("ctim_sec", "q"), ("ctim_nsec", "q"), ("blocks", "Q"), ("uid", "h"), ("gid", "h"),
    ("blksize", "h"), ("reserved", "H")])
_STAT = ("stat", f"{STAT_BLOCK.size}s")

OPEN = Layout("rpmsgfs_open", [*_H, ("flags", "i"), ("mode", "i")])
FD_ONLY = Layout("rpmsgfs_fd", [*_H, ("fd", "i")])
READ_WRITE = Layout("rpmsgfs_read_write", [*_H, ("fd", "i"), ("count", "I")])
LSEEK = Layout("rpmsgfs_lseek", [*_H, ("fd", "i"), ("whence", "i"), ("offset", "i")])
IOCTL = Layout("rpmsgfs_ioctl", [*_H, ("fd", "i"), ("request", "i"), ("arg", "Q"),
                                 ("arglen", "I")])
FSTAT = Layout("rpmsgfs_fstat", [*_H, _STAT, ("fd", "i")])
FTRUNCATE = Layout("rpmsgfs_ftruncate", [*_H, ("fd", "i"), ("length", "i")])
READDIR = Layout("rpmsgfs_readdir", [*_H, ("fd", "i"), ("type", "I")])
STATFS = Layout("rpmsgfs_statfs", [*_H, ("type", "I"), ("reserved", "I"), ("namelen", "Q"),
                                   ("bsize", "Q"), ("blocks", "Q"), ("bfree", "Q"),
                                   ("bavail", "Q"), ("files", "Q"), ("ffree", "Q")])
MKDIR = Layout("rpmsgfs_mkdir", [*_H, ("mode", "i"), ("reserved", "I")])
STAT = Layout("rpmsgfs_stat", [*_H, _STAT])
FCHSTAT = Layout("rpmsgfs_fchstat", [*_H, _STAT, ("flags", "i"), ("fd", "i")])
CHSTAT = Layout("rpmsgfs_chstat", [*_H, _STAT, ("flags", "i")])


class Tail(enum.Enum):
    """What follows a command's fixed part in a request."""

    NONE = "none"
    PATH = "path"        # one NUL-terminated path
    RENAME = "rename"    # old path, NUL, zeros up to a multiple of 8, new path
    DATA = "data"        # ``count`` bytes (WRITE)
    ARG = "arg"          # ``arglen`` bytes (IOCTL)


@dataclass(frozen=True)
class CommandSpec:
    """One command: the fixed part of its request, what follows, its response size."""

    command: FsCommand
    layout: Layout
    tail: Tail
    #: Size of the response NuttX's server sends (READ and READDIR add data or a name;
    #: IOCTL echoes the whole request).
    response_size: int


_SPECS = [
    CommandSpec(FsCommand.OPEN, OPEN, Tail.PATH, OPEN.size),
    CommandSpec(FsCommand.CLOSE, FD_ONLY, Tail.NONE, FD_ONLY.size),
    CommandSpec(FsCommand.READ, READ_WRITE, Tail.NONE, READ_WRITE.size),
    CommandSpec(FsCommand.WRITE, READ_WRITE, Tail.DATA, READ_WRITE.size),
    CommandSpec(FsCommand.LSEEK, LSEEK, Tail.NONE, LSEEK.size),
    CommandSpec(FsCommand.IOCTL, IOCTL, Tail.ARG, IOCTL.size),
    CommandSpec(FsCommand.SYNC, FD_ONLY, Tail.NONE, FD_ONLY.size),
    CommandSpec(FsCommand.DUP, FD_ONLY, Tail.NONE, FD_ONLY.size),
    CommandSpec(FsCommand.FSTAT, FSTAT, Tail.NONE, FSTAT.size),
    CommandSpec(FsCommand.FTRUNCATE, FTRUNCATE, Tail.NONE, FTRUNCATE.size),
    CommandSpec(FsCommand.OPENDIR, FS_HEADER, Tail.PATH, FS_HEADER.size),
    CommandSpec(FsCommand.READDIR, READDIR, Tail.NONE, READDIR.size),
    CommandSpec(FsCommand.REWINDDIR, FD_ONLY, Tail.NONE, FD_ONLY.size),
    CommandSpec(FsCommand.CLOSEDIR, FD_ONLY, Tail.NONE, FD_ONLY.size),
    CommandSpec(FsCommand.STATFS, STATFS, Tail.PATH, STATFS.size),
    CommandSpec(FsCommand.UNLINK, FS_HEADER, Tail.PATH, FS_HEADER.size),
    CommandSpec(FsCommand.MKDIR, MKDIR, Tail.PATH, MKDIR.size),
    CommandSpec(FsCommand.RMDIR, FS_HEADER, Tail.PATH, FS_HEADER.size),
    CommandSpec(FsCommand.RENAME, FS_HEADER, Tail.RENAME, FS_HEADER.size),
    # STAT and CHSTAT: NuttX's struct ends in a 4-byte union with the path, so the
    # response (sizeof) is 4 bytes longer than the fixed part the path follows.
    CommandSpec(FsCommand.STAT, STAT, Tail.PATH, STAT.size + 4),
    CommandSpec(FsCommand.FCHSTAT, FCHSTAT, Tail.NONE, FCHSTAT.size),
    CommandSpec(FsCommand.CHSTAT, CHSTAT, Tail.PATH, CHSTAT.size + 4),
]
#: Every client request by command code.
COMMANDS: dict[int, CommandSpec] = {s.command: s for s in _SPECS}
RESPONSE_SIZE: dict[int, int] = {s.command: s.response_size for s in _SPECS}


# Constants of NuttX's headers ---------------------------------------------------------------

#: NuttX ``include/fcntl.h`` open flags by name (access mode: the low two bits).
OPEN_FLAGS: dict[str, int] = {
    "O_WRONLY": 0x1, "O_RDWR": 0x2, "O_TEXT": 0x20, "O_CREAT": 0x40, "O_EXCL": 0x80,
    "O_NOCTTY": 0x100, "O_TRUNC": 0x200, "O_APPEND": 0x400, "O_NONBLOCK": 0x800,
    "O_DSYNC": 0x1000, "O_ASYNC": 0x2000, "O_DIRECT": 0x4000, "O_LARGEFILE": 0x8000,
    "O_DIRECTORY": 0x10000, "O_NOFOLLOW": 0x20000, "O_NOATIME": 0x40000,
    "O_CLOEXEC": 0x80000, "O_SYNC": 0x100000, "O_PATH": 0x200000, "O_TMPFILE": 0x400000,
}
O_ACCMODE = 0x3
O_RDONLY = 0x0

#: ``S_IF*`` file types of NuttX ``include/sys/stat.h`` (the last four are NuttX-only).
S_IFMT = 0xF000
FILE_TYPES: dict[str, int] = {
    "FIFO": 0x1000, "CHR": 0x2000, "DIR": 0x4000, "BLK": 0x6000, "REG": 0x8000,
    "LNK": 0xA000, "SOCK": 0xC000, "SEM": 0x3000, "MQ": 0x5000, "SHM": 0x7000,
    "MTD": 0x9000,
}
#: ``DT_*`` directory entry types of NuttX ``include/dirent.h``.
DIRENT_TYPES: dict[str, int] = {
    "UNKNOWN": 0, "FIFO": 1, "CHR": 2, "SEM": 3, "DIR": 4, "MQ": 5, "BLK": 6, "SHM": 7,
    "REG": 8, "MTD": 9, "LNK": 10, "SOCK": 12,
}
#: ``flags`` of CHSTAT/FCHSTAT (NuttX ``include/nuttx/fs/fs.h``): which fields to apply.
CH_STAT: dict[str, int] = {"MODE": 0x1, "UID": 0x2, "GID": 0x4, "ATIME": 0x8,
                           "MTIME": 0x10, "SIZE": 0x80}
#: ``nsec`` value that means "leave this time alone" / "set it to now" (POSIX, as NuttX).
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2


# Messages -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FsStat:
    """The 88-byte stat block, field for field."""

    dev: int = 0
    mode: int = 0
    rdev: int = 0
    ino: int = 0
    nlink: int = 0
    size: int = 0
    atim_sec: int = 0
    atim_nsec: int = 0
    mtim_sec: int = 0
    mtim_nsec: int = 0
    ctim_sec: int = 0
    ctim_nsec: int = 0
    blocks: int = 0
    uid: int = 0
    gid: int = 0
    blksize: int = 0
    reserved: int = 0

    def encode(self) -> bytes:
        return STAT_BLOCK.pack(
            self.dev, self.mode, self.rdev, self.ino, self.nlink, self.size, self.atim_sec,
            self.atim_nsec, self.mtim_sec, self.mtim_nsec, self.ctim_sec, self.ctim_nsec,
            self.blocks, self.uid, self.gid, self.blksize, self.reserved)

    @classmethod
    def decode(cls, data: Buffer, offset: int = 0) -> FsStat:
        return cls(*STAT_BLOCK.unpack(data, offset))


class _FixedFields:
    """Typed access to the fixed fields of a decoded request or response."""

    fields: Mapping[str, int | bytes]

    def num(self, name: str) -> int:
        """An integer field of the fixed part."""
        value = self.fields[name]
        assert isinstance(value, int)
        return value

    @property
    def stat(self) -> FsStat:
        """The stat block of FSTAT/STAT/FCHSTAT/CHSTAT (garbage in FSTAT and STAT requests)."""
        value = self.fields["stat"]
        assert isinstance(value, bytes)
        return FsStat.decode(value)


@dataclass(frozen=True)
class FsRequest(_FixedFields):
    """A decoded client request: its fixed fields by name, plus what follows them."""

    command: FsCommand
    cookie: int
    fields: Mapping[str, int | bytes]
    #: The path (OPEN, OPENDIR, STATFS, UNLINK, MKDIR, RMDIR, STAT, CHSTAT; RENAME: old).
    path: bytes | None = None
    #: RENAME's new path.
    new_path: bytes | None = None
    #: WRITE's data or IOCTL's argument buffer.
    data: bytes = b""
    raw: bytes = field(default=b"", repr=False)



def _cstring(data: Buffer, start: int, layout: Layout, fieldname: str) -> tuple[bytes, int]:
    """The NUL-terminated string at ``start``; returns it and the offset after its NUL."""
    raw = bytes(data[start:])
    end = raw.find(b"\0")
    if end < 0:
        raise DecodeError(layout.name, fieldname, start,
                          "string is not NUL-terminated inside the message")
    return raw[:end], start + end + 1


def rename_new_offset(old_path: bytes) -> int:
    """Where RENAME's new path starts: after the old one and its NUL, rounded up to 8."""
    return FS_HEADER.size + ((len(old_path) + 1 + 7) & ~7)


def decode_request(data: Buffer) -> FsRequest:
    """Decode a client request; DecodeError names what is wrong (unknown command, a short
    fixed part, a string without its NUL, a count or arglen beyond the message)."""
    command, _result, cookie = FS_HEADER.unpack(data)
    spec = COMMANDS.get(command)
    if spec is None:
        raise FS_HEADER.error("command", f"{command} is not an rpmsgfs request")
    layout = spec.layout
    values = layout.unpack(data)
    fields = {f.name: v for f, v in zip(layout.fields, values, strict=True)}
    path = new_path = None
    payload = b""
    end = layout.size
    if spec.tail is Tail.PATH:
        path, _ = _cstring(data, end, layout, "path")
    elif spec.tail is Tail.RENAME:
        path, _ = _cstring(data, end, layout, "oldpath")
        start = rename_new_offset(path)
        if start >= len(data):
            raise DecodeError(layout.name, "newpath", start, "message ends before the new path")
        new_path, _ = _cstring(data, start, layout, "newpath")
    elif spec.tail is Tail.DATA or spec.tail is Tail.ARG:
        name = "count" if spec.tail is Tail.DATA else "arglen"
        count = fields[name]
        assert isinstance(count, int)
        if count > len(data) - end:
            raise layout.error(name, f"{count} bytes announced, {len(data) - end} present")
        payload = bytes(data[end:end + count])
    return FsRequest(FsCommand(command), cookie, fields, path, new_path, payload, bytes(data))


def encode_request(command: FsCommand, cookie: int, *, path: bytes | None = None,
                   new_path: bytes | None = None, data: bytes = b"",
                   result: int = REQUEST_RESULT, **fields: int | bytes) -> bytes:
    """A client request (fields not given are 0; the stat block of STAT/FSTAT is zeros)."""
    spec = COMMANDS[command]
    values: list[int | bytes] = []
    for f in spec.layout.fields:
        if f.name == "command":
            values.append(int(command))
        elif f.name == "result":
            values.append(result)
        elif f.name == "cookie":
            values.append(cookie)
        elif f.name == "stat":
            values.append(fields.get("stat", bytes(STAT_BLOCK.size)))
        elif f.name in ("count", "arglen") and f.name not in fields and spec.tail in (
                Tail.DATA, Tail.ARG):
            values.append(len(data))
        else:
            values.append(fields.get(f.name, 0))
    out = spec.layout.pack(*values)
    if spec.tail is Tail.PATH:
        out += (path or b"") + b"\0"
        if command in (FsCommand.STAT, FsCommand.CHSTAT):
            out += bytes(4)  # NuttX sends sizeof(struct) + strlen + 1
    elif spec.tail is Tail.RENAME:
        old = path or b""
        start = rename_new_offset(old)
        out = out + old.ljust(start - FS_HEADER.size, b"\0") + (new_path or b"") + b"\0"
    else:
        out += data
    return out


@dataclass(frozen=True)
class FsResponse(_FixedFields):
    """A decoded response: result, cookie, the fixed fields, and data/name that follow."""

    command: FsCommand
    result: int
    cookie: int
    fields: Mapping[str, int | bytes]
    tail: bytes = b""


    @property
    def name(self) -> bytes:
        """READDIR's entry name (up to its NUL)."""
        return self.tail.split(b"\0", 1)[0]


def decode_response(data: Buffer) -> FsResponse:
    """Decode a server response by its command's fixed layout.

    Responses shorter than their fixed part are accepted when they carry an error (NuttX
    answers some errors with the header alone); a successful one must be complete.
    """
    command, result, cookie = FS_HEADER.unpack(data)
    spec = COMMANDS.get(command)
    if spec is None:
        raise FS_HEADER.error("command", f"{command} is not an rpmsgfs response")
    layout = spec.layout
    if len(data) < layout.size:
        if result >= 0:
            layout.check_size(data)
        return FsResponse(FsCommand(command), result, cookie, {})
    values = layout.unpack(data)
    fields = {f.name: v for f, v in zip(layout.fields, values, strict=True)}
    tail = bytes(data[layout.size:])
    if command == FsCommand.READ and result > 0 and len(tail) < result:
        raise layout.error("count", f"result {result} but {len(tail)} data bytes follow")
    return FsResponse(FsCommand(command), result, cookie, fields, tail)


def encode_response(request: FsRequest, result: int, tail: bytes = b"",
                    **fields: int | bytes) -> bytes:
    """The response to ``request``: its fixed part echoed at the response size, with
    ``result`` and any ``fields`` replaced, then ``tail`` (READ data, READDIR name)."""
    spec = COMMANDS[request.command]
    values: list[int | bytes] = []
    for f in spec.layout.fields:
        if f.name == "result":
            values.append(result)
        elif f.name in fields:
            values.append(fields[f.name])
        else:
            values.append(request.fields[f.name])
    fixed = spec.layout.pack(*values)
    if request.command == FsCommand.IOCTL:
        return fixed + (tail or request.data)
    size = spec.response_size
    return fixed[:size].ljust(size, b"\0") + tail


def error_response(raw: Buffer, result: int) -> bytes | None:
    """The answer to a request that could not be decoded: its fixed part echoed at the
    command's response size with ``result``; None when it must not be answered (no full
    header, a command NuttX does not know, or a WRITE chunk with cookie 0)."""
    if len(raw) < FS_HEADER.size:
        return None
    command, _result, cookie = FS_HEADER.unpack(raw)
    spec = COMMANDS.get(command)
    if spec is None or (command == FsCommand.WRITE and cookie == 0):
        return None
    size = len(raw) if command == FsCommand.IOCTL else spec.response_size
    body = bytes(raw[FS_HEADER.size:size]).ljust(size - FS_HEADER.size, b"\0")
    return FS_HEADER.pack(command, result, cookie) + body


__all__ = [
    "CHSTAT",
    "CH_STAT",
    "COMMANDS",
    "DIRENT_TYPES",
    "FCHSTAT",
    "FD_ONLY",
    "FILE_TYPES",
    "FSTAT",
    "FS_HEADER",
    "FS_PREFIX",
    "FTRUNCATE",
    "IOCTL",
    "LSEEK",
    "MKDIR",
    "OPEN",
    "OPEN_FLAGS",
    "O_ACCMODE",
    "O_RDONLY",
    "READDIR",
    "READ_WRITE",
    "REQUESTS",
    "RESPONSE_SIZE",
    "RPMSGFS_MAGIC",
    "STAT",
    "STATFS",
    "STAT_BLOCK",
    "S_IFMT",
    "UTIME_NOW",
    "UTIME_OMIT",
    "CommandSpec",
    "FsCommand",
    "FsRequest",
    "FsResponse",
    "FsStat",
    "Tail",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "error_response",
    "rename_new_offset",
]
