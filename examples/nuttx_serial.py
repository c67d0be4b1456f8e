"""Talking to a NuttX chip over a serial line: its shell, its log and a shared folder.

Everything a NuttX board expects from its peer, from a script: the time (rpmsg-rtc), its
log (rpmsg-syslog), a host folder it can mount (rpmsgfs) and its shell (rpmsg-tty*), with
one command run on the shell and its output printed:

    python nuttx_serial.py "uart:/dev/ttyUSB0?baudrate=921600" --share ./share

The chip mounts the folder with ``mount -t rpmsgfs -o cpu=<PC cpu name>,fs=/ /mnt``.
"""

from __future__ import annotations

import argparse
import sys

import rpmsg
from rpmsg.services.nuttx import NuttxHost, SyslogLine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help='e.g. "uart:/dev/ttyUSB0?baudrate=921600&crc=arc"')
    parser.add_argument("--share", help="a directory the chip may mount (rpmsgfs)")
    parser.add_argument("--cpu", default="server",
                        help="the name the chip knows this PC by, for its mount (server)")
    parser.add_argument("--command", default="uname -a", help="shell command to run")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds per wait (15)")
    args = parser.parse_args()

    def on_log(line: SyslogLine) -> None:
        print(f"chip log: {line.text}", flush=True)

    with rpmsg.open(args.url, policy="nuttx", timeout=args.timeout) as dev:
        host = NuttxHost(dev, fs_dir=args.share, on_log=on_log, console_timeout=args.timeout)
        try:
            assert host.console is not None
            host.console.wait_bound(timeout=args.timeout)
            output = host.console.command(args.command, timeout=args.timeout)
            print(f"$ {args.command}\n{output}", end="")
            if args.share:
                mounted = host.console.command(f"mount -t rpmsgfs -o cpu={args.cpu},fs=/ /mnt",
                                               timeout=args.timeout)
                print(mounted, end="")
                print(host.console.command("echo hello from the chip > /mnt/hello.txt",
                                           timeout=args.timeout), end="")
        finally:
            host.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except rpmsg.RpmsgError as exc:  # every library error: one line, exit 1
        sys.exit(f"nuttx serial: {exc}")
