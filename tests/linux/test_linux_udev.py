"""``rpmsg udev-rules``: the rules' program finds the remote processor of a device in a fake
sysfs tree, both remoteproc layouts; the rule text escapes it the way udev reads it.

No udev runs here (the test machines have none, UML has no remoteproc), so what udev does with
the text is modelled by :func:`udev_unescape` after udev(7): ``$$`` and ``%%`` are literal,
``$devpath`` is the device's path below /sys, single quotes group an argument.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess

import pytest
from linux_fakes import FakeKernel

from rpmsg.errors import InvalidArgumentError
from rpmsg.linux.udev import rproc_name_script, udev_escape, udev_rules
from rpmsg.wire.rpmsg import ADDR_ANY


def udev_unescape(text: str, devpath: str) -> str:
    out = text.replace("$devpath", "\0DEVPATH\0").replace("$$", "$").replace("%%", "%")
    return out.replace("\0DEVPATH\0", devpath)


def devpath(fake: FakeKernel, name: str) -> str:
    return "/" + os.path.relpath(os.path.realpath(fake.class_dir / name), fake.sys)


def run_program(script: str) -> tuple[int, str]:
    proc = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=30,
                          check=False)
    return proc.returncode, proc.stdout.strip()


@pytest.mark.parametrize("layout", ["6.1", "5.15"])
def test_program_prints_the_processor_name(fake: FakeKernel, layout: str) -> None:
    fake.add_remoteproc(0, "m4", state="running", virtio="virtio0", layout=layout)
    fake.add_ctrl(0, virtio="virtio0")
    raw = fake.add_channel("rpmsg-raw", ADDR_ANY, 0x400, virtio="virtio0")
    fake.add_ept(0, "rpmsg-raw", 0x400, 0x400, channel=raw)
    fake.add_ept(1, "my-ept", ADDR_ANY, 0x400, ctrl=0)
    fake.add_ctrl(1, virtio="virtio9")  # a virtio device of no remote processor
    fake.add_ept(2, "vm-ept", ADDR_ANY, 0x400, ctrl=1)
    rule_text = udev_escape(rproc_name_script(str(fake.sys)))
    for name, expected in (("rpmsg0", (0, "m4")), ("rpmsg1", (0, "m4")),
                           ("rpmsg_ctrl0", (0, "m4")), ("rpmsg2", (1, "")),
                           ("rpmsg_ctrl1", (1, ""))):
        assert run_program(udev_unescape(rule_text, devpath(fake, name))) == expected, name


def test_rules_text() -> None:
    text = udev_rules()
    rules = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(rules) == 2
    ept, ctrl = rules
    assert ept.startswith('SUBSYSTEM=="rpmsg", KERNEL=="rpmsg[0-9]*", ATTR{name}=="?*", ')
    assert ept.endswith('SYMLINK+="rpmsg/%c/$attr{name}"')
    assert ctrl.startswith('SUBSYSTEM=="rpmsg", KERNEL=="rpmsg_ctrl[0-9]*", ')
    assert ctrl.endswith('SYMLINK+="rpmsg/%c/rpmsg_ctrl"')
    for rule in rules:
        program = re.search(r'PROGRAM="([^"]*)"', rule)
        assert program is not None
        # udev splits the command at spaces, single quotes grouping: sh, -c, the script.
        argv = shlex.split(program.group(1))
        assert argv[:2] == ["/bin/sh", "-c"] and len(argv) == 3
        assert udev_unescape(argv[2], "/devices/x") == \
            rproc_name_script().replace("$devpath", "/devices/x")
        assert "%c" not in argv[2] and '"' not in argv[2]


def test_access_rules() -> None:
    text = udev_rules(group="rpmsg")
    assert text.splitlines()[-1] == 'SUBSYSTEM=="rpmsg", KERNEL=="rpmsg*", GROUP="rpmsg", ' \
        'MODE="0660"'
    assert udev_rules(mode="666").splitlines()[-1].endswith('MODE="0666"')
    for bad in ({"group": "a b"}, {"group": 'x", RUN+="/bin/evil'}, {"mode": "0999"},
                {"mode": "rw"}):
        with pytest.raises(InvalidArgumentError):
            udev_rules(**bad)
