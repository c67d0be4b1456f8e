"""The UML kernel boots, runs a Python guest program with the host's interpreter, powers off."""

from __future__ import annotations

import json
import platform
import sys

import pytest

from .uml import boot

GUEST = """
import json, os, platform, sys
print(json.dumps({
    "release": os.uname().release,
    "machine": os.uname().machine,
    "sysname": os.uname().sysname,
    "has_sys_bus": os.path.isdir("/sys/bus"),
    "buses": sorted(os.listdir("/sys/bus")),
    "dev_null": os.path.exists("/dev/null"),
    "python": sys.version,
}))
print("guest stderr line", file=sys.stderr)
sys.exit(3)
"""


@pytest.mark.kernel
def test_boot_runs_guest_program_and_powers_off() -> None:
    result = boot(GUEST, timeout=120)

    assert result.returncode == 3, result.console
    assert result.stderr == "guest stderr line\n"
    info = json.loads(result.stdout)
    # The guest is the 6.12 UML kernel, not the host kernel, running the host's Python.
    assert info["sysname"] == "Linux"
    assert info["release"].startswith("6.12."), info
    assert info["release"] != platform.release()
    assert info["machine"] == "x86_64"
    assert info["has_sys_bus"] is True
    assert "platform" in info["buses"]
    assert "rpmsg" in info["buses"]
    assert "virtio" in info["buses"]
    assert info["dev_null"] is True
    assert info["python"] == sys.version
    assert "Linux version 6.12" in result.console
    assert "Kernel panic" not in result.console
