"""Console.read_until and command() against a chip that never prints the pattern: the reader's
memory stays bounded (pyserial's ``size`` rule, 4 MiB by default) and nothing read is lost."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

import pytest

import rpmsg
from rpmsg.services.nuttx import Console
from rpmsg.services.nuttx import console as console_module
from rpmsg.services.nuttx.sim import SimTty, Violations

_names = itertools.count()
TTY = "rpmsg-ttyflood"


@pytest.fixture
def chip_and_console() -> Iterator[tuple[SimTty, Console]]:
    name = f"console-bounds-{next(_names)}"
    with rpmsg.open(f"loop:{name}", policy="nuttx") as pc, \
            rpmsg.open(f"loop:{name}", policy="nuttx") as chip:
        tty = SimTty(chip, TTY, Violations())
        console = Console(pc, TTY, timeout=10, buffer_size=4096)
        try:
            yield tty, console
        finally:
            console.close()
            with tty.cond:
                tty.closed = True
                tty.cond.notify_all()


def _print_forever(tty: SimTty, stop: threading.Event) -> threading.Thread:
    def run() -> None:
        n = 0
        while not stop.is_set() and not tty.closed:
            tty.write(b"%08d noise without a prompt\r\n" % n)
            n += 1

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_read_until_returns_at_size_and_keeps_the_rest(
        chip_and_console: tuple[SimTty, Console]) -> None:
    tty, console = chip_and_console
    tty.write(b"0123456789" * 10 + b"prompt> ")
    got = console.read_until(b"prompt> ", timeout=10, size=25)
    assert got == b"0123456789012345678901234"            # size came first: no match
    rest = console.read_until(b"prompt> ", timeout=10)    # nothing was lost in between
    assert got + rest == b"0123456789" * 10 + b"prompt> "


def test_a_pattern_split_across_reads_is_found(chip_and_console: tuple[SimTty, Console]) -> None:
    tty, console = chip_and_console
    tty.write(b"abcpro")
    later = threading.Timer(0.2, tty.write, (b"mpt> tail",))  # usually a read later
    later.start()
    try:
        assert console.read_until(b"prompt> ", timeout=10) == b"abcprompt> "
    finally:
        later.join()
    assert console.read_until(b"tail", timeout=10) == b"tail"


def test_a_chip_that_never_prints_the_prompt_cannot_grow_the_reader(
        chip_and_console: tuple[SimTty, Console], monkeypatch: pytest.MonkeyPatch) -> None:
    tty, console = chip_and_console
    monkeypatch.setattr(console_module, "READ_UNTIL_MAX", 64 * 1024)
    stop = threading.Event()
    printer = _print_forever(tty, stop)
    try:
        got = console.read_until(b"nsh> ", timeout=None)   # would wait and grow for ever
        assert len(got) == 64 * 1024 and b"nsh> " not in got
        with pytest.raises(rpmsg.RpmsgError, match="no prompt"):
            console.command("ls", timeout=None, echo=False)
    finally:
        stop.set()
        console.close()
        with tty.cond:
            tty.closed = True
            tty.cond.notify_all()
        printer.join(10)
    assert not printer.is_alive()


def test_a_negative_or_wrong_size_is_a_typed_error(
        chip_and_console: tuple[SimTty, Console]) -> None:
    _, console = chip_and_console
    with pytest.raises(rpmsg.InvalidArgumentError):
        console.read_until(b"x", timeout=0, size=-1)
    with pytest.raises(rpmsg.ArgumentTypeError):
        console.read_until(b"x", timeout=0, size=1.5)  # type: ignore[arg-type]
