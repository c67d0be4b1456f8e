"""The transport registry: entry points, the two-step open, generic options checked first."""

from __future__ import annotations

import importlib.metadata
import math

import pytest

import rpmsg
from rpmsg import registry
from rpmsg.registry import Opening, Transport, prepare
from rpmsg.transports.loop import LoopLink

BUILTIN = {"loop", "shm", "vhost-user", "linux", "uart", "spi", "spisim"}


def test_builtin_schemes_are_entry_points_like_any_plugin() -> None:
    eps = importlib.metadata.entry_points(group=registry.ENTRY_POINT_GROUP)
    assert {ep.name for ep in eps} >= BUILTIN
    listed = {t.scheme: t for t in rpmsg.list_transports()}
    assert set(listed) >= BUILTIN
    assert listed["loop"].in_process and not listed["shm"].in_process


def test_a_third_party_transport_registers_and_opens() -> None:
    connected: list[Opening] = []

    def configure(url: rpmsg.TransportURL) -> registry.Connect:
        size = url.get_int("buffer_size", 512, minimum=17)

        def connect(opening: Opening) -> LoopLink:
            connected.append(opening)
            from rpmsg.transports.loop import pair

            return pair(buffer_size=size)[0]

        return connect

    rpmsg.register_transport(Transport("plugtest", "a test plugin", configure))
    with pytest.raises(rpmsg.InvalidURLError, match=r"bufer_size.*did you mean buffer_size"):
        rpmsg.open("plugtest:x?bufer_size=64")
    assert connected == []  # the typo was refused before any connection was tried
    with rpmsg.open("plugtest:x?buffer_size=64&timeout=2") as dev:
        assert dev.mtu == 48
    assert connected[0].timeout == 2.0


@pytest.mark.parametrize("url, match", [
    ("loop:a?timout=1", "did you mean timeout"),
    ("loop:a?policy=bogus", "unknown policy"),
    ("loop:a?buffers=1&buffers=2", "given twice"),
    ("loop:a?timeout=nan", "timeout"),
    ("loop:a?timeout=-1", "timeout"),
    ("loop:a?capture_level=bits&capture=/tmp/x", "capture_level"),
    ("loop:a?capture_max=-5&capture=/tmp/x", "capture_max"),
    ("loop:a?buffers=", "not an integer"),
    ("loop:a?buffers=1.5", "not an integer"),
    ("nosuch:a", "unknown transport"),
    ("no-colon", "SCHEME:PATH"),
])
def test_bad_urls_fail_before_connecting(url: str, match: str) -> None:
    with pytest.raises(rpmsg.InvalidURLError, match=match):
        prepare(url)


def test_timeouts_none_and_inf_mean_no_limit() -> None:
    assert prepare("loop:t?timeout=none").timeout is None
    assert prepare("loop:t?timeout=inf").timeout is None
    assert prepare("loop:t", {"timeout": math.inf}).timeout is None
    assert prepare("loop:t").timeout == registry.DEFAULT_OPEN_TIMEOUT


def test_capture_from_the_environment_is_checked_too() -> None:
    prepared = prepare("loop:t", environ={"RPMSG_CAPTURE": "/tmp/c-%p.pcapng",
                                          "RPMSG_CAPTURE_LEVEL": "frames"})
    assert prepared.capture == registry.CaptureOptions("/tmp/c-%p.pcapng", "frames", None,
                                                       from_env=True)
    with pytest.raises(rpmsg.InvalidURLError, match="RPMSG_CAPTURE_LEVEL"):
        prepare("loop:t", environ={"RPMSG_CAPTURE": "/tmp/c", "RPMSG_CAPTURE_LEVEL": "x"})
    assert prepare("loop:t", environ={}).capture is None


def test_wrong_argument_types_are_typed_errors() -> None:
    with pytest.raises(rpmsg.ArgumentTypeError):
        prepare(123)  # type: ignore[arg-type]
    with pytest.raises(rpmsg.InvalidArgumentError):
        prepare("loop:a", side="left")


def test_opening_says_once_what_it_waits_for(caplog: pytest.LogCaptureFixture) -> None:
    opening = Opening("shm:lab", 5)
    opening.started -= 2  # as if the open had waited two seconds already
    with caplog.at_level("INFO", logger="rpmsg.wait"):
        for _ in range(3):
            opening.waiting("a virtio device", "start one with `rpmsg remote shm:lab`")
    assert [r.getMessage() for r in caplog.records] == [
        "waiting for a virtio device on shm:lab — start one with `rpmsg remote shm:lab`"]
    err = opening.timeout_error("virtio device", "nothing listens")
    assert isinstance(err, rpmsg.RpmsgTimeoutError) and "nothing listens" in str(err)
