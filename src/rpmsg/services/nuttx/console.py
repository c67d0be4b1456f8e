"""A NuttX console over ``rpmsg-tty*`` (spec §3): the chip's NSH from Python or a terminal.

:class:`Console` binds the chip's tty endpoint (by default the first announced service whose
name starts with ``rpmsg-tty``) and follows the spec's flow control both ways:

* chip output: each WRITE is answered with the number of bytes that fit the local buffer;
  when fewer than offered were taken the chip stops until we send WAKEUP, which we do as
  soon as the reader made room. A WAKEUP also goes out right after every binding, because a
  chip holds the output it produced while unbound (its boot banner) until then;
* keyboard input: one WRITE in flight; bytes the chip did not take are resent after its
  WAKEUP.

For scripts: :meth:`Console.command` sends one command line and returns its output, read
until the shell's prompt comes back.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
from collections.abc import Callable

from rpmsg import checks
from rpmsg.device import Device
from rpmsg.endpoint import Endpoint
from rpmsg.errors import (
    DecodeError,
    EndpointClosedError,
    RemoteDisconnectedError,
    RpmsgError,
)
from rpmsg.transport import Deadline
from rpmsg.wire.nuttx_errno import neg
from rpmsg.wire.nuttx_tty import (
    TTY_HEADER,
    TTY_PREFIX,
    WRITE_OVERHEAD,
    TtyCommand,
    TtyWakeup,
    TtyWrite,
    TtyWriteResponse,
    decode_tty,
    response_to,
)

log = logging.getLogger("rpmsg.services.nuttx")

#: Chip output kept until read; beyond it the chip is held (partial accept, then WAKEUP).
BUFFER_SIZE = 64 * 1024
SEND_TIMEOUT = 5.0
#: Most a :meth:`Console.read_until` (and so :meth:`Console.command`) reads without a match.
READ_UNTIL_MAX = 4 * 1024 * 1024
#: NSH's prompt at the start of a line (``nsh> ``, ``proxy> ``), then VT100 erase-line.
DEFAULT_PROMPT = re.compile(rb"(?:^|\n)[\w@:/.~-]*> (?:\x1b\[K)?$")
_ERASE = re.compile(rb"\x1b\[K")


def find_tty(device: Device, timeout: float | None = None,
             prefix: str = TTY_PREFIX) -> str:
    """The name of the first announced service starting with ``prefix``; waits for one."""
    found: list[str] = []
    cond = threading.Condition()

    def seen(_device: Device, name: str, _addr: int) -> None:
        if name.startswith(prefix):
            with cond:
                found.append(name)
                cond.notify_all()

    deadline = Deadline(timeout)
    remove = device.on_service(None, seen)  # offers the services already announced at once
    try:
        with cond:
            while not found:
                device.check_not_broken()
                if device.closed:
                    raise EndpointClosedError("the device is closed")
                left = deadline.remaining()
                if left is not None and left <= 0:  # timeout=0 looks once, never sleeps
                    raise deadline.timeout_error(f"waiting for a {prefix}* service")
                cond.wait(0.5 if left is None else min(left, 0.5))  # re-checks the device
            return found[0]
    finally:
        remove()


class Console:
    """The chip's console (NSH) on ``device``; see the module docstring.

    ``name`` is the tty endpoint (``rpmsg-ttyproxy``...); by default the first announced
    service whose name starts with ``rpmsg-tty``, waiting up to ``timeout`` for one. With
    ``on_output`` chip output goes to that callable (on the transport's thread) instead of
    the read buffer.
    """

    def __init__(self, device: Device, name: str | None = None, *,
                 timeout: float | None = None, buffer_size: int = BUFFER_SIZE,
                 on_output: Callable[[bytes], None] | None = None) -> None:
        self.device = device
        self.name = name if name is not None else find_tty(device, timeout)
        self.buffer_size = buffer_size
        self.on_output = on_output
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._held = False              # we took less than offered: the chip waits for WAKEUP
        self._write_lock = threading.Lock()
        self._cookies = itertools.count(0x7474790000000001)  # "tty": our own cookies
        self._waiting: int | None = None  # cookie of our WRITE in flight
        self._response: TtyWriteResponse | None = None
        self._wakeup = False
        self._closed = False
        self._gone: str | None = None
        self.stats = {"rx_bytes": 0, "tx_bytes": 0, "held": 0, "wakeups_sent": 0,
                      "wakeups_received": 0, "bad_messages": 0}
        self.endpoint = device.create_endpoint(self.name, callback=self._on_message,
                                               on_bound=self._on_bound,
                                               on_unbound=self._on_unbound)

    # Binding ---------------------------------------------------------------------------------

    def _on_bound(self, ept: Endpoint) -> None:
        with self._cond:
            self._gone = None
            self._held = False
        self._send_wakeup(ept)  # held output (the banner) comes only on a WAKEUP

    def _on_unbound(self, ept: Endpoint) -> None:
        with self._cond:
            self._gone = "the chip's console went away"
            self._cond.notify_all()

    def _send_wakeup(self, ept: Endpoint) -> None:
        try:
            ept.send(TtyWakeup().encode(), timeout=SEND_TIMEOUT)
            self.stats["wakeups_sent"] += 1
        except RpmsgError as exc:
            log.warning("%s: WAKEUP not sent: %s", self.name, exc)

    def wait_bound(self, timeout: float | None = None) -> None:
        """Wait until the chip's console is bound."""
        self.endpoint.wait_bound(timeout)

    # Chip -> us ------------------------------------------------------------------------------

    def _on_message(self, ept: Endpoint, data: bytes, src: int) -> None:
        try:
            msg = decode_tty(data)
        except DecodeError as exc:
            self.stats["bad_messages"] += 1
            self._answer_bad(ept, data, src, exc)
            return
        if isinstance(msg, TtyWrite):
            self._chip_output(ept, msg, src)
        elif isinstance(msg, TtyWriteResponse):
            with self._cond:
                if self._waiting is not None and msg.cookie == self._waiting:
                    self._response = msg
                    self._waiting = None
                    self._cond.notify_all()
                    return
            self.stats["bad_messages"] += 1  # an answer to nothing we sent
        else:
            self.stats["wakeups_received"] += 1
            with self._cond:
                self._wakeup = True
                self._cond.notify_all()

    def _answer_bad(self, ept: Endpoint, data: bytes, src: int, exc: DecodeError) -> None:
        """A WRITE request we cannot read is still answered (nothing taken: the chip waits
        for the WAKEUP our next read sends); anything else is ignored."""
        log.warning("%s: bad message: %s", self.name, exc)
        if len(data) < TTY_HEADER.size:
            return
        w0, _result, cookie = TTY_HEADER.unpack(data)
        if w0 != TtyCommand.WRITE:
            return
        count = int.from_bytes(data[16:20], "little") if len(data) >= 20 else 0
        with self._cond:
            self._held = True
        try:
            ept.send_to(src, TtyWriteResponse(neg("EINVAL"), cookie, count).encode(),
                        timeout=SEND_TIMEOUT)
        except RpmsgError as exc2:
            log.warning("%s: answer not sent: %s", self.name, exc2)

    def _chip_output(self, ept: Endpoint, msg: TtyWrite, src: int) -> None:
        data = msg.data
        if self.on_output is not None:
            taken = len(data)
        else:
            with self._cond:
                taken = max(0, min(len(data), self.buffer_size - len(self._buf)))
                self._buf += data[:taken]
                if taken < len(data):
                    self._held = True
                    self.stats["held"] += 1
                self._cond.notify_all()
        self.stats["rx_bytes"] += taken
        try:
            ept.send_to(src, response_to(msg, taken).encode(), timeout=SEND_TIMEOUT)
        except RpmsgError as exc:
            log.warning("%s: WRITE answer not sent: %s", self.name, exc)
        if self.on_output is not None and data:
            self.on_output(data)

    def read(self, size: int = -1, timeout: float | None = None) -> bytes:
        """Chip output: at least one byte (at most ``size``), waiting up to ``timeout``.

        ``timeout=0`` returns what is there, possibly ``b""``. Raises RpmsgTimeoutError,
        and RemoteDisconnectedError once the chip's console went away and all was read.
        """
        deadline = Deadline(timeout)
        with self._cond:
            if not self._wait_output(deadline, timeout):
                return b""
            n = len(self._buf) if size < 0 else min(size, len(self._buf))
            out = bytes(self._buf[:n])
            del self._buf[:n]
            wake = self._held and len(self._buf) <= self.buffer_size // 2
            if wake:
                self._held = False
        if wake:
            self._send_wakeup(self.endpoint)
        return out

    def _wait_output(self, deadline: Deadline, timeout: float | None) -> bool:
        """Under the lock: wait until there is output (True); False at once for
        ``timeout=0``; the errors of :meth:`read` else."""
        while not self._buf:
            self._check_open()
            if timeout == 0:
                return False
            if self._gone is not None and not self.endpoint.bound:
                raise RemoteDisconnectedError(self._gone)
            if not self._cond.wait(deadline.remaining()) and deadline.expired():
                raise deadline.timeout_error(f"reading from {self.name}")
        return True

    def read_until(self, expected: bytes | re.Pattern[bytes], timeout: float | None = None,
                   size: int | None = None) -> bytes:
        """Read until ``expected`` (bytes, or a regex searched in what came so far);
        returns everything up to and including the match. Bytes after it stay unread.

        As pyserial's ``read_until``, it also returns once ``size`` bytes came without a
        match (default :data:`READ_UNTIL_MAX`: a chip that never prints the pattern cannot
        grow the caller's memory without bound); check the end of what it returns.
        """
        limit = READ_UNTIL_MAX if size is None else checks.count(size, "size", minimum=0)
        deadline = Deadline(timeout)
        got = bytearray()
        searched = 0  # bytes: where a match could still start
        while True:
            if isinstance(expected, bytes):
                at = got.find(expected, searched)
                end = at + len(expected) if at >= 0 else -1
                searched = max(0, len(got) - len(expected) + 1)
            else:
                m = expected.search(got)
                end = m.end() if m else -1
            if end < 0 and len(got) >= limit:
                end = limit
            if 0 <= end <= limit:
                with self._cond:
                    self._buf[0:0] = got[end:]
                return bytes(got[:end])
            try:
                got += self.read(limit - len(got), timeout=deadline.remaining())
            except RpmsgError:
                with self._cond:
                    self._buf[0:0] = got
                raise

    # Us -> chip ------------------------------------------------------------------------------

    def write(self, data: bytes | str, timeout: float | None = None) -> None:
        """Type ``data`` on the chip's console; returns when the chip took all of it."""
        raw = data.encode() if isinstance(data, str) else bytes(data)
        deadline = Deadline(timeout)
        with self._write_lock:
            view = memoryview(raw)
            while view:
                room = self.endpoint.mtu - WRITE_OVERHEAD
                chunk = bytes(view[:room])
                # Never more than offered, whatever count the chip echoed.
                taken = min(self._write_chunk(chunk, deadline), len(chunk))
                self.stats["tx_bytes"] += taken
                view = view[taken:]
                if taken < len(chunk):
                    self._wait_wakeup(deadline)

    def _write_chunk(self, chunk: bytes, deadline: Deadline) -> int:
        cookie = next(self._cookies)
        with self._cond:
            self._check_open()
            self._waiting, self._response, self._wakeup = cookie, None, False
        try:
            deadline.pass_on(
                lambda left: self.endpoint.send(TtyWrite(chunk, cookie).encode(), left),
                f"writing to the console {self.name!r}")
            with self._cond:
                while (response := self._get_response()) is None:
                    self._check_live()
                    if not self._cond.wait(deadline.remaining()) and deadline.expired():
                        raise deadline.timeout_error(f"waiting for {self.name} to take input")
                return response.taken
        finally:
            with self._cond:
                self._waiting = None

    def _get_response(self) -> TtyWriteResponse | None:
        return self._response

    def _wait_wakeup(self, deadline: Deadline) -> None:
        with self._cond:
            while not self._wakeup:
                self._check_live()
                if not self._cond.wait(deadline.remaining()) and deadline.expired():
                    raise deadline.timeout_error(f"waiting for {self.name} to have room")

    def _check_open(self) -> None:
        if self._closed:
            raise EndpointClosedError(f"console {self.name!r} is closed")
        self.device.check_not_broken()

    def _check_live(self) -> None:
        self._check_open()
        if self._gone is not None:
            raise RemoteDisconnectedError(self._gone)

    # Scripting -------------------------------------------------------------------------------

    def command(self, line: str, *, prompt: re.Pattern[bytes] = DEFAULT_PROMPT,
                timeout: float | None = 10.0, echo: bool = True) -> str:
        r"""Run one shell command and return its output: what the chip printed after its
        echo of ``line`` and before the next prompt (``\r\n`` made ``\n``). Output that
        was waiting before the command is skipped. ``echo=False`` for a console that does
        not echo input. Raises :class:`~rpmsg.RpmsgTimeoutError` when the prompt does not
        come within ``timeout``, and :class:`~rpmsg.RpmsgError` when
        :data:`~rpmsg.services.nuttx.console.READ_UNTIL_MAX` bytes came without a prompt
        (the rest stays unread)."""
        deadline = Deadline(timeout)
        typed = line.rstrip("\n")
        self.write(typed + "\n", timeout=deadline.remaining())
        if echo:
            self.read_until(typed.encode(), timeout=deadline.remaining())
        raw = self.read_until(prompt, timeout=deadline.remaining())
        if prompt.search(raw) is None:  # READ_UNTIL_MAX bytes came and no prompt
            raise RpmsgError(f"{self.name}: {len(raw)} bytes of output from {line!r} and no "
                             "prompt; the rest stays unread")
        text = _ERASE.sub(b"", raw).replace(b"\r\n", b"\n")
        m = prompt.search(text)
        if m:
            text = text[:m.start()]
        if echo and text.startswith(b"\n"):
            text = text[1:]  # the end of the echoed line
        return text.decode("utf-8", "replace")

    def close(self) -> None:
        """Close the endpoint (NS DESTROY: the chip's console waits to be bound again)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.endpoint.close()

    def __enter__(self) -> Console:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["BUFFER_SIZE", "DEFAULT_PROMPT", "Console", "find_tty"]
