"""Device nodes are checked before they are opened: links, files, FIFOs and foreign devices
planted where /dev/rpmsgN should be are refused; aliases are followed; EACCES and EBUSY name the
node, the fix and the holder."""

from __future__ import annotations

import encodings.ascii  # noqa: F401  (the dropped-privilege child cannot import any more)
import grp  # noqa: F401
import os
import pwd  # noqa: F401
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from linux_fakes import FakeKernel, run_as_nobody

import rpmsg
from rpmsg.errors import AccessDeniedError, NotAvailableError
from rpmsg.linux import Ctrl, Endpoint, nodes
from rpmsg.wire.rpmsg import ADDR_ANY


@pytest.fixture
def kernel(fake: FakeKernel) -> FakeKernel:
    if not fake.char_nodes:
        pytest.skip("making character device nodes needs CAP_MKNOD (run as root)")
    fake.add_ctrl(0)
    fake.add_ept(0, "e", ADDR_ANY, 0x400, ctrl=0)
    return fake


def replace_node(kernel: FakeKernel, make: str) -> Path:
    node = kernel.dev / "rpmsg0"
    node.unlink()
    if make == "symlink":
        target = kernel.root / "victim"
        target.write_text("precious")
        node.symlink_to(target)
    elif make == "file":
        node.write_text("not a device")
    elif make == "fifo":
        os.mkfifo(node)
    elif make == "dir":
        node.mkdir()
    elif make == "other-char":  # /dev/zero's number, while sysfs says 1:3
        os.mknod(node, stat.S_IFCHR | 0o600, os.makedev(1, 5))
    elif make == "block":
        os.mknod(node, stat.S_IFBLK | 0o600, os.makedev(7, 200))
    return node


@pytest.mark.parametrize(("make", "says"), [
    ("symlink", "symbolic link"), ("file", "regular file"), ("fifo", "FIFO"),
    ("dir", "directory"), ("other-char", "sysfs says 1:3"), ("block", "block device")])
def test_foreign_node_is_refused_before_opening(kernel: FakeKernel, make: str,
                                                says: str) -> None:
    replace_node(kernel, make)
    with pytest.raises(NotAvailableError, match=says):
        Endpoint.open(0, sysfs=kernel.sysfs)
    with pytest.raises(NotAvailableError, match=says):
        rpmsg.open(f"linux:{kernel.dev}/rpmsg0", sysfs=str(kernel.sys), dev=str(kernel.dev))
    if make == "symlink":
        assert (kernel.root / "victim").read_text() == "precious"


def test_symlinked_ctrl_is_refused(kernel: FakeKernel) -> None:
    ctrl = kernel.dev / "rpmsg_ctrl0"
    ctrl.unlink()
    ctrl.symlink_to(kernel.dev / "rpmsg0")  # a real (fake) device, but not at its own name
    with pytest.raises(NotAvailableError, match="symbolic link"):
        Ctrl.open(0, sysfs=kernel.sysfs)


def test_node_swapped_after_the_check_is_caught(kernel: FakeKernel,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The lstat check and the open race: fstat of the opened descriptor must agree."""
    node = str(kernel.dev / "rpmsg0")
    real_open = os.open

    def swap_then_open(path: str, flags: int, *args: int) -> int:
        if path == node:
            os.unlink(node)
            os.mknod(node, stat.S_IFCHR | 0o600, os.makedev(1, 5))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", swap_then_open)
    with pytest.raises(NotAvailableError, match="replaced meanwhile"):
        Endpoint.open_fd(0, sysfs=kernel.sysfs)


def test_swap_to_symlink_after_the_check_is_caught(kernel: FakeKernel,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    node = str(kernel.dev / "rpmsg0")
    real_open = os.open

    def swap_then_open(path: str, flags: int, *args: int) -> int:
        if path == node:
            os.unlink(node)
            os.symlink(os.devnull, node)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", swap_then_open)
    with pytest.raises(NotAvailableError, match="symbolic link"):
        Endpoint.open_fd(0, sysfs=kernel.sysfs)


def test_udev_style_alias_is_followed(kernel: FakeKernel) -> None:
    alias = kernel.dev / "rpmsg" / "m4" / "e"
    alias.parent.mkdir(parents=True)
    alias.symlink_to("../../rpmsg0")
    assert nodes.canonical_path(alias) == str(kernel.dev / "rpmsg0")
    fd = Endpoint.open_fd(str(alias), sysfs=kernel.sysfs)
    os.close(fd)
    with rpmsg.open(f"linux:{alias}", sysfs=str(kernel.sys), dev=str(kernel.dev)) as dev:
        assert dev.link.describe()["device"] == str(kernel.dev / "rpmsg0")
    # An alias to something that is not an rpmsg device is refused like the node itself.
    bad = kernel.dev / "rpmsg" / "m4" / "bad"
    bad.symlink_to(kernel.root / "victim")
    (kernel.root / "victim").write_text("x")
    with pytest.raises(NotAvailableError, match="regular file"):
        Endpoint.open_fd(str(bad), sysfs=kernel.sysfs)


def test_rpmsg_majors_from_proc_devices(tmp_path: Path) -> None:
    devices = tmp_path / "devices"
    devices.write_text("Character devices:\n  1 mem\n234 rpmsg_ctrl\n235 rpmsg_char\n"
                       "236 rpmsg\n\nBlock devices:\n237 rpmsg\n")
    assert nodes.rpmsg_majors(str(devices)) == {234, 235, 236}
    assert nodes.rpmsg_majors(str(tmp_path / "absent")) is None


@pytest.fixture
def open_tree() -> Iterator[FakeKernel]:
    """A fake kernel in a directory other users may traverse (tmp_path is private)."""
    root = Path(tempfile.mkdtemp(prefix="rpmsg-nodes-"))
    root.chmod(0o755)
    kernel = FakeKernel(root)
    for d in (kernel.sys, kernel.dev):
        d.chmod(0o755)
    try:
        yield kernel
    finally:
        kernel.close()
        shutil.rmtree(root)


def test_permission_denied_names_the_node_and_the_fix(open_tree: FakeKernel) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    kernel = open_tree
    kernel.add_ctrl(0)
    kernel.add_ept(0, "e", ADDR_ANY, 0x400, ctrl=0)
    if not kernel.char_nodes:
        pytest.skip("making character device nodes needs CAP_MKNOD")
    code, out = run_as_nobody(lambda: Endpoint.open_fd(0, sysfs=kernel.sysfs))
    assert code == 1
    kind, _, message = out.partition("|")
    assert kind == "AccessDeniedError", out
    assert f"{kernel.dev}/rpmsg0" in message and "owner root:root, mode 0600" in message
    assert "udev-rules --group" in message
    assert issubclass(AccessDeniedError, PermissionError)
    code, out = run_as_nobody(lambda: Ctrl.open(0, sysfs=kernel.sysfs))
    assert out.startswith("AccessDeniedError|") and "rpmsg_ctrl0" in out
