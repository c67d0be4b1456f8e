"""``/dev/rpmsg_ctrlN``: create and destroy endpoint devices and channels through the kernel.

``RPMSG_CREATE_EPT_IOCTL`` does not say which ``/dev/rpmsgM`` it made, so
:meth:`Ctrl.create_endpoint` compares the control device's sysfs children before and after
the ioctl and keeps the new one whose name/src/dst match the request: endpoints that already
existed (even with the same name) and ones other processes create meanwhile with other
parameters are never mistaken for it (``shared/spec/linux-chardev.md`` §5.2, §5.4).
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import time
from typing import Any

from rpmsg.errors import EndpointClosedError, NotAvailableError
from rpmsg.linux.chardev import IoctlFn, endpoint_node, open_fd
from rpmsg.linux.errors import AmbiguousEndpointError, map_os_error
from rpmsg.linux.ioctl import (
    RPMSG_CREATE_DEV_IOCTL,
    RPMSG_CREATE_EPT_IOCTL,
    RPMSG_DESTROY_EPT_IOCTL,
    RPMSG_RELEASE_DEV_IOCTL,
)
from rpmsg.linux.nodes import INDEX
from rpmsg.linux.sysfs import (
    Channel,
    EndpointDevice,
    Sysfs,
    default_sysfs,
)
from rpmsg.wire.linux import EndpointInfo
from rpmsg.wire.rpmsg import ADDR_ANY

_CTRL_NODE_RE = re.compile(rf"(?:.*/)?rpmsg_ctrl({INDEX})")
_INDEX_RE = re.compile(INDEX)
#: How long to look for a new endpoint device in sysfs after CREATE_EPT returned. The kernel
#: registers it before the ioctl returns, so this only covers slow or odd setups.
FIND_TIMEOUT = 2.0


def _signed(addr: int) -> int:
    """An address as the kernel prints it with ``%d`` (ANY is -1)."""
    return addr - (1 << 32) if addr >= 1 << 31 else addr


class Ctrl:
    """An open rpmsg control device. Use :meth:`open`; it is a context manager."""

    def __init__(self, fd: int, index: int, *, path: str, sysfs: Sysfs | None = None,
                 ioctl: IoctlFn = fcntl.ioctl) -> None:
        """Wrap an open descriptor of control device ``index`` (tests inject ``ioctl``)."""
        self._fd = fd
        self.index = index
        self.path = path
        self.sysfs = sysfs or default_sysfs()
        self._ioctl = ioctl
        self._closed = False

    @classmethod
    def open(cls, index: int | str = 0, *, sysfs: Sysfs | None = None) -> Ctrl:
        """Open ``/dev/rpmsg_ctrl<index>`` (or a path such as ``/dev/rpmsg_ctrl1``).

        Raises :class:`~rpmsg.errors.NotAvailableError` with the likely cause when the device
        does not exist (not Linux, module not loaded, no remote processor, no devtmpfs).
        """
        sysfs = sysfs or default_sysfs()
        if isinstance(index, int):
            num, path = index, sysfs.ctrl_node(index)
        else:
            match = _CTRL_NODE_RE.fullmatch(index)
            if _INDEX_RE.fullmatch(index):
                num, path = int(index), sysfs.ctrl_node(int(index))
            elif match is None:
                raise NotAvailableError(f"{index!r} does not name a control device "
                                        "(expected N, rpmsg_ctrlN or /dev/rpmsg_ctrlN)")
            else:
                num = int(match.group(1))
                path = index if "/" in index else sysfs.ctrl_node(num)
        fd = sysfs.open_node(path, os.O_RDWR | os.O_CLOEXEC,
                             "is the rpmsg_ctrl module loaded (Linux 5.18+; before that, bind "
                             "a channel to rpmsg_chrdev) and a remote processor running?")
        return cls(fd, num, path=path, sysfs=sysfs)

    def fileno(self) -> int:
        self._check_open()
        return self._fd

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return f"<rpmsg.linux.Ctrl {self.path}{' closed' if self._closed else ''}>"

    # Endpoints --------------------------------------------------------------------------

    def create_endpoint(self, name: str, src: int = ADDR_ANY, dst: int = ADDR_ANY) -> int:
        """Create endpoint device ``/dev/rpmsgN`` for (name, src, dst) and return N.

        ``src`` ANY lets the kernel pick the local address each time the device is opened;
        ``dst`` ANY makes a receive-only endpoint. Several endpoints may share a name. Where
        udev/mdev makes the node, it may appear a moment after the ioctl: this waits up to
        ``sysfs.node_wait`` seconds for it (:meth:`~rpmsg.linux.sysfs.Sysfs.wait_node`).
        """
        info = EndpointInfo(name, src, dst)
        before = self.sysfs.ctrl_children(self.index)
        self._call(RPMSG_CREATE_EPT_IOCTL, info, "RPMSG_CREATE_EPT_IOCTL")
        deadline = time.monotonic() + FIND_TIMEOUT
        while True:
            found = self._new_matching(before, info)
            if found is not None:
                self.sysfs.wait_node(self.sysfs.endpoint_node(found))
                return found
            if time.monotonic() >= deadline:
                raise NotAvailableError(
                    f"{self.path}: the kernel accepted the endpoint {name!r} but no new "
                    f"rpmsgN with that name appeared under {self.sysfs.class_dir}/"
                    f"rpmsg_ctrl{self.index}")
            time.sleep(0.01)

    def _new_matching(self, before: set[int], info: EndpointInfo) -> int | None:
        """The lowest new child of this ctrl whose sysfs name/src/dst equal ``info``.

        Two new identical endpoints (another process created the same name/src/dst at the
        same moment) cannot be told apart; they are interchangeable, so the lowest is taken.
        """
        for index in sorted(self.sysfs.ctrl_children(self.index) - before):
            if self.sysfs.endpoint_attrs(index) == (info.name, info.src, info.dst):
                return index
        return None

    def endpoints(self) -> list[EndpointDevice]:
        """The endpoint devices this control device created."""
        return self.sysfs.find_endpoints(ctrl=self.index)

    def find_endpoint(self, name: str | None = None, src: int | None = None,
                      dst: int | None = None) -> EndpointDevice:
        """The one endpoint of this ctrl matching the given name/src/dst (None = any).

        Several matches with identical name/src/dst are interchangeable and the highest
        index is returned; matches that differ raise
        :class:`~rpmsg.linux.errors.AmbiguousEndpointError`.
        """
        matches = self.sysfs.find_endpoints(name, src, dst, ctrl=self.index)
        if not matches:
            raise NotAvailableError(
                f"{self.path} has no endpoint with name={name!r} src={src} dst={dst}")
        if len({(m.name, m.src, m.dst) for m in matches}) > 1:
            listed = ", ".join(f"rpmsg{m.index} ({m.name} {m.src} -> {m.dst})" for m in matches)
            raise AmbiguousEndpointError(
                f"several endpoints of {self.path} match: {listed}; give src/dst or the index")
        return max(matches, key=lambda m: m.index)

    def destroy_endpoint(self, name: str | None = None, src: int | None = None,
                         dst: int | None = None, *, index: int | None = None) -> int:
        """Destroy an endpoint device this ctrl created; return its index.

        Give ``index`` or a name/src/dst query (see :meth:`find_endpoint`). The kernel's
        ``RPMSG_DESTROY_EPT_IOCTL`` acts on the endpoint's own descriptor, so the device is
        opened for it: :class:`~rpmsg.errors.AlreadyOpenError` if someone has it open.
        """
        self._check_open()
        if index is None:
            index = self.find_endpoint(name, src, dst).index
        destroy_endpoint_device(index, sysfs=self.sysfs, ioctl=self._ioctl)
        return index

    # Channels (Linux 5.18+) -------------------------------------------------------------

    def create_channel(self, name: str, src: int = ADDR_ANY,
                       dst: int = ADDR_ANY) -> Channel | None:
        """Create an rpmsg channel (``RPMSG_CREATE_DEV_IOCTL``) and return it if found.

        The kernel matches a driver by name (``rpmsg-raw`` gives a ``/dev/rpmsgN``); with
        ``src`` not ANY it announces the channel to the remote once a driver probes.
        """
        info = EndpointInfo(name, src, dst)
        self._call(RPMSG_CREATE_DEV_IOCTL, info, "RPMSG_CREATE_DEV_IOCTL",
                   {errno.ENXIO: f"the kernel could not create channel {name!r} (does it "
                    "exist already?)"})
        suffix = f".{name}.{_signed(src)}.{_signed(dst)}"
        virtio = self.sysfs.control(self.index).virtio
        deadline = time.monotonic() + FIND_TIMEOUT
        while True:
            for chan in self.sysfs.channels():
                if chan.device.endswith(suffix) and (virtio is None or chan.virtio == virtio):
                    return chan
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

    def release_channel(self, name: str, src: int = ADDR_ANY, dst: int = ADDR_ANY) -> None:
        """Remove a channel (``RPMSG_RELEASE_DEV_IOCTL``; ANY matches any address).

        An announced channel sends NS DESTROY. Raises :class:`~rpmsg.errors.NotAvailableError`
        if no such channel exists.
        """
        self._call(RPMSG_RELEASE_DEV_IOCTL, EndpointInfo(name, src, dst),
                   "RPMSG_RELEASE_DEV_IOCTL",
                   {errno.EINVAL: f"no channel {name!r} with src={src:#x} dst={dst:#x} "
                    "to release"})

    def _call(self, request: int, info: EndpointInfo, what: str,
              not_available: dict[int, str] | None = None) -> Any:
        """Run a ctrl ioctl; errnos in ``not_available`` become NotAvailableError(message)."""
        self._check_open()
        try:
            return self._ioctl(self._fd, request, info.encode())
        except OSError as exc:
            message = (not_available or {}).get(exc.errno or 0)
            if message is not None:
                raise NotAvailableError(f"{self.path}: {message}") from exc
            raise map_os_error(exc, "ioctl", f"{self.path}: {what}") from exc

    # Lifecycle --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise EndpointClosedError(f"{self.path} is closed")

    def close(self) -> None:
        """Close the control device (endpoint devices it created stay). Idempotent."""
        if self._closed:
            return
        self._closed = True
        os.close(self._fd)

    def __enter__(self) -> Ctrl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def destroy_endpoint_device(n: int | str, *, sysfs: Sysfs | None = None,
                            ioctl: IoctlFn = fcntl.ioctl) -> None:
    """Open endpoint device ``n`` and destroy it with ``RPMSG_DESTROY_EPT_IOCTL``."""
    sysfs = sysfs or default_sysfs()
    path, _index = endpoint_node(n, sysfs)
    fd = open_fd(path, nonblocking=True, sysfs=sysfs)
    try:
        ioctl(fd, RPMSG_DESTROY_EPT_IOCTL, 0)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            raise NotAvailableError(f"{path}: the kernel refused to destroy it (EINVAL): a "
                                    "channel's default endpoint cannot be destroyed") from exc
        raise map_os_error(exc, "ioctl", f"{path}: RPMSG_DESTROY_EPT_IOCTL") from exc
    finally:
        os.close(fd)

