"""The rpmsg-ping service answers exactly as NuttX's rpmsg_ping.c, and the client checks replies."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

import rpmsg
from rpmsg.services import EchoService, PingService, ping
from rpmsg.wire.ping import PING_ACK, PING_CHECK, PING_CMD_RSP, PING_HEADER

_names = itertools.count()


@pytest.fixture
def pair() -> Iterator[tuple[rpmsg.Device, rpmsg.Device]]:
    name = f"ping-{next(_names)}"
    with rpmsg.open(f"loop:{name}", side="remote") as remote, \
            rpmsg.open(f"loop:{name}") as host:
        yield host, remote


def _client(host: rpmsg.Device) -> rpmsg.Endpoint:
    ept = host.create_endpoint("rpmsg-ping")
    ept.wait_bound(timeout=2)
    return ept


def test_request_with_ack_is_echoed_as_response(pair: tuple[rpmsg.Device, rpmsg.Device]) -> None:
    host, remote = pair
    svc = PingService(remote)
    ept = _client(host)
    request = PING_HEADER.pack(PING_ACK | PING_CHECK, 40, 0x1122334455667788) + b"\x07" * 24
    ept.send(request, timeout=1)
    reply = ept.recv(timeout=2)
    # cmd becomes RSP (0x20), len the received length, cookie and data unchanged.
    assert reply == PING_HEADER.pack(PING_CMD_RSP, 40, 0x1122334455667788) + b"\x07" * 24
    assert svc.answered == 1 and svc.check_failures == 0


def test_no_ack_and_responses_get_no_answer(pair: tuple[rpmsg.Device, rpmsg.Device]) -> None:
    host, remote = pair
    svc = PingService(remote)
    ept = _client(host)
    ept.send(PING_HEADER.pack(0, 17, 1) + b"\0", timeout=1)              # no ACK bit
    ept.send(PING_HEADER.pack(PING_CMD_RSP | PING_ACK, 17, 2) + b"\0", timeout=1)  # a response
    ept.send(b"short", timeout=1)                                       # not even a header
    with pytest.raises(rpmsg.RpmsgTimeoutError):
        ept.recv(timeout=0.3)
    assert svc.answered == 0 and svc.unanswered == 2 and svc.invalid == 1


def test_check_failure_is_counted_but_answered(pair: tuple[rpmsg.Device, rpmsg.Device]) -> None:
    host, remote = pair
    svc = PingService(remote)
    ept = _client(host)
    ept.send(PING_HEADER.pack(PING_ACK | PING_CHECK, 20, 3) + b"\1\1\2\1", timeout=1)
    assert ept.recv(timeout=2)[:4] == PING_CMD_RSP.to_bytes(4, "little")
    assert svc.check_failures == 1


@pytest.mark.parametrize("size", [17, 64, 496])
def test_ping_client_against_ping_service(pair: tuple[rpmsg.Device, rpmsg.Device],
                                          size: int) -> None:
    host, remote = pair
    PingService(remote)
    result = ping(host, count=50, size=size, timeout=2)
    assert result.ok, result.report()
    assert result.received == 50 and len(result.rtts) == 50
    summary = result.summary()
    assert summary["min_s"] <= summary["p50_s"] <= summary["max_s"]
    assert "ping times: 50" in result.report()


def test_ping_client_against_echo_random_sizes(pair: tuple[rpmsg.Device,
                                                          rpmsg.Device]) -> None:
    host, remote = pair
    EchoService(remote, "my-echo")
    result = ping(host, service="my-echo", count=200, size=496, random_size=True, seed=1,
                  timeout=2)
    assert result.protocol == "echo" and result.ok, result.report()


def test_ping_client_reports_missing_and_corrupt_replies(
        pair: tuple[rpmsg.Device, rpmsg.Device]) -> None:
    host, remote = pair
    seen = itertools.count()

    def flaky(ept: rpmsg.Endpoint, data: bytes, src: int) -> None:
        n = next(seen)
        if n == 1:
            return                                  # drop the second message
        if n == 2:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])  # corrupt the third
        ept.send_to(src, data, timeout=1)

    remote.create_endpoint("flaky", callback=flaky)
    result = ping(host, service="flaky", count=4, size=32, timeout=0.3)
    assert not result.ok
    assert result.lost == 1 and result.corrupt == 1 and result.received == 3


def test_ping_size_above_mtu_is_an_error(pair: tuple[rpmsg.Device, rpmsg.Device]) -> None:
    host, remote = pair
    PingService(remote)
    with pytest.raises(rpmsg.MessageTooLargeError):
        ping(host, count=1, size=497)


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"size": -1}, rpmsg.InvalidArgumentError),          # was sent as a 17-byte ping
    ({"count": -1}, rpmsg.InvalidArgumentError),
    ({"count": 1.5}, rpmsg.ArgumentTypeError),
    ({"interval": 1e300}, rpmsg.InvalidArgumentError),   # was OverflowError from time.sleep
    ({"interval": float("nan")}, rpmsg.InvalidArgumentError),
    ({"interval": float("inf")}, rpmsg.InvalidArgumentError),
    ({"timeout": float("nan")}, rpmsg.InvalidArgumentError),
    ({"timeout": -1}, rpmsg.InvalidArgumentError),
    ({"timeout": "5"}, rpmsg.ArgumentTypeError),
])
def test_wrong_ping_arguments_are_typed_errors_before_anything_is_sent(
        pair: tuple[rpmsg.Device, rpmsg.Device], kwargs: dict[str, object],
        error: type[Exception]) -> None:
    host, remote = pair
    service = PingService(remote)
    with pytest.raises(error):
        ping(host, **{"count": 2, **kwargs})  # type: ignore[arg-type]
    assert service.answered == service.unanswered == service.invalid == 0
    assert not list(host.endpoints)  # nothing was created, nothing left behind


def test_ping_with_no_reply_timeout(pair: tuple[rpmsg.Device, rpmsg.Device]) -> None:
    host, remote = pair
    PingService(remote)
    result = ping(host, count=3, timeout=None)   # the library's None: wait as long as it takes
    assert result.ok and result.received == 3
