"""The ``linux:`` transport and the ``rpmsg`` Linux subcommands against the real Linux 6.12.

One UML boot runs ``guest_linux_api.py``, which uses ``rpmsg.open("linux:...")`` (the generic
Device/Endpoint API over ``/dev/rpmsg_ctrl0`` and ``/dev/rpmsgN``) and runs ``python -m rpmsg
list|create|send|listen|destroy`` as subprocesses, against the host's vhost-user device
(:class:`~tests.kernel.remote.TestRemote`: its unannounced ``echo`` service, plus a ``relay``
and an ``announcer`` added here). The service checks have the remote announce services while
the guest waits for them (``linux:?service=``); UML has no remoteproc, so ``rproc=`` is
checked on fake sysfs trees in ``tests/linux``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rpmsg.endpoint import Endpoint

from .remote import REPLY_TIMEOUT, TestRemote
from .test_vhost_rpmsg import BOOT_TIMEOUT, Run, assert_clean_console
from .test_vhost_rpmsg import remote as remote  # the module-scoped fixture, reused
from .uml import VIRTIO_ID_RPMSG, boot

GUEST = Path(__file__).with_name("guest_linux_api.py").read_text(encoding="utf-8")
#: The listener's fixed address the CLI check asks the relay to forward to.
LISTEN_ADDR = 0x700

pytestmark = pytest.mark.kernel


def relay_callback(relayed: list[tuple[int, bytes]]) -> Any:
    """``to=<addr>;<payload>`` is forwarded as ``<payload>`` to ``<addr>`` (recorded)."""

    def relay(ept: Endpoint, data: bytes, src: int) -> None:
        head, sep, payload = data.partition(b";")
        if not (sep and head.startswith(b"to=")):
            return
        dst = int(head[3:], 0)
        relayed.append((dst, payload))
        ept.send_to(dst, payload, timeout=REPLY_TIMEOUT)

    return relay


@pytest.fixture(scope="module")
def relayed() -> list[tuple[int, bytes]]:
    """What the relay forwarded (the relay endpoint lives on the remote device)."""
    return []


def announcer_callback(remote: TestRemote, made: list[Endpoint]) -> Any:
    """``announce:<name>`` creates an announced echo service ``<name>`` (NS CREATE)."""

    def announce(ept: Endpoint, data: bytes, src: int) -> None:
        if data.startswith(b"announce:"):
            made.append(remote.device.create_endpoint(data[9:].decode(),
                                                      callback=TestRemote._echo))
        ept.send_to(src, b"ok:" + data, timeout=REPLY_TIMEOUT)

    return announce


@pytest.fixture(scope="module")
def run(remote: TestRemote, relayed: list[tuple[int, bytes]]) -> Run:
    remote.withdraw_raw()  # announced only when the guest asks
    relay = remote.device.create_endpoint("relay", announce=False,
                                          callback=relay_callback(relayed))
    made: list[Endpoint] = []
    announcer = remote.device.create_endpoint("announcer", announce=False,
                                              callback=announcer_callback(remote, made))
    params = dict(remote.addresses(), relay_addr=relay.addr, announcer_addr=announcer.addr)
    try:
        result = boot(GUEST, devices=[(remote.path, VIRTIO_ID_RPMSG)], timeout=BOOT_TIMEOUT,
                      env={"RPMSG_TEST_PARAMS": json.dumps(params)})
    finally:
        for ept in (relay, announcer, *made):
            ept.close()
        remote.withdraw_raw()
    result.check()
    return Run(remote, result)


def test_ctrl_device_endpoint_round_trips(run: Run) -> None:
    v = run.value("generic_ctrl")
    echo = run.remote.echo.addr
    assert v["kernel"] == {"name": "api-echo", "src": 0xFFFFFFFF, "dst": echo, "ctrl": 0}
    assert v["node_before"] is True and v["sysfs_before"] is True
    assert v["ep_dst"] == echo
    assert v["echo"] == "hello"
    assert v["in_order"] is True
    assert v["message"]["data"] == "who"
    assert v["message"]["src"] == echo  # the peer the kernel endpoint talks to
    assert v["message"]["dst_is_addr"] is True


def test_ctrl_device_endpoint_sizes_and_timeout(run: Run) -> None:
    v = run.value("generic_ctrl")
    assert v["496_echoed"] is True
    assert v["497"] == "MessageTooLargeError"
    assert v["after_497"] == "still ok"
    assert v["recv_timeout"] == "RpmsgTimeoutError"


def test_chosen_source_address_is_the_kernel_address(run: Run) -> None:
    v = run.value("generic_ctrl")
    assert v["fixed"] == {"addr": 0x600, "kernel_src": 0x600, "echo": "fixed"}


def test_close_destroys_the_kernel_endpoint(run: Run) -> None:
    v = run.value("generic_ctrl")
    assert v["sysfs_after_close"] is False  # gone when close() returns
    assert v["node_gone_after_close"] is True
    assert v["remaining"] == ["api-fixed"]
    # Device.close() destroys the endpoints it created and the caller left open.
    assert v["left_after_device_close"] == []
    assert v["fixed_node_gone"] is True


def test_short_url_is_control_device_0(run: Run) -> None:
    v = run.value("generic_ctrl")
    assert v["short_form"] == ["short0", "short1"]
    assert v["short_left"] == []


def test_existing_endpoint_device(run: Run) -> None:
    v = run.value("generic_device")
    n = v["index"]
    assert sorted(v["urls"]) == sorted([f"linux:/dev/rpmsg{n}", f"linux:rpmsg{n}"])
    for url, got in v["urls"].items():
        assert got["dst"] == run.remote.echo.addr  # from sysfs
        assert got["echo"] == url
        assert got["second_endpoint"] == "AlreadyOpenError"
        assert got["wrong_dst"] == got["wrong_name"] == "NotAvailableError"
        assert got["497"] == "MessageTooLargeError"
        assert got["recv_timeout"] == "RpmsgTimeoutError"
    assert v["node_after_close"] is True  # not created by the link: left alone
    assert v["missing_device"] == "NotAvailableError"
    assert v["node_gone_after_destroy"] is True


def ok(result: dict[str, Any]) -> str:
    """Exit 0 and nothing on stderr but the notices of waits over a second."""
    notices = [line for line in str(result["err"]).splitlines()
               if not line.startswith("rpmsg: waiting for ")]
    assert result["rc"] == 0 and notices == [], result
    return str(result["out"])


def test_cli_create_and_list(run: Run) -> None:
    v = run.value("cli")
    tx, rx = ok(v["create"]["tx"]).strip(), ok(v["create"]["rx"]).strip()
    assert tx.startswith("/dev/rpmsg") and rx.startswith("/dev/rpmsg") and tx != rx
    assert v["nodes_exist"] is True
    assert v["list_rc"] == 0
    listing = v["list"]
    [ctl] = listing["controls"]
    assert ctl["path"] == "/dev/rpmsg_ctrl0" and ctl["index"] == 0
    eps = {e["name"]: e for e in listing["endpoints"]}
    relay = eps["cli-tx"]["dst"]
    assert eps["cli-tx"] == {"index": int(tx[10:]), "name": "cli-tx", "src": 0xFFFFFFFF,
                             "dst": relay, "path": tx, "ctrl": 0, "channel": None}
    assert eps["cli-rx"] == {"index": int(rx[10:]), "name": "cli-rx", "src": LISTEN_ADDR,
                             "dst": 0xFFFFFFFF, "path": rx, "ctrl": 0, "channel": None}
    assert sorted(ctl["endpoints"]) == sorted([int(tx[10:]), int(rx[10:])])
    channels = {c["name"]: c for c in listing["channels"]}
    assert channels["rpmsg_ctrl"]["driver"] == "rpmsg_ctrl"
    assert channels["rpmsg_ctrl"]["ctrls"] == [0]
    assert channels["rpmsg_ns"]["src"] == channels["rpmsg_ns"]["dst"] == 0x35
    assert ctl["channel"] == channels["rpmsg_ctrl"]["device"]
    text = ok(v["list_text"])
    assert "cli-tx" in text and "cli-rx" in text and "/dev/rpmsg_ctrl0" in text


def test_cli_send_and_listen(run: Run, relayed: list[tuple[int, bytes]]) -> None:
    v = run.value("cli")
    assert ok(v["send"]) == ""
    assert relayed == [(LISTEN_ADDR, b"hello from the CLI")]
    lines = ok(v["listen"]).splitlines()
    docs = [json.loads(line) for line in lines]
    assert [{k: d[k] for k in ("url", "name", "src", "dst", "len", "hex", "text")}
            for d in docs] == [{
        "url": f"linux:{v['create']['rx']['out'].strip()}", "name": "-", "src": None,
        "dst": LISTEN_ADDR, "len": 18, "hex": b"hello from the CLI".hex(),
        "text": "hello from the CLI"}]
    assert isinstance(docs[0]["time"], float)


def test_cli_destroy(run: Run) -> None:
    v = run.value("cli")
    tx = v["create"]["tx"]["out"].strip()
    rx = v["create"]["rx"]["out"].strip()
    assert ok(v["destroy_tx"]).strip() == f"destroyed {tx}"
    assert ok(v["destroy_rx_by_name"]).strip() == f"destroyed {rx}"
    assert v["tx_gone"] is True and v["rx_gone"] is True
    assert v["left"] == []


@pytest.mark.parametrize("case", ["err_send_gone", "err_listen_timeout", "err_no_ctrl"])
def test_cli_errors_are_one_line(run: Run, case: str) -> None:
    result = run.value("cli")[case]
    assert result["rc"] == 1, result
    assert result["out"] == ""
    lines = result["err"].splitlines()
    assert len(lines) == 1 and lines[0].startswith("rpmsg: error: "), result
    assert "Traceback" not in result["err"]


def test_service_url_waits_for_the_announcement(run: Run) -> None:
    v = run.value("service")
    assert v["before"] is True and v["still_waiting"] is True
    assert len(v["notice"]) == 1
    assert "waiting for service 'svc-late' on linux:?service=svc-late" in v["notice"][0]
    assert "announces it (name service)" in v["notice"][0]
    assert v["announce"] == "ok:announce:svc-late"
    addr = v["link_service"]["dst"]
    assert v["link_service"]["name"] == "svc-late" and v["ep_dst"] == addr
    assert v["kernel"] == {"name": "svc-late", "dst": addr, "ctrl": 0}  # made on rpmsg_ctrl0
    assert v["echo"] == "late hello"
    assert v["left"] == []  # closing the device destroyed the endpoint it created


def test_service_url_timeout_and_rproc_without_remoteproc(run: Run) -> None:
    v = run.value("service")
    assert v["timeout"].startswith("RpmsgTimeoutError: linux:?service=never-announced: no "
                                   "service 'never-announced' within 0.5 s; services seen: ")
    assert "svc-late" in v["timeout"]
    assert v["rproc"] == "NotAvailableError" and v["rproc_seconds"] < 30
    assert v["list_remoteprocs"] == []


def test_service_url_with_its_own_device(run: Run) -> None:
    v = run.value("service")
    assert v["announce_raw"] == "ok:announce-raw"
    assert v["raw_device"].startswith("/dev/rpmsg")
    assert v["raw_echo"] == "raw hello"


def test_busy_and_denied_nodes_are_explained(run: Run) -> None:
    v = run.value("nodes")
    assert v["holder_open"] == "open"
    assert v["busy"].startswith("AlreadyOpenError: ")
    assert f"held by pid {v['holder_pid']} (" in v["busy"]
    kind, _, message = v["denied"].partition("|")
    assert kind == "AccessDeniedError", v["denied"]
    assert "permission denied opening /dev/rpmsg" in message
    assert "owner root:root, mode 0600" in message and "udev-rules" in message
    assert v["after"] == "after"


def test_kernel_reports_no_bug(run: Run) -> None:
    assert_clean_console(run.console)
