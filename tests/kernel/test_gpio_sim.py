"""The SPI transport's MREQ/SREQ request lines on real kernel GPIO lines (gpio-sim in UML).

One boot runs ``guest_gpio_sim.py``, which creates a gpio-sim chip through configfs and opens
:class:`rpmsg.port.spi.hardware.HardwarePhys` on its lines (libgpiod v2 through the GPIO
character device; the SPI device is a stand-in); the tests here judge what it saw. Spec:
``/work/shared/spec/rpmsg-port.md`` §4.1 (inputs pull-down with an edge interrupt, rising, or
falling when inverted; outputs honour the inversion).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .uml import boot

pytestmark = pytest.mark.kernel

GUEST = Path(__file__).with_name("guest_gpio_sim.py")


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    pytest.importorskip("gpiod", reason="the gpiod (libgpiod v2) bindings are not installed")
    result = boot(GUEST.read_text(encoding="utf-8"), timeout=60).check()
    data: dict[str, Any] = json.loads(result.stdout)
    if "skip" in data:
        pytest.skip(data["skip"])
    return data


def test_master_lines_as_the_kernel_sees_them(report: dict[str, Any]) -> None:
    obs = report["master_active_high"]
    # MREQ is the master's output, SREQ its input: pull-down, edge interrupt on rising.
    out = obs["out_info"]
    assert (out["used"], out["consumer"]) == (True, "rpmsg-spi-master")
    assert (out["direction"], out["active_low"], out["edge"]) == ("OUTPUT", False, "NONE")
    assert obs["in_info"] == {"used": True, "consumer": "rpmsg-spi-master",
                              "direction": "INPUT", "active_low": False,
                              "bias": "PULL_DOWN", "edge": "RISING"}


def test_master_drives_mreq_high_when_active(report: dict[str, Any]) -> None:
    obs = report["master_active_high"]
    assert (obs["out_initial"], obs["out_active"], obs["out_inactive"]) == ("0", "1", "0")


def test_master_sees_rising_sreq_edges_only(report: dict[str, Any]) -> None:
    obs = report["master_active_high"]
    assert obs["peer_initial"] is False
    assert obs["edge_while_idle"] is False
    assert obs["edge_on_activate"] is True
    assert obs["peer_after_activate"] is True
    assert obs["edge_on_deactivate"] is False
    assert obs["peer_after_deactivate"] is False
    assert obs["edge_on_second_activate"] is True
    assert obs["edges_counted"] == 2
    assert obs["phys_errors"] == []
    assert obs["released"] == [True, True]


def test_slave_lines_inverted(report: dict[str, Any]) -> None:
    obs = report["slave_active_low"]
    # SREQ is the slave's output, MREQ its input; inverted lines idle high (pulled up).
    assert obs["out_info"]["consumer"] == "rpmsg-spi-slave"
    assert (obs["out_info"]["direction"], obs["out_info"]["active_low"]) == ("OUTPUT", True)
    assert obs["in_info"]["consumer"] == "rpmsg-spi-slave"
    assert (obs["in_info"]["direction"], obs["in_info"]["active_low"]) == ("INPUT", True)
    assert obs["in_info"]["bias"] == "PULL_UP"


def test_slave_drives_inverted_sreq_low_when_active(report: dict[str, Any]) -> None:
    obs = report["slave_active_low"]
    assert (obs["out_initial"], obs["out_active"], obs["out_inactive"]) == ("1", "0", "1")


def test_slave_sees_falling_mreq_edges_only(report: dict[str, Any]) -> None:
    obs = report["slave_active_low"]
    assert obs["peer_initial"] is False
    assert obs["edge_while_idle"] is False
    assert obs["edge_on_activate"] is True  # the line fell
    assert obs["peer_after_activate"] is True
    assert obs["edge_on_deactivate"] is False  # the line rose
    assert obs["peer_after_deactivate"] is False
    assert obs["edge_on_second_activate"] is True
    assert obs["edges_counted"] == 2
    assert obs["phys_errors"] == []
    assert obs["released"] == [True, True]


def test_wait_for_edge_times_out_without_one(report: dict[str, Any]) -> None:
    obs = report["wait_edges"]
    assert obs == {"timeout_edges": 0, "edges": 1, "edges_after_fall": 0}
