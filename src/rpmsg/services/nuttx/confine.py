"""Paths from a chip, resolved inside one host directory and never outside it.

The chip sends raw paths (spec §4.4): ``..``, absolute symlinks and symlinks pointing out
are all possible. :class:`ConfinedDir` resolves a path one component at a time from an open
directory descriptor (``openat`` with ``O_NOFOLLOW``, never string prefixes), follows a
symlink only while its target stays inside the directory, and hands back the final
component with the descriptor of the directory that holds it, so that the operation itself
also runs relative to that descriptor. A path that would leave the directory raises
:class:`EscapeError` (``EACCES``).
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque

#: Symlinks followed while resolving one path, as Linux's limit (then ELOOP).
MAX_SYMLINKS = 40
_O_SEARCH = getattr(os, "O_PATH", os.O_RDONLY)


class EscapeError(PermissionError):
    """The path (or a symlink on it) leads outside the shared directory."""

    def __init__(self, path: bytes) -> None:
        super().__init__(errno.EACCES, "path leads outside the shared directory",
                         os.fsdecode(path))


class Resolved:
    """The last component of a resolved path and the directory holding it.

    ``name`` is relative to ``dir_fd``; it is ``b"."`` when the path names a directory
    reached without a final name (the root, or a path ending in ``..``). Close it (or use it
    as a context manager) to release the directory descriptors opened on the way.
    """

    def __init__(self, dir_fd: int, name: bytes, owned: list[int]) -> None:
        self.dir_fd = dir_fd
        self.name = name
        self._owned = owned

    def close(self) -> None:
        owned, self._owned = self._owned, []
        for fd in owned:
            os.close(fd)

    def __enter__(self) -> Resolved:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ConfinedDir:
    """A host directory that chip paths are resolved in (its root is ``/`` for the chip)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        real = os.fsencode(os.path.realpath(self.path))
        self._real_parts = [p for p in real.split(b"/") if p]
        self.escapes = 0

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def _escape(self, path: bytes) -> EscapeError:
        self.escapes += 1
        return EscapeError(path)

    def _inside(self, target: bytes, path: bytes) -> list[bytes]:
        """The components of absolute symlink ``target`` below the root, or EscapeError."""
        parts = [p for p in target.split(b"/") if p not in (b"", b".")]
        n = len(self._real_parts)
        if parts[:n] != self._real_parts or b".." in parts[:n]:
            raise self._escape(path)
        return parts[n:]

    def resolve(self, path: bytes, *, follow: bool = True) -> Resolved:
        """Resolve ``path`` (relative to the root; leading ``/`` ignored).

        Every directory on the way is opened with ``O_NOFOLLOW``; symlinks are expanded by
        hand, at most :data:`MAX_SYMLINKS` of them. The last component is followed if it is
        a symlink only when ``follow`` is true or the path ends in ``/``. A missing last
        component is fine (the caller may create it); a missing directory on the way is
        ``ENOENT``.
        """
        if b"\0" in path:
            raise OSError(errno.EINVAL, "NUL in path")
        owned: list[int] = []
        parts = deque(path.split(b"/"))
        links = 0
        try:
            while parts:
                part = parts.popleft()
                if part in (b"", b"."):
                    continue
                if part == b"..":
                    if not owned:
                        raise self._escape(path)
                    os.close(owned.pop())
                    continue
                here = owned[-1] if owned else self.fd
                rest = [p for p in parts if p not in (b"", b".")]
                last = not rest
                must_follow = follow or (last and bool(parts))  # "name/" follows
                if last and not must_follow:
                    return Resolved(here, part, owned)
                try:
                    st = os.stat(part, dir_fd=here, follow_symlinks=False)
                except FileNotFoundError:
                    if last:
                        return Resolved(here, part, owned)
                    raise
                if stat.S_ISLNK(st.st_mode):
                    links += 1
                    if links > MAX_SYMLINKS:
                        raise OSError(errno.ELOOP, "too many symbolic links")
                    target = os.readlink(part, dir_fd=here)
                    if target.startswith(b"/"):
                        below = self._inside(target, path)
                        while owned:
                            os.close(owned.pop())
                        parts.extendleft(reversed(below))
                    else:
                        parts.extendleft(reversed(target.split(b"/")))
                    continue
                if last:
                    return Resolved(here, part, owned)
                if not stat.S_ISDIR(st.st_mode):
                    raise OSError(errno.ENOTDIR, "not a directory")
                owned.append(os.open(part, _O_SEARCH | os.O_DIRECTORY | os.O_NOFOLLOW
                                     | os.O_CLOEXEC, dir_fd=here))
            return Resolved(owned[-1] if owned else self.fd, b".", owned)
        except BaseException:
            for fd in owned:
                os.close(fd)
            raise


__all__ = ["MAX_SYMLINKS", "ConfinedDir", "EscapeError", "Resolved"]
