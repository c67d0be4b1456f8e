"""Build the C reference programs with the system compiler, once per source version.

The sources ship as package data (``rpmsg/bench/c/``). :func:`build` compiles one program
into ``$XDG_CACHE_HOME/rpmsg-bench/<hash>/`` (default ``~/.cache``), where the hash covers the
sources, the compiler and its flags, so a rebuilt or upgraded compiler or an edited source
never reuses a stale binary. Without a compiler it raises :class:`NotAvailableError` with a
one-line reason, which the benchmark prints as its note.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from rpmsg.errors import NotAvailableError

FLAGS = ("-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra")
#: The shm programs: each is its .c file plus the shared header.
SHM_PROGRAMS = {"shm_driver": ("shm_driver.c", "shm_bench.h"),
                "shm_device": ("shm_device.c", "shm_bench.h")}


def source_dir() -> Path:
    """Where the C sources of the benchmark live (package data)."""
    return Path(str(resources.files("rpmsg.bench") / "c"))


def compiler() -> str:
    """The C compiler to use: ``$CC``, else ``cc``, ``gcc`` or ``clang`` on ``PATH``."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and (path := shutil.which(name)):
            return path
    raise NotAvailableError("no C compiler (cc, gcc or clang) on PATH: the C reference is "
                            "skipped (install gcc to measure against C)")


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rpmsg-bench"


def _version(cc: str) -> str:
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NotAvailableError(f"C compiler {cc} does not run: {exc}") from None
    return out.stdout.splitlines()[0] if out.stdout else cc


def build(name: str, sources: Sequence[Path], *, flags: Sequence[str] = FLAGS,
          libs: Sequence[str] = ()) -> Path:
    """Compile ``sources`` (``.c`` files compiled, others only hashed) into program ``name``.

    Returns the cached binary; builds it first if this exact combination is new. Anything
    that stops the build (no compiler, a cache directory that cannot be made or written, a
    compiler that cannot run or fails) is a NotAvailableError with a one-line reason.
    """
    try:
        return _build(name, sources, flags, libs)
    except OSError as exc:
        where = exc.filename or cache_root()
        raise NotAvailableError(f"cannot build the C reference {name}: {where}: "
                                f"{exc.strerror or exc} (set XDG_CACHE_HOME to a writable "
                                "directory)") from None


def _build(name: str, sources: Sequence[Path], flags: Sequence[str],
           libs: Sequence[str]) -> Path:
    cc = compiler()
    digest = hashlib.sha256()
    for part in (cc, _version(cc), *flags, *libs):
        digest.update(part.encode() + b"\0")
    for src in sources:
        digest.update(src.name.encode() + b"\0" + src.read_bytes())
    target_dir = cache_root() / digest.hexdigest()[:16]
    target = target_dir / name
    if target.exists():
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    c_files = [str(s) for s in sources if s.suffix == ".c"]
    include = sorted({str(s.parent) for s in sources})
    with tempfile.NamedTemporaryFile(dir=target_dir, prefix=f".{name}.", delete=False) as tmp:
        tmp_path = tmp.name
    cmd = [cc, *flags, *(f"-I{d}" for d in include), "-o", tmp_path, *c_files, *libs]
    try:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            raise NotAvailableError(f"building the C reference {name} took over 300 s") from None
        if proc.returncode != 0:
            first = (proc.stderr.strip().splitlines() or ["(no output)"])[0]
            raise NotAvailableError(f"building the C reference {name} failed: {first}")
        os.replace(tmp_path, target)  # atomic: concurrent builders agree on one binary
    finally:
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)
    return target


def build_shm() -> dict[str, Path]:
    """Both shm programs (``shm_driver``, ``shm_device``), built if needed."""
    src = source_dir()
    return {name: build(name, [src / f for f in files]) for name, files in SHM_PROGRAMS.items()}
