"""The ``rpmsg.trace`` logger: off by default (even with the root logger at DEBUG), one line
per message, event and frame once its own level is DEBUG."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest
from capture_helpers import sample_session, wait_until

import rpmsg
from rpmsg.capture import TeeTap, TraceTap, combine, open_capture, read_capture, trace_enabled
from rpmsg.services import EchoService


@pytest.fixture
def trace_level() -> Iterator[logging.Logger]:
    log = logging.getLogger("rpmsg.trace")
    before = log.level
    yield log
    log.setLevel(before)


def test_off_by_default_even_at_debug(trace_level: logging.Logger,
                                      caplog: pytest.LogCaptureFixture) -> None:
    trace_level.setLevel(logging.NOTSET)
    caplog.set_level(logging.DEBUG)  # the root logger at DEBUG, as with -vv
    assert not trace_enabled()
    name = f"tr-{uuid.uuid4().hex[:8]}"
    with rpmsg.open(f"loop:{name}", side="remote") as remote, rpmsg.open(f"loop:{name}") as host:
        assert host.tap is None and remote.tap is None
    assert not [r for r in caplog.records if r.name == "rpmsg.trace"]


def test_one_line_per_message_when_enabled(trace_level: logging.Logger,
                                           caplog: pytest.LogCaptureFixture) -> None:
    trace_level.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="rpmsg.trace")
    assert trace_enabled()
    name = f"tr-{uuid.uuid4().hex[:8]}"
    with rpmsg.open(f"loop:{name}", side="remote") as remote, rpmsg.open(f"loop:{name}") as host:
        EchoService(remote, "rpmsg-echo")
        ept = host.create_endpoint("rpmsg-echo")
        ept.wait_bound(10)
        ept.send(b"traced", timeout=10)
        assert ept.recv(timeout=10) == b"traced"
        payload = b"traced".hex(" ")
        assert wait_until(lambda: sum(payload in r.getMessage()
                                      for r in caplog.records) >= 4)
    lines = [r.getMessage() for r in caplog.records if r.name == "rpmsg.trace"]
    # Both Devices log both directions: host tx, remote rx, remote tx, host rx.
    assert len([ln for ln in lines if payload in ln and "rpmsg-echo" in ln]) == 4
    assert any("NS CREATE 'rpmsg-echo'" in ln for ln in lines)
    assert any("link-up" in ln for ln in lines)
    assert all(ln.startswith(f"loop:{name} ") for ln in lines)


def test_trace_and_capture_together(tmp_path: object, caplog: pytest.LogCaptureFixture) -> None:
    path = f"{tmp_path}/both.pcapng"
    tap = combine(open_capture(path, link_name="loop:both"), TraceTap("loop:both"))
    assert isinstance(tap, TeeTap)
    caplog.set_level(logging.DEBUG, logger="rpmsg.trace")
    sample_session(tap)
    tap.close()
    assert len(read_capture(path)) == 12
    lines = [r.getMessage() for r in caplog.records if r.name == "rpmsg.trace"]
    assert len(lines) == 12
    assert "loop:both tx 0x400 -> 0x401 [20] rpmsg-ping PING REQ cmd 0x1 len 20 " \
        "cookie 0x1234 ack" in lines
    assert combine(None, None) is None
