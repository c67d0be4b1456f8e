"""linux: behind the generic Device/Endpoint API, with a fake kernel and socketpair devices."""

from __future__ import annotations

import errno
import os
import time

import pytest
from linux_fakes import FakeKernel

import rpmsg
from rpmsg.device import Device
from rpmsg.errors import (
    AlreadyOpenError,
    InvalidURLError,
    NotAvailableError,
    NotBoundError,
    RemoteDisconnectedError,
)
from rpmsg.linux.link import LinuxLink
from rpmsg.wire.rpmsg import ADDR_ANY


def ctrl_device(fake: FakeKernel) -> Device:
    fake.add_ctrl(0)
    return Device(LinuxLink(ctrl=fake.open_ctrl(0), opener=fake.opener))


def test_create_endpoint_through_ctrl(fake: FakeKernel) -> None:
    with ctrl_device(fake) as dev:
        assert dev.is_up and not dev.core.ns_enabled
        ept = dev.create_endpoint("my-ept", dst=0x400)
        assert fake.ept_names() == {0: "my-ept"}
        assert ept.bound and ept.dst == 0x400 and ept.addr == 1024
        remote = fake.remotes[0]
        ept.send(b"ping")
        assert remote.recv(1000) == b"ping"
        remote.send(b"pong")
        msg = ept.recv_message(timeout=5)
        assert (msg.data, msg.src, msg.dst) == (b"pong", 0x400, ept.addr)
        ept.close()
        assert fake.ept_names() == {}  # the link destroyed the device it created
        assert dev.link.stats()["endpoints_created"] == 1


def test_several_endpoints_explicit_src_and_receive_only(fake: FakeKernel) -> None:
    with ctrl_device(fake) as dev:
        a = dev.create_endpoint("a", src=0x500, dst=0x400)
        b = dev.create_endpoint("b")  # receive-only: dst ANY
        assert (a.addr, b.addr) == (0x500, 1024)
        fake.remotes[1].send(b"to b")
        fake.remotes[0].send(b"to a")
        assert b.recv_message(timeout=5).src == ADDR_ANY
        assert not b.bound  # a message from an unknown address binds nothing
        assert a.recv(timeout=5) == b"to a"
        with pytest.raises(NotBoundError):
            b.send(b"x")
        with pytest.raises(NotAvailableError, match="can only send to 0x400"):
            a.send_to(0x401, b"x")
    assert fake.ept_names() == {}


def test_kernel_failure_leaves_nothing_behind(fake: FakeKernel) -> None:
    with ctrl_device(fake) as dev:
        dev.create_endpoint("a", src=0x500, dst=0x400)
        with pytest.raises(rpmsg.AddressInUseError):
            dev.create_endpoint("b", src=0x500, dst=0x400)
        assert fake.ept_names() == {0: "a"}
        with pytest.raises(rpmsg.NameTooLongError):
            dev.create_endpoint("n" * 40, dst=0x400)
        assert len(dev.endpoints) == 1


def test_remote_gone_takes_the_link_down(fake: FakeKernel,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    with ctrl_device(fake) as dev:
        ept = dev.create_endpoint("a", dst=0x400)
        fd = fake.endpoints[-1].rfd
        fake.remotes[0].send(b"last")
        assert ept.recv(timeout=5) == b"last"
        real_read = os.read

        def read(rfd: int, n: int) -> bytes:  # the kernel's answer once the endpoint is gone
            if rfd == fd:
                raise OSError(errno.EPIPE, "Broken pipe")
            return real_read(rfd, n)

        monkeypatch.setattr(os, "read", read)
        fake.remotes[0].send(b"wakes the reader")
        with pytest.raises(RemoteDisconnectedError):
            ept.recv(timeout=5)
        # The reader thread reports link down right after it unbinds the endpoint.
        deadline = time.monotonic() + 5
        while dev.is_up and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not dev.is_up
        monkeypatch.undo()


def test_existing_device(fake: FakeKernel) -> None:
    chan = fake.add_channel("rpmsg-raw", 0x400, 0x400, driver="rpmsg_chrdev")
    fake.add_ept(0, "rpmsg-raw", 0x401, 0x400, channel=chan)
    with Device(LinuxLink(device="/dev/rpmsg0", sysfs=fake.sysfs, opener=fake.opener)) as dev:
        with pytest.raises(NotAvailableError, match="not 'other'"):
            dev.create_endpoint("other")
        ept = dev.create_endpoint()  # named and addressed as sysfs says
        assert (ept.name, ept.addr, ept.dst, ept.bound) == ("rpmsg-raw", 0x401, 0x400, True)
        with pytest.raises(AlreadyOpenError):
            dev.create_endpoint()
        ept.send(b"hi")
        assert fake.remotes[0].recv(100) == b"hi"
        ept.close()
        assert fake.ept_names() == {0: "rpmsg-raw"}  # a channel's endpoint is not destroyed
        again = dev.create_endpoint("rpmsg-raw")
        assert again.dst == 0x400


def test_async_endpoint_over_linux(fake: FakeKernel) -> None:
    import asyncio

    async def main() -> None:
        with ctrl_device(fake) as dev:
            ept = dev.create_endpoint("a", dst=0x400).as_async()
            fake.remotes[0].send(b"async")
            assert await ept.recv(timeout=5) == b"async"

    asyncio.run(main())


def test_urls(fake: FakeKernel) -> None:
    roots = {"sysfs": str(fake.sys), "dev": str(fake.dev)}
    with pytest.raises(NotAvailableError, match="rpmsg_ctrl module"):
        rpmsg.open("linux:", **roots)
    with pytest.raises(NotAvailableError, match="no such endpoint"):
        rpmsg.open("linux:/dev/rpmsg3", **roots)
    with pytest.raises(InvalidURLError):
        rpmsg.open("linux:tty0", **roots)
    with pytest.raises(InvalidURLError):
        rpmsg.open("linux:rpmsg_ctrl0?ctrl=1", **roots)
    fake.add_ctrl(0)
    with rpmsg.open("linux:?ctrl=0", **roots) as dev:
        assert dev.link.describe()["ctrl"] == f"{fake.dev}/rpmsg_ctrl0"
        assert dev.policy.name == "linux"
    fake.add_ept(0, "e", ADDR_ANY, 0x400, ctrl=0)
    with rpmsg.open(f"linux:{fake.dev}/rpmsg0", **roots) as dev:
        assert dev.link.describe()["device"] == f"{fake.dev}/rpmsg0"


def test_info_logs_on_create_destroy_and_remote_gone(fake: FakeKernel,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="rpmsg.linux")
    with ctrl_device(fake) as dev:
        ept = dev.create_endpoint("logged", dst=0x400)
        ept.close()
        dev.create_endpoint("second", dst=0x400)
        fake.remotes[0].close()  # (index 0 again) the fake kernel reports it gone
        deadline = time.monotonic() + 30
        while dev.is_up and time.monotonic() < deadline:
            time.sleep(0.01)
    lines = [r.getMessage() for r in caplog.records if r.name == "rpmsg.linux"]
    assert any(line.startswith(f"created {fake.dev}/rpmsg0 for endpoint 'logged' (src ANY, "
                               f"dst 0x400) on {fake.dev}/rpmsg_ctrl0") for line in lines)
    assert f"destroyed {fake.dev}/rpmsg0" in lines
    assert any(line.startswith(f"remote gone: {fake.dev}/rpmsg") for line in lines)
