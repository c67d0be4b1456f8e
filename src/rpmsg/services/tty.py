"""The remote side of Linux's ``rpmsg_tty`` driver: a scripted co-processor behind
``/dev/ttyRPMSGn``.

Linux's ``drivers/tty/rpmsg_tty.c`` binds every channel announced with the exact name
``rpmsg-tty`` and turns it into a tty: bytes written to the tty arrive as messages of at most
the MTU, and every message received is pushed to the tty as is. There is no header and no
flow control; an empty message is refused by the driver, so none is ever sent.
:class:`TtyService` announces that channel and either echoes what arrives or connects it to a
command's standard input and output.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import threading

from rpmsg.device import Device
from rpmsg.endpoint import Endpoint
from rpmsg.errors import RESOURCE_LIMITS, InvalidArgumentError, RpmsgError, unavailable

log = logging.getLogger("rpmsg.services")

#: The channel name Linux's rpmsg_tty driver matches (exactly).
LINUX_TTY_NAME = "rpmsg-tty"
SEND_TIMEOUT = 5.0


class TtyService:
    """Serves ``name`` for Linux's rpmsg_tty: echo, or ``command``'s stdin/stdout.

    With ``command`` (a shell-like string or an argument list) the command starts at once;
    what it prints waits for the tty's first message (Linux sends nothing before the tty is
    used, and only then is its address known). When it exits, input is dropped (counted).
    Input it does not read is dropped (counted) once its pipe is full: the tty has no flow
    control, and waiting would stop every endpoint of the device (the transport's thread
    delivers it).
    """

    def __init__(self, device: Device, name: str = LINUX_TTY_NAME,
                 command: str | list[str] | None = None) -> None:
        self.name = name
        self.received = 0
        self.sent = 0
        self.dropped = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        if command is not None:
            self.proc = _start(command)  # first: a command that cannot run leaves nothing
        try:
            self.endpoint = device.create_endpoint(name, callback=self._on_message)
        except BaseException:
            self._stop_command()
            if self.proc is not None and self.proc.stdout is not None:
                self.proc.stdout.close()
            raise
        if self.proc is not None:
            self._reader = threading.Thread(target=self._pump_output, name=f"tty-{name}",
                                            daemon=True)
            self._reader.start()

    def _on_message(self, ept: Endpoint, data: bytes, src: int) -> None:
        self.received += len(data)
        if self.proc is None:
            self._send(ept, src, data)
            return
        stdin = self.proc.stdin
        view = memoryview(data)
        try:
            if stdin is None or self.proc.poll() is not None:
                raise BrokenPipeError
            while view:
                view = view[os.write(stdin.fileno(), view):]
        except BlockingIOError:
            if not self.dropped:
                log.warning("%s: the command does not read its input; dropping what does "
                            "not fit its pipe", self.name)
            self.dropped += len(view)
        except (OSError, ValueError):  # it exited (broken pipe), or stdin was closed
            self.dropped += len(view)

    def _send(self, ept: Endpoint, dst: int, data: bytes) -> None:
        mtu = ept.mtu
        try:
            for i in range(0, len(data), mtu):
                ept.send_to(dst, data[i:i + mtu], timeout=SEND_TIMEOUT)
                self.sent += len(data[i:i + mtu])
        except RpmsgError as exc:
            log.warning("%s: %d bytes not sent: %s", self.name, len(data), exc)

    def _pump_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            try:
                data = os.read(fd, 4096)
            except OSError:
                return
            if not data:
                return
            try:
                dst = self.endpoint.wait_bound()  # the tty's address: its first message
            except RpmsgError:
                return
            self._send(self.endpoint, dst, data)

    def _stop_command(self) -> None:
        if self.proc is not None:
            if self.proc.stdin is not None:
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def close(self) -> None:
        """Stop the command (if any) and close the endpoint (NS DESTROY: the tty goes)."""
        self._stop_command()
        self.endpoint.close()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


def _start(command: str | list[str]) -> subprocess.Popen[bytes]:
    """Start the tty's command, its stdin non-blocking (see :class:`TtyService`); one that
    cannot run is InvalidArgumentError (an empty or unparsable line, a missing program)."""
    try:
        argv = shlex.split(command) if isinstance(command, str) else list(command)
    except ValueError as exc:  # unbalanced quotes
        raise InvalidArgumentError(f"tty command {command!r}: {exc}") from None
    if not argv:
        raise InvalidArgumentError("the tty command is empty")
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=None, bufsize=0)
    except OSError as exc:
        if exc.errno in RESOURCE_LIMITS:  # no pipe or memory left: not the command's fault
            raise unavailable(exc, f"cannot start the tty command {argv[0]!r}: "
                              f"{exc.strerror}") from None
        raise InvalidArgumentError(f"cannot run the tty command {argv[0]!r}: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise InvalidArgumentError(f"cannot run the tty command {argv[0]!r}: {exc}") from None
    assert proc.stdin is not None
    os.set_blocking(proc.stdin.fileno(), False)
    return proc


__all__ = ["LINUX_TTY_NAME", "TtyService"]
