"""rpmsg-syslog server against a chip that floods and cuts lines (outsider QA)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

import rpmsg
from rpmsg.errors import NoBufferError
from rpmsg.services.nuttx.syslog import LineAssembler, SyslogHandler
from rpmsg.wire.nuttx_syslog import SYSLOG_NAME, SyslogCommand, SyslogControl


def test_the_end_of_an_over_long_line_is_partial_not_a_line_of_its_own() -> None:
    """A chip writes more than ``max_line`` bytes and then what looks like a log line of
    its own: every piece of the long line is partial (the piece after the cut used to be
    handed out as a complete line that a reader takes for a separate message), and a long
    line that arrives whole in one message is cut too; the next line is whole again."""
    asm = LineAssembler(max_line=16)
    got = asm.feed(b"A" * 17) + asm.feed(b"root: login ok\n") + asm.feed(b"next\n")
    assert got == [(b"A" * 16, True), (b"Aroot: login ok", True), (b"next", False)]
    asm = LineAssembler(max_line=4)
    got = asm.feed(b"abcdef\nwxyzq\nok\n")
    assert got == [(b"abcd", True), (b"ef", True), (b"wxyz", True), (b"q", True),
                   (b"ok", False)]


@given(st.lists(st.binary(max_size=40), max_size=30), st.integers(1, 12))
def test_any_cut_gives_bounded_lines_and_whole_ones_exactly(chunks: list[bytes],
                                                             limit: int) -> None:
    """Whatever the chunks: no piece is longer than the limit, and the lines handed out
    whole are exactly the text's lines that fit it (partial ones are the rest)."""
    asm = LineAssembler(max_line=limit)
    lines = [x for c in chunks for x in asm.feed(c)]
    rest = asm.flush()
    raw_lines = b"".join(chunks).split(b"\n")[:-1]
    assert all(len(t) <= limit for t, _ in lines)
    assert rest is None or len(rest) <= limit
    assert [t for t, partial in lines if not partial] == [
        t.rstrip(b"\r") for t in raw_lines if len(t) <= limit]


def test_records_held_while_suspended_that_cannot_go_are_counted() -> None:
    """The server SUSPENDs, records are held, it RESUMEs when they cannot be sent (no
    transmit buffer): they are counted in ``dropped``, not lost without a trace."""
    with rpmsg.open("loop:syslog-held", policy="nuttx") as pc, \
            rpmsg.open("loop:syslog-held", policy="nuttx") as chip:
        handler = SyslogHandler(pc, timeout=10)
        logger = logging.getLogger("rpmsg-test-held")
        logger.addHandler(handler)
        logger.propagate = False
        try:
            chip.wait_service(SYSLOG_NAME, 10)
            server = chip.create_endpoint(SYSLOG_NAME)  # the chip's syslog server binds
            handler.endpoint.wait_bound(10)
            server.send(SyslogControl(SyslogCommand.SUSPEND).encode(), timeout=10)
            wait_for(lambda: handler._suspended)
            for n in range(3):
                logger.warning("held %d", n)
            assert handler.dropped == 0

            def no_buffer(*args: object, **kwargs: object) -> None:
                raise NoBufferError("no free buffer")

            handler.endpoint.send = no_buffer  # type: ignore[method-assign]
            server.send(SyslogControl(SyslogCommand.RESUME).encode(), timeout=10)
            wait_for(lambda: not handler._suspended)
            wait_for(lambda: handler.dropped == 3)
        finally:
            logger.removeHandler(handler)
            handler.close()


def wait_for(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.01)
