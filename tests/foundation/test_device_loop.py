"""The Device/Endpoint API over ``loop:``: binding, messages, timeouts, close, hooks, buffers."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from foundation_helpers import wait_until

import rpmsg
from rpmsg import (
    EndpointClosedError,
    MessageTooLargeError,
    NoBufferError,
    NotBoundError,
    RemoteDisconnectedError,
    RpmsgTimeoutError,
    WouldBlockError,
)

Pair = tuple[rpmsg.Device, rpmsg.Device]


def connect(a: rpmsg.Device, b: rpmsg.Device, name: str = "svc",
            **kw: Any) -> tuple[rpmsg.Endpoint, rpmsg.Endpoint]:
    """``b`` announces ``name``, ``a`` binds to it; ``a`` sends first so ``b`` binds too."""
    server = b.create_endpoint(name, **kw)
    a.wait_service(name, timeout=5)
    client = a.create_endpoint(name)
    assert client.wait_bound(timeout=5) == server.addr
    client.send(b"hello")
    assert server.recv(timeout=5) == b"hello"
    assert server.dst == client.addr
    return client, server


def run_thread(target: Any, *args: Any) -> tuple[threading.Thread, list[Any]]:
    """Run ``target`` in a thread; the returned list receives its result or exception."""
    out: list[Any] = []

    def body() -> None:
        try:
            out.append(target(*args))
        except BaseException as exc:
            out.append(exc)

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, out


# Binding ----------------------------------------------------------------------------------


def test_open_twice_gives_both_ends(devices: Pair) -> None:
    a, b = devices
    a.wait_up(timeout=5)
    b.wait_up(timeout=5)
    assert a.is_up and b.is_up
    assert a.mtu == b.mtu == 496
    assert a.policy is rpmsg.OPENAMP  # the loop's default


def test_announce_then_bind_server_first(devices: Pair) -> None:
    a, b = devices
    client, server = connect(a, b)
    server.send(b"back")
    assert client.recv(timeout=5) == b"back"
    assert a.services == []  # taken by the client


def test_announce_then_bind_client_first(devices: Pair) -> None:
    a, b = devices
    first = a.create_endpoint("svc")  # announced (OpenAMP: named, dst ANY)
    b.wait_service("svc", timeout=5)
    second = b.create_endpoint("svc")  # takes the announcement
    assert second.wait_bound(timeout=5) == first.addr
    second.send(b"ping")
    assert first.recv(timeout=5) == b"ping"
    assert first.dst == second.addr
    first.send(b"pong")
    assert second.recv(timeout=5) == b"pong"


def test_endpoints_created_before_the_link_is_up(loop_name: str) -> None:
    with rpmsg.open(f"loop:{loop_name}") as a:
        early = a.create_endpoint("svc")
        assert not a.is_up
        with rpmsg.open(f"loop:{loop_name}") as b:
            b.wait_service("svc", timeout=5)
            late = b.create_endpoint("svc")
            assert late.wait_bound(timeout=5) == early.addr


def test_nuttx_binds_both_sides_without_data(loop_name: str) -> None:
    with rpmsg.open(f"loop:{loop_name}", policy="nuttx") as a, \
            rpmsg.open(f"loop:{loop_name}", policy="nuttx") as b:
        x = a.create_endpoint("rpmsg-ping")
        y = b.create_endpoint("rpmsg-ping")
        assert x.wait_bound(timeout=5) == y.addr
        assert y.wait_bound(timeout=5) == x.addr


def test_nuttx_send_waits_for_binding(loop_name: str) -> None:
    with rpmsg.open(f"loop:{loop_name}", policy="nuttx") as a, \
            rpmsg.open(f"loop:{loop_name}", policy="nuttx") as b:
        a.wait_up(timeout=5)
        x = a.create_endpoint("late")
        with pytest.raises(NotBoundError):
            x.send(b"now", timeout=0)
        t, out = run_thread(x.send, b"when bound", 5)
        y = b.create_endpoint("late")
        t.join(5)
        assert out == [None]
        assert y.recv(timeout=5) == b"when bound"


def test_linux_policy_does_not_announce_dynamic(loop_name: str) -> None:
    with rpmsg.open(f"loop:{loop_name}", policy="linux") as a, \
            rpmsg.open(f"loop:{loop_name}", policy="linux") as b:
        a.create_endpoint("quiet")
        chan = a.create_endpoint("chan", src=0x500)
        assert b.wait_service("chan", timeout=5) == chan.addr == 0x500
        assert [n for n, _ in b.services] == ["chan"]


def test_unbound_send_fails(devices: Pair) -> None:
    a, _ = devices
    ept = a.create_endpoint()
    with pytest.raises(NotBoundError):
        ept.send(b"x")
    with pytest.raises(NotBoundError):
        ept.send_to(rpmsg.ADDR_ANY, b"x")
    with pytest.raises(WouldBlockError):
        ept.wait_bound(timeout=0)
    with pytest.raises(RpmsgTimeoutError):
        ept.wait_bound(timeout=0.02)


def test_explicit_addresses_and_send_to(devices: Pair) -> None:
    a, b = devices
    a.wait_up(timeout=5)
    x = a.create_endpoint(src=0x30, dst=0x31)
    y = b.create_endpoint(src=0x31)
    assert x.bound and x.dst == 0x31
    x.send(b"to 0x31")
    msg = y.recv_message(timeout=5)
    assert (msg.data, msg.src, msg.dst) == (b"to 0x31", 0x30, 0x31)
    assert y.dst == 0x30  # implicit bind on first message
    y.send_to(0x30, b"explicit")
    assert x.recv(timeout=5) == b"explicit"


def test_unknown_destination_counted(devices: Pair) -> None:
    a, b = devices
    a.wait_up(timeout=5)
    x = a.create_endpoint()
    x.send_to(0x999, b"nobody home")
    wait_until(lambda: b.stats()["dropped_unknown_dst"] == 1)
    assert b.stats()["rx_messages"] >= 1


# Messages ---------------------------------------------------------------------------------


def test_max_payload_and_too_large(devices: Pair) -> None:
    a, b = devices
    client, server = connect(a, b)
    assert client.mtu == 496
    big = bytes(range(256)) + bytes(240)
    client.send(big)
    assert server.recv(timeout=5) == big
    server.send(big)
    assert client.recv(timeout=5) == big
    with pytest.raises(MessageTooLargeError) as info:
        client.send(bytes(497))
    assert (info.value.size, info.value.mtu) == (497, 496)
    with pytest.raises(MessageTooLargeError):
        server.send_to(client.addr, bytes(497))
    with pytest.raises(MessageTooLargeError):
        client.send_many([b"ok", bytes(497)])
    assert server.recv(timeout=5) == b"ok"  # messages before the oversized one went out
    client.send(b"")
    assert server.recv(timeout=5) == b""


def test_many_messages_keep_order(devices: Pair) -> None:
    a, b = devices
    client, server = connect(a, b)
    for i in range(300):  # more than the 256 loop buffers
        client.send(i.to_bytes(2, "little"))
    assert [int.from_bytes(server.recv(timeout=5), "little") for _ in range(300)] == list(
        range(300))


def test_send_many(devices: Pair) -> None:
    a, b = devices
    client, server = connect(a, b)
    assert client.send_many([b"one", bytearray(b"two"), memoryview(b"three")]) == 3
    assert [server.recv(timeout=5) for _ in range(3)] == [b"one", b"two", b"three"]
    assert client.send_many([]) == 0


def test_zero_copy_send_and_recv_buffer(devices: Pair) -> None:
    a, b = devices
    client, server = connect(a, b, zero_copy=True)
    buf = client.get_tx_buffer(timeout=5)
    assert buf.capacity == client.mtu
    buf.payload[:5] = b"hello"
    client.send_buffer(buf, 5)
    with server.recv_buffer(timeout=5) as rx:
        assert bytes(rx.data) == b"hello"
        assert len(rx) == 5
        assert rx.src == client.addr and rx.dst == server.addr
    with pytest.raises(ValueError):
        buf.commit(client.addr, server.addr, 1)  # a buffer is sent only once
    spare = client.get_tx_buffer()
    with pytest.raises(MessageTooLargeError):
        client.send_buffer(spare, client.mtu + 1)
    with client.get_tx_buffer() as unused:  # released unsent at the end of the block
        unused.payload[0] = 1
    server.send(b"after")
    assert client.recv(timeout=5) == b"after"


def test_zero_copy_send_to_explicit_dst(devices: Pair) -> None:
    a, b = devices
    client, server = connect(a, b)
    other = b.create_endpoint(src=0x77)
    buf = client.get_tx_buffer()
    buf.payload[:2] = b"hi"
    client.send_buffer(buf, 2, dst=0x77)
    assert other.recv(timeout=5) == b"hi"
    assert server.pending == 0


# Timeouts ---------------------------------------------------------------------------------


def test_recv_timeouts(devices: Pair) -> None:
    a, b = devices
    client, _server = connect(a, b)
    with pytest.raises(WouldBlockError):
        client.recv(timeout=0)
    with pytest.raises(RpmsgTimeoutError) as info:
        client.recv(timeout=0.05)
    assert isinstance(info.value, TimeoutError)
    with pytest.raises(BlockingIOError):
        client.recv_message(timeout=0)


def test_blocked_recv_woken_by_other_thread(devices: Pair) -> None:
    a, b = devices
    client, server = connect(a, b)
    t, out = run_thread(server.recv)  # timeout None: blocks
    sender, _ = run_thread(client.send, b"wake up")
    sender.join(5)
    t.join(5)
    assert out == [b"wake up"]


def test_recv_returns_queued_before_waiting(devices: Pair) -> None:
    a, b = devices
    client, server = connect(a, b)
    client.send(b"1")
    client.send(b"2")
    wait_until(lambda: server.pending == 2)
    assert server.recv(timeout=0) == b"1"
    assert server.recv(timeout=0) == b"2"


# Close ------------------------------------------------------------------------------------


def test_iteration_ends_on_close(devices: Pair) -> None:
    a, b = devices
    client, server = connect(a, b)
    got: list[bytes] = []
    t, _out = run_thread(lambda: [got.append(m) for m in server])
    for m in (b"a", b"b", b"c"):
        client.send(m)
    wait_until(lambda: len(got) == 3)
    server.close()
    t.join(5)
    assert not t.is_alive()
    assert got == [b"a", b"b", b"c"]


def test_close_is_idempotent(devices: Pair) -> None:
    a, b = devices
    client, _server = connect(a, b)
    client.close()
    client.close()
    assert client.closed
    with pytest.raises(EndpointClosedError):
        client.send(b"x")
    with pytest.raises(EndpointClosedError):
        client.recv(timeout=0)
    a.close()
    a.close()
    assert a.closed
    with pytest.raises(EndpointClosedError):
        a.create_endpoint("late")


def test_close_wakes_local_blocked_recv(devices: Pair) -> None:
    a, b = devices
    client, _server = connect(a, b)
    t, out = run_thread(client.recv)
    client.close()
    t.join(5)
    assert len(out) == 1 and isinstance(out[0], EndpointClosedError)


def test_device_close_wakes_blocked_recv_on_other_side(devices: Pair) -> None:
    a, b = devices
    _client, server = connect(a, b)
    t, out = run_thread(server.recv)
    a.close()
    t.join(5)
    assert len(out) == 1 and isinstance(out[0], RemoteDisconnectedError)
    assert isinstance(out[0], ConnectionError)
    with pytest.raises(RemoteDisconnectedError):
        server.send(b"anyone?")
    wait_until(lambda: not b.is_up)


def test_unannounced_binding_also_disconnects(devices: Pair) -> None:
    a, b = devices
    a.wait_up(timeout=5)
    x = a.create_endpoint(src=0x30, dst=0x31)
    y = b.create_endpoint(src=0x31, dst=0x30)
    t, out = run_thread(y.recv)
    a.close()
    t.join(5)
    assert len(out) == 1 and isinstance(out[0], RemoteDisconnectedError)
    assert x.closed


def test_queued_messages_readable_before_disconnect_error(devices: Pair) -> None:
    a, b = devices
    client, server = connect(a, b)
    client.send(b"last words")
    wait_until(lambda: server.pending == 1)
    a.close()
    assert server.recv(timeout=5) == b"last words"
    with pytest.raises(RemoteDisconnectedError):
        server.recv(timeout=5)


def test_remote_endpoint_close_then_rebind(devices: Pair) -> None:
    a, b = devices
    client, server = connect(a, b)
    server.close()  # OpenAMP: NS DESTROY for a named endpoint
    with pytest.raises(RemoteDisconnectedError):
        client.recv(timeout=5)
    assert not client.bound
    again = b.create_endpoint("svc")  # announced again; the client rebinds by name
    assert client.wait_bound(timeout=5) == again.addr
    client.send(b"back again")
    assert again.recv(timeout=5) == b"back again"


def test_no_thread_leak(loop_name: str, no_thread_leak: None) -> None:
    with rpmsg.open(f"loop:{loop_name}") as a, rpmsg.open(f"loop:{loop_name}") as b:
        connect(a, b)


def test_no_thread_leak_after_one_side_closes_first(loop_name: str, no_thread_leak: None) -> None:
    a = rpmsg.open(f"loop:{loop_name}")
    b = rpmsg.open(f"loop:{loop_name}")
    connect(a, b)
    b.close()
    a.close()


# Hooks ------------------------------------------------------------------------------------


def test_on_bound_on_unbound(devices: Pair) -> None:
    a, b = devices
    events: list[tuple[str, int]] = []
    server = b.create_endpoint("svc")
    a.wait_service("svc", timeout=5)
    client = a.create_endpoint(
        "svc",
        on_bound=lambda e: events.append(("bound", e.dst)),
        on_unbound=lambda e: events.append(("unbound", e.dst)))
    assert events == [("bound", server.addr)]
    server.close()
    wait_until(lambda: len(events) == 2)
    assert events[1] == ("unbound", rpmsg.ADDR_ANY)
    assert not client.bound


def test_callback_receives_instead_of_queue(devices: Pair) -> None:
    a, b = devices
    got: list[tuple[bytes, int]] = []
    client, _server = connect(a, b)
    cb = b.create_endpoint(src=0x90, callback=lambda e, data, src: got.append((data, src)))
    client.send_to(0x90, b"to callback")
    wait_until(lambda: len(got) == 1)
    assert got == [(b"to callback", client.addr)]
    assert cb.pending == 0


def test_raising_callback_does_not_kill_the_loop(devices: Pair) -> None:
    a, b = devices
    got: list[bytes] = []

    def flaky(ept: rpmsg.Endpoint, data: bytes, src: int) -> None:
        got.append(data)
        if data == b"boom":
            raise RuntimeError("user bug")

    server = b.create_endpoint("svc", callback=flaky)
    a.wait_service("svc", timeout=5)
    client = a.create_endpoint("svc")
    client.wait_bound(timeout=5)
    client.send(b"boom")
    client.send(b"still alive")
    wait_until(lambda: len(got) == 2)
    assert got == [b"boom", b"still alive"]
    # Other endpoints on the same device keep receiving too.
    plain = b.create_endpoint(src=0x91)
    client.send_to(0x91, b"queued")
    assert plain.recv(timeout=5) == b"queued"
    assert server.pending == 0


def test_raising_hooks_are_contained(devices: Pair) -> None:
    a, b = devices

    def bad(_e: rpmsg.Endpoint) -> None:
        raise RuntimeError("hook bug")

    b.create_endpoint("svc")
    a.wait_service("svc", timeout=5)
    client = a.create_endpoint("svc", on_bound=bad)
    assert client.bound
    client.send(b"fine")


def test_on_service_handler(devices: Pair) -> None:
    a, b = devices
    made: list[rpmsg.Endpoint] = []
    a.on_service("svc", lambda dev, name, addr: made.append(dev.create_endpoint(name)))
    server = b.create_endpoint("svc")
    wait_until(lambda: len(made) == 1)
    assert made[0].dst == server.addr


# Buffers ----------------------------------------------------------------------------------


def test_no_buffer_when_loop_buffers_exhausted(loop_name: str) -> None:
    url = f"loop:{loop_name}?buffers=2"
    release = threading.Event()
    entered = threading.Event()

    def stuck(ept: rpmsg.Endpoint, data: bytes, src: int) -> None:
        entered.set()
        release.wait(10)

    with rpmsg.open(url) as a, rpmsg.open(url) as b:
        try:
            server = b.create_endpoint("sink", callback=stuck)
            a.wait_service("sink", timeout=5)
            client = a.create_endpoint("sink")
            assert client.wait_bound(timeout=5) == server.addr
            client.send(b"1", timeout=0)  # taken by b's thread, which then blocks
            assert entered.wait(5)
            client.send(b"2", timeout=0)  # waits in the second buffer
            with pytest.raises(NoBufferError):
                client.send(b"3", timeout=0)
            with pytest.raises(WouldBlockError):
                client.send_to(server.addr, b"3", timeout=0)
            with pytest.raises(RpmsgTimeoutError):
                client.send(b"3", timeout=0.05)
            # A sender blocked without timeout goes on once buffers come back.
            t, out = run_thread(client.send, b"3")
            release.set()
            t.join(5)
            assert out == [None]
        finally:
            release.set()


def test_buffer_options_must_match(loop_name: str) -> None:
    with rpmsg.open(f"loop:{loop_name}?buffers=4&buffer_size=128") as a:
        assert a.mtu == 112
        with pytest.raises(rpmsg.AlreadyOpenError):
            rpmsg.open(f"loop:{loop_name}?buffers=8")
        with rpmsg.open(f"loop:{loop_name}") as b:
            assert b.mtu == 112


# URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["nosuchscheme:x", "no-colon", ":empty", "bad scheme:x"])
def test_bad_url(url: str) -> None:
    with pytest.raises(rpmsg.InvalidURLError):
        rpmsg.open(url)


def test_unknown_option_rejected_and_cleaned_up(loop_name: str) -> None:
    with pytest.raises(rpmsg.InvalidURLError):
        rpmsg.open(f"loop:{loop_name}?bogus=1")
    with pytest.raises(rpmsg.InvalidURLError):
        rpmsg.open(f"loop:{loop_name}", bogus=1)
    with pytest.raises(rpmsg.InvalidURLError):
        rpmsg.open(f"loop:{loop_name}?buffers=lots")
    # The failed opens left nothing behind: both ends can still be opened.
    with rpmsg.open(f"loop:{loop_name}") as a, rpmsg.open(f"loop:{loop_name}") as b:
        connect(a, b)


def test_third_open_already_open(devices: Pair, loop_name: str) -> None:
    with pytest.raises(rpmsg.AlreadyOpenError):
        rpmsg.open(f"loop:{loop_name}")


def test_reopen_after_close_starts_a_new_loop(loop_name: str) -> None:
    a = rpmsg.open(f"loop:{loop_name}")
    b = rpmsg.open(f"loop:{loop_name}")
    a.close()
    with rpmsg.open(f"loop:{loop_name}") as c, rpmsg.open(f"loop:{loop_name}") as d:
        connect(c, d)
    b.close()


@pytest.mark.parametrize(("how", "expected"), [
    ({"policy": "nuttx"}, rpmsg.NUTTX),
    ({"policy": "Linux"}, rpmsg.LINUX),
    ({"policy": rpmsg.OPENAMP}, rpmsg.OPENAMP),
])
def test_policy_by_name(loop_name: str, how: dict[str, Any], expected: rpmsg.Policy) -> None:
    with rpmsg.open(f"loop:{loop_name}", **how) as dev:
        assert dev.policy is expected


def test_policy_in_query(loop_name: str) -> None:
    with rpmsg.open(f"loop:{loop_name}?policy=nuttx") as dev:
        assert dev.policy is rpmsg.NUTTX
    with pytest.raises(rpmsg.InvalidURLError):
        rpmsg.open(f"loop:{loop_name}?policy=vxworks")
    with pytest.raises(rpmsg.InvalidURLError):
        rpmsg.open(f"loop:{loop_name}", policy="vxworks")
    with rpmsg.open(f"loop:{loop_name}") as a, rpmsg.open(f"loop:{loop_name}") as b:
        connect(a, b)


def test_default_loop_name() -> None:
    with rpmsg.open("loop:") as a, rpmsg.open("loop:default") as b:
        connect(a, b)


# Robustness -------------------------------------------------------------------------------


def test_garbage_to_name_service_is_counted(devices: Pair) -> None:
    a, b = devices
    client, server = connect(a, b)
    client.send_to(rpmsg.NS_ADDR, b"not a name-service message")
    client.send_to(rpmsg.NS_ADDR, b"x" * 32 + bytes.fromhex("00050000 07000000"))  # bad flags
    wait_until(lambda: b.stats()["ns_invalid"] == 2)
    client.send(b"still fine")
    assert server.recv(timeout=5) == b"still fine"
    assert b.services == []


def test_callback_may_close_its_own_device(devices: Pair, no_thread_leak: None) -> None:
    a, b = devices
    closed = threading.Event()

    def stop(ept: rpmsg.Endpoint, data: bytes, src: int) -> None:
        ept.device.close()
        closed.set()

    b.create_endpoint("svc", callback=stop)
    a.wait_service("svc", timeout=5)
    client = a.create_endpoint("svc")
    client.wait_bound(timeout=5)
    client.send(b"stop")
    assert closed.wait(5)
    assert b.closed
    with pytest.raises(RemoteDisconnectedError):
        client.recv(timeout=5)


def test_echo_from_callback(devices: Pair) -> None:
    a, b = devices
    b.create_endpoint("echo", callback=lambda e, data, src: e.send_to(src, data[::-1]))
    a.wait_service("echo", timeout=5)
    client = a.create_endpoint("echo")
    client.wait_bound(timeout=5)
    for i in range(50):
        client.send(b"abc%d" % i)
        assert client.recv(timeout=5) == (b"abc%d" % i)[::-1]


def test_device_waits(devices: Pair) -> None:
    a, b = devices
    with pytest.raises(RpmsgTimeoutError):
        a.wait_service("never", timeout=0.02)
    a.close()
    with pytest.raises(EndpointClosedError):
        a.wait_service("never", timeout=1)
    with pytest.raises(EndpointClosedError):
        a.wait_up(timeout=1)
    with pytest.raises(RpmsgTimeoutError):
        b.wait_up(timeout=0.02)  # the other end stays down


def test_stats_include_link_counters(devices: Pair) -> None:
    a, b = devices
    _client, _server = connect(a, b)
    stats = a.stats()
    assert stats["link_tx_messages"] >= 1
    assert stats["ns_send_failures"] == 0
    assert {"rx_messages", "rx_bytes", "dropped_unknown_dst", "ns_invalid"} <= set(stats)


def test_close_wakes_wait_up_and_wait_service(loop_name: str) -> None:
    dev = rpmsg.open(f"loop:{loop_name}")
    up, up_out = run_thread(dev.wait_up)
    svc, svc_out = run_thread(dev.wait_service, "never")
    dev.close()
    up.join(5)
    svc.join(5)
    assert len(up_out) == 1 and isinstance(up_out[0], EndpointClosedError)
    assert len(svc_out) == 1 and isinstance(svc_out[0], EndpointClosedError)
    assert not dev.is_up


def test_send_before_peer_opens(loop_name: str) -> None:
    with rpmsg.open(f"loop:{loop_name}") as a:
        x = a.create_endpoint(src=0x30, dst=0x31)
        with pytest.raises(RemoteDisconnectedError):
            x.send(b"too early")


def test_create_endpoint_errors(devices: Pair) -> None:
    a, _ = devices
    with pytest.raises(rpmsg.NameTooLongError):
        a.create_endpoint("n" * 32)
    a.create_endpoint(src=0x30)
    with pytest.raises(rpmsg.AddressInUseError):
        a.create_endpoint(src=0x30)
    with pytest.raises(rpmsg.AddressInUseError):
        a.create_endpoint(src=rpmsg.NS_ADDR)
    assert a.create_endpoint().addr == 1024


def test_closed_endpoint_waits_fail(devices: Pair) -> None:
    a, _ = devices
    ept = a.create_endpoint()
    ept.close()
    with pytest.raises(EndpointClosedError):
        ept.wait_bound(timeout=1)
    with pytest.raises(EndpointClosedError):
        ept.get_tx_buffer()
    assert list(ept) == []
