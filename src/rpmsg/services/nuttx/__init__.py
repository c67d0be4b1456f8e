"""The services a NuttX chip uses over RPMsg, from the PC side (spec: nuttx-services.md).

* :class:`Console`: the chip's shell over ``rpmsg-tty*`` (flow control, scripting);
* :class:`SyslogServer` (the chip's log) and :class:`SyslogHandler` (Python's log to a chip);
* :class:`FsServer` (a host directory mounted by the chip) and :class:`FsClient`;
* :class:`RtcServer` (host time for the chip) and :class:`RtcClient` (the chip's time);
* :class:`NuttxHost`: all of them at once, the PC-side twin of NuttX's ``rpserver``.
"""

from rpmsg.services.nuttx.console import Console, find_tty
from rpmsg.services.nuttx.fs_client import FsClient
from rpmsg.services.nuttx.host import NuttxHost
from rpmsg.services.nuttx.rpmsgfs import FsServer, FsSession
from rpmsg.services.nuttx.rtc import ChipTime, RtcClient, RtcServer
from rpmsg.services.nuttx.syslog import SyslogHandler, SyslogLine, SyslogServer

__all__ = [
    "ChipTime",
    "Console",
    "FsClient",
    "FsServer",
    "FsSession",
    "NuttxHost",
    "RtcClient",
    "RtcServer",
    "SyslogHandler",
    "SyslogLine",
    "SyslogServer",
    "find_tty",
]
