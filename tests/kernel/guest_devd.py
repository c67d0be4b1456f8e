"""Guest-side device-node daemon for the UML tests: keeps ``/dev`` in step with the kernel.

The UML test kernel is built without devtmpfs (``scripts/uml-kernel`` says why), so the guest
init (``uml.py``) mounts a tmpfs on ``/dev`` and runs this program, which works like a tiny
mdev/udev: it subscribes to kernel uevents (netlink), creates a node for every device that
already exists (``/sys/dev/{char,block}/*/uevent``), then forks into the background and creates
or removes nodes as ``add``/``remove`` events arrive. The parent exits only once the existing
nodes are there, so init can go on to use ``/dev/null`` at once. Messages go to standard error
(the kernel console), prefixed ``guest_devd:``.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import sys

#: Netlink protocol of kernel uevents (linux/netlink.h) and the kernel's multicast group.
NETLINK_KOBJECT_UEVENT = 15
UEVENT_GROUP = 1
DEV = "/dev"
SYS_DEV = "/sys/dev"
RCVBUF = 4 << 20


def log(message: str) -> None:
    """Report on the console (init's standard error)."""
    try:
        print(f"guest_devd: {message}", file=sys.stderr, flush=True)
    except OSError:
        pass


def parse_event(data: bytes) -> tuple[str, dict[str, str]] | None:
    """A kernel uevent datagram (``ACTION@DEVPATH`` then ``KEY=VALUE`` strings) as
    (action, environment); None for anything else (e.g. libudev's own messages)."""
    parts = data.split(b"\0")
    head = parts[0].decode("utf-8", "replace")
    if "@" not in head or head.startswith("libudev"):
        return None
    env = {}
    for item in parts[1:]:
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return env.get("ACTION", head.partition("@")[0]), env


def node_of(env: dict[str, str], kind: int) -> tuple[str, int, int, int] | None:
    """(path, file type, device number, permission bits) of a device's node, or None if the
    event names no device node (or a name outside /dev)."""
    name, major, minor = env.get("DEVNAME"), env.get("MAJOR"), env.get("MINOR")
    if not name or major is None or minor is None:
        return None
    path = os.path.normpath(os.path.join(DEV, name))
    if not path.startswith(DEV + "/"):
        return None
    try:
        rdev = os.makedev(int(major), int(minor))
        mode = int(env.get("DEVMODE", "0600"), 8) & 0o7777
    except ValueError:
        return None
    return path, kind, rdev, mode


def is_node(path: str, kind: int, rdev: int) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_IFMT(st.st_mode) == kind and st.st_rdev == rdev


def add(node: tuple[str, int, int, int]) -> None:
    path, kind, rdev, mode = node
    if is_node(path, kind, rdev):
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        os.unlink(path)  # a stale node of a reused name
    except FileNotFoundError:
        pass
    os.mknod(path, kind | mode, rdev)


def remove(node: tuple[str, int, int, int]) -> None:
    path, kind, rdev, _mode = node
    if is_node(path, kind, rdev):  # never a newer node that took the name over
        os.unlink(path)


def coldplug() -> set[str]:
    """Create the node of every device sysfs lists now; return their paths."""
    present = set()
    for sub, kind in (("char", stat.S_IFCHR), ("block", stat.S_IFBLK)):
        try:
            entries = os.listdir(os.path.join(SYS_DEV, sub))
        except OSError:
            continue
        for entry in entries:
            try:
                with open(os.path.join(SYS_DEV, sub, entry, "uevent"), encoding="utf-8") as f:
                    env = dict(line.partition("=")[::2] for line in f.read().splitlines())
            except OSError:  # gone meanwhile
                continue
            node = node_of(env, kind)
            if node is not None:
                try:
                    add(node)
                    present.add(node[0])
                except OSError as exc:
                    log(f"cannot create {node[0]}: {exc}")
    return present


def handle(data: bytes) -> None:
    parsed = parse_event(data)
    if parsed is None:
        return
    action, env = parsed
    kind = stat.S_IFBLK if env.get("SUBSYSTEM") == "block" else stat.S_IFCHR
    node = node_of(env, kind)
    if node is None:
        return
    if action == "add":
        add(node)
    elif action == "remove":
        remove(node)


def serve(sock: socket.socket) -> None:
    errors = 0
    while True:
        try:
            data = sock.recv(1 << 16)
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:  # events were lost: resynchronise from sysfs
                log("uevent queue overflowed; rescanning /sys/dev")
                coldplug()
                continue
            if exc.errno == errno.EINTR:
                continue
            raise
        try:
            handle(data)
        except OSError as exc:
            errors += 1
            log(f"event {data[:80]!r}: {exc} ({errors} errors so far)")


def main() -> int:
    os.umask(0)
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_KOBJECT_UEVENT)
    try:
        sock.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)  # SO_RCVBUFFORCE (root)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    sock.bind((0, UEVENT_GROUP))  # subscribed before the scan: no device falls in between
    coldplug()
    if os.fork():
        return 0  # init goes on; the child keeps /dev up to date
    os.setsid()
    try:
        serve(sock)
    except BaseException as exc:
        log(f"stopped: {type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
