"""The sans-IO back-end state machine: UML's request sequence, start/stop, bad requests."""

from __future__ import annotations

import os

import pytest

from rpmsg.errors import ProtocolError
from rpmsg.vhost_user.backend import (
    BackendReqFd,
    Event,
    MemoryTable,
    QueueFd,
    Reply,
    Start,
    Stop,
    VhostUserBackend,
    VringBaseWanted,
)
from rpmsg.vhost_user.messages import Message, VhostUserError, close_fds
from rpmsg.wire.vhost_user import (
    VHOST_USER_HEADER,
    VHOST_USER_MEM_REGION,
    VHOST_USER_MEMORY,
    VHOST_USER_U64,
    VHOST_USER_VRING_ADDR,
    VHOST_USER_VRING_STATE,
    Request,
)

BASE = 0x10_0000
USER = 0x7F00_0000_0000
NEED = 0x9  # version 1 | NEED_REPLY


def fd() -> int:
    return os.open("/dev/null", os.O_RDONLY)


def msg(req: int, payload: bytes = b"", fds: list[int] | None = None, flags: int = 1) -> Message:
    return Message(req, flags, payload, list(fds or []))


def u64(v: int) -> bytes:
    return VHOST_USER_U64.pack(v)


def state(i: int, n: int) -> bytes:
    return VHOST_USER_VRING_STATE.pack(i, n)


def reply_value(ev: Event) -> int:
    assert isinstance(ev, Reply)
    _request, flags, size = VHOST_USER_HEADER.unpack(ev.data)
    assert flags == 0x5 and size == 8
    return int(VHOST_USER_U64.unpack(ev.data, VHOST_USER_HEADER.size)[0])


def release(events: list[Event]) -> None:
    for ev in events:
        if isinstance(ev, MemoryTable):
            close_fds(r.fd for r in ev.regions)
        elif (isinstance(ev, QueueFd) and ev.fd is not None) or isinstance(ev, BackendReqFd):
            os.close(ev.fd)


def mem_table(user: int = USER) -> bytes:
    return (VHOST_USER_MEMORY.pack(1, 0)
            + VHOST_USER_MEM_REGION.pack(BASE, 0x10_0000, user, 0x2000) + bytes(32))


def uml_sequence(b: VhostUserBackend) -> list[Event]:
    """Everything UML 6.12 sends up to enabling both queues (REPLY_ACK negotiated)."""
    events: list[Event] = []
    events += b.handle(msg(Request.SET_OWNER))
    assert reply_value(b.handle(msg(Request.GET_FEATURES))[0]) == 0x140000001
    assert reply_value(b.handle(msg(Request.GET_PROTOCOL_FEATURES))[0]) == 0x28
    events += b.handle(msg(Request.SET_PROTOCOL_FEATURES, u64(0x28), flags=NEED))
    events += b.handle(msg(Request.SET_BACKEND_REQ_FD, fds=[fd()], flags=NEED))
    events += b.handle(msg(Request.SET_FEATURES, u64(0x140000001), flags=NEED))
    events += b.handle(msg(Request.SET_MEM_TABLE, mem_table(), [fd()], flags=NEED))
    for i in range(2):
        events += b.handle(msg(Request.SET_VRING_CALL, u64(i), [fd()], flags=NEED))
        events += b.handle(msg(Request.SET_VRING_NUM, state(i, 256), flags=NEED))
        events += b.handle(msg(Request.SET_VRING_BASE, state(i, 0), flags=NEED))
        ring = USER + 0x1000 + i * 0x3000
        events += b.handle(msg(Request.SET_VRING_ADDR, VHOST_USER_VRING_ADDR.pack(
            i, 0, ring, ring + 0x2000, ring + 0x1000, 2**64 - 1), flags=NEED))
    for i in range(2):
        events += b.handle(msg(Request.SET_VRING_KICK, u64(i), [fd()], flags=NEED))
        events += b.handle(msg(Request.SET_VRING_ENABLE, state(i, 1), flags=NEED))
    return events


def test_uml_sequence_starts_both_queues_with_guest_addresses() -> None:
    b = VhostUserBackend()
    events = uml_sequence(b)
    try:
        acks = [e for e in events if isinstance(e, Reply)]
        assert len(acks) == 16 and all(reply_value(e) == 0 for e in acks)
        starts = [e for e in events if isinstance(e, Start)]
        assert len(starts) == 1 and starts[0] is events[-2]  # the last ack follows it
        start = starts[0]
        assert start.features == 0x140000001
        q0, q1 = start.queues
        # ring addresses arrive as front-end user addresses and leave as guest addresses
        assert (q0.num, q0.desc, q0.avail, q0.used) == (256, BASE + 0x1000, BASE + 0x2000,
                                                         BASE + 0x3000)
        assert q1.desc == BASE + 0x4000 and q1.base == 0
        assert b.ns_negotiated
        kinds = [(e.kind, e.index) for e in events if isinstance(e, QueueFd)]
        assert kinds == [("call", 0), ("call", 1), ("kick", 0), ("kick", 1)]
    finally:
        release(events)


def test_shutdown_disables_then_get_vring_base() -> None:
    b = VhostUserBackend()
    release(uml_sequence(b))
    events = b.handle(msg(Request.SET_VRING_ENABLE, state(1, 0)))
    assert [type(e) for e in events] == [Stop]
    assert b.handle(msg(Request.SET_VRING_ENABLE, state(0, 0))) == []
    events = b.handle(msg(Request.GET_VRING_BASE, state(0, 0)))
    assert events == [VringBaseWanted(0)]
    reply = b.vring_base_reply(0, 0x1234)
    assert reply.data[VHOST_USER_HEADER.size:] == state(0, 0x1234)
    assert reply_value(b.handle(msg(Request.GET_FEATURES))[0]) == 0x140000001


def test_without_protocol_features_rings_start_on_kick() -> None:
    b = VhostUserBackend()
    events: list[Event] = []
    events += b.handle(msg(Request.SET_FEATURES, u64(1)))
    events += b.handle(msg(Request.SET_MEM_TABLE, mem_table(), [fd()]))
    for i in range(2):
        events += b.handle(msg(Request.SET_VRING_NUM, state(i, 16)))
        ring = USER + i * 0x1000
        events += b.handle(msg(Request.SET_VRING_ADDR, VHOST_USER_VRING_ADDR.pack(
            i, 0, ring, ring + 0x400, ring + 0x200, 0)))
        events += b.handle(msg(Request.SET_VRING_KICK, u64(i), [fd()]))
    assert isinstance(events[-1], Start)
    assert not any(isinstance(e, Reply) for e in events)  # no REPLY_ACK negotiated
    release(events)


@pytest.mark.parametrize(("request_", "payload", "nfds", "match"), [
    (99, b"", 0, "unsupported"),
    (Request.SET_LOG_BASE, u64(0), 0, "unsupported"),
    (Request.SET_FEATURES, u64(1 << 29), 0, "not offered"),
    (Request.SET_PROTOCOL_FEATURES, u64(1 << 14), 0, "not offered"),
    (Request.SET_FEATURES, b"\0" * 7, 0, "exactly 8"),
    (Request.SET_OWNER, b"", 1, "file descriptor"),
    (Request.SET_VRING_NUM, state(0, 100), 0, "power of two"),
    (Request.SET_VRING_NUM, state(2, 64), 0, "queue index 2"),
    (Request.SET_VRING_KICK, u64(5), 1, "queue index 5"),
    (Request.SET_VRING_CALL, u64(0), 0, "file descriptor"),
    (Request.SET_VRING_ENABLE, state(0, 7), 0, "0 or 1"),
    (Request.SET_VRING_BASE, state(0, 0x10000), 0, "16 bits"),
    (Request.SET_MEM_TABLE, mem_table(), 0, "descriptor"),
    (Request.SET_VRING_ADDR, VHOST_USER_VRING_ADDR.pack(0, 0, 0x10, 0x20, 0x30, 0), 0,
     "outside the memory table"),
    (Request.SET_BACKEND_REQ_FD, b"", 1, "BACKEND_REQ"),
])
def test_bad_requests_raise_typed_error_and_close_fds(request_: int, payload: bytes, nfds: int,
                                                      match: str) -> None:
    b = VhostUserBackend()
    fds = [fd() for _ in range(nfds)]
    with pytest.raises(VhostUserError, match=match):
        b.handle(msg(request_, payload, fds))
    for f in fds:
        with pytest.raises(OSError):
            os.fstat(f)


def test_reconfiguring_a_running_queue_stops_it() -> None:
    b = VhostUserBackend()
    release(uml_sequence(b))
    events = b.handle(msg(Request.SET_VRING_NUM, state(0, 128)))
    # stopped, then started again on the new size since both queues stay enabled
    assert [type(e) for e in events] == [Stop, Start]
    assert isinstance(events[1], Start) and events[1].queues[0].num == 128
    events = b.handle(msg(Request.SET_VRING_ENABLE, state(0, 0)))
    assert [type(e) for e in events] == [Stop] and not b.running


def test_error_is_protocol_error() -> None:
    assert issubclass(VhostUserError, ProtocolError)
