"""Remote processors in a fake sysfs tree: listing with their rpmsg devices, start/stop/firmware
with the kernel's rules and typed errors (UML has no remoteproc, so this is the fake's job)."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from linux_fakes import FakeKernel, run_as_nobody

from rpmsg.errors import AccessDeniedError, InvalidArgumentError, NotAvailableError
from rpmsg.linux import remoteproc
from rpmsg.linux.errors import AmbiguousNameError, KernelError, RemoteprocStateError
from rpmsg.wire.rpmsg import ADDR_ANY


def two_processors(fake: FakeKernel, layout: str = "6.1") -> None:
    """m4 (running, virtio0 with a service, a ctrl endpoint) and dsp (offline, virtio1)."""
    fake.add_remoteproc(0, "m4", state="running", firmware="m4-demo.elf", virtio="virtio0",
                        layout=layout)
    fake.add_remoteproc(1, "dsp", virtio="virtio1", layout=layout)
    fake.add_channel("rpmsg_ns", 53, 53, virtio="virtio0", driver="rpmsg_ns")
    fake.add_ctrl(0, virtio="virtio0")
    raw = fake.add_channel("rpmsg-raw", ADDR_ANY, 0x400, virtio="virtio0",
                           driver="rpmsg_chrdev")
    fake.add_ept(0, "rpmsg-raw", 0x400, 0x400, channel=raw)
    fake.add_ept(1, "my-ept", ADDR_ANY, 0x401, ctrl=0)
    fake.add_channel("rpmsg_ns", 53, 53, virtio="virtio1", driver="rpmsg_ns")
    fake.add_ctrl(1, virtio="virtio1")
    # A virtio rpmsg device of no remote processor (a VM's, as in UML).
    fake.add_channel("rpmsg_ns", 53, 53, virtio="virtio2", driver="rpmsg_ns")


@pytest.mark.parametrize("layout", ["6.1", "5.15"])
def test_list_ties_devices_to_their_processor(fake: FakeKernel, layout: str) -> None:
    two_processors(fake, layout)
    m4, dsp = remoteproc.list_remoteprocs(fake.sysfs)
    assert (m4.index, m4.device, m4.name, m4.state, m4.firmware) == (
        0, "remoteproc0", "m4", "running", "m4-demo.elf")
    assert m4.running and not dsp.running
    assert m4.virtio == ("virtio0",)
    assert sorted(m4.channels) == ["virtio0.rpmsg-raw.-1.1024", "virtio0.rpmsg_ctrl.0.0",
                                   "virtio0.rpmsg_ns.53.53"]
    assert m4.controls == (0,) and m4.endpoints == (0, 1)
    assert (dsp.virtio, dsp.controls, dsp.endpoints) == (("virtio1",), (1,), ())
    assert m4.to_dict()["name"] == "m4" and m4.label() == "remoteproc0 (m4)"


def test_no_remoteproc_class(fake: FakeKernel) -> None:
    assert remoteproc.list_remoteprocs(fake.sysfs) == []
    with pytest.raises(NotAvailableError, match="CONFIG_REMOTEPROC"):
        remoteproc.find_remoteproc("m4", fake.sysfs)


def test_find_by_name_device_or_index(fake: FakeKernel) -> None:
    two_processors(fake)
    for name in ("dsp", "remoteproc1", "1"):
        assert remoteproc.find_remoteproc(name, fake.sysfs).index == 1
    with pytest.raises(NotAvailableError, match=r"no remote processor named 'gpu'; known: "
                       r"remoteproc0 \(m4\) running, remoteproc1 \(dsp\) offline"):
        remoteproc.find_remoteproc("gpu", fake.sysfs)
    fake.add_remoteproc(2, "dsp")
    with pytest.raises(AmbiguousNameError, match="remoteproc1, remoteproc2"):
        remoteproc.find_remoteproc("dsp", fake.sysfs)


def test_start_and_stop(fake: FakeKernel) -> None:
    two_processors(fake)
    started = remoteproc.start("dsp", sysfs=fake.sysfs, write=fake.write_attr)
    assert started.state == "running"
    with pytest.raises(RemoteprocStateError, match=r"already running; stop it first with "
                       r"`rpmsg rproc stop dsp`") as info:
        remoteproc.start("dsp", sysfs=fake.sysfs, write=fake.write_attr)
    assert info.value.state == "running"
    assert remoteproc.stop("dsp", sysfs=fake.sysfs, write=fake.write_attr).state == "offline"
    with pytest.raises(RemoteprocStateError, match="is not running"):
        remoteproc.stop("dsp", sysfs=fake.sysfs, write=fake.write_attr)


def test_start_with_firmware(fake: FakeKernel) -> None:
    two_processors(fake)
    proc = remoteproc.start("dsp", "dsp-fw.elf", sysfs=fake.sysfs, write=fake.write_attr)
    assert (proc.state, proc.firmware) == ("running", "dsp-fw.elf")
    with pytest.raises(RemoteprocStateError, match="already running"):
        remoteproc.start("m4", "other.elf", sysfs=fake.sysfs, write=fake.write_attr)
    assert remoteproc.find_remoteproc("m4", fake.sysfs).firmware == "m4-demo.elf"
    with pytest.raises(RemoteprocStateError, match="cannot change its firmware while running"):
        remoteproc.set_firmware("m4", "other.elf", sysfs=fake.sysfs, write=fake.write_attr)
    for bad in ("", "a\nb", "a\0b"):
        with pytest.raises(InvalidArgumentError):
            remoteproc.start("dsp", bad, sysfs=fake.sysfs, write=fake.write_attr)


def test_races_and_kernel_errors_are_typed(fake: FakeKernel) -> None:
    two_processors(fake)

    def write(path: Path, text: str) -> None:  # another process started it meanwhile
        raise OSError(errno.EBUSY, "Device or resource busy")

    with pytest.raises(RemoteprocStateError, match="already running"):
        remoteproc.start("dsp", sysfs=fake.sysfs, write=write)
    fake.boot_errors[1] = errno.ENOENT
    with pytest.raises(NotAvailableError, match=r"firmware 'rproc-fw\.elf' not found"):
        remoteproc.start("dsp", sysfs=fake.sysfs, write=fake.write_attr)
    fake.boot_errors[1] = errno.ETIMEDOUT
    with pytest.raises(KernelError, match=r"ETIMEDOUT.*dmesg"):
        remoteproc.start("dsp", sysfs=fake.sysfs, write=fake.write_attr)


@pytest.fixture
def open_tree() -> Iterator[FakeKernel]:
    root = Path(tempfile.mkdtemp(prefix="rpmsg-rproc-"))
    root.chmod(0o755)
    kernel = FakeKernel(root)
    try:
        yield kernel
    finally:
        shutil.rmtree(root)


def test_not_root_is_access_denied(open_tree: FakeKernel) -> None:
    """A real write by an unprivileged process to the (root-owned, 0644) attribute."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    open_tree.add_remoteproc(0, "m4", virtio="virtio0")
    for d, _dirs, _files in os.walk(open_tree.root):
        os.chmod(d, 0o755)
    code, out = run_as_nobody(lambda: remoteproc.start("m4", sysfs=open_tree.sysfs))
    kind, _, message = out.partition("|")
    assert (code, kind) == (1, "AccessDeniedError"), out
    assert "needs root" in message and "sudo rpmsg rproc start m4" in message
    assert (open_tree.rproc_class / "remoteproc0" / "state").read_text() == "offline\n"
    assert issubclass(AccessDeniedError, PermissionError)
