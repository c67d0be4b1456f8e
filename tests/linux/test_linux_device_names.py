"""Device indices in names and URLs are ASCII digits of a sane length.

Seen from outside the suite: ``Endpoint.open("²")`` and ``Ctrl.open("²")`` raised a bare
ValueError (``"²".isdigit()`` is true, ``int("²")`` fails); ``rpmsg.open("linux:" + "9" * 5000)``
raised Python's ValueError for integer strings over 4300 digits; ``rpmsg٣`` (Arabic-Indic
three: ``\\d`` matches it and ``int()`` reads it) opened /dev/rpmsg3, a device the user did
not name, and a sysfs entry so named was listed as rpmsg3; a ``/proc/devices`` line starting
with ``²`` raised ValueError out of every node check.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from linux_fakes import FakeKernel

import rpmsg
from rpmsg.errors import RpmsgError
from rpmsg.linux import Ctrl, Endpoint
from rpmsg.linux.nodes import rpmsg_majors
from rpmsg.wire.rpmsg import ADDR_ANY

ODD = ["²", "٣", "rpmsg٣", "rpmsg_ctrl٣", "9" * 5000, "rpmsg" + "9" * 5000,
       "rpmsg_ctrl" + "9" * 5000, "/dev/rpmsg" + "9" * 5000]


@pytest.mark.parametrize("name", ODD)
def test_odd_indices_name_no_device(fake: FakeKernel, name: str) -> None:
    fake.add_ctrl(3)
    fake.add_ept(3, "e", ADDR_ANY, 0x400, ctrl=3)
    for opener in (Endpoint.open, Ctrl.open):
        with pytest.raises(RpmsgError):  # an explicit path too long: KernelError(ENAMETOOLONG)
            opener(name, sysfs=fake.sysfs)


@pytest.mark.parametrize("name", ODD)
def test_odd_indices_in_a_url_are_typed_errors(fake: FakeKernel, name: str) -> None:
    fake.add_ctrl(3)
    fake.add_ept(3, "e", ADDR_ANY, 0x400, ctrl=3)
    with pytest.raises(RpmsgError):
        rpmsg.open(f"linux:{name}", sysfs=str(fake.sys), dev=str(fake.dev), timeout=1)


def test_sysfs_entries_with_other_digits_are_not_listed(fake: FakeKernel) -> None:
    fake.add_ctrl(0)
    fake.add_ept(1, "real", ADDR_ANY, 0x400, ctrl=0)
    (fake.class_dir / "rpmsg٣").mkdir()
    (fake.class_dir / "rpmsg٣" / "name").write_text("impostor\n")
    assert [(e.index, e.name) for e in fake.sysfs.endpoints()] == [(1, "real")]


def test_proc_devices_with_other_digits(tmp_path: Path) -> None:
    proc = tmp_path / "devices"
    proc.write_text("Character devices:\n  ² rpmsg\n240 rpmsg_ctrl\n\nBlock devices:\n")
    assert rpmsg_majors(str(proc)) == frozenset({240})
