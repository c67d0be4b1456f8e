"""The shipped Lua dissector, run by the real tshark on captures written by the library."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from capture_helpers import TSHARK, ns, ping_payload, sample_session, tshark, tshark_fields

import rpmsg
from rpmsg.capture import open_capture
from rpmsg.capture.blocks import interface_description, packet_block, record, section_header
from rpmsg.port.crc import frame_crc, get_crc
from rpmsg.services import EchoService
from rpmsg.wire.capture import EXPORTED_PDU_PREFIX, REC_EVENT, REC_FRAME, REC_MESSAGE
from rpmsg.wire.ping import PING_ACK
from rpmsg.wire.port import PORT_HEADER
from rpmsg.wire.rpmsg import NS_ADDR, encode_message

pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark missing: run scripts/test")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tshark") / "sample.pcapng"
    tap = open_capture(str(path), link_name="loop:sample")
    sample_session(tap)
    tap.close()
    return path


def test_messages_events_ns_and_ping_decoded(sample: Path) -> None:
    rows = tshark_fields(sample, "frame.interface_name", "rpmsg.direction", "rpmsg.src",
                         "rpmsg.dst", "rpmsg.len", "rpmsg.ns.name", "rpmsg.ns.addr",
                         "rpmsg.ns.flags", "rpmsg.service", "rpmsg.ping.type",
                         "rpmsg.ping.cookie", "rpmsg.ping.ack", "rpmsg.ping.len",
                         "rpmsg.event", "rpmsg.event.detail")
    assert len(rows) == 12
    assert {r[0] for r in rows} == {"loop:sample"}
    ev = [(r[13], r[14]) for r in rows if r[13]]
    assert ev == [("open", "loop:sample"), ("link-up", ""),
                  ("drop", "unknown destination 0x999"), ("link-down", "peer closed")]
    msgs = [r[1:13] for r in rows if r[1]]
    # NS CREATE received from the remote, and our own announcement.
    assert msgs[0][:7] == ["rx", "0x00000401", "0x00000035", "40", "rpmsg-ping",
                           "0x00000401", "0"]
    assert msgs[1][:7] == ["tx", "0x00000400", "0x00000035", "40", "rpmsg-ping",
                           "0x00000400", "0"]
    # The ping request and its response, named by the name service and decoded.
    assert msgs[2][7:] == ["rpmsg-ping", "0x00000000", "0x0000000000001234", "1", "20"]
    assert msgs[3][7:] == ["rpmsg-ping", "0x00000002", "0x0000000000001234", "0", "20"]
    # The echo service: named, not decoded as ping; then its DESTROY.
    assert msgs[5][0:4] == ["tx", "0x00000403", "0x00000402", "5"]
    assert msgs[5][7] == "rpmsg-echo" and msgs[5][8] == ""
    assert msgs[7][4:7] == ["rpmsg-echo", "0x00000402", "1"]


def test_ns_create_verbose_text(sample: Path) -> None:
    text = tshark("-V", "-Y", "rpmsg.ns.flags == 0 && rpmsg.direction == \"rx\"",
                  capture=sample)
    assert "RPMsg rx, src 0x401, dst 0x35, len 40" in text
    assert 'Name service CREATE "rpmsg-ping" addr 0x401' in text
    assert "Name: rpmsg-ping" in text
    assert "Flags: CREATE (0)" in text
    assert "Direction: Inbound" in text  # epb_flags, understood by Wireshark itself


def test_info_column(sample: Path) -> None:
    lines = tshark(capture=sample).splitlines()
    assert any('rx 0x401 -> 0x35 NS CREATE "rpmsg-ping" addr 0x401' in ln for ln in lines)
    assert any("tx 0x400 -> 0x401 rpmsg-ping PING REQ len 20 cookie "
               "0x0000000000001234 ack" in ln for ln in lines)
    assert any("drop: unknown destination 0x999" in ln for ln in lines)


def test_frames_port_uart_spi_ring(tmp_path: Path) -> None:
    crc = get_crc("arc")
    assert crc is not None
    msg = encode_message(0x400, NS_ADDR, b"\x00" * 40)
    good = bytearray(PORT_HEADER.pack(0, 0, 0, 8 + len(msg)) + msg)
    good[0:2] = frame_crc(crc, good).to_bytes(2, "little")
    bad = bytearray(good)
    bad[0] ^= 0xFF
    ping = encode_message(0x401, 0x400, ping_payload(PING_ACK, 7, b"zz"))
    spi_data = PORT_HEADER.pack(0, 3, 5, 8 + len(ping)) + ping + b"\xee" * 10  # stale tail
    path = tmp_path / "frames.pcapng"
    tap = open_capture(str(path), link_name="uart:/dev/ttyX", level="frames")
    tap.frame("rx", "port", bytes(good), {"crc": "ok", "escapes": 0, "protocol": "current"})
    tap.frame("rx", "port", bytes(bad), {"crc": "bad", "escapes": 3, "protocol": "current"})
    tap.frame("tx", "uart-control", b"\x79", {"name": "STAYWAKE1", "byte": 0x79})
    tap.frame("tx", "spi", PORT_HEADER.pack(0, 1, 4, 8) + b"peer\0", {"cmd": 1, "credits": 4,
                                                                    "crc": "none"})
    tap.frame("rx", "spi", spi_data, {"cmd": 3, "credits": 5, "crc": "ok"})
    tap.frame("tx", "ring", b"", {"event": "kick", "queue": "tx", "id": 5, "len": 56})
    tap.close()
    rows = tshark_fields(path, "rpmsg.frame.kind", "rpmsg.port.crc_status",
                         "rpmsg.port.escapes", "rpmsg.port.len", "rpmsg.src", "rpmsg.ns.addr",
                         "rpmsg.uart.control", "rpmsg.uart.control_name", "rpmsg.spi.cmd",
                         "rpmsg.spi.credits", "rpmsg.spi.name", "rpmsg.ping.cookie",
                         "rpmsg.ring.event", "rpmsg.ring.id", "_ws.expert.message")
    assert rows[0][:6] == ["port", "ok", "0", "64", "0x00000400", "0x00000000"]
    assert rows[0][14] == ""
    assert rows[1][:3] == ["port", "bad", "3"]
    assert "CRC mismatch" in rows[1][14]
    assert rows[2][6:8] == ["0x79", "STAYWAKE1"]
    assert rows[3][8:11] == ["1", "4", "peer"]
    assert rows[4][8:10] == ["3", "5"] and rows[4][4] == "0x00000401"
    assert rows[4][11] == "0x0000000000000007"
    assert rows[5][12:14] == ["kick", "5"]
    info = tshark(capture=path)
    assert "[BAD CRC]" in info.splitlines()[1]


@pytest.mark.timeout(300)
def test_demo_capture_decoded_by_tshark(tmp_path: Path) -> None:
    """``RPMSG_CAPTURE=...-%p.pcapng rpmsg demo``: the host and the simulated remote (a child
    process) each write their own capture; tshark with the plugin decodes both."""
    env = dict(os.environ, RPMSG_CAPTURE=str(tmp_path / "demo-%p.pcapng"))
    env.pop("RPMSG_CAPTURE_LEVEL", None)
    proc = subprocess.run([sys.executable, "-m", "rpmsg", "demo", "--count", "40", "--json"],
                          capture_output=True, text=True, timeout=240, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["echo_ok"] is True
    files = sorted(tmp_path.glob("demo-*.pcapng"))
    assert len(files) == 2  # host and remote: %p kept them apart
    by_role = {}
    for f in files:
        names = {r[0] for r in tshark_fields(f, "frame.interface_name")}
        assert len(names) == 1
        ns_rows = tshark_fields(f, "rpmsg.direction", "rpmsg.ns.name", "rpmsg.ns.addr",
                                display_filter="rpmsg.ns.flags == 0")
        # The remote announces (tx); the host learns the announcements (rx).
        role = "remote" if all(r[0] == "tx" for r in ns_rows) else "host"
        by_role[role] = (f, ns_rows)
    assert set(by_role) == {"host", "remote"}
    host, ns_rows = by_role["host"]
    announced = {r[1]: r[2] for r in ns_rows if r[0] == "rx"}
    assert set(announced) == {"rpmsg-echo", "rpmsg-ping"}
    remote_file, remote_ns = by_role["remote"]
    assert {r[1]: r[2] for r in remote_ns} == announced  # the same addresses both sides
    # The host received its greeting back from the echo service, named by the name service.
    echo = tshark_fields(host, "rpmsg.src", "rpmsg.service", "rpmsg.payload",
                         display_filter="rpmsg.direction == \"rx\" && rpmsg.len == 19")
    assert [announced["rpmsg-echo"], "rpmsg-echo", b"hello from the host".hex()] in echo
    # rpmsg-ping responses decoded on the host, requests (with ack) on the remote.
    greeting = tshark_fields(host, "rpmsg.dst", "rpmsg.service", "rpmsg.payload",
                             display_filter="rpmsg.direction == \"tx\" && rpmsg.len == 19")
    assert greeting == [[announced["rpmsg-echo"], "rpmsg-echo", b"hello from the host".hex()]]
    rsp = tshark_fields(host, "rpmsg.ping.type", "rpmsg.ping.ack", "rpmsg.src",
                        display_filter="rpmsg.direction == \"rx\" && "
                        "rpmsg.service == \"rpmsg-ping\" && rpmsg.ping.len")
    assert len(rsp) >= 20
    assert all(r == ["0x00000002", "0", announced["rpmsg-ping"]] for r in rsp)
    req = tshark_fields(remote_file, "rpmsg.ping.type", "rpmsg.ping.ack", "rpmsg.dst",
                        display_filter="rpmsg.direction == \"rx\" && rpmsg.ping.len")
    assert len(req) == len(rsp)
    assert all(r == ["0x00000000", "1", announced["rpmsg-ping"]] for r in req)
    # What the host sent is what the remote received, byte for byte.
    sent = tshark_fields(host, "rpmsg.ping.cookie", "rpmsg.ping.data",
                         display_filter="rpmsg.direction == \"tx\" && rpmsg.ping.len")
    received = tshark_fields(remote_file, "rpmsg.ping.cookie", "rpmsg.ping.data",
                             display_filter="rpmsg.direction == \"rx\" && rpmsg.ping.len")
    assert sent == received and len(sent) == len(req)


def test_link_down_forgets_announced_addresses(tmp_path: Path) -> None:
    path = tmp_path / "reset.pcapng"
    tap = open_capture(str(path), link_name="loop:reset")
    tap.message("rx", 0x400, NS_ADDR, ns("rpmsg-echo", 0x400))
    tap.message("tx", 0x401, 0x400, b"before")
    tap.event("link-down", "peer gone")
    tap.event("link-up")
    tap.message("tx", 0x401, 0x400, b"after")  # 0x400 was not announced again
    tap.close()
    rows = tshark_fields(path, "rpmsg.payload", "rpmsg.service",
                         display_filter="rpmsg.len && rpmsg.dst != 0x35")
    assert rows == [[b"before".hex(), "rpmsg-echo"], [b"after".hex(), ""]]
    out = subprocess.run([sys.executable, "-m", "rpmsg", "dump", str(path)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    lines = [ln for ln in out.splitlines() if "0x401 -> 0x400" in ln]
    assert "rpmsg-echo" in lines[0] and "rpmsg-echo" not in lines[1]


def test_dissector_survives_malformed_records(tmp_path: Path) -> None:
    """Records cut short, lengths that lie, unknown types and kinds, garbage info: the
    plugin reports them (expert info) and never fails (no Lua error, no exception in a
    packet whose exported-PDU tags are whole)."""
    rng = random.Random(12)
    parts = [section_header("fuzz"), interface_description("fuzz", "")]
    lengths = []
    for i in range(400):
        rtype = rng.choice([REC_MESSAGE, REC_EVENT, REC_FRAME, 0, 9])
        info = rng.choice([b"", b"crc=bad\nescapes=x\nid=\nlen=99999999999\nname",
                           rng.randbytes(rng.randint(0, 20))])
        body = rng.choice([rng.randbytes(rng.randint(0, 90)),
                           PORT_HEADER.pack(0, rng.randint(0, 7), 9, rng.randint(0, 999))
                           + rng.randbytes(rng.randint(0, 40)),
                           encode_message(1, NS_ADDR, rng.randbytes(rng.choice([39, 40, 41])))])
        data = record(rtype, rng.randint(0, 3), rng.randint(0, 6), info, body)
        if rng.random() < 0.3:
            data = data[:rng.randint(len(EXPORTED_PDU_PREFIX), len(data))]
        lengths.append(len(data))
        parts.append(packet_block(0, i, data))
    path = tmp_path / "fuzz.pcapng"
    path.write_bytes(b"".join(parts))
    text = tshark("-V", capture=path)  # asserts no Lua error
    assert text.count("RPMsg capture record") == 400
    assert "Exception occurred" not in text


def test_spi_exchanges_at_frame_level(tmp_path: Path) -> None:
    """A simulated SPI bus, the slave captured at frame level: CONNECT, AVAIL and DATA
    exchanges with their credits and CRC verdict, and the messages DATA frames carry."""
    bus = tmp_path / "bus.sock"
    cap = tmp_path / "spi.pcapng"
    slave = rpmsg.open(f"spisim:{bus}?hz=0&crc=arc&capture={cap}&capture_level=frames",
                       side="remote")
    try:
        master = rpmsg.open(f"spisim:{bus}?hz=0&crc=arc")
        try:
            EchoService(slave, "rpmsg-echo")
            ept = master.create_endpoint("rpmsg-echo")
            ept.wait_bound(10)
            for i in range(3):
                ept.send(b"spi %d" % i, timeout=10)
                assert ept.recv(timeout=10) == b"spi %d" % i
        finally:
            master.close()
    finally:
        slave.close()
    rows = tshark_fields(cap, "rpmsg.direction", "rpmsg.spi.cmd", "rpmsg.spi.credits",
                         "rpmsg.spi.crc_status", "rpmsg.service", "rpmsg.payload",
                         display_filter="rpmsg.frame.kind == \"spi\"")
    cmds = {r[1] for r in rows}
    assert {"1", "2", "3"} <= cmds  # CONNECT, AVAIL, DATA
    assert all(r[2].isdigit() for r in rows)
    assert {r[3] for r in rows if r[1] == "3"} == {"ok"}
    echoes = [(r[0], bytes.fromhex(r[5])) for r in rows if r[1] == "3" and r[4] == "rpmsg-echo"]
    for i in range(3):
        assert ("rx", b"spi %d" % i) in echoes and ("tx", b"spi %d" % i) in echoes
