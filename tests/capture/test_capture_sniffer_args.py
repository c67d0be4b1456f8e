"""The sans-IO line sniffer: a wrong CRC choice is a typed error (it was a bare ValueError,
not an RpmsgError), and any bytes in any pieces give events, never an exception."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpmsg.capture.sniffer import CRC_CHOICES, LineSniffer
from rpmsg.errors import InvalidArgumentError
from rpmsg.port.uart.framer import CURRENT, LEGACY


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
