"""Everything a NuttX board expects from its peer at once (``rpmsg nuttx``): the PC-side
twin of NuttX's ``rpserver`` configuration.

:class:`NuttxHost` starts the services in the order a chip needs them: time (so that its
log and files carry real dates), the log server, the file server, then the console, which
waits for the chip's ``rpmsg-tty*`` announcement.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from rpmsg.device import Device
from rpmsg.services.nuttx.console import Console
from rpmsg.services.nuttx.rpmsgfs import FsServer
from rpmsg.services.nuttx.rtc import RtcServer
from rpmsg.services.nuttx.syslog import SyslogLine, SyslogServer

log = logging.getLogger("rpmsg.services.nuttx")


class NuttxHost:
    """Time, log, files and console for the chip on ``device``.

    ``fs_dir`` is served only when given; ``on_log`` receives each log line (default: they
    queue in :attr:`syslog`); ``console=False`` skips the console (then nothing waits).
    """

    def __init__(self, device: Device, *, fs_dir: str | os.PathLike[str] | None = None,
                 read_only: bool = False, rtc: bool = True, syslog: bool = True,
                 on_log: Callable[[SyslogLine], None] | None = None, console: bool = True,
                 console_name: str | None = None, console_timeout: float | None = None,
                 on_output: Callable[[bytes], None] | None = None) -> None:
        self.device = device
        self.rtc: RtcServer | None = None
        self.syslog: SyslogServer | None = None
        self.fs: FsServer | None = None
        self.console: Console | None = None
        try:
            if rtc:
                self.rtc = RtcServer(device)
            if syslog:
                self.syslog = SyslogServer(device, on_log)
            if fs_dir is not None:
                self.fs = FsServer(device, fs_dir, read_only=read_only)
            if console:
                self.console = Console(device, console_name, timeout=console_timeout,
                                       on_output=on_output)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close every service: pending file requests are answered first. Idempotent."""
        for svc in (self.console, self.fs, self.syslog, self.rtc):
            if svc is None:
                continue
            try:
                svc.close()
            except Exception:
                log.exception("closing %r failed", svc)
        self.console = self.fs = self.syslog = self.rtc = None

    def __enter__(self) -> NuttxHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["NuttxHost"]
