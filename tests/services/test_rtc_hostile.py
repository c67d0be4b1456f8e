"""rpmsg-rtc server against a chip that sets absurd times (outsider QA)."""

from __future__ import annotations

import threading

import rpmsg
from rpmsg.endpoint import Endpoint
from rpmsg.services.nuttx import RtcServer
from rpmsg.wire.nuttx_rtc import RTC_NAME, RtcCommand, RtcTime, decode_rtc


def test_every_set_is_answered_whatever_the_time_or_the_callback() -> None:
    """A chip's SET with nanoseconds no clock holds is -EINVAL without reaching on_set; an
    on_set that raises still answers (its errno, else -EINVAL): the NuttX client waits for
    the answer forever. The server keeps serving afterwards (GET, a good SET)."""
    applied: list[int] = []

    def on_set(ns: int) -> None:
        if ns < 0:
            raise PermissionError(1, "not before 1970")
        if ns > 10**20:
            raise OverflowError("the host clock cannot hold it")
        applied.append(ns)

    answers: dict[int, RtcTime] = {}
    cond = threading.Condition()

    def on_message(ept: Endpoint, data: bytes, src: int) -> None:
        msg = decode_rtc(data)
        if isinstance(msg, RtcTime) and msg.command != RtcCommand.SYNC:
            with cond:
                answers[msg.cookie] = msg
                cond.notify_all()

    def ask(ept: Endpoint, cookie: int, command: RtcCommand, sec: int, nsec: int) -> RtcTime:
        ept.send(RtcTime(command, sec, nsec, cookie=cookie, result=-6).encode(), timeout=10)
        with cond:
            assert cond.wait_for(lambda: cookie in answers, 30), f"no answer to {cookie}"
            return answers[cookie]

    with rpmsg.open("loop:rtc-absurd", policy="nuttx") as pc, \
            rpmsg.open("loop:rtc-absurd", policy="nuttx") as chip:
        server = RtcServer(pc, on_set=on_set)
        chip.wait_service(RTC_NAME, 10)
        ept = chip.create_endpoint(RTC_NAME, callback=on_message)  # binds as a client
        ept.wait_bound(10)
        assert ask(ept, 1, RtcCommand.SET, 5, 2_000_000_000).result == -22
        assert ask(ept, 2, RtcCommand.SET, 5, -1).result == -22
        assert ask(ept, 3, RtcCommand.SET, -(2**63), 0).result == -1      # EPERM from on_set
        assert ask(ept, 4, RtcCommand.SET, 2**63 - 1, 999_999_999).result == -22
        assert applied == []
        assert ask(ept, 5, RtcCommand.GET, 0, 0).result == 0
        assert ask(ept, 6, RtcCommand.SET, 1_700_000_000, 5).result == 0
        assert applied == [1_700_000_000_000_000_005]
        assert server.stats.refused == 4
        server.close()
