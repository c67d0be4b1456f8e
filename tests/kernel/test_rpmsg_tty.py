"""Linux's rpmsg_tty driver (real kernel, UML) against ``rpmsg remote --tty`` serving.

The host announces two ``rpmsg-tty`` channels over vhost-user: one echoes
(:class:`~rpmsg.services.tty.TtyService` default), one runs a command that upper-cases its
input (``--tty-exec``). The guest (``guest_rpmsg_tty.py``) opens each ``/dev/ttyRPMSGn`` in raw
mode, writes lines and a 1501-byte line (more than one 496-byte RPMsg message) and reads the
replies.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import rpmsg
from rpmsg.services.tty import LINUX_TTY_NAME, TtyService

from .test_vhost_rpmsg import assert_clean_console
from .uml import VIRTIO_ID_RPMSG, boot

GUEST = Path(__file__).with_name("guest_rpmsg_tty.py").read_text(encoding="utf-8")
UPPER = [sys.executable, "-u", "-c",
         "import sys\nfor line in sys.stdin: sys.stdout.write(line.upper()); sys.stdout.flush()"]

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict, str, list]]:
    path = tmp_path_factory.mktemp("tty") / "rpmsg.sock"
    device = rpmsg.open(f"vhost-user:{path}", side="remote")
    services = [TtyService(device), TtyService(device, command=UPPER)]
    try:
        result = boot(GUEST, devices=[(str(path), VIRTIO_ID_RPMSG)], timeout=120,
                      env={"RPMSG_TTY_COUNT": "2"})
        result.check()
        stats = [(s.received, s.sent, s.dropped) for s in services]
        yield json.loads(result.stdout), result.console, stats
    finally:
        for s in services:
            s.close()
        device.close()


def test_both_channels_are_bound_by_rpmsg_tty(run: tuple[dict, str, list]) -> None:
    out, _console, _stats = run
    ttys = [c for c in out["channels"] if f".{LINUX_TTY_NAME}." in c]
    assert len(ttys) == 2, out["channels"]
    assert all(out["drivers"].get(c) == "rpmsg_tty" for c in ttys), out["drivers"]


def test_lines_come_back_echoed_and_through_the_command(run: tuple[dict, str, list]) -> None:
    out, _console, _stats = run
    results = [out["/dev/ttyRPMSG0"], out["/dev/ttyRPMSG1"]]
    for r in results:
        assert "error" not in r, r.get("trace")
    replies = sorted(tuple(r["replies"]) for r in results)
    assert replies == [("HELLO OVER RPMSG-TTY\n", "SECOND LINE\n"),
                       ("hello over rpmsg-tty\n", "second line\n")]


def test_a_line_longer_than_one_message_arrives_whole(run: tuple[dict, str, list]) -> None:
    out, _console, stats = run
    for tty in ("/dev/ttyRPMSG0", "/dev/ttyRPMSG1"):
        assert out[tty]["big_ok"] and out[tty]["big_len"] == 1501, out[tty]
    assert sorted(r["big_upper"] for r in (out["/dev/ttyRPMSG0"], out["/dev/ttyRPMSG1"])) \
        == [False, True]
    # 2 lines + 1501 bytes went to each service, all answered, nothing dropped
    for received, sent, dropped in stats:
        assert received == sent == 21 + 12 + 1501 and dropped == 0, stats


def test_kernel_reports_no_bug(run: tuple[dict, str, list]) -> None:
    assert_clean_console(run[1])
