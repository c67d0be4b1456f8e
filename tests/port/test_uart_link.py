"""The UART link state machine: connect, reconnect, peer restart, wake ping-pong, POWEROFF."""

from __future__ import annotations

import pytest

from rpmsg.port.uart.framer import CURRENT, LEGACY
from rpmsg.port.uart.machine import LinkDown, LinkUp, Running, UartLinkMachine, Write


def writes(actions: list[object]) -> bytes:
    return b"".join(a.data for a in actions if isinstance(a, Write))


def test_connreq_once_then_only_after_a_second() -> None:
    m = UartLinkMachine()
    assert writes(m.start(0.0)) == b"\x7e"
    assert m.poll(0.5) == []
    assert m.poll(0.99) == []
    assert writes(m.poll(1.0)) == b"\x7e"
    assert m.poll(1.5) == []
    assert m.on_control(0x7D, 1.6) == [LinkUp()]
    assert m.connected
    assert m.poll(10.0) == []
    assert m.next_deadline() is None


def test_connreq_from_peer_connects_and_answers() -> None:
    m = UartLinkMachine()
    m.start(0.0)
    assert m.on_control(0x7E, 0.1) == [Write(b"\x7d"), LinkUp()]
    assert m.on_control(0x7D, 0.2) == []  # the answer to our own CONNREQ: already connected


def test_connreq_while_connected_is_a_peer_restart() -> None:
    m = UartLinkMachine()
    m.start(0.0)
    m.on_control(0x7D, 0.1)
    actions = m.on_control(0x7E, 5.0)
    assert isinstance(actions[0], LinkDown)
    assert actions[1:] == [Write(b"\x7d"), LinkUp()]
    assert m.counts["peer_restarts"] == 1


def test_staywake_is_always_answered() -> None:
    m = UartLinkMachine()
    for connected in (False, True):
        if connected:
            m.on_control(0x7D, 0.0)
        assert m.on_control(0x79, 0.0) == [Write(b"\x78")]
        assert m.on_control(0x75, 0.0) == [Write(b"\x74")]


def test_wake_ping_pong_and_relax() -> None:
    m = UartLinkMachine()
    m.on_control(0x7E, 0.0)
    assert not m.ready
    assert writes(m.wake(0.0)) == b"\x79"
    assert m.wake(0.05) == []  # not before 100 ms
    assert writes(m.wake(0.1)) == b"\x79"
    assert m.on_control(0x74, 0.11) == []  # an ACK for the other STAYWAKE does not count
    assert not m.ready
    m.on_control(0x78, 0.12)
    assert m.ready
    assert writes(m.relax()) == b"\x77"
    assert writes(m.wake(0.2)) == b"\x75"  # toggled
    assert m.on_control(0x78, 0.21) == []  # late ACK of the previous burst is ignored
    assert not m.ready
    m.on_control(0x74, 0.22)
    assert m.ready
    m.relax()
    assert writes(m.wake(0.3)) == b"\x79"


def test_no_staywake_means_always_ready() -> None:
    m = UartLinkMachine(staywake=False)
    assert m.ready and m.wake(0.0) == [] and m.relax() == []


def test_poweroff_drops_the_link_until_reconnect() -> None:
    m = UartLinkMachine()
    m.start(0.0)
    m.on_control(0x7D, 0.1)
    actions = m.on_control(0x76, 2.0)
    assert len(actions) == 1 and isinstance(actions[0], LinkDown)
    assert not m.accept_frame()
    assert writes(m.poll(3.0)) == b"\x7e"
    assert m.on_control(0x7D, 3.1) == [LinkUp()]


def test_suspend_resume() -> None:
    m = UartLinkMachine()
    assert m.on_control(0x7B, 0.0) == [Running(False)]
    assert not m.remote_running
    assert m.on_control(0x7A, 0.0) == [Running(True)]


def test_legacy_values_and_no_staywake() -> None:
    with pytest.raises(ValueError):
        UartLinkMachine(LEGACY, staywake=True)
    m = UartLinkMachine(LEGACY, staywake=False)
    assert writes(m.start(0.0)) == b"\x7d"
    assert m.on_control(0x7D, 0.1) == [Write(b"\x7c"), LinkUp()]
    assert CURRENT.connreq == 0x7E


def test_a_peer_restart_that_announces_nothing_is_confirmed_with_our_own_connreq() -> None:
    # A CONNREQ byte while connected may be line noise: the peer then keeps its bindings
    # and would never announce again, while we dropped ours. Unless a name-service message
    # shows the restart was real, we send CONNREQ ourselves after a second.
    m = UartLinkMachine(staywake=False)
    m.start(0.0)
    m.on_control(0x7D, 0.1)
    assert m.on_control(0x7E, 5.0)[0] == LinkDown(
        "the peer restarted (CONNREQ while connected)", restart=True)
    assert m.next_deadline() == 6.0
    assert m.poll(5.9) == []
    assert writes(m.poll(6.0)) == b"\x7e"
    assert m.counts["restart_confirms"] == 1
    assert m.poll(9.0) == [] and m.next_deadline() is None  # once


def test_a_real_restart_announces_and_needs_no_confirmation() -> None:
    m = UartLinkMachine(staywake=False)
    m.start(0.0)
    m.on_control(0x7D, 0.1)
    m.on_control(0x7E, 5.0)
    assert m.confirming
    m.peer_announced()
    assert m.poll(7.0) == [] and m.counts["restart_confirms"] == 0
