"""Guest program for ``test_gpio_sim.py``: the SPI transport's MREQ/SREQ lines on gpio-sim.

Run inside User-Mode Linux, it creates a simulated GPIO chip through configfs (the kernel's
``Documentation/admin-guide/gpio/gpio-sim.rst``), opens
:class:`rpmsg.port.spi.hardware.HardwarePhys` on its lines (the SPI device is a stand-in: UML
has no SPI controller; the GPIO lines are real kernel lines through the GPIO character device),
drives and watches them, and prints what it saw as one JSON object for the host-side test to
judge.
"""

from __future__ import annotations

import json
import os
import queue
import stat
import sys
import time
import types
from typing import Any

CONFIGFS = "/sys/kernel/config"
SIM = f"{CONFIGFS}/gpio-sim/rpmsg-test"
NUM_LINES = 6
#: Longest wait for an edge that should come, and the window in which one that should not
#: come must stay away (gpio-sim raises its interrupt synchronously with the sysfs write).
EDGE_WAIT = 2.0
QUIET_WINDOW = 0.2


class _NoSpi:
    """Stand-in for ``spidev.SpiDev``: accepts the settings, never transfers."""

    def open(self, bus: int, dev: int) -> None:
        pass

    def close(self) -> None:
        pass


def make_chip() -> tuple[str, str] | None:
    """Create and enable the simulated chip; return (platform device name, gpiochip name), or
    None if this kernel has no gpio-sim."""
    with open("/proc/mounts", encoding="ascii") as f:
        mounted = any(line.split()[1] == CONFIGFS for line in f if len(line.split()) > 1)
    if not mounted:
        os.makedirs(CONFIGFS, exist_ok=True)
        if os.system(f"mount -t configfs configfs {CONFIGFS}") != 0:
            raise RuntimeError("cannot mount configfs")
    if not os.path.isdir(os.path.dirname(SIM)):
        return None
    os.mkdir(SIM)
    os.mkdir(f"{SIM}/bank0")
    write(f"{SIM}/bank0/num_lines", str(NUM_LINES))
    for i in range(NUM_LINES):
        os.mkdir(f"{SIM}/bank0/line{i}")
        write(f"{SIM}/bank0/line{i}/name", f"rpmsg-test-{i}")
    write(f"{SIM}/live", "1")
    return read(f"{SIM}/dev_name"), read(f"{SIM}/bank0/chip_name")


def ensure_node(chip: str) -> str:
    """The chip's /dev node: wait a little for the guest's device daemon, else create it."""
    path = f"/dev/{chip}"
    major, _, minor = read(f"/sys/bus/gpio/devices/{chip}/dev").partition(":")
    rdev = os.makedev(int(major), int(minor))
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            if os.stat(path).st_rdev == rdev:
                return path
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, rdev)
    except FileExistsError:
        pass
    return path


def write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(text)


def read(path: str) -> str:
    with open(path, encoding="ascii") as f:
        return f.read().strip()


class Recorder:
    """The :class:`~rpmsg.port.spi.phys.PhysEvents` sink: queues what HardwarePhys reports."""

    def __init__(self) -> None:
        self.edges: queue.Queue[float] = queue.Queue()
        self.errors: list[str] = []

    def peer_edge(self) -> None:
        self.edges.put(time.monotonic())

    def transfer_done(self, rx: bytes) -> None:
        self.errors.append(f"unexpected transfer_done({len(rx)} bytes)")

    def phys_error(self, error: Exception) -> None:
        self.errors.append(repr(error))

    def edge_within(self, seconds: float) -> bool:
        try:
            self.edges.get(timeout=seconds)
        except queue.Empty:
            return False
        return True


def line_info(chip_path: str, offset: int) -> dict[str, Any]:
    """What the kernel says about one line (direction, active-low, bias, edges, consumer)."""
    import gpiod

    with gpiod.Chip(chip_path) as chip:
        info = chip.get_line_info(offset)
    return {"used": info.used, "consumer": info.consumer, "direction": info.direction.name,
            "active_low": info.active_low, "bias": info.bias.name,
            "edge": info.edge_detection.name}


def exercise(role: str, mreq: str, sreq: str, sysfs: str, chip_path: str) -> dict[str, Any]:
    """Open HardwarePhys as ``role`` with the given ``CHIP:OFFSET[:low]`` lines, drive this
    side's request line and toggle the peer's; report the observations."""
    from rpmsg.port.spi.hardware import GpioSpec, HardwarePhys

    m, s = GpioSpec.parse(mreq, "mreq"), GpioSpec.parse(sreq, "sreq")
    mine, theirs = (m, s) if role == "master" else (s, m)
    out_sim, in_sim = f"{sysfs}/sim_gpio{mine.offset}", f"{sysfs}/sim_gpio{theirs.offset}"
    # The peer idles inactive: pulled down if active high, up if active low.
    idle, active = ("pull-up", "pull-down") if theirs.active_low else ("pull-down", "pull-up")
    obs: dict[str, Any] = {}
    phys = HardwarePhys("/dev/spidev0.0", role, 64, mreq=m, sreq=s)  # type: ignore[arg-type]
    events = Recorder()
    try:
        obs["out_info"] = line_info(chip_path, mine.offset)
        obs["in_info"] = line_info(chip_path, theirs.offset)
        phys.start(events)
        # This side's request line, as the kernel's simulated line sees it.
        obs["out_initial"] = read(f"{out_sim}/value")
        phys.set_request(True)
        obs["out_active"] = read(f"{out_sim}/value")
        phys.set_request(False)
        obs["out_inactive"] = read(f"{out_sim}/value")
        # The peer's request line, toggled from outside through the simulator's pull.
        obs["peer_initial"] = phys.peer_active()
        obs["edge_while_idle"] = events.edge_within(QUIET_WINDOW)
        write(f"{in_sim}/pull", active)
        obs["edge_on_activate"] = events.edge_within(EDGE_WAIT)
        obs["peer_after_activate"] = phys.peer_active()
        write(f"{in_sim}/pull", idle)
        obs["edge_on_deactivate"] = events.edge_within(QUIET_WINDOW)
        obs["peer_after_deactivate"] = phys.peer_active()
        write(f"{in_sim}/pull", active)
        obs["edge_on_second_activate"] = events.edge_within(EDGE_WAIT)
        write(f"{in_sim}/pull", idle)
        obs["edges_counted"] = phys.stats()["edges"]
    finally:
        phys.close()
    obs["phys_errors"] = events.errors
    obs["released"] = [not line_info(chip_path, o)["used"] for o in (m.offset, s.offset)]
    return obs


def wait_edges_direct(chip: str, offset: int, sysfs: str) -> dict[str, Any]:
    """The input line's own wait: 0 edges on a timeout, then the edge that comes."""
    from rpmsg.port.spi.hardware import GpioSpec, _GpioInput

    line = _GpioInput(GpioSpec.parse(f"{chip}:{offset}", "sreq"), "rpmsg-test")
    try:
        none = line.wait_edges(0.2)
        write(f"{sysfs}/sim_gpio{offset}/pull", "pull-up")
        one = line.wait_edges(EDGE_WAIT)
        write(f"{sysfs}/sim_gpio{offset}/pull", "pull-down")
        after_fall = line.wait_edges(QUIET_WINDOW)
    finally:
        line.close()
    return {"timeout_edges": none, "edges": one,
            "edges_after_fall": after_fall}


def main() -> int:
    sys.modules["spidev"] = types.SimpleNamespace(SpiDev=_NoSpi)  # type: ignore[assignment]
    made = make_chip()
    if made is None:
        print(json.dumps({"skip": "the kernel has no gpio-sim (CONFIG_GPIO_SIM)"}))
        return 0
    dev, chip = made
    chip_path = ensure_node(chip)
    sysfs = f"/sys/devices/platform/{dev}/{chip}"
    report = {
        "chip": chip,
        "master_active_high": exercise("master", f"{chip}:0", f"{chip}:1", sysfs, chip_path),
        "slave_active_low": exercise("slave", f"{chip_path}:2:low", f"{chip_path}:3:low",
                                     sysfs, chip_path),
        "wait_edges": wait_edges_direct(chip, 4, sysfs),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
