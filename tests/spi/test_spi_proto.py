"""The sans-IO SPI protocol: frame layout, parser bounds, credits, CRC, connect and restart."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from spi_harness import BUFLEN, Side, exchange, run

from rpmsg.errors import DecodeError
from rpmsg.port.crc import crc16_arc
from rpmsg.port.spi.proto import Cmd, SpiFrame, SpiProtocol, State, parse_frame
from rpmsg.wire.port import PORT_HEADER


def _frame(cmd: int, avail: int = 0, length: int = 8, crc: int = 0, size: int = BUFLEN,
           extra: bytes = b"") -> bytes:
    buf = bytearray(size)
    PORT_HEADER.pack_into(buf, 0, crc, cmd, avail, length)
    buf[8:8 + len(extra)] = extra
    return bytes(buf)


def _connected() -> tuple[Side, Side]:
    m, s = Side("master", name="slave-cpu"), Side("slave", name="master-cpu")
    run(m, s, 2)
    assert m.proto.state is State.CONNECTED and s.proto.state is State.CONNECTED
    return m, s


# Frame layout -----------------------------------------------------------------------------


def test_connect_frame_carries_the_remote_name_at_offset_8_outside_len() -> None:
    p = SpiProtocol("master", buflen=BUFLEN, rxnum=4, name="proxy")
    buf = bytearray(BUFLEN)
    cmd = p.choose(tx_ready=True)
    assert cmd is Cmd.CONNECT
    p.seal(buf, cmd, free_rx=3)
    # crc 0, cmd 1, avail = free - 1 = 2, len 8; then "proxy\0"
    assert bytes(buf[:14]) == bytes.fromhex("0000 0100 0200 0800") + b"proxy\0"
    assert parse_frame(buf).name == "proxy"


def test_legacy_command_frames_cover_the_whole_buffer() -> None:
    p = SpiProtocol("slave", buflen=BUFLEN, rxnum=4, legacy=True)
    buf = bytearray(BUFLEN)
    p.seal(buf, Cmd.CONNECT, free_rx=0)
    assert PORT_HEADER.unpack(buf)[1:] == (1, 0, BUFLEN)
    with pytest.raises(DecodeError):
        parse_frame(_frame(Cmd.SHUTDOWN), legacy=True)


def test_crc_is_crc16_arc_over_bytes_2_to_len() -> None:
    p = SpiProtocol("master", buflen=BUFLEN, rxnum=4, crc=crc16_arc)
    buf = bytearray(BUFLEN)
    p.seal(buf, Cmd.CONNECT, free_rx=3)
    assert int.from_bytes(buf[:2], "little") == crc16_arc(bytes(buf[2:8]))


def test_mtu_reserves_the_timestamp_trailer() -> None:
    assert SpiProtocol("master", buflen=512, rxnum=4).mtu == 472
    assert SpiProtocol("master", buflen=512, rxnum=4, legacy=True).mtu == 488


# Parser -----------------------------------------------------------------------------------


@pytest.mark.parametrize("frame, field", [
    (_frame(0), "cmd"),
    (_frame(7), "cmd"),
    (_frame(Cmd.AVAIL, length=BUFLEN + 1), "len"),
    (_frame(Cmd.AVAIL, length=7), "len"),
    (_frame(Cmd.DATA, length=20), "len"),
    (_frame(Cmd.DATA, length=30, extra=bytes(12) + (7).to_bytes(2, "little")), "len"),
    (b"\x00\x00\x02", "cmd"),
])
def test_parser_rejects_bad_frames_with_a_typed_error(frame: bytes, field: str) -> None:
    with pytest.raises(DecodeError) as info:
        parse_frame(frame)
    assert info.value.field == field


@given(st.binary(max_size=BUFLEN))
def test_random_bytes_give_a_frame_or_a_decode_error(data: bytes) -> None:
    try:
        f = parse_frame(data)
    except DecodeError:
        return
    assert isinstance(f, SpiFrame)
    assert 8 <= f.length <= len(data)


@given(st.sampled_from(list(Cmd)), st.integers(0, 0xFFFF), st.binary(max_size=40))
def test_sealed_frames_parse_back(cmd: Cmd, free: int, name: bytes) -> None:
    p = SpiProtocol("slave", buflen=BUFLEN, rxnum=4, name=name.decode("latin-1"))
    buf = bytearray(BUFLEN)
    if cmd is Cmd.DATA:
        PORT_HEADER.pack_into(buf, 0, 0, 0, 0, 24)
    p.seal(buf, cmd, free)
    f = parse_frame(buf)
    assert (f.cmd, f.avail) == (cmd, min(max(free - 1, 0), 0xFFFF))


@settings(max_examples=300)
@given(st.sampled_from(list(State)), st.lists(st.binary(min_size=BUFLEN, max_size=BUFLEN)
                                             | st.builds(_frame, st.integers(0, 8),
                                                         st.integers(0, 0xFFFF),
                                                         st.integers(0, BUFLEN + 4),
                                                         st.integers(0, 0xFFFF)),
                                             max_size=8),
       st.integers(0, 3))
def test_random_frames_never_break_the_state_machine(state: State, frames: list[bytes],
                                                     free: int) -> None:
    p = SpiProtocol("master", buflen=BUFLEN, rxnum=4, crc=crc16_arc)
    p.state = state
    for rx in frames:
        p.seal(bytearray(BUFLEN), p.choose(False), free)
        out = p.complete(rx, free)
        assert p.state in State
        assert (out.queued is None) or (out.ignored is None)
        if out.queued is not None:
            p.process(out.queued)
    s = p.stats
    assert s.rx_bad_frame + s.rx_bad_crc + s.rx_no_crc + s.rx_ignored_state + s.rx_no_buffer \
        + s.rx_data + s.rx_commands == len(frames)


# Completion rules -------------------------------------------------------------------------


def test_garbage_unknown_commands_long_frames_and_bad_crc_are_ignored_and_counted() -> None:
    m, s = Side("master", crc=crc16_arc), Side("slave", crc=crc16_arc)
    run(m, s, 2)
    assert m.proto.connected
    credit = m.proto.txavail
    bad_crc = bytearray(_frame(Cmd.AVAIL, avail=0))
    bad_crc[0] = 0x55  # non-zero and wrong
    for rx in (b"\xff" * BUFLEN, _frame(9), _frame(Cmd.AVAIL, length=BUFLEN * 2),
               bytes(bad_crc)):
        m.frame()
        m.complete(rx)
    st_ = m.proto.stats
    assert (st_.rx_bad_frame, st_.rx_bad_crc) == (3, 1)
    assert m.proto.connected and m.proto.txavail == credit  # ignored entirely
    m.send(b"still alive")
    run(m, s, 3)
    assert s.delivered == [b"still alive"]


def test_credits_are_replaced_by_the_latest_value_never_decremented() -> None:
    m, _s = _connected()
    m.frame()
    m.complete(_frame(Cmd.AVAIL, avail=5))
    assert m.proto.txavail == 5
    m.frame()
    m.complete(_frame(Cmd.AVAIL, avail=2))
    assert m.proto.txavail == 2
    m.frame()
    m.complete(_frame(Cmd.AVAIL, avail=6))
    assert m.proto.txavail == 6


def test_data_is_sent_only_with_credit() -> None:
    m, _ = _connected()
    m.proto.txavail = 0
    assert m.proto.choose(tx_ready=True) is Cmd.AVAIL
    m.proto.txavail = 1
    assert m.proto.choose(tx_ready=True) is Cmd.DATA


def test_rx_threshold_forces_an_avail_exchange() -> None:
    p = SpiProtocol("slave", buflen=BUFLEN, rxnum=9)  # rxthres = 8 * 50 / 100 = 4
    p.state = State.CONNECTED
    p.seal(bytearray(BUFLEN), Cmd.AVAIL, free_rx=2)  # advertised 1
    assert p.rxthres == 4
    assert not p.wants_credit_refresh(4)
    assert p.wants_credit_refresh(5)


def test_credit_exhaustion_waits_and_loses_nothing() -> None:
    m, s = _connected()
    sent = [bytes([i]) * (i + 1) for i in range(40)]
    back = [b"s%d" % i for i in range(40)]
    for p in sent:
        m.send(p)
    for p in back:
        s.send(p)
    # Process received frames only every 5 exchanges, so both sides run out of credit often.
    run(m, s, 400, process_every=5)
    assert s.delivered == sent
    assert m.delivered == back
    assert m.proto.stats.rx_no_buffer == s.proto.stats.rx_no_buffer == 0


# Connect, names, shutdown, restarts ----------------------------------------------------------


def test_connect_exchanges_names_each_side_gets_what_the_peer_calls_it() -> None:
    m, s = _connected()
    assert (m.local_name, s.local_name) == ("master-cpu", "slave-cpu")
    assert m.ups == s.ups == 1


def test_orderly_shutdown_and_reconnect() -> None:
    m, s = _connected()
    assert m.proto.request_shutdown()
    run(m, s, 1)
    assert not m.proto.shutdown_pending
    assert s.proto.state is State.UNCONNECTED and not s.up
    # The master restarts (fresh state) and both connect again.
    m = Side("master", name="slave-cpu")
    run(m, s, 2)
    assert m.up and s.up and s.ups == 2


@pytest.mark.parametrize("restart_side", ["master", "slave"])
@pytest.mark.parametrize("at", range(8))
def test_restart_at_any_point_reconnects_and_delivers_nothing_twice(restart_side: str,
                                                                    at: int) -> None:
    m, s = Side("master"), Side("slave")
    for i in range(at):
        exchange(m, s)
        if i % 2:
            m.process()
            s.process()
        if m.up:
            m.send(b"m%d" % i)
        if s.up:
            s.send(b"s%d" % i)
    if restart_side == "master":
        m = Side("master")
    else:
        s = Side("slave")
    run(m, s, 12)
    assert m.up and s.up
    assert m.proto.connected and s.proto.connected
    m.delivered.clear()
    s.delivered.clear()
    m.send(b"after-m")
    s.send(b"after-s")
    run(m, s, 4)
    assert s.delivered == [b"after-m"]
    assert m.delivered == [b"after-s"]


def test_a_connect_while_connected_takes_the_link_down_then_up_again() -> None:
    m, _s = _connected()
    s2 = Side("slave", name="master-cpu")  # the slave rebooted
    run(m, s2, 6)
    assert m.downs == 1 and m.ups == 2
    assert s2.up


def _armed_cycle(us: Side, peer: Side, armed: bytes, *, we_are_master: bool) -> bytes:
    """One exchange in which our frame was chosen earlier (armed in the controller, or chosen
    by the bus thread) and our next one is chosen at once, before our thread processes what
    came in: the interleaving a threaded driver (ours, NuttX's slave) really has."""
    fp = peer.frame()
    peer.complete(armed)
    us.complete(fp)
    armed = us.frame()  # re-armed from the completion, while the state may be RECONNECTING
    if we_are_master:
        us.process()
        peer.process()
    else:
        peer.process()
        us.process()
    return armed


@pytest.mark.parametrize("we_are_master", [False, True])
def test_peer_restart_while_we_had_data_armed_does_not_livelock(we_are_master: bool) -> None:
    """Issue 10.14, replayed: we (either role) have a DATA frame armed when the peer reboots
    and sends CONNECT. The frame we send in the following exchange is chosen while we are
    still RECONNECTING, so it is not a CONNECT; taking the peer's CONNECT in that exchange as
    a handshake made us CONNECTED while the peer never saw our CONNECT (seen against NuttX's
    master: 403 link-ups and downs in 25 s). A state may only advance on an exchange in which
    both sides sent CONNECT."""
    m, s = _connected()
    us, peer = (m, s) if we_are_master else (s, m)
    us.send(b"stale")
    armed = us.frame()
    assert PORT_HEADER.unpack(armed)[1] == Cmd.DATA
    # The peer reboots: fresh state, UNCONNECTED, sends CONNECT at every exchange.
    peer = Side("slave" if we_are_master else "master", name=peer.proto.name)
    ups_before = us.ups
    for _ in range(8):
        armed = _armed_cycle(us, peer, armed, we_are_master=we_are_master)
    assert peer.up and peer.proto.connected, "the rebooted peer never saw our CONNECT"
    assert us.up and us.proto.connected
    assert us.ups == ups_before + 1 and us.downs == 1  # one restart, not a flapping link
    assert us.proto.stats.counts_by_cmd["CONNECT"] >= 2  # ours went out again
    us.delivered.clear()
    peer.delivered.clear()
    us.send(b"after")
    peer.send(b"back")
    for _ in range(4):
        armed = _armed_cycle(us, peer, armed, we_are_master=we_are_master)
    assert peer.delivered == [b"after"] and us.delivered == [b"back"]
    assert b"stale" not in peer.delivered


def test_a_connect_met_by_anything_but_connect_leaves_us_unconnected_and_asks_again() -> None:
    p = SpiProtocol("slave", buflen=BUFLEN, rxnum=4)
    p.seal(bytearray(BUFLEN), Cmd.AVAIL, 3)  # what went out was not a CONNECT
    out = p.complete(_frame(Cmd.CONNECT, avail=2), 3)
    assert p.state is State.UNCONNECTED and out.queued is None and out.request
    assert p.choose(False) is Cmd.CONNECT
    p.seal(bytearray(BUFLEN), Cmd.CONNECT, 3)
    p.complete(_frame(Cmd.CONNECT, avail=2), 3)
    assert p.state is State.CONNECTING


def test_suspend_and_resume_toggle_the_peer_running_signal() -> None:
    m, _ = _connected()
    m.frame()
    m.complete(_frame(Cmd.SUSPEND))
    assert m.proto.peer_running is False
    m.frame()
    m.complete(_frame(Cmd.RESUME))
    assert m.proto.peer_running is True
