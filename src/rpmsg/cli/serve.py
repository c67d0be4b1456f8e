"""What the long-running serving commands (``remote``, ``fs-serve``, ``console --pty``) share:
serving until Ctrl-C, or until the transport breaks."""

from __future__ import annotations

import sys
import threading

from rpmsg.cli.terminal import printable
from rpmsg.device import Device

#: Seconds between two looks at the transport while serving.
POLL = 0.2


def serve_until_interrupted(device: Device) -> int:
    """Block until Ctrl-C (exit 0) or until ``device``'s transport breaks (one line on
    stderr, exit 1); the services run on the transport's threads meanwhile."""
    idle = threading.Event()  # never set: a wait that Ctrl-C can interrupt
    try:
        while not idle.wait(POLL):
            if device.broken_error is not None:
                print(printable(f"rpmsg: error: transport broken: {device.broken_error}"),
                      file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        pass
    return 0


__all__ = ["serve_until_interrupted"]
