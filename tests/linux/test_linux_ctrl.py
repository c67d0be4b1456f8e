"""Ctrl: endpoint creation finds the right /dev/rpmsgN; destroy, channels, binding."""

from __future__ import annotations

import errno
import os

import pytest
from linux_fakes import FakeKernel

from rpmsg.errors import AlreadyOpenError, NotAvailableError
from rpmsg.linux import Ctrl, bind_channel
from rpmsg.linux.errors import AmbiguousEndpointError
from rpmsg.linux.sysfs import ControlDevice, EndpointDevice
from rpmsg.wire.rpmsg import ADDR_ANY


@pytest.fixture
def kernel(fake: FakeKernel) -> FakeKernel:
    fake.add_ctrl(0)
    return fake


def test_create_returns_the_new_device(kernel: FakeKernel) -> None:
    with kernel.open_ctrl() as ctrl:
        assert ctrl.create_endpoint(name="my-ept", src=ADDR_ANY, dst=0x400) == 0
        assert ctrl.create_endpoint(name="other", dst=0x401) == 1
    info = kernel.sysfs.endpoint(0)
    assert (info.name, info.src, info.dst, info.ctrl) == ("my-ept", ADDR_ANY, 0x400, 0)
    assert (kernel.dev / "rpmsg0").exists()


def test_same_name_already_alive_is_not_mistaken(kernel: FakeKernel) -> None:
    kernel.add_ept(0, "my-ept", ADDR_ANY, 0x400, ctrl=0)
    kernel.add_ept(2, "my-ept", ADDR_ANY, 0x400, ctrl=0)
    with kernel.open_ctrl() as ctrl:
        assert ctrl.create_endpoint("my-ept", dst=0x400) == 1  # the new one, in the gap
        assert ctrl.create_endpoint("my-ept", dst=0x400) == 3
    assert kernel.ept_names() == {0: "my-ept", 1: "my-ept", 2: "my-ept", 3: "my-ept"}


def test_concurrently_appearing_endpoints_are_not_mistaken(kernel: FakeKernel) -> None:
    def other_process(k: FakeKernel) -> None:
        # Another process creates endpoints on the same ctrl while our ioctl runs: same name
        # but another destination, and another name with our destination.
        k.add_ept(k.next_index(), "my-ept", ADDR_ANY, 0x401, ctrl=0)
        k.add_ept(k.next_index(), "their-ept", ADDR_ANY, 0x400, ctrl=0)

    kernel.on_create = other_process
    with kernel.open_ctrl() as ctrl:
        assert ctrl.create_endpoint("my-ept", dst=0x400) == 2
    assert kernel.sysfs.endpoint(2).dst == 0x400


def test_endpoint_on_another_ctrl_is_ignored(kernel: FakeKernel) -> None:
    kernel.add_ctrl(1, virtio="virtio1")

    def other_ctrl(k: FakeKernel) -> None:
        k.add_ept(k.next_index(), "my-ept", ADDR_ANY, 0x400, ctrl=1)

    kernel.on_create = other_ctrl
    with kernel.open_ctrl() as ctrl:
        assert ctrl.create_endpoint("my-ept", dst=0x400) == 1
    assert kernel.sysfs.endpoint(0).ctrl == 1


def test_ioctl_argument_is_the_endpoint_info(kernel: FakeKernel) -> None:
    with kernel.open_ctrl() as ctrl:
        ctrl.create_endpoint("my-ept", src=ADDR_ANY, dst=0x400)
    request, arg = kernel.calls[0]
    assert request == "0x4028b501"
    assert isinstance(arg, bytes) and arg[32:] == bytes.fromhex("ffffffff00040000")


def test_destroy_by_name_and_by_index(kernel: FakeKernel) -> None:
    with kernel.open_ctrl() as ctrl:
        a = ctrl.create_endpoint("a", dst=0x400)
        b = ctrl.create_endpoint("b", dst=0x400)
        assert ctrl.destroy_endpoint("a") == a
        assert ctrl.destroy_endpoint(index=b) == b
        assert kernel.ept_names() == {}
        with pytest.raises(NotAvailableError):
            ctrl.destroy_endpoint("a")


def test_destroy_ambiguous_and_identical(kernel: FakeKernel) -> None:
    with kernel.open_ctrl() as ctrl:
        ctrl.create_endpoint("a", dst=0x400)
        ctrl.create_endpoint("a", dst=0x401)
        with pytest.raises(AmbiguousEndpointError):
            ctrl.destroy_endpoint("a")
        assert ctrl.destroy_endpoint("a", dst=0x401) == 1
        ctrl.create_endpoint("a", dst=0x400)  # identical twins: interchangeable
        assert ctrl.destroy_endpoint("a") == 1
        assert ctrl.destroy_endpoint("a") == 0


def test_destroy_busy_device(kernel: FakeKernel) -> None:
    def busy(fd: int, request: int, arg: object = 0, mutate: bool = False) -> int:
        raise OSError(errno.EBUSY, "Device or resource busy")

    with kernel.open_ctrl() as ctrl:
        ctrl.create_endpoint("a", dst=0x400)
        ctrl._ioctl = busy
        with pytest.raises(AlreadyOpenError):
            ctrl.destroy_endpoint("a")


def test_channels(kernel: FakeKernel) -> None:
    with kernel.open_ctrl() as ctrl:
        chan = ctrl.create_channel("rpmsg-raw", src=0x500, dst=0x400)
        assert chan is not None
        assert chan.device == "virtio0.rpmsg-raw.1280.1024"
        assert chan.endpoints == (0,)
        with pytest.raises(NotAvailableError, match="exist already"):
            ctrl.create_channel("rpmsg-raw", src=0x500, dst=0x400)
        ctrl.release_channel("rpmsg-raw", src=0x500, dst=0x400)
        with pytest.raises(NotAvailableError, match="no channel"):
            ctrl.release_channel("rpmsg-raw")


def test_open_missing_ctrl_says_why(fake: FakeKernel) -> None:
    with pytest.raises(NotAvailableError, match="rpmsg_ctrl module"):
        Ctrl.open(0, sysfs=fake.sysfs)
    with pytest.raises(NotAvailableError, match="does not name"):
        Ctrl.open("bogus", sysfs=fake.sysfs)


def test_open_real_file_and_close(kernel: FakeKernel) -> None:
    ctrl = Ctrl.open(f"{kernel.dev}/rpmsg_ctrl0", sysfs=kernel.sysfs)
    assert ctrl.index == 0
    fd = ctrl.fileno()
    ctrl.close()
    ctrl.close()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_bind_channel(fake: FakeKernel) -> None:
    dev = fake.add_channel("rpmsg-openamp-demo-channel", ADDR_ANY, 0x400, announce=True)
    # The fake "kernel" probes rpmsg_char when the test writes bind: emulate it up front.
    bind_file = fake.drivers_dir / "rpmsg_chrdev" / "bind"
    fake.add_ept(3, "rpmsg-openamp-demo-channel", 0x400, 0x400, channel=dev)
    result = bind_channel("rpmsg-openamp-demo-channel", sysfs=fake.sysfs)
    assert isinstance(result, EndpointDevice) and result.index == 3
    assert (fake.devices_of(dev) / "driver_override").read_text() == "rpmsg_chrdev"
    assert bind_file.read_text() == dev


def test_bind_channel_unbinds_other_driver_and_finds_ctrl(fake: FakeKernel) -> None:
    fake.add_driver("rpmsg_client_sample")
    dev = fake.add_channel("rpmsg-client-sample", ADDR_ANY, 0x400,
                           driver="rpmsg_client_sample")
    c = fake.devices_of(dev) / "rpmsg" / "rpmsg_ctrl0"  # pre-5.18: a ctrl below the channel
    c.mkdir(parents=True)
    (c / "device").symlink_to(fake.devices_of(dev))
    (fake.class_dir / "rpmsg_ctrl0").symlink_to(c)
    result = bind_channel(dev, sysfs=fake.sysfs)
    assert isinstance(result, ControlDevice) and result.index == 0
    assert (fake.drivers_dir / "rpmsg_client_sample" / "unbind").read_text() == dev


def test_bind_unknown_channel(fake: FakeKernel) -> None:
    with pytest.raises(NotAvailableError, match="announced"):
        bind_channel("nope", sysfs=fake.sysfs)
