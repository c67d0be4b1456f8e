"""The interactive terminal of ``rpmsg console``, ``rpmsg nuttx`` and ``rpmsg term``.

Two modes, like ``miniterm``:

* ``raw`` (console): the local terminal is put in raw mode and every byte typed goes to the
  peer as is; the peer's output is written as is (a NuttX shell echoes and sends ``\\r\\n``).
* ``line`` (term): the terminal stays cooked; each line typed goes out as one message and
  each message received is printed on its own line, control characters escaped.

Ctrl-] leaves (also Ctrl-D at the start of a line in line mode, and end of input). When
stdin is not a terminal, input is forwarded until it ends, then output is shown until the
peer has been quiet for :data:`LINGER` seconds. The terminal's state is always restored.
Notes (log lines, "waiting for..." words) go to stderr with line ends fit for raw mode.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, Literal

from rpmsg.cli.args import standard_input

EXIT_CHAR = b"\x1d"  # Ctrl-]
#: Seconds of peer silence after the end of piped input before the terminal returns.
LINGER = 1.0
#: Upper bound of that wait.
LINGER_MAX = 10.0

Mode = Literal["raw", "line"]

#: Text from a peer or a file shown as escapes (``\x1b``): C0 controls but tab, DEL and
#: the C1 controls, which are commands to the user's terminal (a title, a cleared screen, a
#: clipboard write, a reply typed into the shell), and lone surrogates, which stand for
#: bytes that were not UTF-8 (``\udcff`` is the byte 0xff) and no strict stdout can write.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c != 0x09}
_ESCAPES.update({c: f"\\x{c - 0xDC00:02x}" for c in range(0xDC80, 0xDD00)})
_ESCAPES.update({c: f"\\u{c:04x}" for c in range(0xD800, 0xE000) if c not in _ESCAPES})
_ESCAPES_BUT_NEWLINE = {c: e for c, e in _ESCAPES.items() if c != 0x0A}


def printable(text: str, *, newlines: bool = False) -> str:
    """``text`` safe to print: control characters and lone surrogates as escapes
    (newlines kept with ``newlines``). For anything a peer or a file chose."""
    return text.translate(_ESCAPES_BUT_NEWLINE if newlines else _ESCAPES)


#: An ANSI SGR sequence (colours, bold: ``ESC [ 1;31 m``), which NuttX puts in its log lines;
#: the group makes ``split`` return it between the pieces of text around it.
_SGR = re.compile(r"(\x1b\[[0-9;:]*m)")
_SGR_RESET = "\x1b[0m"


def strip_sgr(text: str) -> str:
    """``text`` without its SGR colour sequences (other characters untouched)."""
    return _SGR.sub("", text)


def log_text(text: str, *, colour: bool) -> str:
    """A chip's log line safe to print: SGR colour sequences kept with ``colour`` (for a
    terminal; a reset is added so that no colour outlives the line) and removed without (a
    file, a pipe); every other control character and lone surrogate is shown as an escape,
    as :func:`printable` does."""
    if not colour:
        return printable(strip_sgr(text))
    parts = _SGR.split(text)  # text, SGR, text, SGR, ..., text
    if len(parts) == 1:
        return printable(text)
    parts[::2] = [printable(piece) for piece in parts[::2]]
    return "".join(parts) + _SGR_RESET


@contextlib.contextmanager
def waiting(what: str, after: float = 1.0, stream: IO[str] | None = None) -> Iterator[None]:
    """Say on stderr what we wait for if the block takes longer than ``after`` seconds."""
    out = stream if stream is not None else sys.stderr
    timer = threading.Timer(after, lambda: print(f"rpmsg: waiting for {what}...", file=out,
                                                 flush=True))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


class Terminal:
    """Connects the local terminal to ``send`` (input) and :meth:`write` (output)."""

    def __init__(self, send: Callable[[bytes], None], *, mode: Mode = "raw",
                 stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None,
                 stderr: IO[str] | None = None, exit_char: bytes = EXIT_CHAR) -> None:
        self.send = send
        self.mode = mode
        self.stdin = stdin if stdin is not None else standard_input()
        self.stdout = stdout if stdout is not None else sys.stdout.buffer
        self.stderr = stderr if stderr is not None else sys.stderr
        self.exit_char = exit_char
        self.raw_active = False
        self._out_lock = threading.Lock()
        self._last_output = time.monotonic()
        self._stop_r, self._stop_w = os.pipe()
        self._stopped = False
        #: True once the output could not be written (a pipe whose reader left, a full
        #: disk): the terminal stops and :meth:`run` returns 141 for a broken pipe, as the
        #: CLI does, or 1 after saying why on stderr.
        self.output_closed = False
        self.output_error: OSError | None = None

    # Output (any thread) -----------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Peer output, as is. Called on receiving threads: an output that went away (the
        reader of a pipe left) stops the terminal instead of killing the thread."""
        with self._out_lock:
            if self.output_closed:
                return
            self._last_output = time.monotonic()
            try:
                self.stdout.write(data)
                self.stdout.flush()
                return
            except ValueError:  # stdout closed meanwhile
                self.output_closed = True
            except OSError as exc:  # the reader left (EPIPE), a full disk (ENOSPC), EIO
                self.output_closed = True
                self.output_error = exc
        self.stop()

    def message(self, data: bytes) -> None:
        """One received message, printed as a line (line mode); control characters are
        shown as escapes (``\\x1b``), never sent to the terminal; CR LF ends a line."""
        text = printable(data.decode("utf-8", "backslashreplace").replace("\r\n", "\n"),
                         newlines=True)
        self.write((text if text.endswith("\n") else text + "\n").encode())

    def note(self, text: str) -> None:
        """A line for the user on stderr (works while the terminal is raw)."""
        end = "\r\n" if self.raw_active else "\n"
        with self._out_lock:
            self.stderr.write(text.rstrip("\n") + end)
            self.stderr.flush()

    def stop(self) -> None:
        """Make :meth:`run` return (e.g. the peer went away for good)."""
        with self._out_lock:
            if not self._stopped:
                self._stopped = True
                if self._stop_w >= 0:
                    os.write(self._stop_w, b"x")

    # Input loop --------------------------------------------------------------------------------

    def run(self) -> int:
        """Forward input until Ctrl-], end of input or :meth:`stop`; returns 0 (141 when
        the output went away, 1 when it failed otherwise, said on stderr)."""
        code = self._run()
        error = self.output_error
        if error is not None and not isinstance(error, BrokenPipeError):
            self.note(f"rpmsg: error: cannot write the output: {error.strerror or error}")
            return 1
        return 141 if self.output_closed else code

    def _run(self) -> int:
        fd = self.stdin.fileno()
        interactive = os.isatty(fd)
        try:
            with self._raw(fd, interactive and self.mode == "raw"):
                if interactive:
                    self.note("--- Ctrl-] to leave ---")
                if self._forward(fd) and not interactive:
                    self._linger()
            return 0
        finally:
            with self._out_lock:
                os.close(self._stop_r)
                os.close(self._stop_w)
                self._stop_r = self._stop_w = -1

    @contextlib.contextmanager
    def _raw(self, fd: int, raw: bool) -> Iterator[None]:
        """The terminal ``fd`` in raw mode while in the block (if ``raw``), then restored."""
        if not raw:
            yield
            return
        import termios
        import tty

        saved = termios.tcgetattr(fd)
        tty.setraw(fd)
        self.raw_active = True
        try:
            yield
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
            self.raw_active = False

    def _forward(self, fd: int) -> bool:
        """Send what is typed on ``fd`` (raw: as it comes; line: a message a line) until
        Ctrl-] or :meth:`stop` (False) or the end of input (True)."""
        pending = b""
        while True:
            ready, _, _ = select.select([fd, self._stop_r], [], [])
            if self._stop_r in ready:
                return False
            data = os.read(fd, 4096)
            if not data:
                break
            at = data.find(self.exit_char)
            pending = self._typed(data if at < 0 else data[:at], pending)
            if at >= 0:
                return False
        if pending:
            self.send(pending)
        return True

    def _typed(self, data: bytes, pending: bytes) -> bytes:
        """Input for the peer: sent at once (raw), or line by line (line mode: what
        follows the last newline is returned, to wait for the rest of its line)."""
        if self.mode == "raw":
            if data:
                self.send(data)
            return pending
        *lines, pending = (pending + data).split(b"\n")
        for line in lines:
            self.send(line.rstrip(b"\r"))
        return pending

    def _linger(self) -> None:
        """After piped input ended: show output until the peer is quiet."""
        self._last_output = time.monotonic()
        end = time.monotonic() + LINGER_MAX
        while not self._stopped and time.monotonic() < end:
            quiet = time.monotonic() - self._last_output
            if quiet >= LINGER:
                return
            time.sleep(min(LINGER - quiet, 0.1) + 0.01)


__all__ = ["EXIT_CHAR", "LINGER", "Terminal", "log_text", "printable", "strip_sgr",
           "waiting"]
