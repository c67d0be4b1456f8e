"""rpmsg send/listen/services on linux: URLs, and the old /dev/rpmsgN forms, on the fake kernel.

The command runs in this process (``rpmsg.cli.main.main``) with the fake kernel's sysfs and
its socketpair endpoint devices patched in; the real ``linux:`` transport sits in between.
"""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
from linux_fakes import FakeKernel

from rpmsg.cli.main import main
from rpmsg.linux import sysfs as sysfs_mod
from rpmsg.linux.chardev import Chardev
from rpmsg.linux.ctrl import Ctrl
from rpmsg.wire.rpmsg import ADDR_ANY

LINE = re.compile(r"\d\d:\d\d:\d\d\.\d{6} (0x[0-9a-f]+|any) -> (0x[0-9a-f]+) \[(\d+)\] (.*)")


@pytest.fixture
def kernel(fake: FakeKernel, monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
    monkeypatch.setattr(sysfs_mod, "SYSFS", fake.sysfs)
    monkeypatch.setattr(Chardev, "open", classmethod(lambda cls, n, **kw: fake.opener(n)))
    monkeypatch.setattr(Ctrl, "open", classmethod(lambda cls, index=0, sysfs=None:
                                                  fake.open_ctrl(int(str(index)[-1]))))
    fake.add_ctrl(0)
    fake.add_ept(0, "e", ADDR_ANY, 0x400, ctrl=0)
    return fake


def remote_sends(kernel: FakeKernel, index: int, *payloads: bytes) -> threading.Thread:
    """Once endpoint device ``index`` is open, send ``payloads`` from the kernel side."""

    def run() -> None:
        deadline = time.monotonic() + 30
        while index not in kernel.remotes and time.monotonic() < deadline:
            time.sleep(0.01)
        for p in payloads:
            kernel.remotes[index].send(p)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("argv", [
    ["send", "{dev}/rpmsg0", "hello"],            # the old Linux-only forms
    ["send", "rpmsg0", "hello"],
    ["send", "linux:{dev}/rpmsg0", "-", "hello"],  # the URL form; '-': the device's endpoint
    ["send", "linux:rpmsg0", "e", "hello"],        # or its name, as sysfs has it
])
def test_send_forms(kernel: FakeKernel, argv: list[str]) -> None:
    assert main([a.format(dev=kernel.dev) for a in argv]) == 0
    assert kernel.remotes[0].recv(100) == b"hello"


def test_send_hex_file_stdin(kernel: FakeKernel, tmp_path: object,
                             monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send", "0", "--hex", "de ad be ef"]) == 0  # option before DATA: old form
    assert kernel.remotes[0].recv(100) == b"\xde\xad\xbe\xef"
    path = kernel.root / "blob"
    path.write_bytes(b"\x00bin\xff")
    assert main(["send", f"linux:{kernel.dev}/rpmsg0", "-", "-f", str(path)]) == 0
    assert kernel.remotes[0].recv(100) == b"\x00bin\xff"
    with pytest.raises(SystemExit) as exc:
        main(["send", "0", "--hex", "xyz"])
    assert exc.value.code == 2
    assert "not hexadecimal" in capsys.readouterr().err


def test_send_to_a_named_device_that_is_another(kernel: FakeKernel,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send", "linux:rpmsg0", "other", "x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rpmsg: error: ") and "'e'" in err and err.count("\n") == 1


def test_listen_old_and_new_forms(kernel: FakeKernel,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    t = remote_sends(kernel, 0, b"one", b"\x00\x01")
    assert main(["listen", "rpmsg0", "--count", "2", "--json", "--timeout", "30"]) == 0
    t.join()
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["len"], d["hex"], d["src"], d["name"]) for d in docs] == \
        [(3, "6f6e65", 0x400, "-"), (2, "0001", 0x400, "-")]
    assert all(abs(d["time"] - time.time()) < 120 for d in docs)

    del kernel.remotes[0]
    t = remote_sends(kernel, 0, b"one", b"\x00\x01")
    assert main(["listen", f"linux:{kernel.dev}/rpmsg0", "-", "--count", "2"]) == 0
    t.join()
    lines = [LINE.fullmatch(s) for s in capsys.readouterr().out.splitlines()]
    assert all(lines)
    assert [(m[1], m[3], m[4]) for m in lines if m] == \
        [("0x400", "3", "one"), ("0x400", "2", "b'\\x00\\x01'")]


def test_listen_time_limit(kernel: FakeKernel, capsys: pytest.CaptureFixture[str]) -> None:
    # Without --count the time limit ends it normally; with --count it is an error (exit 1).
    assert main(["listen", "rpmsg0", "--timeout", "0.2"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["listen", "rpmsg0", "--count", "3", "--timeout", "0.2"]) == 1
    assert "received 0 of 3" in capsys.readouterr().err


def test_services_are_the_kernel_channels(kernel: FakeKernel,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    kernel.add_channel("rpmsg-raw", 0x400, 0x401, driver="rpmsg_chrdev")
    roots = f"sysfs={kernel.sys}&dev={kernel.dev}"
    assert main(["services", f"linux:?ctrl=0&{roots}", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(s["name"], s["addr"], s["src"]) for s in doc] == [("rpmsg-raw", 0x401, 0x400)]
    assert main(["services", f"linux:?ctrl=0&{roots}"]) == 0
    assert capsys.readouterr().out.split() == ["rpmsg-raw", "0x401"]
