"""Discovery of channels, endpoint devices and control devices in a fake sysfs tree."""

from __future__ import annotations

import os
import threading

import pytest
from linux_fakes import FakeKernel, make_node

from rpmsg.errors import NotAvailableError
from rpmsg.linux import Endpoint
from rpmsg.linux.ctrl import Ctrl
from rpmsg.linux.sysfs import Sysfs, missing_node_error, parse_addr
from rpmsg.wire.rpmsg import ADDR_ANY


def build(fake: FakeKernel) -> str:
    """The tree the UML kernel showed (spec kernel-peer-uml.md §4) plus a ctrl endpoint."""
    fake.add_channel("rpmsg_ns", 53, 53, driver="rpmsg_ns")
    fake.add_ctrl(0)
    raw = fake.add_channel("rpmsg-raw", ADDR_ANY, 0x400, driver="rpmsg_chrdev")
    # After probe the bus device's src attribute shows the endpoint's address.
    (fake.devices_of(raw) / "src").write_text("0x400\n")
    fake.add_ept(0, "rpmsg-raw", 0x400, 0x400, channel=raw)
    fake.add_ept(1, "my-ept", ADDR_ANY, 0x400, ctrl=0)
    return raw


def test_parse_addr() -> None:
    assert parse_addr("0x400\n") == 0x400
    assert parse_addr("1024") == 1024
    assert parse_addr("-1") == ADDR_ANY
    assert parse_addr("0xffffffff") == ADDR_ANY
    assert parse_addr("-2147483648") == 0x80000000
    assert parse_addr("garbage") is None
    assert parse_addr(None) is None
    assert parse_addr("0x1ffffffff") is None


def test_endpoints(fake: FakeKernel) -> None:
    raw = build(fake)
    eps = fake.sysfs.endpoints()
    assert [e.index for e in eps] == [0, 1]
    e0, e1 = eps
    assert (e0.name, e0.src, e0.dst, e0.ctrl, e0.channel) == ("rpmsg-raw", 0x400, 0x400, None, raw)
    assert (e1.name, e1.src, e1.dst, e1.ctrl, e1.channel) == ("my-ept", ADDR_ANY, 0x400, 0, None)
    assert e1.path == str(fake.dev / "rpmsg1")
    assert fake.sysfs.find_endpoints(name="my-ept") == [e1]
    assert fake.sysfs.find_endpoints(ctrl=0) == [e1]
    assert fake.sysfs.ctrl_children(0) == {1}


def test_channels(fake: FakeKernel) -> None:
    raw = build(fake)
    chans = {c.device: c for c in fake.sysfs.channels()}
    assert set(chans) == {"virtio0.rpmsg_ns.53.53", "virtio0.rpmsg_ctrl.0.0", raw}
    c = chans[raw]
    assert raw == "virtio0.rpmsg-raw.-1.1024"
    assert (c.name, c.src, c.dst, c.announce, c.driver) == ("rpmsg-raw", 0x400, 0x400, False,
                                                            "rpmsg_chrdev")
    assert c.driver_override is None  # "(null)"
    assert c.virtio == "virtio0"
    assert c.endpoints == (0,)
    assert chans["virtio0.rpmsg_ctrl.0.0"].ctrls == (0,)
    assert fake.sysfs.find_channels("rpmsg-raw") == [c]
    with pytest.raises(NotAvailableError):
        fake.sysfs.channel("virtio0.nope.-1.1")


def test_controls(fake: FakeKernel) -> None:
    build(fake)
    (ctl,) = fake.sysfs.controls()
    assert (ctl.index, ctl.channel, ctl.virtio, ctl.endpoints) == (
        0, "virtio0.rpmsg_ctrl.0.0", "virtio0", (1,))
    assert ctl.path == str(fake.dev / "rpmsg_ctrl0")
    assert ctl.to_dict()["endpoints"] == (1,)


def test_empty_or_absent_tree(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sysfs = Sysfs(tmp_path / "sys", tmp_path / "dev")
    assert sysfs.channels() == [] and sysfs.endpoints() == [] and sysfs.controls() == []
    with pytest.raises(NotAvailableError):
        sysfs.endpoint(0)
    err = missing_node_error(str(tmp_path / "dev/rpmsg_ctrl0"), sysfs, "is rpmsg_ctrl loaded?")
    assert "is rpmsg_ctrl loaded?" in str(err)


def test_missing_node_with_sysfs_entry_blames_devtmpfs(fake: FakeKernel) -> None:
    build(fake)
    (fake.dev / "rpmsg1").unlink()
    err = missing_node_error(str(fake.dev / "rpmsg1"), fake.sysfs, "hint")
    assert "devtmpfs" in str(err)


def test_node_made_after_the_device_is_waited_for(fake: FakeKernel) -> None:
    """udev/mdev create /dev/rpmsgN shortly after the device registers: open waits for it."""
    build(fake)
    node = fake.dev / "rpmsg1"
    node.unlink()
    sysfs = Sysfs(fake.sys, fake.dev, node_wait=30)
    timer = threading.Timer(0.05, make_node, (node,))
    timer.start()
    try:
        fd = Endpoint.open_fd(1, sysfs=sysfs)
    finally:
        timer.join()
    os.close(fd)


def test_node_of_an_unlisted_device_is_not_waited_for(fake: FakeKernel) -> None:
    build(fake)
    sysfs = Sysfs(fake.sys, fake.dev, node_wait=3600)  # a wait would hang the test
    assert sysfs.wait_node(fake.dev / "rpmsg7") is False
    with pytest.raises(NotAvailableError, match="no such endpoint device"):
        Endpoint.open_fd(7, sysfs=sysfs)
    with pytest.raises(NotAvailableError):
        Ctrl.open(3, sysfs=sysfs)


def test_node_that_never_appears_gives_the_devtmpfs_hint(fake: FakeKernel) -> None:
    build(fake)
    (fake.dev / "rpmsg1").unlink()
    sysfs = Sysfs(fake.sys, fake.dev, node_wait=0.02)
    with pytest.raises(NotAvailableError, match="udev"):
        Endpoint.open_fd(1, sysfs=sysfs)


def test_endpoint_vanishing_mid_scan_is_skipped(fake: FakeKernel) -> None:
    build(fake)
    fake.remove_ept(1)
    assert [e.index for e in fake.sysfs.endpoints()] == [0]
    assert fake.sysfs.endpoint_attrs(1) is None
