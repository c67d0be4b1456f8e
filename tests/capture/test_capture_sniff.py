"""``rpmsg sniff`` on a real two-process UART session: a relay process copies the bytes
between the two ptys and a copy of each direction into the sniffer's ptys, and injects one
frame with a wrong CRC. The sniffer's text, its pcapng (decoded by the real tshark) and the
fact that it never transmits are checked; plus the sans-IO line decoder on both protocols."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from capture_helpers import TSHARK, finish, tshark, tshark_fields

import rpmsg
from rpmsg.capture import CapturedEvent, CapturedFrame, read_capture
from rpmsg.capture.describe import inner_message
from rpmsg.capture.sniffer import LineSniffer, SniffedControl, SniffedError, SniffedFrame
from rpmsg.port.uart.framer import CURRENT, LEGACY, FrameEncoder
from rpmsg.wire.port import PORT_HEADER
from rpmsg.wire.rpmsg import encode_message

HERE = Path(__file__).parent
RELAY = HERE / "uart_relay.py"
PEER = HERE / "uart_echo_peer.py"


@pytest.mark.parametrize("protocol", [CURRENT, LEGACY], ids=["current", "legacy"])
def test_line_sniffer_reports_bad_frames_controls_and_errors(protocol: object) -> None:
    assert protocol is CURRENT or protocol is LEGACY
    enc = FrameEncoder(protocol, crc="arc")
    msg = encode_message(0x400, 0x401, bytes(range(0x60, 0x90)))  # bytes that need escapes
    frame = PORT_HEADER.pack(0, 0, 0, 8 + len(msg)) + msg
    good = enc.encode(frame)
    wrong = PORT_HEADER.pack(0x1234, 0, 0, 8 + len(msg)) + msg  # a CRC that does not match
    bad = FrameEncoder(protocol, crc="none").encode(wrong)
    wire = (bytes([protocol.connreq]) + good + b"\x01\x02\x03" + bad
            + bytes([protocol.start]) + b"\x01\x02" + good)  # cut short by a START
    sniffer = LineSniffer("tx", protocol, crc="arc")
    events = []
    for i in range(0, len(wire), 7):  # any chunking gives the same events
        events += sniffer.feed(wire[i:i + 7])
    kinds = [(type(e).__name__, getattr(e, "crc", getattr(e, "reason", ""))) for e in events]
    assert kinds == [("SniffedControl", ""), ("SniffedFrame", "ok"), ("SniffedError", "junk"),
                     ("SniffedFrame", "bad"), ("SniffedError", "aborted"),
                     ("SniffedFrame", "ok")]
    assert isinstance(events[0], SniffedControl) and events[0].name == "CONNREQ"
    first = events[1]
    assert isinstance(first, SniffedFrame)
    assert inner_message("port", first.data) == (0x400, 0x401, bytes(range(0x60, 0x90)))
    assert first.escapes == sum(1 for b in first.data if protocol.low <= b <= 0x7F)
    assert first.crc_alg == "arc"
    assert isinstance(events[2], SniffedError)
    assert sniffer.bad_crc == 1
    auto = LineSniffer("rx", protocol, crc="auto")
    xmodem = FrameEncoder(protocol, crc="xmodem").encode(frame)
    got = auto.feed(xmodem)
    assert isinstance(got[0], SniffedFrame) and (got[0].crc, got[0].crc_alg) == ("ok", "xmodem")
    plain = LineSniffer("rx", protocol, crc="arc").feed(FrameEncoder(protocol).encode(frame))
    assert isinstance(plain[0], SniffedFrame) and plain[0].crc == "none"


def _start(args: list[str], **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            **kw)  # type: ignore[call-overload]


@pytest.mark.skipif(TSHARK is None, reason="tshark missing: run scripts/test")
@pytest.mark.parametrize("protocol", ["current", "legacy"])
@pytest.mark.timeout(180)
def test_sniff_a_two_process_uart_session(tmp_path: Path, protocol: str) -> None:
    rng = random.Random(7)
    capture = tmp_path / "sniff.pcapng"
    dev = rpmsg.open(f"uart:pty?crc=arc&protocol={protocol}&baudrate=4000000")
    peer = relay = sniff = None
    try:
        peer = _start([sys.executable, str(PEER), protocol])
        assert peer.stdout is not None
        path_b = peer.stdout.readline().strip()
        relay = _start([sys.executable, str(RELAY), dev.link.describe()["pty"], path_b,
                        protocol, "6"])
        assert relay.stdout is not None and relay.stdin is not None
        words = relay.stdout.readline().split()
        assert words[0] == "sniff"
        sniff = subprocess.Popen(
            [sys.executable, "-m", "rpmsg", "sniff", words[1], words[2], "--baudrate",
             "4000000", "--protocol", protocol, "--crc", "arc", "-w", str(capture)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert sniff.stderr is not None
        assert "listening" in sniff.stderr.readline()
        relay.stdin.write("go\n")
        relay.stdin.flush()

        dev.wait_up(30)
        echo = dev.create_endpoint("rpmsg-echo")
        echo.wait_bound(30)
        sent = [rng.randbytes(rng.randint(1, 300)) for _ in range(40)]
        for m in sent:
            echo.send(m, timeout=30)
            assert echo.recv(timeout=30) == m
        dev.close()
        peer_stats = json.loads(finish(peer).strip().splitlines()[-1])
        relay_out = finish(relay)
        assert "injected 1" in relay_out
        assert "sniffer-wrote 0" in relay_out  # the sniffer never transmitted
        sniff.send_signal(signal.SIGTERM)
        sniff_out, sniff_err = sniff.communicate(timeout=30)
    finally:
        dev.close()
        for proc in (peer, relay, sniff):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    # The receiver dropped the corrupted frame; the session went on.
    assert peer_stats["link_framing_bad_crc"] == 1, (peer_stats, relay_out)
    lines = sniff_out.splitlines()
    assert any("tx port" in ln and "crc=bad" in ln and "0x777 -> 0x778" in ln
               for ln in lines), sniff_err
    assert any("rx port" in ln and "NS CREATE 'rpmsg-echo'" in ln for ln in lines), sniff_err
    assert any("uart-control CONNREQ" in ln for ln in lines), sniff_err
    # Every echo was seen both ways, in order, with a good CRC.
    recs = read_capture(str(capture))
    frames = [r for r in recs if isinstance(r, CapturedFrame) and r.kind == "port"]
    payloads = {d: [inner_message("port", r.data)[2] for r in frames  # type: ignore[index]
                    if r.direction == d and r.info["crc"] == "ok"
                    and inner_message("port", r.data)[1] != 53]  # type: ignore[index]
                for d in ("tx", "rx")}
    assert payloads["tx"] == sent and payloads["rx"] == sent, sniff_err
    drops = [r.detail for r in recs if isinstance(r, CapturedEvent) and r.kind == "drop"]
    assert not drops, (drops, sniff_err)
    # The real tshark with the shipped plugin: NS, a good frame, the bad one.
    rows = tshark_fields(capture, "rpmsg.direction", "rpmsg.frame.kind", "rpmsg.port.crc_status",
                         "rpmsg.port.protocol", "rpmsg.src", "rpmsg.dst", "rpmsg.ns.name",
                         "rpmsg.uart.control_name", "_ws.expert.message")
    bad = [r for r in rows if r[2] == "bad"]
    assert len(bad) == 1
    assert bad[0][:6] == ["tx", "port", "bad", protocol, "0x00000777", "0x00000778"]
    assert "CRC mismatch" in bad[0][8]
    assert ["rx", "port", "ok", protocol, "0x00000400", "0x00000035", "rpmsg-echo"] in [
        r[:7] for r in rows]
    assert any(r[1] == "uart-control" and r[7] == "CONNREQ" for r in rows)
    assert "[BAD CRC]" in tshark("-Y", "rpmsg.port.crc_status == \"bad\"", capture=capture)
