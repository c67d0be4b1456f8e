"""rpmsg list/create/destroy/rproc/udev-rules against the fake kernel (send and listen take
any URL now: tests/cli)."""

from __future__ import annotations

import argparse
import json
import os

import pytest
from linux_fakes import FakeKernel

from rpmsg.cli import linux_cmds
from rpmsg.errors import NotAvailableError
from rpmsg.linux import Endpoint, remoteproc
from rpmsg.linux import sysfs as sysfs_mod
from rpmsg.linux.ctrl import Ctrl
from rpmsg.linux.errors import RemoteprocStateError
from rpmsg.wire.rpmsg import ADDR_ANY


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="rpmsg")
    linux_cmds.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


@pytest.fixture
def kernel(fake: FakeKernel, monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
    monkeypatch.setattr(sysfs_mod, "SYSFS", fake.sysfs)
    monkeypatch.setattr(Ctrl, "open", classmethod(lambda cls, index=0, sysfs=None:
                                                  fake.open_ctrl(int(index))))
    monkeypatch.setattr(Endpoint, "open", classmethod(lambda cls, n, **kw:
                                                  fake.open_endpoint(n)))
    real_destroy = linux_cmds.destroy_endpoint_device
    monkeypatch.setattr(linux_cmds, "destroy_endpoint_device",
                        lambda n: real_destroy(n, sysfs=fake.sysfs, ioctl=fake.ioctl))
    fake.add_ctrl(0)
    return fake


def test_list_json(kernel: FakeKernel, capsys: pytest.CaptureFixture[str]) -> None:
    kernel.add_ept(0, "my-ept", ADDR_ANY, 0x400, ctrl=0)
    assert run("list", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["endpoints"][0]["name"] == "my-ept"
    assert doc["endpoints"][0]["dst"] == 0x400
    assert doc["controls"][0]["endpoints"] == [0]
    assert [c["name"] for c in doc["channels"]] == ["rpmsg_ctrl"]
    assert run("list") == 0
    text = capsys.readouterr().out
    assert "my-ept" in text and "dst=0x400" in text and "src=ANY" in text


def test_create_and_destroy(kernel: FakeKernel, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("create", "my-ept", "--dst", "0x400") == 0
    assert capsys.readouterr().out.strip() == f"{kernel.dev}/rpmsg0"
    assert run("create", "--ctrl", "0", "my-ept", "--src", "1025", "--dst", "any") == 0
    assert kernel.sysfs.endpoint(1).src == 1025 and kernel.sysfs.endpoint(1).dst == ADDR_ANY
    assert run("destroy", "my-ept", "--src", "1025") == 0
    assert run("destroy", f"{kernel.dev}/rpmsg0") == 0
    assert kernel.ept_names() == {}
    with pytest.raises(NotAvailableError):
        run("destroy", "my-ept")


def test_bad_address_is_a_usage_error(kernel: FakeKernel) -> None:
    with pytest.raises(SystemExit):
        run("create", "x", "--dst", "nope")


# Remote processors ------------------------------------------------------------------------


@pytest.fixture
def procs(kernel: FakeKernel, monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
    """m4 running with the ctrl's virtio0 and an endpoint, dsp offline; the fake's kernel
    rules for sysfs writes."""
    kernel.add_remoteproc(0, "m4", state="running", firmware="m4.elf")
    kernel.add_remoteproc(1, "dsp", virtio="virtio1")
    # Move virtio0 (made by the kernel fixture) below m4, as remoteproc would have made it.
    vdir = kernel.rproc_class / "remoteproc0" / "rproc-virtio.0.auto"
    vdir.mkdir()
    (kernel.devices / "virtio0").rename(vdir / "virtio0")
    for link in kernel.bus_dir.iterdir():
        target = os.readlink(link)
        if "/virtio0/" in target:
            link.unlink()
            link.symlink_to(str(vdir / "virtio0" / os.path.basename(target)))
    ctrl = kernel.class_dir / "rpmsg_ctrl0"
    ctrl.unlink()
    ctrl.symlink_to(vdir / "virtio0" / "virtio0.rpmsg_ctrl.0.0" / "rpmsg" / "rpmsg_ctrl0")
    kernel.add_ept(0, "my-ept", ADDR_ANY, 0x400, ctrl=0)
    monkeypatch.setattr(remoteproc, "write_attr", kernel.write_attr)
    return kernel


def test_list_shows_remote_processors(procs: FakeKernel,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert run("list", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    m4, dsp = doc["remoteprocs"]
    assert (m4["name"], m4["state"], m4["firmware"]) == ("m4", "running", "m4.elf")
    assert m4["channels"] == ["virtio0.rpmsg_ctrl.0.0"]
    assert m4["controls"] == [0] and m4["endpoints"] == [0]
    assert (dsp["name"], dsp["state"], dsp["controls"]) == ("dsp", "offline", [])
    assert run("list") == 0
    text = capsys.readouterr().out
    assert text.startswith("remote processors:\n  remoteproc0    m4 ")
    assert f"    controls: {procs.dev}/rpmsg_ctrl0" in text
    assert f"    endpoints: {procs.dev}/rpmsg0" in text
    assert "remoteproc1    dsp                  offline" in text


def test_rproc_status_start_stop(procs: FakeKernel,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert run("rproc", "status", "--json") == 0
    assert [p["name"] for p in json.loads(capsys.readouterr().out)] == ["m4", "dsp"]
    assert run("rproc", "status", "dsp") == 0
    assert capsys.readouterr().out.split()[:3] == ["remoteproc1", "dsp", "offline"]
    assert run("rproc", "start", "--firmware", "new.elf", "dsp") == 0
    assert capsys.readouterr().out == "remoteproc1 (dsp): running (firmware new.elf)\n"
    with pytest.raises(RemoteprocStateError, match="already running"):
        run("rproc", "start", "dsp")
    assert run("rproc", "stop", "remoteproc1") == 0
    assert capsys.readouterr().out == "remoteproc1 (dsp): offline\n"
    with pytest.raises(NotAvailableError, match="no remote processor named 'gpu'"):
        run("rproc", "stop", "gpu")


def test_rproc_errors_are_one_line_with_exit_1(procs: FakeKernel,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from rpmsg.cli.main import main

    assert main(["rproc", "stop", "dsp"]) == 1
    err = capsys.readouterr().err
    assert err == "rpmsg: error: remoteproc1 (dsp) is not running (state offline)\n"
    with pytest.raises(SystemExit):
        main(["rproc", "start"])  # NAME is required: a usage error


def test_udev_rules_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("udev-rules", "--group", "rpmsg") == 0
    out = capsys.readouterr().out
    assert 'SYMLINK+="rpmsg/%c/$attr{name}"' in out and 'GROUP="rpmsg"' in out


def test_list_escapes_the_names_a_remote_chose(kernel: FakeKernel,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A channel name is whatever the remote announced (the kernel passes it on as is):
    rpmsg list wrote its escape sequences to the user's terminal."""
    odd = "svc\x1b]0;title\x07\u009b2J"
    kernel.add_channel(odd, 0x401, 0x400, announce=True)
    kernel.add_ept(1, odd, 0x402, 0x400, ctrl=0)
    assert run("list") == 0
    text = capsys.readouterr().out
    assert "\x1b" not in text and "\x07" not in text and "\u009b" not in text
    assert text.count("svc\\x1b]0;title\\x07\\x9b2J") == 3  # device, channel, endpoint
    assert run("list", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert odd in [c["name"] for c in doc["channels"]]  # JSON keeps the exact text
