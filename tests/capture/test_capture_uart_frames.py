"""A UART Device captured at frame level (``capture_level=frames``) in a real two-process
session, with one frame of bad CRC injected on the line toward it: the capture holds the port
frames with their CRC verdict, the control bytes and the messages, and the real tshark with
the shipped plugin decodes them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from capture_helpers import TSHARK, finish, tshark, tshark_fields

import rpmsg
from rpmsg.capture import CapturedFrame, CapturedMessage, read_capture

HERE = Path(__file__).parent


@pytest.mark.skipif(TSHARK is None, reason="tshark missing: run scripts/test")
@pytest.mark.timeout(180)
def test_uart_session_captured_at_frame_level(tmp_path: Path) -> None:
    capture = tmp_path / "uart.pcapng"
    dev = rpmsg.open(f"uart:pty?crc=arc&baudrate=4000000&capture={capture}"
                     "&capture_level=frames")
    peer = relay = None
    try:
        peer = subprocess.Popen([sys.executable, str(HERE / "uart_echo_peer.py"), "current"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert peer.stdout is not None
        path_b = peer.stdout.readline().strip()
        # The bad frame goes toward us (B -> A) after the peer's first frames.
        relay = subprocess.Popen([sys.executable, str(HERE / "uart_relay.py"),
                                  dev.link.describe()["pty"], path_b, "current", "2", "ba",
                                  "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True)
        assert relay.stdout is not None and relay.stdin is not None
        assert relay.stdout.readline().startswith("sniff ")
        relay.stdin.write("go\n")
        relay.stdin.flush()
        dev.wait_up(30)
        echo = dev.create_endpoint("rpmsg-echo")
        echo.wait_bound(30)
        sent = [bytes([i]) * (i * 7 % 200 + 1) for i in range(20)]
        for m in sent:
            echo.send(m, timeout=30)
            assert echo.recv(timeout=30) == m
        stats = dev.stats()
        dev.close()
        json.loads(finish(peer).strip().splitlines()[-1])
        assert "injected 1" in finish(relay)
    finally:
        dev.close()
        for proc in (peer, relay):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    assert stats["link_framing_bad_crc"] == 1  # dropped by the link, yet in the capture
    recs = read_capture(str(capture))
    # One interface, named by the URL without the capture options.
    assert {r.interface.name for r in recs} == {"uart:pty?crc=arc&baudrate=4000000"}
    frames = [r for r in recs if isinstance(r, CapturedFrame)]
    bad = [f for f in frames if f.kind == "port" and f.info.get("crc") == "bad"]
    assert len(bad) == 1 and bad[0].direction == "rx"
    msgs = [r for r in recs if isinstance(r, CapturedMessage) and r.dst != 53]
    assert [m.payload for m in msgs if m.direction == "tx"] == sent
    assert [m.payload for m in msgs if m.direction == "rx"] == sent
    assert not any(m.src == 0x777 for m in msgs)  # the bad frame was never delivered

    rows = tshark_fields(capture, "rpmsg.direction", "rpmsg.frame.kind",
                         "rpmsg.port.crc_status", "rpmsg.port.protocol", "rpmsg.src",
                         "rpmsg.dst", "rpmsg.ns.name", "rpmsg.uart.control_name",
                         "_ws.expert.message")
    bad_rows = [r for r in rows if r[2] == "bad"]
    assert len(bad_rows) == 1
    assert bad_rows[0][:6] == ["rx", "port", "bad", "current", "0x00000777", "0x00000778"]
    assert "CRC mismatch" in bad_rows[0][8]
    ok_ns = [r for r in rows if r[1] == "port" and r[6] == "rpmsg-echo" and r[2] == "ok"]
    assert {r[0] for r in ok_ns} >= {"rx"}  # the peer's announcement, as a checked frame
    controls = {(r[0], r[7]) for r in rows if r[1] == "uart-control"}
    assert {("tx", "STAYWAKE1"), ("rx", "STAYWAKEACK1")} <= controls or \
        {("rx", "STAYWAKE1"), ("tx", "STAYWAKEACK1")} <= controls
    assert any(name in ("CONNREQ", "CONNACK") for _, name in controls)
    verbose = tshark("-V", "-Y", "rpmsg.port.crc_status == \"bad\"", capture=capture)
    assert "CRC verdict: bad" in verbose and "Source address: 0x00000777" in verbose
