"""A fake Linux rpmsg kernel for the rpmsg.linux unit tests: sysfs tree, /dev nodes, ioctls.

The tree copies the real layout (``shared/spec/linux-chardev.md`` §5.4): bus devices below
their virtio device, class devices as children (``rpmsg/rpmsgM`` glue directory below a bus
device, ``rpmsgM`` directly below ``rpmsg_ctrlN``), ``device`` links to parents, and
``/sys/class/rpmsg`` and ``/sys/bus/rpmsg/devices`` as symlinks. Remote processors
(:meth:`FakeKernel.add_remoteproc`) sit below a platform device with their virtio devices below
them, in the pre-6.1 (``remoteprocN#vdev0buffer``) or 6.1+ (``rproc-virtio.N.auto``) layout
(drivers/remoteproc/remoteproc_core.c), and :meth:`FakeKernel.write_attr` writes their
``state``/``firmware`` with the kernel's rules (remoteproc_sysfs.c). Device nodes are
character devices with the numbers their sysfs ``dev`` says (those of /dev/null, so opening one
is harmless: reads are empty, writes vanish), or regular files where this process may not
make device nodes (:attr:`FakeKernel.char_nodes` False); endpoints the transport opens are
socketpairs whose other end the test holds.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import stat
from collections.abc import Callable
from pathlib import Path

from rpmsg.linux import ioctl as ioc
from rpmsg.linux.chardev import Chardev
from rpmsg.linux.ctrl import Ctrl
from rpmsg.linux.endpoint import Endpoint
from rpmsg.linux.sysfs import Sysfs
from rpmsg.wire.linux import EndpointInfo


def signed(addr: int) -> int:
    return addr - (1 << 32) if addr >= 1 << 31 else addr


#: Device number of the fake nodes: /dev/null's (1:3), harmless to open, read and write.
NODE_RDEV = os.makedev(1, 3)


def make_node(path: Path, rdev: int = NODE_RDEV) -> bool:
    """A character device node at ``path``; a regular file if mknod is not permitted."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, rdev)
        return True
    except PermissionError:
        path.touch()
        return False


class FakeKernel:
    """Builds and mutates a fake rpmsg sysfs + /dev; its :meth:`ioctl` acts like the kernel."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sys = root / "sys"
        self.dev = root / "dev"
        self.devices = self.sys / "devices" / "platform" / "uml-virtio.0"
        self.class_dir = self.sys / "class" / "rpmsg"
        self.bus_dir = self.sys / "bus" / "rpmsg" / "devices"
        self.drivers_dir = self.sys / "bus" / "rpmsg" / "drivers"
        for d in (self.dev, self.devices, self.class_dir, self.bus_dir, self.drivers_dir):
            d.mkdir(parents=True, exist_ok=True)
        for drv in ("rpmsg_chrdev", "rpmsg_ctrl", "rpmsg_ns"):
            self.add_driver(drv)
        self.sysfs = Sysfs(self.sys, self.dev)
        self.calls: list[tuple[str, object]] = []
        #: Called inside CREATE_EPT before the new device appears (simulates other processes).
        self.on_create: Callable[[FakeKernel], None] | None = None
        self.fd_index: dict[int, int] = {}
        self.remotes: dict[int, socket.socket] = {}
        self.endpoints: list[Chardev] = []
        self.facades: list[Endpoint] = []
        #: Where each virtio device's directory is (below a remote processor, or not).
        self.virtio_dirs: dict[str, Path] = {}
        self.rproc_class = self.sys / "class" / "remoteproc"
        #: errno that writing "start" to remoteprocN/state fails with (a failing boot).
        self.boot_errors: dict[int, int] = {}
        #: Whether device nodes are real character devices (False: regular files).
        self.char_nodes = True

    # Building ---------------------------------------------------------------------------

    def add_driver(self, name: str) -> None:
        d = self.drivers_dir / name
        d.mkdir(exist_ok=True)
        for f in ("bind", "unbind"):
            (d / f).touch()

    @staticmethod
    def _attrs(path: Path, **attrs: str) -> None:
        for key, value in attrs.items():
            (path / key).write_text(f"{value}\n")

    def add_remoteproc(self, index: int, name: str, *, state: str = "offline",
                       firmware: str = "rproc-fw.elf", virtio: str | None = None,
                       layout: str = "6.1") -> Path:
        """``remoteprocN`` below a platform device; ``virtio`` names its virtio device,
        placed as Linux 6.1+ (``rproc-virtio.N.auto``) or older (``remoteprocN#vdev0buffer``)
        kernels do."""
        parent = self.sys / "devices" / "platform" / "soc" / f"{index + 1}0000000.{name}"
        d = parent / "remoteproc" / f"remoteproc{index}"
        d.mkdir(parents=True)
        self._attrs(d, name=name, state=state, firmware=firmware, recovery="enabled",
                    coredump="disabled")
        self.rproc_class.mkdir(parents=True, exist_ok=True)
        (self.rproc_class / f"remoteproc{index}").symlink_to(d)
        (d / "subsystem").symlink_to(self.rproc_class)  # as every sysfs device has
        if virtio is not None:
            glue = f"rproc-virtio.{index}.auto" if layout == "6.1" else \
                f"remoteproc{index}#vdev0buffer"
            vdir = d / glue / virtio
            vdir.mkdir(parents=True)
            self.virtio_dirs[virtio] = vdir
        return d

    def write_attr(self, path: Path, text: str) -> None:
        """Write a remoteproc attribute as the kernel would (remoteproc_sysfs.c)."""
        entry = Path(os.path.realpath(path.parent))
        index = int(path.parent.name[len("remoteproc"):])
        state = (entry / "state").read_text().strip()
        running = state in ("running", "attached")
        if path.name == "state":
            if text == "start":
                if running:
                    raise OSError(errno.EBUSY, "Device or resource busy")
                if index in self.boot_errors:
                    raise OSError(self.boot_errors[index], os.strerror(self.boot_errors[index]))
                text = "running"
            elif text == "stop":
                if not running:
                    raise OSError(errno.EINVAL, "Invalid argument")
                text = "offline"
            else:
                raise OSError(errno.EINVAL, "Invalid argument")
        elif path.name == "firmware":
            if state != "offline":
                raise OSError(errno.EBUSY, "Device or resource busy")
            if not text.split("\n")[0]:
                raise OSError(errno.EINVAL, "Invalid argument")
        else:
            raise OSError(errno.EACCES, "Permission denied")
        (entry / path.name).write_text(text + "\n")

    def virtio_dir(self, virtio: str) -> Path:
        return self.virtio_dirs.get(virtio, self.devices / virtio)

    def add_channel(self, name: str, src: int, dst: int, *, virtio: str = "virtio0",
                    driver: str | None = None, announce: bool = False) -> str:
        devname = f"{virtio}.{name}.{signed(src)}.{signed(dst)}"
        d = self.virtio_dir(virtio) / devname
        d.mkdir(parents=True)
        self._attrs(d, name=name, src=f"0x{src:x}", dst=f"0x{dst:x}",
                    announce="true" if announce else "false", driver_override="(null)",
                    modalias=f"rpmsg:{name}")
        (self.bus_dir / devname).symlink_to(d)
        if driver is not None:
            self.set_driver(devname, driver)
        return devname

    def set_driver(self, devname: str, driver: str) -> None:
        link = self.devices_of(devname) / "driver"
        if link.is_symlink():
            link.unlink()
        link.symlink_to(self.drivers_dir / driver)

    def devices_of(self, devname: str) -> Path:
        return Path(os.path.realpath(self.bus_dir / devname))

    def add_ctrl(self, index: int = 0, *, virtio: str = "virtio0") -> None:
        devname = self.add_channel("rpmsg_ctrl", 0, 0, virtio=virtio, driver="rpmsg_ctrl")
        bus_dev = self.devices_of(devname)
        c = bus_dev / "rpmsg" / f"rpmsg_ctrl{index}"
        c.mkdir(parents=True)
        (c / "device").symlink_to(bus_dev)
        self._node(c, f"rpmsg_ctrl{index}")
        (self.class_dir / f"rpmsg_ctrl{index}").symlink_to(c)

    def add_ept(self, index: int, name: str, src: int, dst: int, *, ctrl: int | None = None,
                channel: str | None = None) -> None:
        if ctrl is not None:
            parent = Path(os.path.realpath(self.class_dir / f"rpmsg_ctrl{ctrl}"))
            e = parent / f"rpmsg{index}"
        else:
            assert channel is not None
            parent = self.devices_of(channel)
            e = parent / "rpmsg" / f"rpmsg{index}"
        e.mkdir(parents=True)
        self._attrs(e, name=name, src=str(signed(src)), dst=str(signed(dst)))
        (e / "device").symlink_to(parent)
        self._node(e, f"rpmsg{index}")
        (self.class_dir / f"rpmsg{index}").symlink_to(e)

    def _node(self, class_dev: Path, name: str) -> None:
        """The /dev node of a class device and its sysfs ``dev`` number."""
        (class_dev / "dev").write_text(f"{os.major(NODE_RDEV)}:{os.minor(NODE_RDEV)}\n")
        self.char_nodes = make_node(self.dev / name) and self.char_nodes

    def remove_ept(self, index: int) -> None:
        link = self.class_dir / f"rpmsg{index}"
        shutil.rmtree(os.path.realpath(link))
        link.unlink()
        (self.dev / f"rpmsg{index}").unlink()

    def next_index(self) -> int:
        used = {int(p.name[5:]) for p in self.class_dir.iterdir() if p.name[5:].isdigit()}
        n = 0
        while n in used:
            n += 1
        return n

    def ept_names(self) -> dict[int, str]:
        return {int(p.name[5:]): (p / "name").read_text().strip()
                for p in self.class_dir.iterdir() if p.name[5:].isdigit()}

    # The kernel's side of the ioctls ----------------------------------------------------

    def _index_of(self, fd: int) -> int:
        name = Path(os.readlink(f"/proc/self/fd/{fd}")).name
        if name.startswith("rpmsg") and name[5:].isdigit():
            return int(name[5:])
        return self.fd_index[fd]  # a socketpair standing in for an opened device

    def ioctl(self, fd: int, request: int, arg: object = 0, mutate: bool = False) -> int:
        self.calls.append((hex(request), arg))
        if request == ioc.RPMSG_CREATE_EPT_IOCTL:
            assert isinstance(arg, bytes)
            info = EndpointInfo.decode(arg)
            if self.on_create is not None:
                self.on_create(self)
            self.add_ept(self.next_index(), info.name, info.src, info.dst, ctrl=0)
            return 0
        if request == ioc.RPMSG_DESTROY_EPT_IOCTL:
            index = self._index_of(fd)
            if not (self.class_dir / f"rpmsg{index}" / "device").resolve().name.startswith(
                    "rpmsg_ctrl"):
                raise OSError(errno.EINVAL, "Invalid argument")
            self.remove_ept(index)
            return 0
        if request == ioc.RPMSG_CREATE_DEV_IOCTL:
            assert isinstance(arg, bytes)
            info = EndpointInfo.decode(arg)
            devname = f"virtio0.{info.name}.{signed(info.src)}.{signed(info.dst)}"
            if (self.bus_dir / devname).exists():
                raise OSError(errno.ENXIO, "No such device or address")
            self.add_channel(info.name, info.src, info.dst)
            if info.name == "rpmsg-raw":
                self.set_driver(devname, "rpmsg_chrdev")
                self.add_ept(self.next_index(), info.name, info.src, info.dst, channel=devname)
            return 0
        if request == ioc.RPMSG_RELEASE_DEV_IOCTL:
            assert isinstance(arg, bytes)
            info = EndpointInfo.decode(arg)
            for dev in sorted(os.listdir(self.bus_dir)):
                name = (self.bus_dir / dev / "name").read_text().strip()
                if name == info.name:
                    shutil.rmtree(self.devices_of(dev))
                    (self.bus_dir / dev).unlink()
                    return 0
            raise OSError(errno.EINVAL, "Invalid argument")
        if request == ioc.RPMSG_SET_INCOMING_FLOWCONTROL:  # virtio: no flow control
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        if request == ioc.RPMSG_GET_OUTGOING_FLOWCONTROL:
            assert isinstance(arg, bytearray) and mutate
            arg[:] = bytes(4)
            return 0
        raise OSError(errno.EINVAL, "Invalid argument")

    def open_ctrl(self, index: int = 0) -> Ctrl:
        path = str(self.dev / f"rpmsg_ctrl{index}")
        return Ctrl(os.open(path, os.O_RDWR), index, path=path, sysfs=self.sysfs,
                    ioctl=self.ioctl)

    def opener(self, n: int | str) -> Chardev:
        """Open "endpoint device" n as a socketpair; the test holds the remote end."""
        index = int(str(n).rsplit("rpmsg", 1)[-1])
        assert (self.dev / f"rpmsg{index}").exists(), f"no fake /dev/rpmsg{index}"
        local, remote = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fd = local.detach()
        self.fd_index[fd] = index
        self.remotes[index] = remote
        chardev = Chardev(fd, fd, path=str(self.dev / f"rpmsg{index}"), index=index,
                          device=True, sysfs=self.sysfs, ioctl=self.ioctl)
        self.endpoints.append(chardev)
        return chardev

    def open_endpoint(self, n: int | str) -> Endpoint:
        """``rpmsg.linux.Endpoint.open(n)`` on the socketpair stand-in of :meth:`opener`."""
        ep = Endpoint(self.opener(n))
        self.facades.append(ep)
        return ep

    def close(self) -> None:
        for facade in self.facades:
            facade.close()
        for ep in self.endpoints:
            ep.close()
        for sock in self.remotes.values():
            sock.close()


def run_as_nobody(fn: object) -> tuple[int, str]:
    """Run ``fn()`` in a forked child with uid/gid nobody; (exit status, what it raised)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        status = 0
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            fn()  # type: ignore[operator]
            os.write(w, b"no error")
        except BaseException as exc:
            os.write(w, f"{type(exc).__name__}|{exc}".encode())
            status = 1
        finally:
            os._exit(status)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out
