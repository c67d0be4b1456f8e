"""Remote processors (``/sys/class/remoteproc/remoteprocN``): list, start, stop, firmware.

Facts from ``drivers/remoteproc/remoteproc_sysfs.c`` (mainline): each ``remoteprocN`` has
``name`` (read-only), ``state`` and ``firmware``. ``state`` reads ``offline``, ``suspended``,
``running``, ``crashed``, ``deleted``, ``attached`` (started by someone else, e.g. the boot
loader), ``detached`` or ``invalid``; writing ``start`` boots it (EBUSY if already running or
attached, and the boot's own error, e.g. ENOENT for a missing firmware file), ``stop`` shuts it
down (EINVAL unless running or attached). Writing ``firmware`` needs the processor offline
(EBUSY otherwise); an empty name is EINVAL. All writes need root (the attributes are 0644).

Which channels belong to which processor: remoteproc registers a virtio device per vdev
resource as a child of ``remoteprocN`` — below ``remoteprocN#vdevMbuffer`` before Linux 6.1,
below a ``rproc-virtio.M[.auto]`` platform device since (commit 1d7b61c06dc3, "remoteproc:
virtio: Create platform device for the remoteproc_virtio") — and virtio_rpmsg_bus puts every
channel (``virtioK.<name>.<src>.<dst>``) and the ``rpmsg_ctrl`` below that virtio device. So a
channel, control or endpoint device belongs to the remoteproc whose (resolved) sysfs directory
contains its own; no layout-specific names are needed (TI's ti-rpmsg-char library walks the
same two layouts by name).
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rpmsg.errors import AccessDeniedError, InvalidArgumentError, NotAvailableError
from rpmsg.linux.errors import AmbiguousNameError, KernelError, RemoteprocStateError
from rpmsg.linux.nodes import INDEX
from rpmsg.linux.sysfs import Sysfs, default_sysfs, read_attr
from rpmsg.linux.sysfs import write_attr as sysfs_write_attr

_RPROC_RE = re.compile(rf"remoteproc({INDEX})")
#: States in which the processor runs code (``attached``: started before Linux took over).
RUNNING_STATES = frozenset({"running", "attached"})

#: Writes a sysfs attribute (tests inject the fake kernel's semantics).
Writer = Callable[[Path, str], None]


def write_attr(path: Path, text: str) -> None:
    """Write ``text`` to sysfs attribute ``path`` (:func:`rpmsg.linux.sysfs.write_attr`)."""
    sysfs_write_attr(path, text)


@dataclass(frozen=True)
class RemoteProc:
    """One remote processor and the rpmsg devices that live below it."""

    index: int
    #: ``remoteprocN``.
    device: str
    name: str | None
    state: str | None
    firmware: str | None
    #: Its virtio devices (``virtio0``).
    virtio: tuple[str, ...] = ()
    #: Bus device names of its rpmsg channels (``virtio0.rpmsg-raw.-1.1024``).
    channels: tuple[str, ...] = ()
    #: Indices of its ``/dev/rpmsg_ctrlN`` and ``/dev/rpmsgN`` devices.
    controls: tuple[int, ...] = ()
    endpoints: tuple[int, ...] = ()

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES

    def label(self) -> str:
        """``remoteproc0 (m4)`` for messages."""
        return f"{self.device} ({self.name})" if self.name else self.device

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read(path: Path) -> str | None:
    raw = read_attr(path)
    return None if raw is None else raw.decode("utf-8", "replace").strip()


def _under(path: str, parent: str) -> bool:
    return path.startswith(parent.rstrip("/") + "/")


def _indices(sysfs: Sysfs) -> list[int]:
    try:
        names = os.listdir(sysfs.remoteproc_dir)
    except OSError:
        return []
    return sorted(int(m.group(1)) for n in names if (m := _RPROC_RE.fullmatch(n)))


def list_remoteprocs(sysfs: Sysfs | None = None) -> list[RemoteProc]:
    """Every remote processor with its channels, control and endpoint devices."""
    sysfs = sysfs or default_sysfs()
    indices = _indices(sysfs)
    if not indices:
        return []
    channels = [(c, os.path.realpath(sysfs.bus_dir / c.device)) for c in sysfs.channels()]
    controls = [(c.index, os.path.realpath(sysfs.class_dir / f"rpmsg_ctrl{c.index}"))
                for c in sysfs.controls()]
    endpoints = [(e.index, os.path.realpath(sysfs.class_dir / f"rpmsg{e.index}"))
                 for e in sysfs.endpoints()]
    out = []
    for index in indices:
        entry = sysfs.remoteproc_dir / f"remoteproc{index}"
        real = os.path.realpath(entry)
        mine = [c for c, path in channels if _under(path, real)]
        out.append(RemoteProc(
            index=index, device=f"remoteproc{index}", name=_read(entry / "name"),
            state=_read(entry / "state"), firmware=_read(entry / "firmware"),
            virtio=tuple(sorted({c.virtio for c in mine if c.virtio})),
            channels=tuple(c.device for c in mine),
            controls=tuple(i for i, path in controls if _under(path, real)),
            endpoints=tuple(i for i, path in endpoints if _under(path, real))))
    return out


def find_remoteproc(name: str, sysfs: Sysfs | None = None) -> RemoteProc:
    """The remote processor called ``name``: its ``name`` attribute, ``remoteprocN`` or N.

    Raises :class:`~rpmsg.errors.NotAvailableError` listing the known ones when there is no
    such processor, :class:`~rpmsg.linux.errors.AmbiguousNameError` when several share it.
    """
    sysfs = sysfs or default_sysfs()
    procs = list_remoteprocs(sysfs)
    if not procs:
        raise NotAvailableError(
            f"no remote processor {name!r}: {sysfs.remoteproc_dir} is empty or absent (is a "
            "remoteproc driver for your SoC loaded, CONFIG_REMOTEPROC?)")
    text = name.strip()
    by_device = [p for p in procs if text in (p.device, str(p.index))]
    if by_device:
        return by_device[0]
    matches = [p for p in procs if p.name == text]
    if len(matches) > 1:
        raise AmbiguousNameError(
            f"several remote processors are named {text!r}: "
            f"{', '.join(p.device for p in matches)}; give remoteprocN")
    if not matches:
        known = ", ".join(f"{p.label()} {p.state or '?'}" for p in procs)
        raise NotAvailableError(f"no remote processor named {text!r}; known: {known}")
    return matches[0]


def check_firmware_name(firmware: str) -> str:
    """A firmware file name the kernel accepts: not empty, no newline or NUL (the kernel
    cuts at the first newline and refuses an empty name)."""
    if not isinstance(firmware, str):
        raise InvalidArgumentError(f"firmware must be a file name, not {type(firmware).__name__}")
    if not firmware or "\n" in firmware or "\0" in firmware:
        raise InvalidArgumentError(
            f"firmware {firmware!r} is not a file name (empty, or contains a newline or NUL)")
    return firmware


def start(name: str, firmware: str | None = None, *, sysfs: Sysfs | None = None,
          write: Writer | None = None) -> RemoteProc:
    """Boot remote processor ``name``, first setting ``firmware`` (a file under
    /lib/firmware) if given; returns its new state.

    Raises :class:`~rpmsg.linux.errors.RemoteprocStateError` if it is already running,
    :class:`~rpmsg.errors.AccessDeniedError` without root, NotAvailableError if the firmware
    file is missing.
    """
    sysfs = sysfs or default_sysfs()
    if firmware is not None:
        check_firmware_name(firmware)
    proc = find_remoteproc(name, sysfs)
    if proc.running:
        raise RemoteprocStateError(
            f"{proc.label()} is already {proc.state}; stop it first with "
            f"`rpmsg rproc stop {proc.name or proc.device}`", proc.state)
    if firmware is not None:
        _write(proc, "firmware", firmware, sysfs, write)
    _write(proc, "state", "start", sysfs, write)
    return find_remoteproc(proc.device, sysfs)


def stop(name: str, *, sysfs: Sysfs | None = None, write: Writer | None = None) -> RemoteProc:
    """Shut remote processor ``name`` down; returns its new state.

    Raises :class:`~rpmsg.linux.errors.RemoteprocStateError` if it is not running.
    """
    sysfs = sysfs or default_sysfs()
    proc = find_remoteproc(name, sysfs)
    if not proc.running:
        raise RemoteprocStateError(f"{proc.label()} is not running (state {proc.state})",
                                   proc.state)
    _write(proc, "state", "stop", sysfs, write)
    return find_remoteproc(proc.device, sysfs)


def set_firmware(name: str, firmware: str, *, sysfs: Sysfs | None = None,
                 write: Writer | None = None) -> RemoteProc:
    """Choose the firmware file the next start loads (the processor must be offline)."""
    sysfs = sysfs or default_sysfs()
    check_firmware_name(firmware)
    proc = find_remoteproc(name, sysfs)
    _write(proc, "firmware", firmware, sysfs, write)
    return find_remoteproc(proc.device, sysfs)


def _write(proc: RemoteProc, attr: str, text: str, sysfs: Sysfs,
           write: Writer | None) -> None:
    path = sysfs.remoteproc_dir / proc.device / attr
    try:
        (write or write_attr)(path, text)
    except OSError as exc:
        raise _write_error(exc, proc, attr, text, path) from exc


def _write_error(exc: OSError, proc: RemoteProc, attr: str, text: str,
                 path: Path) -> Exception:
    """The library error for a failed write of ``text`` to ``attr`` of ``proc``."""
    code = exc.errno
    who = proc.name or proc.device
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return AccessDeniedError(
            f"permission denied writing {text!r} to {path}: controlling a remote processor "
            f"needs root (e.g. `sudo rpmsg rproc {_verb(attr, text)} {who}`)")
    if code == errno.EBUSY:
        if attr == "firmware":
            return RemoteprocStateError(
                f"{proc.label()} cannot change its firmware while {proc.state or 'busy'}; "
                f"stop it first with `rpmsg rproc stop {who}`", proc.state)
        return RemoteprocStateError(f"{proc.label()} is already running", "running")
    if code == errno.EINVAL and text == "stop":
        return RemoteprocStateError(f"{proc.label()} is not running", proc.state)
    if code == errno.ENOENT and attr == "state":
        return NotAvailableError(
            f"{proc.label()} did not boot: firmware {proc.firmware!r} not found (the kernel "
            "looks in /lib/firmware; choose another with --firmware)")
    if code == errno.ENOENT:
        return NotAvailableError(f"{path} does not exist (is {proc.device} still there?)")
    name = errno.errorcode.get(code or 0, str(code))
    return KernelError(code or 0, f"{proc.label()}: writing {text!r} to {attr} failed with "
                       f"{name}: {exc.strerror} (`dmesg` shows the driver's reason)")


def _verb(attr: str, text: str) -> str:
    return "start --firmware F" if attr == "firmware" else text


__all__ = [
    "RUNNING_STATES",
    "RemoteProc",
    "check_firmware_name",
    "find_remoteproc",
    "list_remoteprocs",
    "set_firmware",
    "start",
    "stop",
    "write_attr",
]
