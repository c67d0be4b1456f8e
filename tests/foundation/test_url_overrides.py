"""Keyword options of rpmsg.open override the URL's query, but the query is still checked:
a wrong URL stays wrong whatever replaces its values."""

from __future__ import annotations

import pytest

import rpmsg
from rpmsg.registry import prepare


@pytest.mark.parametrize(("url", "keywords", "match"), [
    ("loop:o?timeout=nan", {"timeout": 1}, "timeout"),
    ("loop:o?timeout=-1", {"timeout": "none"}, "timeout"),
    ("shm:o?buffers=abc", {"buffers": 4}, "buffers"),
    ("shm:o?buffer_size=17.5", {"buffer-size": 512}, "buffer_size"),
    ("loop:o?policy=bsd", {"policy": "linux"}, "policy"),
    ("loop:o?capture_max=-5", {"capture_max": 0}, "capture_max"),
])
def test_an_overridden_query_value_is_still_checked(url: str, keywords: dict[str, object],
                                                    match: str) -> None:
    with pytest.raises(rpmsg.InvalidURLError, match=match):
        prepare(url, keywords)
    with pytest.raises(rpmsg.InvalidURLError, match=match):
        rpmsg.open(url, **keywords)


def test_the_keyword_wins_over_a_valid_query_value() -> None:
    assert prepare("loop:o?timeout=2", {"timeout": 1}).timeout == 1
    assert prepare("loop:o?policy=nuttx", {"policy": "linux"}).policy == rpmsg.LINUX
    with rpmsg.open("loop:o?timeout=2", timeout=1) as dev:
        assert dev.policy.name == "openamp"


def test_capture_off_for_one_link_whatever_the_environment_says() -> None:
    env = {"RPMSG_CAPTURE": "/tmp/inherited.pcapng"}
    assert prepare("loop:c", environ=env).capture is not None
    for off in ("loop:c?capture=", "loop:c?capture=off", "loop:c?capture=none"):
        assert prepare(off, environ=env).capture is None
    assert prepare("loop:c", {"capture": False}, environ=env).capture is None
    assert prepare("loop:c?capture=/tmp/x.pcapng", {"capture": "off"}, environ=env
                   ).capture is None


def test_rpmsg_capture_off_in_the_environment_is_no_capture() -> None:
    for off in ("off", "OFF", "none", "0", " "):
        assert prepare("loop:c", environ={"RPMSG_CAPTURE": off}).capture is None
    assert prepare("loop:c", environ={"RPMSG_CAPTURE": "/tmp/x.pcapng"}).capture.from_env
    assert not prepare("loop:c?capture=/tmp/x.pcapng", environ={}).capture.from_env
