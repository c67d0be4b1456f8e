"""The real Linux 6.12 rpmsg stack (UML) against our vhost-user virtio-rpmsg device.

One boot runs the checks of ``guest_chardev.py`` (announced channel, ctrl endpoints, sizes,
many endpoints, asyncio, remote gone) and reports JSON; the tests below assert on its parts.
A second boot against the same device shows that the back-end serves a new front-end after
the first went away.

Kernel limitation found here: UML's ``virtio_uml`` calls vring callbacks from its hard-IRQ
handler, so ``rpmsg_ns`` creates and removes channel devices (and rpmsg_char its
``/dev/rpmsgN``) in IRQ context. With devtmpfs, device_add/device_del there wait for the
kdevtmpfs thread ("BUG: scheduling while atomic", then a killed guest process or a panic), so
the test kernel is built without devtmpfs and the guest makes its nodes from uevents
(``guest_devd.py``). The announcement and NS DESTROY then take Linux's ordinary automatic path;
:func:`assert_clean_console` checks that the kernel reported no such bug.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .remote import TestRemote
from .uml import VIRTIO_ID_RPMSG, UmlResult, boot

GUEST = Path(__file__).with_name("guest_chardev.py").read_text(encoding="utf-8")
BOOT_TIMEOUT = 120

pytestmark = pytest.mark.kernel


class Run:
    """One boot's outcome: the guest's per-check results, the console, the remote."""

    def __init__(self, remote: TestRemote, result: UmlResult) -> None:
        self.remote = remote
        self.result = result
        self.console = result.console
        try:
            self.checks: dict[str, Any] = json.loads(result.stdout)
        except ValueError:
            pytest.fail(f"guest printed no JSON\nstdout: {result.stdout}\n"
                        f"stderr: {result.stderr}\nconsole tail: {result.console[-3000:]}")

    def value(self, name: str) -> Any:
        check = self.checks[name]
        assert check["ok"], f"guest check {name} failed:\n{check.get('trace')}"
        return check["value"]


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestRemote]:
    path = tmp_path_factory.mktemp("vhost") / "rpmsg.sock"
    remote = TestRemote(str(path))
    yield remote
    remote.close()
    assert not path.exists()


MAIN_CHECKS = ["announce", "announced_channel", "sizes", "ctrl_endpoints", "many_endpoints",
               "asyncio", "remote_gone"]


#: Console lines that mean the kernel slept in atomic context or worse. Two kinds of WARNING
#: are expected and not listed: "irq N handler vu_interrupt enabled interrupts" (once per
#: boot: probing rpmsg_char from the hard-IRQ handler passes pm_runtime_barrier's
#: spin_unlock_irq) and virtio_uml's "read returned 0" / vu_del_vqs when the remote goes away.
KERNEL_BUG_MARKERS = ("BUG:", "Kernel panic", "Oops", "sleeping function called",
                      "scheduling while atomic")


def assert_clean_console(console: str) -> None:
    bad = [line for line in console.splitlines()
           if any(marker in line for marker in KERNEL_BUG_MARKERS)]
    assert not bad, "kernel console:\n" + "\n".join(bad)


def boot_checks(remote: TestRemote, checks: list[str]) -> Run:
    params = dict(remote.addresses(), checks=checks)
    result = boot(GUEST, devices=[(remote.path, VIRTIO_ID_RPMSG)], timeout=BOOT_TIMEOUT,
                  env={"RPMSG_TEST_PARAMS": json.dumps(params)})
    result.check()
    return Run(remote, result)


@pytest.fixture(scope="module")
def run(remote: TestRemote) -> Run:
    return boot_checks(remote, MAIN_CHECKS)


def test_announced_channel_appears_as_chardev_and_echoes(run: Run) -> None:
    v = run.value("announced_channel")
    assert v["node"] is True
    assert v["echo"] == "hello from the guest"
    raw = v["channels"]["rpmsg-raw"]
    assert raw["driver"] == "rpmsg_chrdev"
    assert run.remote.raw is not None
    addr = run.remote.raw.addr  # announced by our NS CREATE
    assert raw["dst"] == addr
    assert raw["device"] == f"virtio0.rpmsg-raw.-1.{addr}"
    assert run.checks["announce"] == [raw["device"]]
    assert run.checks["announced_channel"]["ok"]
    assert "rpmsg_ns" in v["channels"] and "rpmsg_ctrl" in v["channels"]
    assert "rpmsg host is online" in run.console
    assert "Kernel panic" not in run.console


def test_496_bytes_pass_and_497_is_too_large(run: Run) -> None:
    v = run.value("sizes")
    assert v["496_echoed"] is True
    assert v["497"] == "MessageTooLargeError"
    assert v["empty_echo"] == "b''"


def test_ctrl_endpoints_index_both_ways_and_destroy(run: Run) -> None:
    v = run.value("ctrl_endpoints")
    created = v["created"]
    assert len(set(created.values())) == 3
    assert v["names_match"] is True
    assert v["echoes"] == {"ept-a": "ept-a", "ept-b": "ept-b", "ept-c": "ept-c"}
    assert v["twice"] == ["twice:xyz", "twice:xyz"]
    assert v["b_node_after_destroy"] is False
    assert v["remaining"] == ["ept-a", "ept-c"]
    assert v["c_after"] == "still here"
    assert v["d_name"] == "ept-d" and v["d_echo"] == "d"


def test_many_endpoints_at_once(run: Run) -> None:
    v = run.value("many_endpoints")
    assert v["distinct_nodes"] == v["count"] == 32
    assert v["wrong"] == []


def test_asyncio_in_the_guest(run: Run) -> None:
    v = run.value("asyncio")
    assert v == {"all_echoed_in_order": True, "recv_timeout": True}


def test_remote_destroy_wakes_blocked_recv(remote: TestRemote) -> None:
    remote.withdraw_raw()
    run = boot_checks(remote, ["announce", "remote_destroy"])
    v = run.value("remote_destroy")
    assert v["error"] == "RemoteDisconnectedError", v
    assert -0.05 < v["seconds_after_event"] < 1.0, v
    assert v["channel_left"] == [] and v["node_left"] is False
    assert b"destroy-raw" in run.remote.commands
    assert_clean_console(run.console)


def test_kernel_reports_no_bug(run: Run) -> None:
    """Announcing, probing rpmsg_char and all the checks made the kernel report no bug."""
    assert_clean_console(run.console)


def test_remote_going_away_wakes_blocked_recv(run: Run) -> None:
    v = run.value("remote_gone")
    assert v["error"] == "RemoteDisconnectedError", v
    assert -0.05 < v["seconds_after_event"] < 1.0, v
    assert v["send_after"] == "RemoteDisconnectedError"
    assert v["ctrl_left"] is False  # the whole virtio device went with the remote


RECONNECT_GUEST = GUEST.replace("print(json.dumps(RESULTS))", """
with Endpoint.open(raw_channel_index()) as ep:
    ep.send(b"second boot")
    RESULTS["second_boot_echo"] = (ep.recv(timeout=5) or b"").decode()
print(json.dumps(RESULTS))""")


def test_same_backend_serves_a_second_boot(run: Run, remote: TestRemote) -> None:
    assert run.checks  # the first boot is over and its front-end went away
    sessions = remote.device.stats()["link_sessions"]
    remote.withdraw_raw()
    params = dict(remote.addresses(), checks=["announce"])
    result = boot(RECONNECT_GUEST, devices=[(remote.path, VIRTIO_ID_RPMSG)],
                  timeout=BOOT_TIMEOUT, env={"RPMSG_TEST_PARAMS": json.dumps(params)}).check()
    assert json.loads(result.stdout)["second_boot_echo"] == "second boot"
    stats = remote.device.stats()
    assert stats["link_sessions"] == sessions + 1
    assert stats["link_server_protocol_errors"] == 0
    assert stats["link_ring_errors"] == 0
