"""vhost-user message framing and payload codecs: golden bytes, round trips, random input."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpmsg.errors import ProtocolError
from rpmsg.vhost_user.messages import (
    Message,
    MessageReader,
    VhostUserError,
    decode_mem_table,
    decode_u64,
    decode_vring_addr,
    decode_vring_fd,
    decode_vring_state,
    encode_message,
    encode_u64_reply,
)
from rpmsg.wire.vhost_user import (
    VHOST_USER_MEM_REGION,
    VHOST_USER_MEMORY,
    VHOST_USER_U64,
    VHOST_USER_VRING_ADDR,
    Request,
)


def test_reply_golden_bytes() -> None:
    # GET_FEATURES reply as UML checks it: flags exactly version 1 | REPLY (0x5), size 8.
    data = encode_u64_reply(Request.GET_FEATURES, 0x140000001)
    assert data == bytes.fromhex("01000000" "05000000" "08000000" "0100004001000000")


def test_reader_splits_stream_and_attaches_fds() -> None:
    r, w = os.pipe()
    reader = MessageReader()
    a = encode_message(Request.SET_OWNER)
    b = encode_message(Request.SET_VRING_KICK, VHOST_USER_U64.pack(1))
    stream = a + b
    assert reader.feed(stream[:5]) == []
    first = reader.feed(stream[5:14])
    assert [m.request for m in first] == [Request.SET_OWNER]
    second = reader.feed(stream[14:], [r])
    assert len(second) == 1 and second[0].request == Request.SET_VRING_KICK
    assert second[0].fds == [r]
    vfd = decode_vring_fd(second[0])
    assert (vfd.index, vfd.fd) == (1, r)
    os.close(r)
    os.close(w)


@pytest.mark.parametrize(("header", "field"), [
    (bytes.fromhex("01000000" "02000000" "00000000"), "flags"),   # version 2
    (bytes.fromhex("01000000" "05000000" "00000000"), "flags"),   # marked as a reply
    (bytes.fromhex("01000000" "01000000" "00100100"), "size"),    # absurd payload size
])
def test_bad_header_is_typed_error_and_closes_fds(header: bytes, field: str) -> None:
    r, w = os.pipe()
    reader = MessageReader()
    with pytest.raises(ProtocolError) as info:
        reader.feed(header, [r])
    assert getattr(info.value, "field", field) == field
    with pytest.raises(OSError):
        os.fstat(r)  # the reader closed the descriptor it held
    os.close(w)


def test_decoders_check_sizes_and_fds() -> None:
    with pytest.raises(VhostUserError, match="exactly 8"):
        decode_u64(Message(Request.SET_FEATURES, 1, b"\0" * 4))
    with pytest.raises(VhostUserError, match="file descriptor"):
        decode_vring_fd(Message(Request.SET_VRING_KICK, 1, VHOST_USER_U64.pack(0)))
    with pytest.raises(VhostUserError, match="unknown bits"):
        decode_vring_fd(Message(Request.SET_VRING_CALL, 1, VHOST_USER_U64.pack(0x200)))
    nofd = decode_vring_fd(Message(Request.SET_VRING_CALL, 1, VHOST_USER_U64.pack(0x101)))
    assert (nofd.index, nofd.fd) == (1, None)
    addr = decode_vring_addr(Message(Request.SET_VRING_ADDR, 1,
                                     VHOST_USER_VRING_ADDR.pack(1, 0, 10, 20, 30, 40)))
    assert (addr.index, addr.desc, addr.used, addr.avail, addr.log) == (1, 10, 20, 30, 40)


def test_mem_table_needs_one_fd_per_region_and_no_overlap() -> None:
    region = VHOST_USER_MEM_REGION.pack(0x1000, 0x1000, 0x1000, 0)
    body = VHOST_USER_MEMORY.pack(1, 0) + region + bytes(32)  # UML pads to two regions
    with pytest.raises(VhostUserError, match="descriptor"):
        decode_mem_table(Message(Request.SET_MEM_TABLE, 1, body))
    overlap = VHOST_USER_MEMORY.pack(2, 0) + region + VHOST_USER_MEM_REGION.pack(
        0x1800, 0x1000, 0x1800, 0)
    with pytest.raises(VhostUserError, match="overlap"):
        decode_mem_table(Message(Request.SET_MEM_TABLE, 1, overlap, [98, 99]))
    r, w = os.pipe()
    regions = decode_mem_table(Message(Request.SET_MEM_TABLE, 1, body, [r]))
    assert [(x.guest_addr, x.size, x.fd) for x in regions] == [(0x1000, 0x1000, r)]
    os.close(r)
    os.close(w)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 40), st.integers(0, 0xFFFFFFFF), st.binary(max_size=300))
def test_round_trip(request: int, flags_extra: int, payload: bytes) -> None:
    flags = 1 | (flags_extra & 0x8)
    data = encode_message(request, payload, flags)
    reader = MessageReader()
    out: list[Message] = []
    for i in range(0, len(data), 7):
        out += reader.feed(data[i:i + 7])
    assert len(out) == 1
    assert (out[0].request, out[0].flags, out[0].payload) == (request, flags, payload)
    assert reader.buffered == 0


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_give_messages_or_typed_error(data: bytes) -> None:
    reader = MessageReader()
    try:
        msgs = reader.feed(data)
    except ProtocolError:
        return
    for msg in msgs:
        for decode in (decode_u64, decode_vring_state, decode_vring_addr, decode_mem_table):
            try:
                decode(msg)
            except ProtocolError:
                pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 3))
def test_random_mem_table_payload_gives_regions_or_typed_error(payload: bytes, nfds: int) -> None:
    fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(nfds)]
    msg = Message(Request.SET_MEM_TABLE, 1, payload, list(fds))
    try:
        regions = decode_mem_table(msg)
    except ProtocolError:
        msg.close_fds()
        regions = []
    for r in regions:
        os.close(r.fd)
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)
