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
#: Directories deep below the root a path may reach (then ENAMETOOLONG). A resolution
#: holds a descriptor for each level it went down (``..`` goes back up through them), so
#: a path through a deep tree the chip made itself would take one per level: 900 from a
#: single 2 KiB request, the process's whole limit from a longer one. NuttX's PATH_MAX
#: (256) allows no more than 128 levels.
MAX_DEPTH = 128
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
        st = os.fstat(self.fd)
        #: (st_dev, st_ino) of the directory itself: what a request must not change.
        self.identity = (st.st_dev, st.st_ino)
        real = os.fsencode(os.path.realpath(self.path))
        self._real_parts = [p for p in real.split(b"/") if p]
        self.escapes = 0

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def escape(self, path: bytes) -> EscapeError:
        """The error for ``path`` leading outside (counted in :attr:`escapes`)."""
        self.escapes += 1
        return EscapeError(path)

    def inside(self, target: bytes, path: bytes) -> list[bytes]:
        """The components of absolute symlink ``target`` below the root, or EscapeError."""
        parts = [p for p in target.split(b"/") if p not in (b"", b".")]
        n = len(self._real_parts)
        if parts[:n] != self._real_parts or b".." in parts[:n]:
            raise self.escape(path)
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
        walk = _Walk(self, path)
        try:
            return walk.run(follow)
        except BaseException:
            walk.release()
            raise


class _Walk:
    """One resolution in progress: the components left, the directories opened on the way
    (the last one is where we are) and the symlinks followed so far."""

    def __init__(self, root: ConfinedDir, path: bytes) -> None:
        self.root = root
        self.path = path
        self.parts = deque(path.split(b"/"))
        self.owned: list[int] = []
        self.links = 0

    @property
    def here(self) -> int:
        return self.owned[-1] if self.owned else self.root.fd

    def release(self) -> None:
        while self.owned:
            os.close(self.owned.pop())

    def run(self, follow: bool) -> Resolved:
        while self.parts:
            part = self.parts.popleft()
            if part in (b"", b"."):
                continue
            if part == b"..":
                self._up()
                continue
            found = self._step(part, follow)
            if found is not None:
                return found
        return Resolved(self.here, b".", self.owned)

    def _up(self) -> None:
        if not self.owned:
            raise self.root.escape(self.path)
        os.close(self.owned.pop())

    def _step(self, part: bytes, follow: bool) -> Resolved | None:
        """Go through ``part``: the Resolved if it is the last component, else None."""
        last = all(p in (b"", b".") for p in self.parts)
        if last and not follow and not self.parts:  # "name/" (parts left) follows
            return Resolved(self.here, part, self.owned)
        try:
            st = os.stat(part, dir_fd=self.here, follow_symlinks=False)
        except FileNotFoundError:
            if last:
                return Resolved(self.here, part, self.owned)
            raise
        if stat.S_ISLNK(st.st_mode):
            self._expand(part)
            return None
        if last:
            return Resolved(self.here, part, self.owned)
        if not stat.S_ISDIR(st.st_mode):
            raise OSError(errno.ENOTDIR, "not a directory")
        if len(self.owned) >= MAX_DEPTH:
            raise OSError(errno.ENAMETOOLONG, f"more than {MAX_DEPTH} directories deep")
        self.owned.append(os.open(part, _O_SEARCH | os.O_DIRECTORY | os.O_NOFOLLOW
                                  | os.O_CLOEXEC, dir_fd=self.here))
        return None

    def _expand(self, part: bytes) -> None:
        """Put symlink ``part``'s target in front of the components left (an absolute one
        from the root, if it stays below it)."""
        self.links += 1
        if self.links > MAX_SYMLINKS:
            raise OSError(errno.ELOOP, "too many symbolic links")
        target = os.readlink(part, dir_fd=self.here)
        if target.startswith(b"/"):
            below = self.root.inside(target, self.path)
            self.release()
            self.parts.extendleft(reversed(below))
        else:
            self.parts.extendleft(reversed(target.split(b"/")))


__all__ = ["MAX_DEPTH", "MAX_SYMLINKS", "ConfinedDir", "EscapeError", "Resolved"]
