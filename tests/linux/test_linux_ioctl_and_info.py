"""ioctl request numbers and the rpmsg_endpoint_info argument they carry."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpmsg.errors import DecodeError, NameTooLongError
from rpmsg.linux import ENDPOINT_INFO_SIZE, EndpointInfo
from rpmsg.linux import ioctl as ioc
from rpmsg.wire.rpmsg import ADDR_ANY

# Literal values from shared/spec/linux-chardev.md §5.1 (asm-generic encoding).
SPEC = {
    "create_ept": 0x4028B501,
    "destroy_ept": 0x0000B502,
    "create_dev": 0x4028B503,
    "release_dev": 0x4028B504,
    "get_outgoing_flowcontrol": 0x8004B505,
    "set_incoming_flowcontrol": 0x8004B506,
}


@pytest.mark.parametrize("field", sorted(SPEC))
def test_generic_numbers_equal_the_spec(field: str) -> None:
    assert getattr(ioc.RpmsgIoctls.build(ioc.GENERIC), field) == SPEC[field]


def test_module_constants_on_this_machine() -> None:
    # This test host is x86-64 or arm64: the asm-generic encoding applies.
    assert ioc.RPMSG_CREATE_EPT_IOCTL == 0x4028B501
    assert ioc.RPMSG_DESTROY_EPT_IOCTL == 0xB502
    assert ioc.RPMSG_CREATE_DEV_IOCTL == 0x4028B503
    assert ioc.RPMSG_RELEASE_DEV_IOCTL == 0x4028B504
    assert ioc.RPMSG_GET_OUTGOING_FLOWCONTROL == 0x8004B505
    assert ioc.RPMSG_SET_INCOMING_FLOWCONTROL == 0x8004B506


def test_three_direction_bit_architectures() -> None:
    assert ioc.encoding_for("ppc64le") is ioc.DIR3
    assert ioc.encoding_for("mips") is ioc.DIR3
    assert ioc.encoding_for("x86_64") is ioc.GENERIC
    assert ioc.encoding_for("aarch64") is ioc.GENERIC
    numbers = ioc.RpmsgIoctls.build(ioc.DIR3)
    assert numbers.create_ept == 0x8028B501  # _IOC_WRITE is 4 << 29 there
    assert numbers.destroy_ept == 0x2000B502  # _IOC_NONE is 1 << 29
    assert numbers.get_outgoing_flowcontrol == 0x4004B505


def test_endpoint_info_golden_bytes() -> None:
    data = EndpointInfo("my-ept", src=0xFFFFFFFF, dst=0x400).encode()
    assert len(data) == ENDPOINT_INFO_SIZE == 40
    assert data[:6] == b"my-ept"
    assert data[6:32] == bytes(26)
    assert data[32:] == bytes.fromhex("ff ff ff ff 00 04 00 00")


def test_names_that_do_not_fit_are_rejected() -> None:
    EndpointInfo("x" * 31)  # 31 bytes and the NUL fit
    with pytest.raises(NameTooLongError):
        EndpointInfo("x" * 32)
    with pytest.raises(NameTooLongError):
        EndpointInfo("é" * 16)  # 32 bytes of UTF-8


def test_addresses_must_be_u32() -> None:
    with pytest.raises(ValueError):
        EndpointInfo("a", src=-1)
    with pytest.raises(ValueError):
        EndpointInfo("a", dst=1 << 32)


@given(st.binary(max_size=80))
def test_decode_random_bytes_gives_a_value_or_decode_error(data: bytes) -> None:
    try:
        info = EndpointInfo.decode(data)
    except DecodeError as exc:
        assert len(data) < ENDPOINT_INFO_SIZE
        assert exc.structure == "rpmsg_endpoint_info"
    else:
        assert len(data) >= ENDPOINT_INFO_SIZE
        assert EndpointInfo.decode(info.encode()) == info


@given(st.text(max_size=31).filter(lambda s: "\0" not in s and len(s.encode()) <= 31),
       st.integers(0, ADDR_ANY), st.integers(0, ADDR_ANY))
def test_round_trip(name: str, src: int, dst: int) -> None:
    info = EndpointInfo(name, src, dst)
    assert EndpointInfo.decode(info.encode()) == info
