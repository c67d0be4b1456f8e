"""``rpmsg list|create|destroy``: the Linux char device subcommands
(``rproc`` and ``udev-rules`` are in :mod:`rpmsg.cli.rproc_cmds`, registered from here;
``send`` and ``listen`` take any URL, ``linux:`` included: :mod:`rpmsg.cli.tools`).

Thin wrappers over :mod:`rpmsg.linux`. Each handler returns the exit code and lets library
errors (:class:`~rpmsg.errors.RpmsgError`) propagate to the main entry point, which prints
them as one ``rpmsg: error: ...`` line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rpmsg.cli import rproc_cmds
from rpmsg.cli.terminal import printable
from rpmsg.linux.ctrl import Ctrl, destroy_endpoint_device
from rpmsg.linux.remoteproc import list_remoteprocs
from rpmsg.linux.sysfs import (
    Channel,
    ControlDevice,
    EndpointDevice,
    default_sysfs,
    format_addr,
)
from rpmsg.wire.rpmsg import ADDR_ANY


def parse_addr_arg(text: str) -> int:
    """An address from the command line: ``any``, ``-1``, decimal or ``0x`` hex."""
    if text.lower() in ("any", "-1"):
        return ADDR_ANY
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an address (e.g. 1024, 0x400, any)")\
            from None
    if not 0 <= value <= ADDR_ANY:
        raise argparse.ArgumentTypeError(f"address {text} is not a 32-bit value")
    return value


def register(subparsers: Any) -> None:
    """Add the Linux char device subcommands to an argparse ``add_subparsers()`` object."""
    p = subparsers.add_parser("list", help="list remote processors, rpmsg channels, endpoint "
                              "and control devices",
                              description="List remote processors (/sys/class/remoteproc: "
                              "name, state, firmware, and their rpmsg devices), rpmsg channels "
                              "(/sys/bus/rpmsg/devices), endpoint devices (/dev/rpmsgN) and "
                              "control devices (/dev/rpmsg_ctrlN) with their names and "
                              "addresses.")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_list)
    rproc_cmds.register(subparsers)

    p = subparsers.add_parser("create", help="create an endpoint device through /dev/rpmsg_ctrlN",
                              description="Create /dev/rpmsgN for NAME (RPMSG_CREATE_EPT_IOCTL) "
                              "and print its path.")
    p.add_argument("--ctrl", default="0", metavar="N",
                   help="control device index or path (default 0)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--src", type=parse_addr_arg, default=ADDR_ANY,
                   help="local address (default any: the kernel picks)")
    p.add_argument("--dst", type=parse_addr_arg, default=ADDR_ANY,
                   help="remote address (default any: receive-only)")
    p.set_defaults(func=cmd_create)

    p = subparsers.add_parser("destroy", help="destroy an endpoint device",
                              description="Destroy an endpoint device given as /dev/rpmsgN "
                              "(or rpmsgN), or by NAME on a control device.")
    p.add_argument("target", metavar="DEVICE|NAME")
    p.add_argument("--ctrl", default="0", metavar="N",
                   help="control device to search by name (default 0)")
    p.add_argument("--src", type=parse_addr_arg, default=None)
    p.add_argument("--dst", type=parse_addr_arg, default=None)
    p.set_defaults(func=cmd_destroy)


# list ---------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    sysfs = default_sysfs()
    devices: dict[str, Sequence[Any]] = {"channels": sysfs.channels(),
                                         "endpoints": sysfs.endpoints(),
                                         "controls": sysfs.controls()}
    procs = list_remoteprocs(sysfs)
    if args.json:
        json.dump({"remoteprocs": [p.to_dict() for p in procs],
                   **{kind: [d.to_dict() for d in items] for kind, items in devices.items()}},
                  sys.stdout, indent=2)
        print()
        return 0
    if procs:
        print("remote processors:")
        for proc in procs:
            rproc_cmds.print_remoteproc(proc, indent="  ")
    if not any(devices.values()):
        print(f"no rpmsg devices ({sysfs.class_dir} and {sysfs.bus_dir} are empty or absent)")
        return 0
    _print_devices(devices)
    return 0


def _print_devices(devices: dict[str, Sequence[Any]]) -> None:
    """Channels, endpoint and control devices, one line each below a title. The channel and
    endpoint names are the remote's words: escaped (printable)."""
    lines: dict[str, Callable[[Any], str]] = {
        "channels": _channel_line, "endpoints": _endpoint_line, "controls": _control_line}
    for kind, items in devices.items():
        print(f"{kind}:")
        for item in items:
            print(printable(f"  {lines[kind](item)}"))


def _channel_line(c: Channel) -> str:
    announce = "announced" if c.announce else ""
    devs = " ".join([f"rpmsg{i}" for i in c.endpoints] + [f"rpmsg_ctrl{i}" for i in c.ctrls])
    return (f"{c.device:<44} {c.name:<32} src={format_addr(c.src):<10} "
            f"dst={format_addr(c.dst):<10} driver={c.driver or '-':<13} {announce} "
            f"{devs}").rstrip()


def _endpoint_line(e: EndpointDevice) -> str:
    owner = f"ctrl=rpmsg_ctrl{e.ctrl}" if e.ctrl is not None else f"channel={e.channel}"
    return (f"{e.path:<16} {e.name:<32} src={format_addr(e.src):<10} "
            f"dst={format_addr(e.dst):<10} {owner}")


def _control_line(ctl: ControlDevice) -> str:
    return (f"{ctl.path:<20} channel={ctl.channel or '-'} endpoints="
            f"{','.join(f'rpmsg{i}' for i in ctl.endpoints) or '-'}")


# create / destroy ---------------------------------------------------------------------


def cmd_create(args: argparse.Namespace) -> int:
    with Ctrl.open(args.ctrl) as ctrl:
        index = ctrl.create_endpoint(args.name, args.src, args.dst)
    print(ctrl.sysfs.endpoint_node(index))
    return 0


def _is_device_name(text: str) -> bool:
    tail = text.rsplit("/", 1)[-1]
    return text.startswith("/") or (tail.startswith("rpmsg") and tail[5:].isdigit())


def cmd_destroy(args: argparse.Namespace) -> int:
    if _is_device_name(args.target):
        destroy_endpoint_device(args.target)
        print(f"destroyed {args.target}")
        return 0
    with Ctrl.open(args.ctrl) as ctrl:
        index = ctrl.destroy_endpoint(args.target, args.src, args.dst)
    print(f"destroyed {ctrl.sysfs.endpoint_node(index)}")
    return 0
