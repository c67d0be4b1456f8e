"""The sans-IO line sniffer: a wrong CRC choice is a typed error (it was a bare ValueError,
not an RpmsgError), and any bytes in any pieces give events, never an exception."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpmsg.capture.sniffer import CRC_CHOICES, LineSniffer
from rpmsg.errors import ArgumentTypeError, InvalidArgumentError
from rpmsg.port.crc import get_crc
from rpmsg.port.uart.framer import CURRENT, LEGACY, FrameDecoder, get_protocol


@pytest.mark.parametrize("crc", ["crc32", "", None, "ARC"])
def test_an_unknown_crc_is_an_invalid_argument(crc: object) -> None:
    with pytest.raises(InvalidArgumentError, match="unknown CRC"):
        LineSniffer("tx", CURRENT, crc)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([CURRENT, LEGACY]), st.sampled_from(CRC_CHOICES),
       st.lists(st.binary(max_size=300), max_size=8))
def test_any_bytes_give_events(protocol: object, crc: str, chunks: list[bytes]) -> None:
    sniffer = LineSniffer("rx", protocol, crc)  # type: ignore[arg-type]
    for chunk in chunks:
        sniffer.feed(chunk)
    assert sniffer.bad_crc <= sniffer.frames


@pytest.mark.parametrize(("direction", "protocol", "error"), [
    ("sideways", CURRENT, InvalidArgumentError), (None, CURRENT, InvalidArgumentError),
    ("rx", "current", ArgumentTypeError), ("tx", None, ArgumentTypeError)])
def test_a_wrong_direction_or_protocol_is_a_typed_error(
        direction: object, protocol: object, error: type[Exception]) -> None:
    """LineSniffer('sideways', CURRENT) was accepted (its frames then named a direction no
    capture knows); LineSniffer('rx', 'current') raised a bare AttributeError."""
    with pytest.raises(error):
        LineSniffer(direction, protocol)  # type: ignore[arg-type]


def test_unknown_crc_and_protocol_names_are_typed_errors_where_they_are_looked_up() -> None:
    """get_crc and get_protocol, the one place each name is looked up (the URL options, the
    framers, the sniffer), raised bare ValueErrors."""
    with pytest.raises(InvalidArgumentError, match="unknown CRC"):
        get_crc("crc32")
    with pytest.raises(InvalidArgumentError, match="unknown UART protocol"):
        get_protocol("newest")
    with pytest.raises(InvalidArgumentError, match="unknown CRC"):
        FrameDecoder(CURRENT, crc="crc32")
