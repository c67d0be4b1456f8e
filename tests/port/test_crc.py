"""CRC-16/ARC and XMODEM: check values, and every implementation agrees with the definition.

The pure-Python ARC (big-integer parities) and the ``crc`` extra (fastcrc) are compared with
a bit-at-a-time implementation written from the CRC parameters, on random data of random
lengths (chunk boundaries included) and random start values.
"""

from __future__ import annotations

from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpmsg.port import crc

needs_extra = pytest.mark.skipif("fastcrc" not in crc.IMPLEMENTATIONS,
                                 reason="the crc extra (fastcrc) is not installed")


def arc_by_definition(data: bytes, value: int = 0) -> int:
    """Poly 0x8005, reflected in and out (0xA001 shifting right), no final XOR."""
    for byte in data:
        value ^= byte
        for _ in range(8):
            value = (value >> 1) ^ 0xA001 if value & 1 else value >> 1
    return value


def xmodem_by_definition(data: bytes, value: int = 0) -> int:
    """Poly 0x1021, MSB first, no reflection, no final XOR."""
    for byte in data:
        value ^= byte << 8
        for _ in range(8):
            value = ((value << 1) ^ 0x1021 if value & 0x8000 else value << 1) & 0xFFFF
    return value


@pytest.mark.parametrize("impl", sorted(crc.IMPLEMENTATIONS))
def test_check_values(impl: str) -> None:
    fns = crc.IMPLEMENTATIONS[impl]
    assert fns["arc"](b"123456789") == crc.CHECK_ARC == 0xBB3D
    assert fns["xmodem"](b"123456789") == crc.CHECK_XMODEM == 0x31C3
    assert fns["arc"](b"") == 0 and fns["xmodem"](b"") == 0


def test_the_extra_is_used_when_installed() -> None:
    try:
        import fastcrc  # noqa: F401
    except ImportError:
        assert crc.IMPLEMENTATION == "python"
    else:
        assert crc.IMPLEMENTATION == "fastcrc"
        assert crc.get_crc("arc") is crc.IMPLEMENTATIONS["fastcrc"]["arc"]


lengths = st.one_of(st.integers(0, 64), st.integers(0, 5000),
                    st.sampled_from([2047, 2048, 2049, 4095, 4096, 4097]))


@settings(max_examples=300, deadline=None)
@given(buf=lengths.flatmap(lambda n: st.binary(min_size=n, max_size=n)),
       start=st.integers(0, 0xFFFF))
def test_python_arc_matches_the_definition(buf: bytes, start: int) -> None:
    assert crc.python_crc16_arc(buf, start) == arc_by_definition(buf, start)


@settings(max_examples=200, deadline=None)
@given(buf=st.binary(max_size=3000), start=st.integers(0, 0xFFFF))
def test_python_xmodem_matches_the_definition(buf: bytes, start: int) -> None:
    assert crc.python_crc16_xmodem(buf, start) == xmodem_by_definition(buf, start)


@needs_extra
@settings(max_examples=500, deadline=None)
@given(buf=st.binary(max_size=6000), start=st.integers(0, 0xFFFF),
       cut=st.integers(0, 6000))
def test_the_extra_and_the_fallback_agree(buf: bytes, start: int, cut: int) -> None:
    fast, slow = crc.IMPLEMENTATIONS["fastcrc"], crc.IMPLEMENTATIONS["python"]
    for name in ("arc", "xmodem"):
        assert fast[name](buf, start) == slow[name](buf, start)
        # chaining: the CRC of a+b continues from the CRC of a
        head, tail = buf[:cut], buf[cut:]
        assert fast[name](tail, slow[name](head, start)) == fast[name](buf, start)


@pytest.mark.parametrize("impl", sorted(crc.IMPLEMENTATIONS))
def test_any_buffer_works(impl: str) -> None:
    data = bytes(range(256)) * 9
    fn = crc.IMPLEMENTATIONS[impl]["arc"]
    expected = arc_by_definition(data[3:])
    assert fn(memoryview(data)[3:]) == expected
    assert fn(bytearray(data[3:])) == expected
    words = array("B", data[3:])
    assert fn(memoryview(words)) == expected
    assert crc.frame_crc(fn, data[1:]) == expected


def test_implementation_switch_is_scoped() -> None:
    before = crc.get_crc("arc")
    with crc.implementation("python"):
        assert crc.get_crc("arc") is crc.python_crc16_arc
        assert crc.IMPLEMENTATION == "python"
        assert crc.crc16_arc(b"123456789") == 0xBB3D
    assert crc.get_crc("arc") is before
    with pytest.raises(KeyError), crc.implementation("no-such"):
        pass
    with pytest.raises(ValueError, match="unknown CRC"):
        crc.get_crc("crc32")
    assert crc.get_crc("none") is None
