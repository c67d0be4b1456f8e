"""``rpmsg rproc start|stop|status`` and ``rpmsg udev-rules``: Linux remote processor chores.

Thin wrappers over :mod:`rpmsg.linux.remoteproc` and :mod:`rpmsg.linux.udev`; library errors
propagate to the main entry point, which prints them as one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rpmsg.cli.terminal import printable
from rpmsg.linux import remoteproc
from rpmsg.linux.remoteproc import RemoteProc
from rpmsg.linux.sysfs import default_sysfs
from rpmsg.linux.udev import udev_rules


def register(subparsers: Any) -> None:
    """Add ``rproc`` and ``udev-rules`` to an argparse ``add_subparsers()`` object."""
    p = subparsers.add_parser(
        "rproc", help="start, stop or show a remote processor (/sys/class/remoteproc)",
        description="Start, stop or show a Linux remote processor. NAME is its name "
        "(/sys/class/remoteproc/remoteprocN/name), remoteprocN or N. Starting and stopping "
        "need root.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = actions.add_parser("status", help="name, state, firmware and rpmsg devices",
                           description="Show one remote processor, or all of them.")
    a.add_argument("name", metavar="NAME", nargs="?", help="default: every processor")
    a.add_argument("--json", action="store_true", help="print one JSON document")
    a.set_defaults(func=cmd_status)
    a = actions.add_parser("start", help="boot it (optionally with another firmware)",
                           description="Boot remote processor NAME; with --firmware, first "
                           "choose the firmware file (under /lib/firmware) it loads.")
    a.add_argument("name", metavar="NAME")
    a.add_argument("--firmware", metavar="FILE", help="firmware file name to load")
    a.set_defaults(func=cmd_start)
    a = actions.add_parser("stop", help="shut it down", description="Shut down NAME.")
    a.add_argument("name", metavar="NAME")
    a.set_defaults(func=cmd_stop)

    p = subparsers.add_parser(
        "udev-rules", help="print udev rules for stable /dev/rpmsg/<rproc>/<name> links",
        description="Print udev rules that link each rpmsg endpoint device below a remote "
        "processor as /dev/rpmsg/<rproc name>/<endpoint name> (and its control device as "
        "/dev/rpmsg/<rproc name>/rpmsg_ctrl). Install with: rpmsg udev-rules --group rpmsg | "
        "sudo tee /etc/udev/rules.d/60-rpmsg.rules && sudo udevadm control --reload")
    p.add_argument("--group", metavar="GROUP",
                   help="give this group access to every rpmsg device (mode 0660)")
    p.add_argument("--mode", metavar="MODE", help="file mode of the devices (e.g. 0660)")
    p.set_defaults(func=cmd_udev_rules)


def _line(proc: RemoteProc) -> str:
    fw = proc.firmware or "-"
    return f"{proc.device:<14} {proc.name or '?':<20} {proc.state or '?':<10} firmware={fw}"


def print_remoteproc(proc: RemoteProc, indent: str = "") -> None:
    """One processor and its rpmsg devices, for people (the channel names are the remote's
    words: escaped)."""
    sysfs = default_sysfs()
    lines = [_line(proc)]
    if proc.channels:
        lines.append(f"  channels: {' '.join(proc.channels)}")
    if proc.controls:
        lines.append(f"  controls: {' '.join(sysfs.ctrl_node(i) for i in proc.controls)}")
    if proc.endpoints:
        lines.append(f"  endpoints: {' '.join(sysfs.endpoint_node(i) for i in proc.endpoints)}")
    for line in lines:
        print(printable(indent + line))


def cmd_status(args: argparse.Namespace) -> int:
    procs = [remoteproc.find_remoteproc(args.name)] if args.name else \
        remoteproc.list_remoteprocs()
    if args.json:
        json.dump([p.to_dict() for p in procs], sys.stdout, indent=2)
        print()
        return 0
    if not procs:
        print(f"no remote processors ({default_sysfs().remoteproc_dir} is empty or absent)")
    for proc in procs:
        print_remoteproc(proc)
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    proc = remoteproc.start(args.name, args.firmware)
    print(printable(f"{proc.label()}: {proc.state} (firmware {proc.firmware})"))
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    proc = remoteproc.stop(args.name)
    print(printable(f"{proc.label()}: {proc.state}"))
    return 0


def cmd_udev_rules(args: argparse.Namespace) -> int:
    sys.stdout.write(udev_rules(group=args.group, mode=args.mode))
    return 0
