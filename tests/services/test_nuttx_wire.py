"""NuttX service wire layouts: golden bytes from the spec's live examples, and every parser
fuzzed (garbage gives a DecodeError or a message, never another exception)."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpmsg.errors import DecodeError
from rpmsg.wire import nuttx_errno
from rpmsg.wire.nuttx_rpmsgfs import (
    COMMANDS,
    FS_HEADER,
    RESPONSE_SIZE,
    FsCommand,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    error_response,
    rename_new_offset,
)
from rpmsg.wire.nuttx_rtc import RtcCommand, RtcTime, decode_rtc, reply
from rpmsg.wire.nuttx_syslog import (
    SyslogSync,
    SyslogTransfer,
    decode_syslog,
    transfer_chunks,
)
from rpmsg.wire.nuttx_tty import (
    TtyWakeup,
    TtyWrite,
    TtyWriteResponse,
    decode_tty,
    response_to,
)

PROPS = settings(max_examples=400, deadline=None)


def test_errno_by_name_not_number() -> None:
    assert nuttx_errno.to_nuttx(errno.ENOENT) == 2
    assert nuttx_errno.to_nuttx(errno.ENOTSUP) == 138  # Linux: 95; NuttX: 138
    assert nuttx_errno.NUTTX_ERRNO["ENOTSUP"] == 138  # differs from Linux (95)
    assert nuttx_errno.to_nuttx(errno.EWOULDBLOCK) == 11
    assert nuttx_errno.to_nuttx(99999) == 5  # unknown: EIO
    assert nuttx_errno.from_nuttx(-39) == errno.ENOTEMPTY
    assert nuttx_errno.name_of(-38) == "ENOSYS"


def test_syslog_golden_bytes() -> None:
    # spec §2.3: the PC's SYNC and the chip's empty TRANSFER, live
    sync = bytes.fromhex("03000000000000002301efcdab000000")
    assert decode_syslog(sync) == SyslogSync(0xABCDEF0123)
    assert SyslogSync(0xABCDEF0123).encode() == sync
    assert decode_syslog(bytes(12)) == SyslogTransfer(b"")
    assert transfer_chunks(b"x" * 4000, 2008) == [
        SyslogTransfer(b"x" * 1996).encode(), SyslogTransfer(b"x" * 1996).encode(),
        SyslogTransfer(b"x" * 8).encode()]
    with pytest.raises(DecodeError, match="count"):
        decode_syslog(bytes.fromhex("00000000 00000000 05000000 4142").replace(b" ", b""))


def test_tty_golden_bytes() -> None:
    # spec §3.4: NuttX's answer to 14 bytes with cookie 0x77
    resp = bytes.fromhex("000000800e00000077000000000000000e00000000000000")
    assert decode_tty(resp) == TtyWriteResponse(14, 0x77, 14, 0)
    req = TtyWrite(b"typed-from-pc\n", 0x77)
    assert response_to(req, 14).encode() == resp
    assert TtyWakeup().encode() == bytes.fromhex("01000000000000000000000000000000")
    assert TtyWriteResponse(-5, 1, 10).taken == 0 and TtyWriteResponse(21, 1, 43).taken == 21


def test_rtc_golden_bytes() -> None:
    # spec §5.3: the SYNC the PC sent live (2030-01-01 00:00:00.25)
    sync = RtcTime(RtcCommand.SYNC, 1893456000, 250000000)
    assert sync.encode().hex() == ("05000000" "00000000" "0000000000000000" "0000000000000000"
                                   "80d8db7000000000" "80b2e60e" "00000000")
    # unknown command: 16-byte header, -ENOSYS (live against NuttX's server)
    assert reply(bytes.fromhex("0900000000000000ad0b0000000000000000000000000000"), -38) \
        == bytes.fromhex("09000000daffffffad0b000000000000")


def test_rpmsgfs_layout_sizes_match_the_spec() -> None:
    sizes = {c: COMMANDS[c].layout.size for c in COMMANDS}
    assert sizes[FsCommand.OPEN] == 24 and sizes[FsCommand.LSEEK] == 28
    assert sizes[FsCommand.IOCTL] == 36 and sizes[FsCommand.FSTAT] == 108
    assert sizes[FsCommand.STATFS] == 80 and sizes[FsCommand.FCHSTAT] == 112
    assert sizes[FsCommand.STAT] == 104 and RESPONSE_SIZE[FsCommand.STAT] == 108
    assert RESPONSE_SIZE[FsCommand.CHSTAT] == 112 and RESPONSE_SIZE[FsCommand.OPENDIR] == 16
    assert rename_new_offset(b"/srv/rpmsgfs/demo/out.txt") == 16 + 32  # 26 -> 32, live
    stat = encode_request(FsCommand.STAT, 1, path=b"/srv/rpmsgfs/demo/")
    assert len(stat) == 127  # 108 + strlen + 1, live


@given(st.binary(max_size=120))
@PROPS
def test_fuzz_syslog(data: bytes) -> None:
    try:
        decode_syslog(data)
    except DecodeError:
        pass


@given(st.binary(max_size=120))
@PROPS
def test_fuzz_tty(data: bytes) -> None:
    try:
        msg = decode_tty(data)
    except DecodeError:
        return
    if isinstance(msg, TtyWrite):
        assert msg.encode()[24:] == msg.data


@given(st.binary(max_size=80))
@PROPS
def test_fuzz_rtc(data: bytes) -> None:
    try:
        decode_rtc(data)
    except DecodeError:
        return
    out = reply(data, -1)
    assert out[:4] == data[:4] and out[8:16] == data[8:16]
    assert len(out) in (16, 20, 32, 40)


@given(st.binary(max_size=300), st.sampled_from(sorted(COMMANDS)), st.integers(0, 2**64 - 1))
@PROPS
def test_fuzz_rpmsgfs_request(tail: bytes, command: int, cookie: int) -> None:
    data = FS_HEADER.pack(command, -6, cookie) + tail
    try:
        req = decode_request(data)
    except DecodeError:
        err = error_response(data, -22)
        if err is not None:  # an answer that echoes the cookie at the command's size
            assert FS_HEADER.unpack(err) == (command, -22, cookie)
            if command != FsCommand.IOCTL:
                assert len(err) == RESPONSE_SIZE[command]
        return
    out = encode_response(req, 0)
    assert FS_HEADER.unpack(out) == (command, 0, cookie)
    if command not in (FsCommand.IOCTL,):
        assert len(out) == RESPONSE_SIZE[command]


@given(st.binary(max_size=300))
@PROPS
def test_fuzz_rpmsgfs_any(data: bytes) -> None:
    for parse in (decode_request, decode_response):
        try:
            parse(data)
        except DecodeError:
            pass
    out = error_response(data, -5)
    if out is not None:
        assert decode_response(out).result == -5


@given(st.sampled_from(sorted(COMMANDS)), st.binary(max_size=40).filter(lambda b: b"\0" not in b),
       st.binary(max_size=40).filter(lambda b: b"\0" not in b), st.binary(max_size=64))
@PROPS
def test_rpmsgfs_request_round_trip(command: int, path: bytes, new: bytes, data: bytes) -> None:
    raw = encode_request(FsCommand(command), 0x7F00, path=path, new_path=new, data=data)
    req = decode_request(raw)
    assert req.command == command and req.cookie == 0x7F00
    if req.path is not None:
        assert req.path == path
    if command == FsCommand.RENAME:
        assert req.new_path == new
    if command in (FsCommand.WRITE, FsCommand.IOCTL):
        assert req.data == data
