"""The default ``Link.send_many`` (used by linux:) over a kernel queue that stays full:
a batch whose time ran out is a timeout, not the "no buffer" of ``timeout=0`` (outsider QA).

Each message is sent with the time left of the batch's timeout; once that reached 0 the
chardev raised ``NoBufferError`` although the caller never asked for a non-blocking send.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from linux_fakes import FakeKernel

from rpmsg.device import Device
from rpmsg.errors import NoBufferError, RpmsgTimeoutError
from rpmsg.linux.link import LinuxLink
from rpmsg.wire.layout import Buffer


def _late(src: int, dst: int, pause: float) -> Iterator[tuple[int, int, Buffer]]:
    time.sleep(pause)
    yield src, dst, b"late"


def test_send_many_past_its_timeout_is_a_timeout(fake: FakeKernel) -> None:
    fake.add_ctrl(0)
    with Device(LinuxLink(ctrl=fake.open_ctrl(0), opener=fake.opener)) as dev:
        ept = dev.create_endpoint("a", dst=0x400)
        link = dev.link
        sent = 0
        with pytest.raises(NoBufferError):  # nobody reads the remote end: it fills up
            while sent < 100_000:
                link.send(ept.addr, 0x400, b"x" * 400, 0)
                sent += 1
        assert sent > 0
        with pytest.raises(RpmsgTimeoutError, match="send_many"):
            link.send_many(_late(ept.addr, 0x400, 0.3), 0.1)
        with pytest.raises(NoBufferError):  # timeout=0 keeps its own error
            link.send_many(_late(ept.addr, 0x400, 0.0), 0)
