"""``rpmsg send|listen|services``: shell tools on any transport URL, as cansend/candump are.

``send URL NAME DATA`` sends one message (text, ``--hex``, a file with ``-f`` or stdin with
``-``) to the endpoint NAME binds to; ``listen URL NAME`` prints each message received, with a
timestamp; ``services URL`` prints the names the remote announced and their addresses. NAME
``-`` is the endpoint a ``linux:/dev/rpmsgN`` URL already is. A Linux endpoint device given
without a scheme (``rpmsg send /dev/rpmsg0 DATA``, ``rpmsg listen rpmsg0``) is the
``linux:`` URL of that device with NAME ``-``, as the Linux-only commands of earlier versions
took it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import sys
import threading
import time
from typing import Any

import rpmsg
from rpmsg.cli.args import (
    Given,
    add_policy,
    count,
    finite_seconds,
    open_timeout,
    seconds,
    standard_input,
)
from rpmsg.cli.args import name as name_arg
from rpmsg.cli.linux_cmds import parse_addr_arg
from rpmsg.cli.terminal import printable, waiting
from rpmsg.device import Device
from rpmsg.endpoint import Endpoint, Message
from rpmsg.errors import RpmsgTimeoutError
from rpmsg.registry import require_other_process
from rpmsg.url import TransportURL
from rpmsg.wire.rpmsg import ADDR_ANY

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
#: Seconds ``send`` and ``services`` wait for the peer by default (the open and the binding).
DEFAULT_TIMEOUT = 30.0
#: ``services``: seconds to wait for the first announcement, then for more to follow it.
ANNOUNCE_WAIT = 2.0
ANNOUNCE_SETTLE = 0.3
#: Bytes ``send`` reads from a file or stdin at most (with --split, many messages' worth).
MAX_INPUT = 16 << 20
#: Channels every Linux virtio rpmsg device has; not services of the remote.
LINUX_INTERNAL = ("rpmsg_ctrl", "rpmsg_ns")


def _common(p: argparse.ArgumentParser, *, timeout_help: str,
            timeout: float | None = DEFAULT_TIMEOUT) -> None:
    p.add_argument("--timeout", action=Given, type=seconds, default=timeout, metavar="S",
                   help=timeout_help)
    add_policy(p)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "send", help="send a message to a named endpoint on any URL",
        description="Send DATA as one message to the endpoint NAME binds to (the service the "
        "remote announced as NAME, or --dst). DATA is text, hexadecimal with --hex, '-' for "
        "stdin, or -f FILE. The old form 'rpmsg send /dev/rpmsgN DATA' still works.",
        epilog="examples: rpmsg send shm:lab rpmsg-echo hello; "
        "rpmsg send uart:/dev/ttyUSB0 my-svc --hex 'de ad be ef'; "
        "rpmsg send linux:/dev/rpmsg0 - -f frame.bin")
    p.add_argument("url", metavar="URL", help="transport URL, or /dev/rpmsgN (old form)")
    p.add_argument("name", metavar="NAME", nargs="?",
                   help="endpoint/service name; '-' for the endpoint a linux:/dev/rpmsgN is")
    p.add_argument("data", metavar="DATA", nargs="?",
                   help="the message: text, hex with --hex, or '-' to read stdin")
    p.add_argument("-f", "--file", metavar="FILE", help="send the content of FILE")
    p.add_argument("--hex", action="store_true", help="DATA (or the input) is hexadecimal")
    p.add_argument("--split", action="store_true",
                   help="send input longer than the MTU as several messages of at most the MTU")
    p.add_argument("--src", type=parse_addr_arg, default=ADDR_ANY,
                   help="local address (default any)")
    p.add_argument("--dst", type=parse_addr_arg, default=ADDR_ANY,
                   help="remote address (default: the one NAME binds to)")
    _common(p, timeout_help=f"seconds for the open, the binding and each send "
            f"(default {DEFAULT_TIMEOUT:g})")
    p.set_defaults(func=run_send, late_positionals=("name", "data"))

    p = sub.add_parser(
        "listen", help="print the messages a named endpoint receives on any URL",
        description="Create the endpoint NAME on URL and print each message it receives with "
        "a timestamp, source and destination address and length, as text (or hex, or one JSON "
        "object per line). NAME binds to the service the remote announced under that name; "
        "otherwise it is announced, so that a remote endpoint of that name can bind to it "
        "and send. The old form 'rpmsg listen /dev/rpmsgN' still works.",
        epilog="example: rpmsg listen shm:lab sensor --count 10 --json")
    p.add_argument("url", metavar="URL", help="transport URL, or /dev/rpmsgN (old form)")
    p.add_argument("name", metavar="NAME", nargs="?",
                   help="endpoint/service name; '-' (default for linux: URLs) for the "
                   "endpoint a linux:/dev/rpmsgN is")
    p.add_argument("--count", type=count, default=None, metavar="N",
                   help="stop after N messages (an error if --timeout ends it first)")
    p.add_argument("--hex", action="store_true", help="print payloads in hex")
    p.add_argument("--json", action="store_true", help="one JSON object per message")
    p.add_argument("--src", type=parse_addr_arg, default=ADDR_ANY,
                   help="local address (default any)")
    p.add_argument("--dst", type=parse_addr_arg, default=ADDR_ANY,
                   help="remote address (default: the one NAME binds to, if any)")
    _common(p, timeout=None, timeout_help="stop after S seconds, the open included (default: "
            "until Ctrl-C, the open waiting at most 30 s)")
    p.set_defaults(func=run_listen, late_positionals=("name",))

    p = sub.add_parser(
        "services", help="list the services the remote announced, with addresses",
        description="Print the names the remote announced through the name service and their "
        "addresses. On linux: URLs these are the kernel's rpmsg channels (from sysfs).")
    p.add_argument("url", metavar="URL", help="transport URL, e.g. shm:lab")
    p.add_argument("--wait", type=finite_seconds, default=ANNOUNCE_WAIT, metavar="S",
                   help=f"seconds to wait for the first announcement (default {ANNOUNCE_WAIT:g})")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    _common(p, timeout_help=f"seconds the open may wait for the peer (default "
            f"{DEFAULT_TIMEOUT:g})")
    p.set_defaults(func=run_services)


# Arguments ------------------------------------------------------------------------------


def resolve_target(url: str, name: str | None, rest: str | None = None
                   ) -> tuple[str, str | None, str | None]:
    """(URL, NAME, rest) with the old Linux form mapped: a device without a scheme is
    ``linux:DEVICE`` with NAME ``-``, the positional after it moving one place on."""
    if _SCHEME.match(url):
        return url, name, rest
    if rest is None:
        return f"linux:{url}", "-", name
    return f"linux:{url}", name, rest


def _usage(args: argparse.Namespace, message: str) -> SystemExit:
    """A usage error of one subcommand: one line on stderr, exit 2 (as argparse's own)."""
    print(f"rpmsg {args.command}: error: {message}", file=sys.stderr)
    return SystemExit(2)


def _checked_name(args: argparse.Namespace, name: str) -> str:
    """NAME checked before the open (``-``: the endpoint a linux: URL is); else exit 2."""
    if name == "-":
        return name
    try:
        return name_arg(name)
    except argparse.ArgumentTypeError as exc:
        raise _usage(args, f"NAME: {exc}") from None


def read_payload(args: argparse.Namespace) -> bytes:
    """The bytes to send, from DATA, ``-f FILE`` or stdin; hex-decoded with ``--hex``."""
    if args.file is not None and args.data is not None:
        raise _usage(args, "give DATA or -f FILE, not both")
    if args.file is not None:
        try:
            with open(args.file, "rb") as f:
                raw = f.read(MAX_INPUT + 1)
        except OSError as exc:
            raise _usage(args, f"cannot read {args.file}: {exc.strerror}") from None
    elif args.data == "-":
        raw = standard_input().read(MAX_INPUT + 1)
    elif args.data is not None:
        raw = args.data.encode("utf-8", "surrogateescape")
    else:
        raise _usage(args, "no DATA: give it, '-' for stdin, or -f FILE")
    if len(raw) > MAX_INPUT:  # (-f /dev/zero, an endless pipe: read until memory ran out)
        raise _usage(args, f"the input is longer than {MAX_INPUT >> 20} MiB; "
                     "rpmsg send is for messages, not streams")
    if not args.hex:
        return raw
    try:
        return bytes.fromhex(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise _usage(args, "the data is not hexadecimal (e.g. 'de ad be ef')") from None


def open_endpoint(device: Device, name: str, src: int, dst: int, *,
                  announce: bool | None = None) -> Endpoint:
    """NAME's endpoint; ``-`` is the transport's own (a ``linux:/dev/rpmsgN`` device).
    ``announce`` as :meth:`~rpmsg.device.Device.create_endpoint` takes it (None: the policy)."""
    if name == "-":
        return device.create_endpoint(src=src, dst=dst)
    return device.create_endpoint(name, src, dst, announce=announce)


# send -----------------------------------------------------------------------------------


def _open(url: str, args: argparse.Namespace, timeout: float | None) -> Device:
    """The Device on URL for this command: ``loop:`` refused at once (its peer would have to
    be in this process), the open waiting for the peer at most ``timeout`` seconds."""
    require_other_process(url, f"`rpmsg {args.command}`")
    return rpmsg.open(url, policy=args.policy, **open_timeout(args, url, timeout))


def split_payload(payload: bytes, size: int) -> list[bytes]:
    """``payload`` as messages of at most ``size`` bytes (one empty message for none)."""
    return [payload[i:i + size] for i in range(0, len(payload), size)] or [b""]


def run_send(args: argparse.Namespace) -> int:
    url, name, args.data = resolve_target(args.url, args.name, args.data)
    if name is None:
        raise _usage(args, "NAME is missing (the service to send to; '-' on linux:/dev/rpmsgN)")
    name = _checked_name(args, name)
    payload = read_payload(args)
    with _open(url, args, args.timeout) as device:
        parts = split_payload(payload, device.mtu) if args.split else [payload]
        ept = open_endpoint(device, name, args.src, args.dst)
        try:
            if not ept.bound:
                wait_bound(device, ept, name, url, args.timeout)
            for part in parts:
                ept.send(part, timeout=args.timeout)
        finally:
            ept.close()
    return 0


def wait_bound(device: Device, ept: Endpoint, name: str, url: str,
               timeout: float | None) -> None:
    """Wait for NAME's binding; a timeout says what the remote did announce."""
    try:
        with waiting(f"{name!r} to be bound on {url} (the remote must announce it; "
                     "or give --dst)"):
            ept.wait_bound(timeout)
    except RpmsgTimeoutError:
        announced = ", ".join(f"{n!r} at {a:#x}" for n, a in device.services) or "nothing"
        raise RpmsgTimeoutError(
            f"{name!r} was not bound on {url} within {timeout:g} s: the remote announced "
            f"{announced} ({device.seen()})") from None


# listen ---------------------------------------------------------------------------------


def _show(data: bytes, as_hex: bool) -> str:
    """The payload as hex, as text, or (text a terminal would act on) as a bytes literal."""
    if as_hex:
        return data.hex(" ")
    text = data.decode("utf-8", "backslashreplace")
    return text if text.isprintable() else repr(data)


def format_message(msg: Message, when: float, as_hex: bool) -> str:
    """One text line: local time, source -> destination, length, payload."""
    stamp = datetime.datetime.fromtimestamp(when).strftime("%H:%M:%S.%f")
    src = "any" if msg.src == ADDR_ANY else f"{msg.src:#x}"
    return f"{stamp} {src} -> {msg.dst:#x} [{len(msg.data)}] {_show(msg.data, as_hex)}"


def message_json(msg: Message, when: float, url: str, name: str) -> str:
    return json.dumps({"time": round(when, 6), "url": url, "name": name,
                       "src": None if msg.src == ADDR_ANY else msg.src, "dst": msg.dst,
                       "len": len(msg.data), "hex": msg.data.hex(),
                       "text": msg.data.decode("utf-8", "replace")})


def _receive(ept: Endpoint, deadline: float | None) -> Message | None:
    """The next message, or None once ``deadline`` (monotonic) has passed."""
    remaining = None if deadline is None else deadline - time.monotonic()
    if remaining is not None and remaining <= 0:
        return None
    try:
        return ept.recv_message(timeout=remaining)
    except RpmsgTimeoutError:
        return None


def _listen_name(args: argparse.Namespace, url: str, name: str | None) -> str:
    """NAME, which may be left out (``-``) only on a ``linux:`` URL."""
    if name is not None:
        return _checked_name(args, name)
    if not url.startswith("linux:"):
        raise _usage(args, "NAME is missing (the endpoint to create and listen on)")
    return "-"


def _print_messages(args: argparse.Namespace, ept: Endpoint, url: str, name: str,
                    deadline: float | None) -> int:
    """Print what ``ept`` receives until ``--count`` or the deadline; how many it printed."""
    received = 0
    with waiting(f"messages to {name!r} on {url} (Ctrl-C to stop)"):
        msg = _receive(ept, deadline)
    while msg is not None:
        when = msg.timestamp or time.time()
        received += 1
        line = message_json(msg, when, url, name) if args.json \
            else format_message(msg, when, args.hex)
        print(line, flush=True)
        if received == args.count:
            break
        msg = _receive(ept, deadline)
    return received


def run_listen(args: argparse.Namespace) -> int:
    url, name, _ = resolve_target(args.url, args.name)
    name = _listen_name(args, url, name)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    open_timeout = DEFAULT_TIMEOUT if args.timeout is None else args.timeout
    with _open(url, args, open_timeout) as device:
        # Announced (where the link has a name service): a remote endpoint of that name
        # binds to it and can send. Binding to a service the remote announced wins.
        ept = open_endpoint(device, name, args.src, args.dst, announce=True)
        try:
            received = _print_messages(args, ept, url, name, deadline)
        finally:
            ept.close()
    if args.count is not None and received < args.count:
        raise RpmsgTimeoutError(f"{url}: received {received} of {args.count} messages for "
                                f"{name!r} within {args.timeout:g} s")
    return 0


# services -------------------------------------------------------------------------------


def _linux_services(url: str) -> list[dict[str, Any]]:
    """The kernel's rpmsg channels (but its own ctrl/ns ones) in the sysfs the URL names."""
    from rpmsg.linux.sysfs import Sysfs, default_sysfs

    parsed = TransportURL.parse(url)
    roots = (parsed.get_str("sysfs", "/sys"), parsed.get_str("dev", "/dev"))
    sysfs = default_sysfs() if roots == ("/sys", "/dev") else Sysfs(*roots)
    return [{"name": c.name, "addr": c.dst, "src": c.src, "device": c.device,
             "endpoints": [sysfs.endpoint_node(i) for i in c.endpoints]}
            for c in sysfs.channels() if c.name not in LINUX_INTERNAL]


def _announced(device: Device, wait: float) -> list[dict[str, Any]]:
    """Services announced within ``wait`` s of the open, plus those that follow at once."""
    seen = threading.Event()
    device.on_service(None, lambda _dev, _name, _addr: seen.set())
    with waiting(f"the remote's name-service announcements on {device.name}"):
        if seen.wait(wait):
            time.sleep(ANNOUNCE_SETTLE)
    return [{"name": n, "addr": a} for n, a in device.services]


def services_table(services: list[dict[str, Any]]) -> list[str]:
    """The lines of ``rpmsg services``: name, address and endpoint devices. The names are
    the remote's words: shown with control characters and undecodable bytes as escapes."""
    names = [printable(s["name"]) for s in services]
    width = max(map(len, names), default=0)
    lines = []
    for name, s in zip(names, services, strict=True):
        addr = "-" if s["addr"] in (None, ADDR_ANY) else f"{s['addr']:#x}"
        extra = f"  {printable(' '.join(s['endpoints']))}" if s.get("endpoints") else ""
        lines.append(f"{name:<{width}}  {addr}{extra}")
    return lines


def run_services(args: argparse.Namespace) -> int:
    linux = args.url.startswith("linux:")
    with _open(args.url, args, args.timeout) as device:
        services = _linux_services(args.url) if linux else _announced(device, args.wait)
    if args.json:
        print(json.dumps(services, indent=2))
    elif services:
        print("\n".join(services_table(services)))
    else:
        print(f"no services announced on {args.url}"
              + ("" if linux else f" within {args.wait:g} s"))
    return 0


__all__ = ["format_message", "open_endpoint", "read_payload", "register", "resolve_target",
           "services_table", "split_payload"]
