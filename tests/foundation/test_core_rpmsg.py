"""The sans-IO core under the three policy presets: addresses, name service, binding, drops."""

from __future__ import annotations

import pytest

from rpmsg.core import (
    LINUX,
    NUTTX,
    OPENAMP,
    Bound,
    Policy,
    RpmsgCore,
    Send,
    ServiceAnnounced,
    ServiceWithdrawn,
    Unbound,
    get_policy,
)
from rpmsg.errors import AddressInUseError, InvalidURLError, NameTooLongError
from rpmsg.wire import ADDR_ANY, NS_ADDR, NsFlags, NsMessage

PRESETS = [LINUX, OPENAMP, NUTTX]


def ns_body(name: str, addr: int, flags: int = 0) -> bytes:
    """An NS message body built by hand (not with the codec under test)."""
    return name.encode().ljust(32, b"\0") + addr.to_bytes(4, "little") + flags.to_bytes(4, "little")


def ns_send(name: str, addr: int, flags: int = 0) -> Send:
    return Send(addr, NS_ADDR, ns_body(name, addr, flags))


def up(policy: Policy = OPENAMP, ns: bool = True) -> RpmsgCore:
    core = RpmsgCore(policy, ns_enabled=ns)
    core.set_link_up()
    assert core.take_events() == []
    return core


def sends(events: list[object]) -> list[Send]:
    return [e for e in events if isinstance(e, Send)]


# Policies ---------------------------------------------------------------------------------


def test_get_policy_by_name() -> None:
    assert get_policy("linux") is LINUX
    assert get_policy("OpenAMP") is OPENAMP
    assert get_policy(NUTTX) is NUTTX
    with pytest.raises(InvalidURLError):
        get_policy("zephyr")


def test_preset_differences() -> None:
    assert (LINUX.create_ack, OPENAMP.create_ack, NUTTX.create_ack) == (False, False, True)
    assert OPENAMP.addr_min == NUTTX.addr_min == LINUX.addr_min == 1024
    assert OPENAMP.addr_max == NUTTX.addr_max == 1151


# Addresses --------------------------------------------------------------------------------


def test_linux_lowest_free_with_reuse() -> None:
    core = up(LINUX)
    a, b, c = (core.create() for _ in range(3))
    assert [a.addr, b.addr, c.addr] == [1024, 1025, 1026]
    core.destroy(b)
    assert core.create().addr == 1025
    core.destroy(a)
    assert core.create().addr == 1024
    assert core.create().addr == 1027


def test_linux_addresses_go_past_1151() -> None:
    core = up(LINUX)
    addrs = [core.create().addr for _ in range(200)]
    assert addrs == list(range(1024, 1224))


@pytest.mark.parametrize("policy", [OPENAMP, NUTTX])
def test_openamp_next_fit(policy: Policy) -> None:
    core = up(policy)
    a, b = core.create(), core.create()
    assert (a.addr, b.addr) == (1024, 1025)
    core.destroy(a)
    assert core.create().addr == 1026  # next-fit: does not go back to 1024 at once


@pytest.mark.parametrize("policy", [OPENAMP, NUTTX])
def test_openamp_128_addresses_then_exhaustion(policy: Policy) -> None:
    core = up(policy)
    recs = [core.create() for _ in range(128)]
    assert [r.addr for r in recs] == list(range(1024, 1152))
    with pytest.raises(AddressInUseError):
        core.create()
    core.destroy(recs[5])
    assert core.create().addr == 1029


def test_openamp_fixed_src_above_range_rejected() -> None:
    core = up(OPENAMP)
    with pytest.raises(AddressInUseError):
        core.create(src=1152)
    assert core.create(src=1151).addr == 1151


def test_linux_fixed_src_high() -> None:
    core = up(LINUX)
    assert core.create(src=0x10000).addr == 0x10000


@pytest.mark.parametrize("policy", PRESETS)
def test_fixed_src_duplicate(policy: Policy) -> None:
    core = up(policy)
    core.create(src=1030)
    with pytest.raises(AddressInUseError):
        core.create(src=1030)
    core.create(src=0x10)
    with pytest.raises(AddressInUseError):
        core.create(src=0x10)


@pytest.mark.parametrize("policy", PRESETS)
def test_fixed_src_taken_by_dynamic(policy: Policy) -> None:
    core = up(policy)
    core.create()
    with pytest.raises(AddressInUseError):
        core.create(src=1024)
    assert core.create().addr == 1025


@pytest.mark.parametrize("policy", PRESETS)
def test_dynamic_skips_fixed(policy: Policy) -> None:
    core = up(policy)
    core.create(src=1024)
    assert core.create().addr == 1025


@pytest.mark.parametrize("policy", PRESETS)
def test_ns_address_is_reserved(policy: Policy) -> None:
    core = up(policy)
    with pytest.raises(AddressInUseError):
        core.create("x", src=NS_ADDR)
    with pytest.raises(AddressInUseError):
        core.create("x", dst=NS_ADDR)


def test_ns_address_free_without_name_service() -> None:
    core = up(OPENAMP, ns=False)
    assert core.create(src=NS_ADDR).addr == NS_ADDR


@pytest.mark.parametrize("src", [-1, 1 << 32])
def test_invalid_fixed_src(src: int) -> None:
    with pytest.raises(AddressInUseError):
        up(LINUX).create(src=src)


def test_failed_create_leaves_no_trace() -> None:
    core = up(OPENAMP)
    with pytest.raises(NameTooLongError):
        core.create("n" * 32)
    assert core.endpoints == {}
    assert core.create().addr == 1024
    assert core.take_events() == []


# Announcements ----------------------------------------------------------------------------


@pytest.mark.parametrize("policy", [OPENAMP, NUTTX])
def test_openamp_announces_named_dst_any(policy: Policy) -> None:
    core = up(policy)
    rec = core.create("rpmsg-raw")
    assert rec.addr == 0x400
    assert core.take_events() == [ns_send("rpmsg-raw", 0x400, 0)]
    assert rec.announced


@pytest.mark.parametrize("policy", [OPENAMP, NUTTX])
def test_openamp_does_not_announce_unnamed_or_bound(policy: Policy) -> None:
    core = up(policy)
    core.create()
    assert sends(core.take_events()) == []
    rec = core.create("svc", dst=0x450)
    events = core.take_events()
    assert Bound(rec, 0x450) in events
    assert not any(isinstance(e, Send) and e.payload[36] == NsFlags.CREATE for e in events)


def test_linux_announces_only_explicit_src() -> None:
    core = up(LINUX)
    core.create("svc")
    assert core.take_events() == []
    rec = core.create("chan", src=0x450)
    assert core.take_events() == [ns_send("chan", 0x450, 0)]
    assert rec.announced


@pytest.mark.parametrize("policy", PRESETS)
def test_announce_override(policy: Policy) -> None:
    core = up(policy)
    core.create("quiet", announce=False)
    assert core.take_events() == []
    rec = core.create("loud", dst=0x700, announce=True)
    assert ns_send("loud", rec.addr, 0) in core.take_events()
    with pytest.raises(ValueError):
        core.create("", announce=True)


@pytest.mark.parametrize("policy", [OPENAMP, NUTTX])
def test_announcement_waits_for_link_up(policy: Policy) -> None:
    core = RpmsgCore(policy)
    rec = core.create("svc")
    assert core.take_events() == []
    assert not rec.announced
    core.set_link_up()
    assert core.take_events() == [ns_send("svc", rec.addr, 0)]
    core.set_link_up()  # already up: nothing new
    assert core.take_events() == []


def test_no_announcement_without_name_service() -> None:
    core = up(OPENAMP, ns=False)
    core.create("svc")
    assert core.take_events() == []


# Receiving NS -----------------------------------------------------------------------------


@pytest.mark.parametrize("policy", PRESETS)
def test_create_binds_matching_endpoint(policy: Policy) -> None:
    core = up(policy)
    rec = core.create("svc", announce=False)
    assert core.receive(0x401, NS_ADDR, ns_body("svc", 0x401)) is None
    events = core.take_events()
    assert events[0] == Bound(rec, 0x401)
    assert rec.dst == 0x401
    if policy.create_ack:
        assert events[1:] == [ns_send("svc", rec.addr, 2)]
    else:
        assert events[1:] == []


def test_nuttx_create_ack_golden_bytes() -> None:
    core = up(NUTTX)
    core.create("rpmsg-ping", announce=False)
    core.receive(0x400, NS_ADDR, ns_body("rpmsg-ping", 0x400))
    (ack,) = sends(core.take_events())
    assert (ack.src, ack.dst) == (0x400, NS_ADDR)
    assert ack.payload == b"rpmsg-ping" + bytes(22) + bytes.fromhex("00040000 02000000")


@pytest.mark.parametrize("policy", PRESETS)
def test_create_ack_binds_without_answer(policy: Policy) -> None:
    core = up(policy)
    rec = core.create("svc", announce=False)
    core.receive(0x401, NS_ADDR, ns_body("svc", 0x401, 2))
    assert core.take_events() == [Bound(rec, 0x401)]


@pytest.mark.parametrize("policy", PRESETS)
def test_create_for_bound_endpoint_is_ignored(policy: Policy) -> None:
    core = up(policy)
    rec = core.create("svc", announce=False)
    core.receive(0x401, NS_ADDR, ns_body("svc", 0x401))
    core.take_events()
    core.receive(0x401, NS_ADDR, ns_body("svc", 0x401))  # duplicate
    assert core.take_events() == []
    assert rec.dst == 0x401


@pytest.mark.parametrize("policy", PRESETS)
def test_names_compare_up_to_nul(policy: Policy) -> None:
    core = up(policy)
    rec = core.create("svc", announce=False)
    body = b"svc\0GARBAGE".ljust(32, b"\xee") + (0x401).to_bytes(4, "little") + bytes(4)
    core.receive(0x401, NS_ADDR, body)
    assert rec.dst == 0x401


@pytest.mark.parametrize("policy", PRESETS)
def test_unmatched_create_becomes_service_then_taken(policy: Policy) -> None:
    core = up(policy)
    core.receive(0x401, NS_ADDR, ns_body("svc", 0x401))
    assert core.take_events() == [ServiceAnnounced("svc", 0x401)]
    assert core.services == [("svc", 0x401)]
    core.receive(0x401, NS_ADDR, ns_body("svc", 0x401))  # duplicate: no second entry
    assert core.take_events() == []
    rec = core.create("svc")
    events = core.take_events()
    assert events[0] == Bound(rec, 0x401)
    assert core.services == []
    # Taking an announced service never re-announces; NuttX acknowledges.
    assert sends(events) == ([ns_send("svc", rec.addr, 2)] if policy.create_ack else [])


@pytest.mark.parametrize("policy", PRESETS)
def test_service_returns_after_taker_closes(policy: Policy) -> None:
    core = up(policy)
    core.receive(0x401, NS_ADDR, ns_body("svc", 0x401))
    rec = core.create("svc")
    core.destroy(rec)
    assert core.services == [("svc", 0x401)]
    core.take_events()
    again = core.create("svc")
    assert again.dst == 0x401


def test_nuttx_explicit_dst_sends_create_ack() -> None:
    """rpmsg-port §5.1: a named endpoint created with dest != ANY sends NS CREATE_ACK."""
    core = up(NUTTX)
    core.receive(0x401, NS_ADDR, ns_body("svc", 0x401))
    core.take_events()
    rec = core.create("svc", dst=0x401)
    events = core.take_events()
    assert events == [Bound(rec, 0x401), ns_send("svc", rec.addr, 2)]
    # The service is taken: it is no longer offered to other endpoints.
    assert core.services == []
    assert core.create("svc").dst == ADDR_ANY


@pytest.mark.parametrize("policy", [LINUX, OPENAMP])
def test_explicit_dst_sends_nothing_elsewhere(policy: Policy) -> None:
    core = up(policy)
    rec = core.create("svc", dst=0x401)
    assert core.take_events() == [Bound(rec, 0x401)]


def test_nuttx_explicit_dst_acknowledged_on_link_up() -> None:
    core = RpmsgCore(NUTTX)
    rec = core.create("svc", dst=0x401)
    assert core.take_events() == []
    core.set_link_up()
    assert core.take_events() == [Bound(rec, 0x401), ns_send("svc", rec.addr, 2)]


@pytest.mark.parametrize("policy", PRESETS)
def test_destroy_unbinds(policy: Policy) -> None:
    core = up(policy)
    rec = core.create("svc", announce=False)
    core.receive(0x401, NS_ADDR, ns_body("svc", 0x401))
    core.take_events()
    core.receive(0x401, NS_ADDR, ns_body("svc", 0x401, 1))
    (ev,) = core.take_events()
    assert isinstance(ev, Unbound) and ev.endpoint is rec
    assert "svc" in ev.reason
    assert rec.dst == ADDR_ANY
    # It can bind again when the remote comes back.
    core.receive(0x402, NS_ADDR, ns_body("svc", 0x402))
    assert rec.dst == 0x402


@pytest.mark.parametrize("policy", PRESETS)
def test_destroy_of_other_address_keeps_binding(policy: Policy) -> None:
    core = up(policy)
    rec = core.create("svc", dst=0x401)
    core.take_events()
    core.receive(0x402, NS_ADDR, ns_body("svc", 0x402, 1))
    assert rec.dst == 0x401
    assert not any(isinstance(e, Unbound) for e in core.take_events())


@pytest.mark.parametrize("policy", PRESETS)
def test_destroy_withdraws_service(policy: Policy) -> None:
    core = up(policy)
    core.receive(0x401, NS_ADDR, ns_body("svc", 0x401))
    core.take_events()
    core.receive(0x401, NS_ADDR, ns_body("svc", 0x401, 1))
    assert core.take_events() == [ServiceWithdrawn("svc", 0x401)]
    assert core.services == []
    assert core.stats.ns_unmatched_destroy == 1


@pytest.mark.parametrize("policy", PRESETS)
def test_unmatched_destroy_counted(policy: Policy) -> None:
    core = up(policy)
    core.receive(0x401, NS_ADDR, ns_body("nobody", 0x401, 1))
    assert core.take_events() == []
    assert core.stats.ns_unmatched_destroy == 1


@pytest.mark.parametrize("policy", PRESETS)
@pytest.mark.parametrize("payload", [
    ns_body("svc", 0x401)[:39],
    ns_body("svc", 0x401) + b"\0",
    b"",
    ns_body("svc", 0x401, 3),
    ns_body("svc", 0x401, 0x100),
    ns_body("svc", ADDR_ANY),
    ns_body("svc", NS_ADDR),
])
def test_invalid_ns_counted_and_ignored(policy: Policy, payload: bytes) -> None:
    core = up(policy)
    rec = core.create("svc", announce=False)
    assert core.receive(0x401, NS_ADDR, payload) is None
    assert core.take_events() == []
    assert rec.dst == ADDR_ANY
    assert core.services == []
    assert core.stats.ns_invalid == 1
    assert core.stats.ns_received == 1


# Data messages ----------------------------------------------------------------------------


@pytest.mark.parametrize("policy", PRESETS)
def test_implicit_bind_on_first_message(policy: Policy) -> None:
    core = up(policy)
    rec = core.create()
    assert core.receive(0x700, rec.addr, b"hello") is rec
    assert core.take_events() == [Bound(rec, 0x700)]
    assert core.receive(0x701, rec.addr, b"again") is rec  # dispatch by dst, no rebind
    assert core.take_events() == []
    assert rec.dst == 0x700
    assert (core.stats.rx_messages, core.stats.rx_bytes) == (2, 10)


@pytest.mark.parametrize("policy", PRESETS)
def test_unknown_destination_dropped_and_counted(policy: Policy) -> None:
    core = up(policy)
    assert core.receive(0x700, 0x999, b"lost") is None
    assert core.receive(0x700, 1024, b"lost") is None
    assert core.take_events() == []
    assert core.stats.dropped_unknown_dst == 2


def test_ns_address_without_name_service_is_unknown() -> None:
    core = up(OPENAMP, ns=False)
    assert core.receive(0x401, NS_ADDR, ns_body("svc", 0x401)) is None
    assert core.stats.dropped_unknown_dst == 1
    assert core.stats.ns_received == 0


def test_message_to_closed_endpoint_is_dropped() -> None:
    core = up(OPENAMP)
    rec = core.create()
    core.destroy(rec)
    assert core.receive(0x700, rec.addr, b"x") is None
    assert core.stats.dropped_unknown_dst == 1


# Link state -------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", PRESETS)
def test_link_down_unbinds_everything_and_link_up_reannounces(policy: Policy) -> None:
    core = up(policy)
    announced = core.create("svc", src=0x450)  # announced under every preset
    learned = core.create("cli", announce=False)
    fixed = core.create("fix", dst=0x600, announce=False)
    core.receive(0x401, NS_ADDR, ns_body("cli", 0x401))
    core.receive(0x402, NS_ADDR, ns_body("other", 0x402))
    core.take_events()
    assert announced.announced

    core.set_link_down("remote reset")
    events = core.take_events()
    assert ServiceWithdrawn("other", 0x402) in events
    unbound = {e.endpoint.addr for e in events if isinstance(e, Unbound)}
    assert unbound == {learned.addr, fixed.addr}
    assert all(e.reason == "remote reset" for e in events if isinstance(e, Unbound))
    assert sends(events) == []
    assert learned.dst == fixed.dst == ADDR_ANY
    assert core.services == []
    assert not announced.announced

    core.set_link_up()
    events = core.take_events()
    assert ns_send("svc", 0x450, 0) in events
    assert Bound(fixed, 0x600) in events
    assert learned.dst == ADDR_ANY  # learned bindings wait for a new announcement


@pytest.mark.parametrize("policy", PRESETS)
def test_no_ns_destroy_while_link_down(policy: Policy) -> None:
    core = up(policy)
    rec = core.create("svc", src=0x450)
    core.set_link_down("gone")
    core.take_events()
    core.destroy(rec)
    assert core.take_events() == []


# Destroy ----------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", PRESETS)
def test_destroy_announced_sends_ns_destroy(policy: Policy) -> None:
    core = up(policy)
    rec = core.create("svc", src=0x450)
    core.take_events()
    core.destroy(rec)
    assert core.take_events() == [ns_send("svc", 0x450, 1)]
    core.destroy(rec)  # twice: nothing more
    assert core.take_events() == []
    assert 0x450 not in core.endpoints


@pytest.mark.parametrize("policy", [OPENAMP, NUTTX])
def test_openamp_destroy_named_dynamic_even_if_not_announced(policy: Policy) -> None:
    core = up(policy)
    rec = core.create("svc", dst=0x401)
    assert not rec.announced
    core.take_events()
    core.destroy(rec)
    assert core.take_events() == [ns_send("svc", rec.addr, 1)]


@pytest.mark.parametrize("policy", [OPENAMP, NUTTX])
def test_openamp_no_destroy_for_static_unannounced(policy: Policy) -> None:
    core = up(policy)
    rec = core.create("svc", src=0x20, dst=0x401)
    core.take_events()
    core.destroy(rec)
    assert core.take_events() == []


def test_linux_destroy_only_if_announced() -> None:
    core = up(LINUX)
    rec = core.create("svc")
    core.destroy(rec)
    assert core.take_events() == []


@pytest.mark.parametrize("policy", PRESETS)
def test_unnamed_destroy_sends_nothing(policy: Policy) -> None:
    core = up(policy)
    rec = core.create()
    core.destroy(rec)
    assert core.take_events() == []


def test_destroyed_address_free_again() -> None:
    core = up(OPENAMP)
    rec = core.create(src=1100)
    core.destroy(rec)
    assert core.create(src=1100).addr == 1100


def test_ns_message_codec_agrees_with_hand_built_bytes() -> None:
    assert NsMessage("svc", 0x401, NsFlags.CREATE_ACK).encode() == ns_body("svc", 0x401, 2)


@pytest.mark.parametrize("policy", PRESETS)
def test_destroy_reaches_the_bound_namesake(policy: Policy) -> None:
    core = up(policy)
    idle = core.create("svc", announce=False)
    bound = core.create("svc", dst=0x401, announce=False)
    core.take_events()
    core.receive(0x401, NS_ADDR, ns_body("svc", 0x401, 1))
    events = core.take_events()
    assert [e.endpoint for e in events if isinstance(e, Unbound)] == [bound]
    assert bound.dst == idle.dst == ADDR_ANY


@pytest.mark.parametrize("policy", PRESETS)
def test_duplicate_create_does_not_bind_a_second_namesake(policy: Policy) -> None:
    core = up(policy)
    idle = core.create("svc", announce=False)
    bound = core.create("svc", dst=0x401, announce=False)
    core.take_events()
    core.receive(0x401, NS_ADDR, ns_body("svc", 0x401))
    assert core.take_events() == []
    assert (idle.dst, bound.dst) == (ADDR_ANY, 0x401)


def test_linux_fixed_src_limit() -> None:
    core = up(LINUX)
    with pytest.raises(AddressInUseError):
        core.create(src=0x80000000)  # Linux's idr is int-based
    assert core.create(src=0x7FFFFFFF).addr == 0x7FFFFFFF
