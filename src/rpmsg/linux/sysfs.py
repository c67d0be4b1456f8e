"""Discovery of rpmsg channels, endpoint devices and control devices through sysfs.

Layout (``shared/spec/linux-chardev.md`` §5.4): channels are bus devices under
``/sys/bus/rpmsg/devices/<virtioN.name.src.dst>`` with ``name``, ``src``/``dst`` in hex,
``announce``, ``driver_override`` and a ``driver`` link; ``/sys/class/rpmsg`` holds
``rpmsg_ctrlN`` and ``rpmsgM``, whose ``name``/``src``/``dst`` are printed in signed decimal
(ANY is ``-1``). An endpoint device's ``device`` link points at its parent: a control device
(created with ``RPMSG_CREATE_EPT_IOCTL``) or a channel (a channel's default endpoint). Every
lookup tolerates devices vanishing mid-scan, and nothing here needs udev; where udev (or mdev)
makes the ``/dev`` nodes, :meth:`Sysfs.wait_node` gives it a moment (:data:`NODE_WAIT`).
"""

from __future__ import annotations

import errno
import os
import re
import stat
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rpmsg.errors import NotAvailableError, RpmsgError
from rpmsg.linux.nodes import INDEX
from rpmsg.wire.rpmsg import ADDR_ANY

_EPT_RE = re.compile(rf"rpmsg({INDEX})")
_CTRL_RE = re.compile(rf"rpmsg_ctrl({INDEX})")

#: Default seconds to wait for the ``/dev`` node of a device that sysfs already lists. With
#: devtmpfs the kernel creates the node before registering the device, so nothing waits; with
#: udev or mdev the node follows the device's uevent shortly after (e.g. after
#: ``RPMSG_CREATE_EPT_IOCTL`` returned, or a name-service announcement). A node whose device
#: sysfs does not list fails at once. Change it here or per :class:`Sysfs` (``node_wait``).
NODE_WAIT = 1.0
_NODE_POLL = 0.005


@dataclass(frozen=True)
class Channel:
    """An rpmsg bus device (a channel), e.g. one created by a name-service announcement."""

    #: Bus device name, ``<virtio device>.<name>.<src>.<dst>`` (addresses signed decimal).
    device: str
    name: str
    src: int | None
    dst: int | None
    announce: bool | None
    #: Bound driver (``rpmsg_chrdev``, ``rpmsg_ctrl``, ``rpmsg_ns``, ...) or None.
    driver: str | None
    driver_override: str | None
    #: The virtio device the channel lives on (``virtio0``), if known.
    virtio: str | None
    #: Indices of ``/dev/rpmsgM`` nodes on this channel (its default endpoint).
    endpoints: tuple[int, ...] = ()
    #: Indices of ``/dev/rpmsg_ctrlN`` nodes on this channel.
    ctrls: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EndpointDevice:
    """A ``/dev/rpmsgM`` endpoint device and the name/addresses the kernel reports for it.

    ``src`` is the address requested at creation: for a ctrl-created endpoint with src ANY
    the kernel allocates the real address at ``open()`` and mainline does not show it.
    """

    index: int
    name: str
    src: int | None
    dst: int | None
    path: str
    #: Index of the control device that created it, or None (a channel's default endpoint).
    ctrl: int | None
    #: The channel (bus device name) it belongs to, if it is a channel's default endpoint.
    channel: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ControlDevice:
    """A ``/dev/rpmsg_ctrlN`` control device and the endpoint devices it created."""

    index: int
    path: str
    #: The bus device it belongs to (``virtio0.rpmsg_ctrl.0.0`` on 5.18+).
    channel: str | None
    virtio: str | None
    endpoints: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_addr(text: str | None) -> int | None:
    """An address attribute (``0x400``, ``1024`` or ``-1``) as a u32; None if unreadable."""
    if text is None:
        return None
    text = text.strip()
    try:
        value = int(text, 0)
    except ValueError:
        try:
            value = int(text, 10)
        except ValueError:
            return None
    if not -(1 << 31) <= value <= 0xFFFFFFFF:
        return None
    return value & 0xFFFFFFFF


def format_addr(addr: int | None) -> str:
    """An address for people: ``ANY``, ``0x400``, or ``?`` when unknown."""
    if addr is None:
        return "?"
    return "ANY" if addr == ADDR_ANY else f"{addr:#x}"


#: The longest sysfs attribute: one page (64 KiB pages on some arm64 and ppc64 kernels). A
#: file longer than this is no attribute and is not read whole.
MAX_ATTR = 65536


def read_attr(path: str | os.PathLike[str]) -> bytes | None:
    """The bytes of sysfs attribute ``path`` (at most :data:`MAX_ATTR`); None if it cannot
    be read or is no attribute: not a regular file (a FIFO would block the read for ever,
    ``/dev/zero`` never end) or longer than an attribute can be."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        parts: list[bytes] = []
        have = 0
        while have <= MAX_ATTR:
            chunk = os.read(fd, MAX_ATTR + 1 - have)
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)
            have += len(chunk)
        return None
    except OSError:
        return None
    finally:
        os.close(fd)


def write_attr(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to sysfs attribute ``path`` in one ``write`` (as sysfs requires).

    Never through a symbolic link, never blocking on a FIFO (ENXIO without a reader), and
    only to a regular file (else EINVAL): raises the OSError for the caller to map."""
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, f"{os.fspath(path)} is not a sysfs attribute")
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _read(path: Path) -> str | None:
    """A sysfs attribute without its trailing newline; None if it cannot be read."""
    raw = read_attr(path)
    if raw is None:
        return None
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    return raw.decode("utf-8", "surrogateescape")


def _link_name(path: Path) -> str | None:
    """The last component of the target of symlink ``path``, or None."""
    try:
        return Path(os.readlink(path)).name
    except OSError:
        return None


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _indices(names: list[str], pattern: re.Pattern[str]) -> tuple[int, ...]:
    return tuple(sorted(int(m.group(1)) for n in names if (m := pattern.fullmatch(n))))


class Sysfs:
    """Read-only view of the rpmsg part of sysfs and /dev, rooted anywhere (tests use a fake)."""

    def __init__(self, sys_root: str | os.PathLike[str] = "/sys",
                 dev_root: str | os.PathLike[str] = "/dev", *,
                 node_wait: float | None = None) -> None:
        """``node_wait``: seconds :meth:`wait_node` waits (None: :data:`NODE_WAIT`)."""
        self.sys_root = Path(sys_root)
        self.dev_root = Path(dev_root)
        self.node_wait = node_wait
        self.class_dir = self.sys_root / "class" / "rpmsg"
        self.bus_dir = self.sys_root / "bus" / "rpmsg" / "devices"
        self.drivers_dir = self.sys_root / "bus" / "rpmsg" / "drivers"
        #: ``remoteprocN`` class devices (drivers/remoteproc/remoteproc_sysfs.c).
        self.remoteproc_dir = self.sys_root / "class" / "remoteproc"

    def __repr__(self) -> str:
        return f"Sysfs({str(self.sys_root)!r}, {str(self.dev_root)!r})"

    # Paths ------------------------------------------------------------------------------

    def endpoint_node(self, index: int) -> str:
        """The device node of endpoint ``index`` (``/dev/rpmsgN``)."""
        return str(self.dev_root / f"rpmsg{index}")

    def ctrl_node(self, index: int) -> str:
        """The device node of control device ``index`` (``/dev/rpmsg_ctrlN``)."""
        return str(self.dev_root / f"rpmsg_ctrl{index}")

    def has_rpmsg_class(self) -> bool:
        """Whether the kernel registered the rpmsg class (a module using it is loaded)."""
        return self.class_dir.is_dir()

    def has_class_device(self, name: str) -> bool:
        return os.path.exists(self.class_dir / name)

    def wait_node(self, path: str | os.PathLike[str]) -> bool:
        """Whether device node ``path`` exists, first waiting up to ``node_wait`` seconds
        while sysfs lists its device (udev/mdev is then about to create the node)."""
        node = Path(path)
        if os.path.exists(node):  # False for any name the OS refuses (too long...)
            return True
        wait = NODE_WAIT if self.node_wait is None else self.node_wait
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and self.has_class_device(node.name):
            time.sleep(_NODE_POLL)
            if os.path.exists(node):
                return True
        return os.path.exists(node)

    def open_node(self, path: str, flags: int, hint: str) -> int:
        """Open device node ``path`` (checked by :func:`rpmsg.linux.nodes.open_node`: a
        character device with the number sysfs gives, never a link or file put in its place),
        waiting for the node as :meth:`wait_node` does; a missing node raises
        NotAvailableError (``hint``: see :func:`missing_node_error`), other failures the
        mapped error of :func:`rpmsg.linux.errors.map_os_error`."""
        from rpmsg.linux.errors import map_os_error
        from rpmsg.linux.nodes import open_node

        for attempt in range(2):
            try:
                return open_node(path, flags, self)
            except FileNotFoundError:
                if attempt or not self.wait_node(path):
                    raise missing_node_error(path, self, hint) from None
            except RpmsgError:  # AccessDeniedError is an OSError too
                raise
            except OSError as exc:
                raise map_os_error(exc, "open", path) from exc
        raise AssertionError("unreachable")

    # Endpoint devices -------------------------------------------------------------------

    def _parent_of(self, class_name: str) -> str | None:
        """Name of the parent device of a class device (its ``device`` link)."""
        entry = self.class_dir / class_name
        parent = _link_name(entry / "device")
        if parent is not None:
            return parent
        real = Path(os.path.realpath(entry)).parent  # without the link: infer from the tree
        if real.name == "rpmsg":  # glue directory below a bus device
            return real.parent.name
        return real.name

    def endpoint(self, index: int) -> EndpointDevice:
        """The endpoint device ``/dev/rpmsg<index>``; NotAvailableError if it does not exist."""
        info = self._endpoint(index)
        if info is None:
            raise NotAvailableError(f"no endpoint device rpmsg{index} in {self.class_dir}")
        return info

    def _endpoint(self, index: int) -> EndpointDevice | None:
        entry = self.class_dir / f"rpmsg{index}"
        name = _read(entry / "name")
        if name is None:
            return None
        parent = self._parent_of(f"rpmsg{index}")
        ctrl = channel = None
        if parent is not None and (m := _CTRL_RE.fullmatch(parent)):
            ctrl = int(m.group(1))
        else:
            channel = parent
        return EndpointDevice(index=index, name=name, src=parse_addr(_read(entry / "src")),
                              dst=parse_addr(_read(entry / "dst")),
                              path=self.endpoint_node(index), ctrl=ctrl, channel=channel)

    def endpoints(self) -> list[EndpointDevice]:
        """Every endpoint device, by index."""
        out = []
        for index in _indices(_listdir(self.class_dir), _EPT_RE):
            info = self._endpoint(index)
            if info is not None:
                out.append(info)
        return out

    def find_endpoints(self, name: str | None = None, src: int | None = None,
                       dst: int | None = None, ctrl: int | None = None) -> list[EndpointDevice]:
        """Endpoint devices matching every criterion given (None matches anything)."""
        return [e for e in self.endpoints()
                if (name is None or e.name == name) and (src is None or e.src == src)
                and (dst is None or e.dst == dst) and (ctrl is None or e.ctrl == ctrl)]

    def ctrl_children(self, index: int) -> set[int]:
        """Indices of the endpoint devices created by control device ``index``."""
        return set(_indices(_listdir(self.class_dir / f"rpmsg_ctrl{index}"), _EPT_RE))

    def endpoint_attrs(self, index: int) -> tuple[str, int | None, int | None] | None:
        """(name, src, dst) of endpoint device ``index``, or None if it is gone."""
        entry = self.class_dir / f"rpmsg{index}"
        name = _read(entry / "name")
        if name is None:
            return None
        return name, parse_addr(_read(entry / "src")), parse_addr(_read(entry / "dst"))

    # Control devices --------------------------------------------------------------------

    def controls(self) -> list[ControlDevice]:
        """Every control device, by index."""
        return [self._control(i) for i in _indices(_listdir(self.class_dir), _CTRL_RE)]

    def control(self, index: int) -> ControlDevice:
        """Control device ``index``; NotAvailableError if it does not exist."""
        if not os.path.exists(self.class_dir / f"rpmsg_ctrl{index}"):
            raise NotAvailableError(f"no control device rpmsg_ctrl{index} in {self.class_dir}")
        return self._control(index)

    def _control(self, index: int) -> ControlDevice:
        name = f"rpmsg_ctrl{index}"
        channel = self._parent_of(name)
        virtio = None
        if channel is not None:
            bus_dev = Path(os.path.realpath(self.class_dir / name / "device"))
            if bus_dev.name == channel:
                virtio = bus_dev.parent.name
        return ControlDevice(index=index, path=self.ctrl_node(index), channel=channel,
                             virtio=virtio, endpoints=tuple(sorted(self.ctrl_children(index))))

    # Channels ---------------------------------------------------------------------------

    def channels(self) -> list[Channel]:
        """Every rpmsg bus device (channels, plus the ns and ctrl pseudo-channels)."""
        out = []
        for dev in _listdir(self.bus_dir):
            info = self._channel(dev)
            if info is not None:
                out.append(info)
        return out

    def channel(self, device: str) -> Channel:
        """The channel whose bus device name is ``device``; NotAvailableError if absent."""
        info = self._channel(device)
        if info is None:
            raise NotAvailableError(f"no rpmsg channel {device!r} in {self.bus_dir}")
        return info

    def find_channels(self, name: str) -> list[Channel]:
        """Channels whose service name (or bus device name) is ``name``."""
        return [c for c in self.channels() if name in (c.name, c.device)]

    def _channel(self, dev: str) -> Channel | None:
        entry = self.bus_dir / dev
        name = _read(entry / "name")
        if name is None:
            return None
        announce_text = _read(entry / "announce")
        override = _read(entry / "driver_override")
        children = _listdir(entry / "rpmsg")
        return Channel(
            device=dev, name=name,
            src=parse_addr(_read(entry / "src")), dst=parse_addr(_read(entry / "dst")),
            announce=None if announce_text is None else announce_text.strip() == "true",
            driver=_link_name(entry / "driver"),
            driver_override=None if override in (None, "(null)", "") else override,
            virtio=Path(os.path.realpath(entry)).parent.name or None,
            endpoints=_indices(children, _EPT_RE), ctrls=_indices(children, _CTRL_RE),
        )


#: The system's sysfs and /dev; tests replace it with a fake tree.
SYSFS = Sysfs()


def default_sysfs() -> Sysfs:
    """The :class:`Sysfs` used when none is given (module attribute ``SYSFS``)."""
    return SYSFS


def missing_node_error(path: str, sysfs: Sysfs, hint: str) -> NotAvailableError:
    """A NotAvailableError explaining why device node ``path`` does not exist.

    ``hint`` is the likely cause when sysfs has no trace of the device either (e.g. "is the
    rpmsg_ctrl module loaded?").
    """
    from rpmsg.linux.errors import not_on_linux

    other_os = not_on_linux()
    if other_os is not None:
        return other_os
    name = Path(path).name
    if sysfs.has_rpmsg_class() and sysfs.has_class_device(name):
        return NotAvailableError(f"no {path}, although sysfs has {sysfs.class_dir / name}: "
                                 "is devtmpfs mounted on /dev (or udev/mdev running)?")
    if not sysfs.has_rpmsg_class():
        return NotAvailableError(f"no {path}: {hint} (there is no {sysfs.class_dir})")
    return NotAvailableError(f"no {path}: {hint}")
