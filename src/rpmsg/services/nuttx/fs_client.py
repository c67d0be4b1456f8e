"""rpmsgfs client: use a directory a NuttX chip (or an :class:`FsServer`) exports, spec §4.

:class:`FsClient` announces ``rpmsgfs-<id>`` (pattern A: the client announces, the server
binds) and sends one request at a time, as NuttX's client does under its mount lock. Paths
are joined to the server-side root ``fs`` the way NuttX's ``rpmsgfs_mkpath`` does; a
negative result becomes an :class:`OSError` with the host's errno (translated by name).
Responses are matched by cookie: one that answers nothing we asked is counted in
:attr:`FsClient.violation_count` and the first :data:`VIOLATIONS_KEPT` are described in
:attr:`FsClient.violations` (on a real chip it would be a wild pointer, spec §1.4).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from rpmsg import checks
from rpmsg.device import Device
from rpmsg.endpoint import Endpoint
from rpmsg.errors import (
    DecodeError,
    EndpointClosedError,
    ProtocolError,
    RemoteDisconnectedError,
)
from rpmsg.transport import Deadline
from rpmsg.wire.nuttx_errno import from_nuttx, name_of
from rpmsg.wire.nuttx_rpmsgfs import (
    FS_PREFIX,
    OPEN_FLAGS,
    READ_WRITE,
    FsCommand,
    FsResponse,
    FsStat,
    decode_response,
    encode_request,
)

log = logging.getLogger("rpmsg.services.nuttx")

_ids = itertools.count(0x1000)
#: Violations described (and logged) per client; a server that keeps sending junk is only
#: counted after these, so it cannot grow the client's memory or flood the log.
VIOLATIONS_KEPT = 100
#: Most entries :meth:`FsClient.listdir` collects from one directory by default.
MAX_DIR_ENTRIES = 65536


@dataclass(frozen=True)
class StatFs:
    """What STATFS reports."""

    type: int
    namelen: int
    bsize: int
    blocks: int
    bfree: int
    bavail: int
    files: int
    ffree: int


def nuttx_flags(host_flags: int) -> int:
    """Host ``os.O_*`` open flags as NuttX's (the reverse of the server's translation)."""
    out = {os.O_RDONLY: 0, os.O_WRONLY: 1, os.O_RDWR: 2}[host_flags & os.O_ACCMODE]
    for name, bit in OPEN_FLAGS.items():
        host = getattr(os, name, 0)
        if name not in ("O_WRONLY", "O_RDWR") and host and host_flags & host == host:
            out |= bit
    return out


class FsClient:
    """A mount of the rpmsgfs directory ``fs`` served on ``device``.

    ``name`` is the endpoint announced (default ``rpmsgfs-<unique hex>``, like NuttX's
    pointer); ``timeout`` bounds the wait for the server and each request.
    """

    def __init__(self, device: Device, fs: str = "/", *, name: str | None = None,
                 timeout: float | None = 10.0) -> None:
        self.device = device
        self.root = fs.rstrip("/")
        self.timeout = timeout
        self.violations: list[str] = []
        self.violation_count = 0
        self._lock = threading.Lock()        # one request in flight, as NuttX's fs_lock
        self._cond = threading.Condition()
        self._cookies = itertools.count(0x6673000000000001)  # "fs"
        self._cookie: int | None = None
        self._responses: list[FsResponse] = []
        self._gone: str | None = None
        self._closed = False
        self.name = name or f"{FS_PREFIX}{next(_ids):#x}"
        self.endpoint = device.create_endpoint(self.name, announce=True,
                                               callback=self._on_message,
                                               on_unbound=self._on_unbound,
                                               on_bound=self._on_bound)

    # Transport -----------------------------------------------------------------------------

    def _on_bound(self, ept: Endpoint) -> None:
        with self._cond:
            self._gone = None

    def _on_unbound(self, ept: Endpoint) -> None:
        with self._cond:
            self._gone = "the rpmsgfs server went away"
            self._cond.notify_all()

    def _on_message(self, ept: Endpoint, data: bytes, src: int) -> None:
        try:
            resp = decode_response(data)
        except DecodeError as exc:
            self._violation(f"undecodable response: {exc}")
            return
        with self._cond:
            if self._cookie is None or resp.cookie != self._cookie:
                self._violation(f"response {resp.command.name} with cookie {resp.cookie:#x} "
                                "answers no pending request")
                return
            self._responses.append(resp)
            self._cond.notify_all()

    def _violation(self, what: str) -> None:
        self.violation_count += 1
        if len(self.violations) < VIOLATIONS_KEPT:
            self.violations.append(what)
            log.error("rpmsgfs client %s: %s", self.name, what)
            if len(self.violations) == VIOLATIONS_KEPT:
                log.error("rpmsgfs client %s: further violations are only counted", self.name)

    def wait_bound(self, timeout: float | None = None) -> None:
        self.endpoint.wait_bound(timeout)

    def _request(self, command: FsCommand, fields: dict[str, int | bytes], *,
                 until_done: bool = False, expect: int = 0) -> list[FsResponse]:
        """Send one request and wait for its answer(s) (READ: until ``expect`` bytes came
        or a chunk with result <= 0)."""
        deadline = Deadline(self.timeout)
        with self._lock:
            cookie = next(self._cookies)
            with self._cond:
                self._check_open()
                self._cookie, self._responses = cookie, []
            try:
                self.endpoint.wait_bound(deadline.remaining())
                self.endpoint.send(encode_request(command, cookie, **fields),  # type: ignore[arg-type]
                                   timeout=deadline.remaining())
                responses = self._answers(command, deadline, until_done, expect)
            finally:
                with self._cond:
                    self._cookie = None
        for r in responses:
            if r.command != command:
                self._violation(f"{command.name} answered with command {r.command.name}")
        return responses

    def _check_open(self) -> None:
        if self._closed:
            raise EndpointClosedError(f"{self.name} is closed")

    def _answers(self, command: FsCommand, deadline: Deadline, until_done: bool,
                 expect: int) -> list[FsResponse]:
        """Wait for the answer to the pending request (all of it with ``until_done``)."""
        with self._cond:
            while not self._answered(until_done, expect):
                self._check_open()
                if self._gone is not None:
                    raise RemoteDisconnectedError(self._gone)
                if not self._cond.wait(deadline.remaining()) and deadline.expired():
                    raise deadline.timeout_error(f"{command.name} on {self.name}")
            return list(self._responses)

    def _answered(self, until_done: bool, expect: int) -> bool:
        """Whether the answers so far are all (READ: ``expect`` bytes, or a last chunk)."""
        if not until_done:
            return bool(self._responses)
        got = sum(max(r.result, 0) for r in self._responses)
        return got >= expect or any(r.result <= 0 for r in self._responses)

    def _call(self, command: FsCommand, path: str | None = None,
              **kwargs: int | bytes) -> FsResponse:
        if path is not None:
            kwargs["path"] = self._path(path)
        resp = self._request(command, kwargs)[0]
        if resp.result < 0:
            raise _oserror(resp.result, command, path)
        return resp

    def _path(self, path: str) -> bytes:
        rel = path.lstrip("/")
        return os.fsencode(f"{self.root}/{rel}")

    # File system operations -----------------------------------------------------------------

    def stat(self, path: str) -> FsStat:
        return self._call(FsCommand.STAT, path).stat

    def open(self, path: str, flags: int = os.O_RDONLY, mode: int = 0o666) -> int:
        """Open ``path`` (host ``os.O_*`` flags); returns the server's file handle."""
        return self._call(FsCommand.OPEN, path, flags=nuttx_flags(flags), mode=mode).result

    def close(self, fd: int | None = None) -> None:
        """Close file ``fd``; without an argument, close the client itself (NS DESTROY)."""
        if fd is None:
            self.shutdown()
            return
        self._call(FsCommand.CLOSE, fd=fd)

    def read(self, fd: int, count: int) -> bytes:
        """Up to ``count`` bytes (several response chunks, as the server sends them)."""
        responses = self._request(FsCommand.READ, {"fd": fd, "count": count},
                                  until_done=True, expect=count)
        out = bytearray()
        for r in responses:
            if r.result < 0:
                if out:
                    break
                raise _oserror(r.result, FsCommand.READ, None)
            if r.result > len(r.tail) or len(out) + r.result > count:
                self._violation(f"READ chunk of {r.result} bytes carries {len(r.tail)}, "
                                f"{len(out)} of {count} asked had come")
            out += r.tail[:r.result]
        del out[count:]  # never more than asked, whatever the server sent
        return bytes(out)

    def write(self, fd: int, data: bytes) -> int:
        """Write ``data`` in chunks of at most ``mtu - 24`` bytes; only the last carries a
        cookie and is answered (spec §4.4)."""
        room = self.endpoint.mtu - READ_WRITE.size
        chunks = [data[i:i + room] for i in range(0, len(data), room)] or [b""]
        deadline = Deadline(self.timeout)
        for chunk in chunks[:-1]:
            self.endpoint.send(encode_request(FsCommand.WRITE, 0, fd=fd, data=chunk),
                               timeout=deadline.remaining())
        resp = self._request(FsCommand.WRITE, {"fd": fd, "data": chunks[-1]})[0]
        if resp.result < 0:
            raise _oserror(resp.result, FsCommand.WRITE, None)
        return len(data)

    def lseek(self, fd: int, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._call(FsCommand.LSEEK, fd=fd, offset=offset, whence=whence).result

    def fstat(self, fd: int) -> FsStat:
        return self._call(FsCommand.FSTAT, fd=fd).stat

    def ftruncate(self, fd: int, length: int) -> None:
        self._call(FsCommand.FTRUNCATE, fd=fd, length=length)

    def fsync(self, fd: int) -> None:
        self._call(FsCommand.SYNC, fd=fd)

    def dup(self, fd: int) -> int:
        return self._call(FsCommand.DUP, fd=fd).result

    def ioctl(self, fd: int, request: int, arg: bytes = b"") -> tuple[int, bytes]:
        resp = self._call(FsCommand.IOCTL, fd=fd, request=request, data=arg)
        return resp.result, resp.tail

    def listdir(self, path: str = "/", max_entries: int = MAX_DIR_ENTRIES
                ) -> list[tuple[str, int]]:
        """Names and ``DT_*`` types of a directory (OPENDIR, READDIR until -ENOENT,
        CLOSEDIR). A server that lists more than ``max_entries`` (one that never says
        -ENOENT) is a ProtocolError, not a list that grows for ever."""
        limit = checks.count(max_entries, "max_entries", minimum=0)
        out: list[tuple[str, int]] = []
        for entry in self.scandir(path):
            if len(out) == limit:
                raise ProtocolError(f"rpmsgfs: {path!r} lists more than {limit} entries "
                                    "(raise max_entries for a directory that big)")
            out.append(entry)
        return out

    def scandir(self, path: str = "/") -> Iterator[tuple[str, int]]:
        handle = self._call(FsCommand.OPENDIR, path).result
        try:
            while True:
                r = self._request(FsCommand.READDIR, {"fd": handle})[0]
                if r.result < 0:
                    if from_nuttx(r.result) != from_nuttx(-2):
                        raise _oserror(r.result, FsCommand.READDIR, path)
                    return
                yield os.fsdecode(r.name), r.num("type")
        finally:
            self._call(FsCommand.CLOSEDIR, fd=handle)

    def statfs(self, path: str = "/") -> StatFs:
        r = self._call(FsCommand.STATFS, path)
        return StatFs(*(r.num(k) for k in ("type", "namelen", "bsize", "blocks", "bfree",
                                           "bavail", "files", "ffree")))

    def unlink(self, path: str) -> None:
        self._call(FsCommand.UNLINK, path)

    def mkdir(self, path: str, mode: int = 0o777) -> None:
        self._call(FsCommand.MKDIR, path, mode=mode)

    def rmdir(self, path: str) -> None:
        self._call(FsCommand.RMDIR, path)

    def rename(self, old: str, new: str) -> None:
        self._call(FsCommand.RENAME, old, new_path=self._path(new))

    def chstat(self, path: str, st: FsStat, flags: int) -> None:
        self._call(FsCommand.CHSTAT, path, stat=st.encode(), flags=flags)

    def fchstat(self, fd: int, st: FsStat, flags: int) -> None:
        self._call(FsCommand.FCHSTAT, fd=fd, stat=st.encode(), flags=flags)

    # Convenience -----------------------------------------------------------------------------

    def read_file(self, path: str, chunk: int = 1024) -> bytes:
        fd = self.open(path)
        try:
            out = bytearray()
            while data := self.read(fd, chunk):
                out += data
            return bytes(out)
        finally:
            self.close(fd)

    def write_file(self, path: str, data: bytes) -> None:
        fd = self.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            self.write(fd, data)
        finally:
            self.close(fd)

    def shutdown(self) -> None:
        """Close the client's endpoint (the server releases the binding). Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.endpoint.close()

    def __enter__(self) -> FsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _oserror(result: int, command: FsCommand, path: str | None) -> OSError:
    code = from_nuttx(result)
    text = f"{command.name}: {name_of(result)} ({os.strerror(code)})"
    return OSError(code, text, path) if path is not None else OSError(code, text)


__all__ = ["VIOLATIONS_KEPT", "FsClient", "StatFs", "nuttx_flags"]
