"""``linux:?rproc=NAME&service=NAME``: the channel a remote announced, found in sysfs (fake tree),
checked before any I/O, waited for with a notice, and a timeout that says what was seen."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from linux_fakes import FakeKernel

import rpmsg
from rpmsg import registry
from rpmsg.errors import InvalidURLError, NotAvailableError, RpmsgTimeoutError
from rpmsg.linux.chardev import Chardev
from rpmsg.linux.ctrl import Ctrl
from rpmsg.linux.errors import AmbiguousNameError
from rpmsg.linux.service import find_service
from rpmsg.wire.rpmsg import ADDR_ANY


@pytest.fixture
def kernel(fake: FakeKernel, monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
    """m4 (running: virtio0 with rpmsg-raw and an unbound service 'svc'), dsp (offline)."""
    fake.add_remoteproc(0, "m4", state="running", virtio="virtio0")
    fake.add_remoteproc(1, "dsp", virtio="virtio1")
    fake.add_channel("rpmsg_ns", 53, 53, virtio="virtio0", driver="rpmsg_ns")
    fake.add_ctrl(0, virtio="virtio0")
    raw = fake.add_channel("rpmsg-raw", ADDR_ANY, 0x400, virtio="virtio0",
                           driver="rpmsg_chrdev")
    fake.add_ept(0, "rpmsg-raw", 0x400, 0x400, channel=raw)
    fake.add_channel("svc", ADDR_ANY, 0x401, virtio="virtio0", announce=True)
    fake.add_channel("rpmsg_ns", 53, 53, virtio="virtio1", driver="rpmsg_ns")
    fake.add_ctrl(1, virtio="virtio1")
    # The link reaches the fake devices through the fake's ioctl and socketpairs.
    monkeypatch.setattr(Ctrl, "open", classmethod(lambda cls, index=0, sysfs=None:
                                                  fake.open_ctrl(int(index))))
    monkeypatch.setattr(Chardev, "open",
                        classmethod(lambda cls, n, **kw: fake.opener(n)))
    return fake


def roots(fake: FakeKernel) -> dict[str, str]:
    return {"sysfs": str(fake.sys), "dev": str(fake.dev)}


def test_find_service(kernel: FakeKernel) -> None:
    raw = find_service(kernel.sysfs, "rpmsg-raw", "m4")
    assert raw is not None and raw.node == str(kernel.dev / "rpmsg0") and raw.ctrl is None
    svc = find_service(kernel.sysfs, "svc", None)
    assert svc is not None and (svc.node, svc.ctrl, svc.name, svc.dst) == (None, 0, "svc", 0x401)
    assert svc.rproc is None and svc.channel is not None
    assert find_service(kernel.sysfs, "svc", "dsp") is None  # not (yet) on that processor
    ctrl_only = find_service(kernel.sysfs, None, "dsp")
    assert ctrl_only is not None and ctrl_only.ctrl == 1 and ctrl_only.channel is None
    assert find_service(kernel.sysfs, "rpmsg_ns", None) is None  # the kernel's, not a service
    with pytest.raises(NotAvailableError, match="no remote processor named 'gpu'"):
        find_service(kernel.sysfs, "svc", "gpu")


def test_same_service_on_two_processors_needs_rproc(kernel: FakeKernel) -> None:
    kernel.add_channel("svc", ADDR_ANY, 0x405, virtio="virtio1")
    with pytest.raises(AmbiguousNameError, match="name the remote processor with rproc="):
        find_service(kernel.sysfs, "svc", None)
    target = find_service(kernel.sysfs, "svc", "dsp")
    assert target is not None and (target.ctrl, target.dst) == (1, 0x405)


def test_rpmsg_raw_without_its_device_yet_is_waited_for(kernel: FakeKernel) -> None:
    """rpmsg_char is still probing: no endpoint created on the side through the ctrl."""
    kernel.add_channel("rpmsg-raw", ADDR_ANY, 0x410, virtio="virtio1")
    assert find_service(kernel.sysfs, "rpmsg-raw", "dsp") is None


def test_url_service_through_the_ctrl(kernel: FakeKernel) -> None:
    with rpmsg.open("linux:?rproc=m4&service=svc", **roots(kernel)) as dev:
        assert dev.link.describe()["service"] == {"name": "svc", "dst": 0x401}
        ept = dev.create_endpoint()  # name and destination come from the channel
        assert (ept.name, ept.dst) == ("svc", 0x401)
        assert kernel.sysfs.endpoint(1).name == "svc" and kernel.sysfs.endpoint(1).dst == 0x401
        ept.send(b"hi")
        assert kernel.remotes[1].recv(100) == b"hi"
        kernel.remotes[1].send(b"ho")
        assert ept.recv(timeout=5) == b"ho"
    assert kernel.ept_names() == {0: "rpmsg-raw"}  # the created endpoint is destroyed again


def test_url_service_on_its_own_device(kernel: FakeKernel) -> None:
    with rpmsg.open("linux:?service=rpmsg-raw", **roots(kernel)) as dev:
        assert dev.link.describe()["device"] == str(kernel.dev / "rpmsg0")
        ept = dev.create_endpoint()
        assert ept.dst == 0x400
        ept.send(b"raw")
        assert kernel.remotes[0].recv(100) == b"raw"


def test_url_rproc_alone_is_its_ctrl(kernel: FakeKernel) -> None:
    with rpmsg.open("linux:?rproc=dsp", **roots(kernel)) as dev:
        assert dev.link.describe()["ctrl"] == str(kernel.dev / "rpmsg_ctrl1")


@pytest.mark.parametrize(("url", "says"), [
    ("linux:?service=", "is empty"),
    ("linux:?service=" + "n" * 32, "32"),
    ("linux:?rproc=", "rproc= is empty"),
    ("linux:/dev/rpmsg0?service=svc", "give no path"),
    ("linux:?ctrl=0&rproc=m4", r"give no path or \?ctrl="),
    ("linux:?service=svc&servise=x", "did you mean service"),
])
def test_bad_urls_fail_before_any_io(url: str, says: str) -> None:
    # The roots do not exist: only configure (no I/O) can have raised.
    with pytest.raises(InvalidURLError, match=says):
        rpmsg.open(url, sysfs="/nonexistent/sys", dev="/nonexistent/dev")


def test_unknown_rproc_fails_at_once(kernel: FakeKernel) -> None:
    started = time.monotonic()
    with pytest.raises(NotAvailableError, match="known: remoteproc0 \\(m4\\) running"):
        rpmsg.open("linux:?rproc=gpu&service=svc", timeout=60, **roots(kernel))
    assert time.monotonic() - started < 30  # not the open's 60 s


def test_waits_for_the_announcement_and_says_so(kernel: FakeKernel,
                                                monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(registry, "WAIT_NOTICE_AFTER", 0.0)
    caplog.set_level(logging.INFO, logger="rpmsg.wait")
    announced = threading.Event()

    def announce() -> None:
        # The notice comes first, then the remote announces the service.
        deadline = time.monotonic() + 30
        while "later" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.01)
        kernel.add_channel("later", ADDR_ANY, 0x420, virtio="virtio1")
        announced.set()

    t = threading.Thread(target=announce)
    t.start()
    try:
        with rpmsg.open("linux:?rproc=dsp&service=later", timeout=60, **roots(kernel)) as dev:
            assert announced.is_set()
            assert dev.link.describe()["service"] == {"name": "later", "dst": 0x420}
    finally:
        t.join()
    notices = [r.getMessage() for r in caplog.records if r.name == "rpmsg.wait"]
    assert len(notices) == 1
    assert "service 'later' on remote processor 'dsp'" in notices[0]
    assert "rpmsg rproc start dsp" in notices[0]  # dsp is offline: the hint says how


def test_timeout_says_what_was_seen(kernel: FakeKernel) -> None:
    with pytest.raises(RpmsgTimeoutError, match=r"no service 'nope' on remote processor 'm4' "
                       r"within 0.1 s; remoteproc0 \(m4\) is running; services seen: "
                       r"rpmsg-raw, svc"):
        rpmsg.open("linux:?rproc=m4&service=nope", timeout=0.1, **roots(kernel))
