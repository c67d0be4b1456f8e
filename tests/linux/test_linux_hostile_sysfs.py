"""Hostile sysfs contents: an attribute that is a FIFO, a link to /dev/zero, a huge file or a
device number out of range is no attribute; discovery skips it and goes on.

Seen from outside the suite (a sysfs tree given with ``linux:...?sysfs=``, or a fake one): a
FIFO as an endpoint's ``name`` hung ``Sysfs.endpoints()`` (``rpmsg linux list``) for ever in
``read_bytes``; a ``name`` linked to /dev/zero read until MemoryError; a 1 MB ``name`` was read
whole and handed out as the endpoint's name; a ``dev`` of ``99999999999:1`` raised a raw
OverflowError out of ``Endpoint.open`` (from ``os.makedev``); a remoteproc ``state`` FIFO
hung ``list_remoteprocs``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from linux_fakes import FakeKernel

from rpmsg.errors import NotAvailableError, RpmsgError
from rpmsg.linux import Endpoint, remoteproc
from rpmsg.linux.bind import bind_channel
from rpmsg.linux.remoteproc import list_remoteprocs
from rpmsg.linux.sysfs import MAX_ATTR
from rpmsg.wire.rpmsg import ADDR_ANY

HERE = Path(__file__).parent


def attr_of(fake: FakeKernel, name: str, attr: str) -> Path:
    return Path(os.path.realpath(fake.class_dir / name)) / attr


def in_thread(fn: Callable[[], Any], unblock: Callable[[], None]) -> Any:
    """``fn()`` on a thread; if it is still blocked after a generous wait, ``unblock`` frees
    it and the test fails (so a regression does not hang the suite)."""
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    t.join(30)
    if t.is_alive():
        unblock()
        t.join(30)
        pytest.fail("blocked reading a FIFO planted as a sysfs attribute")
    return out[0]


def open_writer(fifo: Path) -> None:
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    os.close(fd)


def test_a_fifo_as_an_attribute_is_skipped_not_waited_on(fake: FakeKernel) -> None:
    fake.add_ctrl(0)
    fake.add_ept(1, "fifo", ADDR_ANY, 0x400, ctrl=0)
    fake.add_ept(2, "good", ADDR_ANY, 0x401, ctrl=0)
    name = attr_of(fake, "rpmsg1", "name")
    name.unlink()
    os.mkfifo(name)
    got = in_thread(fake.sysfs.endpoints, lambda: open_writer(name))
    assert [e.name for e in got] == ["good"]


def test_a_huge_attribute_is_not_read_whole(fake: FakeKernel) -> None:
    fake.add_ctrl(0)
    fake.add_ept(1, "x", ADDR_ANY, 0x400, ctrl=0)
    fake.add_ept(2, "good", ADDR_ANY, 0x401, ctrl=0)
    attr_of(fake, "rpmsg1", "name").write_bytes(b"n" * (MAX_ATTR + 1))
    attr_of(fake, "rpmsg2", "src").write_bytes(b"1" * (16 * MAX_ATTR))
    got = fake.sysfs.endpoints()
    assert [(e.name, e.src) for e in got] == [("good", None)]


_ZERO = textwrap.dedent("""
    import os, resource, sys
    sys.path.insert(0, sys.argv[2])
    from pathlib import Path
    from linux_fakes import FakeKernel
    fake = FakeKernel(Path(sys.argv[1]))
    fake.add_ctrl(0)
    fake.add_ept(1, "zero", 0xFFFFFFFF, 0x400, ctrl=0)
    fake.add_ept(2, "good", 0xFFFFFFFF, 0x401, ctrl=0)
    name = Path(os.path.realpath(fake.class_dir / "rpmsg1")) / "name"
    name.unlink()
    name.symlink_to("/dev/zero")
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    print([e.name for e in fake.sysfs.endpoints()])
""")


def test_an_attribute_linked_to_dev_zero_is_skipped(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", _ZERO, str(tmp_path), str(HERE)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "['good']"


@pytest.mark.parametrize("dev", ["99999999999:1", "1:99999999999", "-1:3", "\xff:3", ""])
def test_a_device_number_out_of_range_is_a_typed_refusal(fake: FakeKernel, dev: str) -> None:
    if not fake.char_nodes:
        pytest.skip("making character device nodes needs CAP_MKNOD (run as root)")
    fake.add_ctrl(0)
    fake.add_ept(0, "e", ADDR_ANY, 0x400, ctrl=0)
    attr_of(fake, "rpmsg0", "dev").write_bytes(dev.encode("latin-1"))
    try:
        Endpoint.open(0, sysfs=fake.sysfs).close()  # /dev/null's 1:3 may pass /proc/devices
    except RpmsgError as exc:
        assert isinstance(exc, NotAvailableError), exc


def test_a_fifo_as_a_remoteproc_state_is_skipped(fake: FakeKernel) -> None:
    entry = fake.add_remoteproc(0, "m4", state="running")
    state = entry / "state"
    state.unlink()
    os.mkfifo(state)
    got = in_thread(lambda: list_remoteprocs(fake.sysfs), lambda: open_writer(state))
    assert [(p.name, p.state) for p in got] == [("m4", None)]


def open_reader(fifo: Path) -> None:
    os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))


def test_binding_through_a_fifo_driver_override_fails_at_once(fake: FakeKernel) -> None:
    """``rpmsg bind``'s sysfs write blocked for ever opening a FIFO planted as
    ``driver_override`` (it opened with ``open(path, "w")``)."""
    dev = fake.add_channel("svc", 0x400, 0x401)
    override = fake.devices_of(dev) / "driver_override"
    override.unlink()
    os.mkfifo(override)

    def bind() -> BaseException | None:
        try:
            bind_channel("svc", sysfs=fake.sysfs)
        except BaseException as exc:
            return exc
        return None

    err = in_thread(bind, lambda: open_reader(override))
    assert isinstance(err, RpmsgError), err


def test_starting_through_a_fifo_state_fails_at_once(fake: FakeKernel) -> None:
    """``rpmsg rproc start`` blocked for ever writing ``start`` to a FIFO ``state``."""
    entry = fake.add_remoteproc(0, "m4", state="offline")
    state = entry / "state"
    state.unlink()
    os.mkfifo(state)

    def start() -> BaseException | None:
        try:
            remoteproc.start("m4", sysfs=fake.sysfs)
        except BaseException as exc:
            return exc
        return None

    err = in_thread(start, lambda: open_reader(state))
    assert isinstance(err, RpmsgError), err


def test_a_symlinked_attribute_is_not_written_through(fake: FakeKernel) -> None:
    dev = fake.add_channel("svc", 0x400, 0x401)
    victim = fake.root / "victim"
    victim.write_text("precious")
    override = fake.devices_of(dev) / "driver_override"
    override.unlink()
    override.symlink_to(victim)
    with pytest.raises(RpmsgError):
        bind_channel("svc", sysfs=fake.sysfs)
    assert victim.read_text() == "precious"
