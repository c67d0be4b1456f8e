"""udev rules that give rpmsg devices stable names: ``/dev/rpmsg/<rproc>/<name>``.

``/dev/rpmsgN`` numbers follow creation order, so scripts that hard-code them break. The rules
add, for every endpoint device below a remote processor, a link named after the processor's
``name`` attribute and the endpoint's ``name`` (``/dev/rpmsg/m4/my-ept``), and one for the
processor's control device (``/dev/rpmsg/m4/rpmsg_ctrl``); optionally a group and mode so
users need not be root. The library follows such links (:func:`rpmsg.linux.nodes.canonical_path`).

Why a small shell program: in a udev rule, ``$attr{name}`` reads the *event* device's
attribute whenever it has one (udev(7)), and an endpoint device has its own ``name``, so the
processor's name cannot be had from a ``SUBSYSTEMS=="remoteproc"`` match. The program walks
up the device's sysfs path to the ancestor whose subsystem is ``remoteproc`` and prints its
``name``; udev puts that in ``%c``. Rules are written in udev's escaping: ``$$`` is a literal
``$`` and ``%%`` a literal ``%``; single quotes group an argument with spaces.
"""

from __future__ import annotations

import re

from rpmsg.errors import InvalidArgumentError

#: Directory below /dev of the links.
LINK_DIR = "rpmsg"

_GROUP_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_MODE_RE = re.compile(r"0?[0-7]{3}")


def rproc_name_script(sys_root: str = "/sys") -> str:
    """The POSIX shell program that prints the remote processor name of ``$devpath``.

    Plain shell (no udev escaping); :func:`udev_escape` turns it into rule text.
    """
    return (f"d={sys_root}$devpath; while [ ${{#d}} -gt {len(sys_root)} ]; do d=${{d%/*}}; "
            "case $(readlink $d/subsystem) in */remoteproc) exec cat $d/name;; esac; done; "
            "exit 1")


def udev_escape(script: str) -> str:
    """Escape a shell program for a udev ``PROGRAM``: ``%`` and ``$`` doubled, except the
    ``$devpath`` that udev itself must substitute."""
    text = script.replace("%", "%%").replace("$", "$$")
    return text.replace("$$devpath", "$devpath")


def check_group(group: str) -> str:
    if not _GROUP_RE.fullmatch(group):
        raise InvalidArgumentError(f"{group!r} is not a group name")
    return group


def check_mode(mode: str) -> str:
    if not _MODE_RE.fullmatch(mode):
        raise InvalidArgumentError(f"{mode!r} is not an octal file mode such as 0660")
    return mode if len(mode) == 4 else "0" + mode


def udev_rules(group: str | None = None, mode: str | None = None) -> str:
    """The rules file text (e.g. ``/etc/udev/rules.d/60-rpmsg.rules``).

    ``group``/``mode`` (default ``0660`` with a group) let that group use every rpmsg device
    without root.
    """
    program = f"/bin/sh -c '{udev_escape(rproc_name_script())}'"
    lines = [
        "# rpmsg devices: stable links and access (written by `rpmsg udev-rules`).",
        "# /dev/rpmsg/<remoteproc name>/<endpoint name> -> /dev/rpmsgN",
        "# /dev/rpmsg/<remoteproc name>/rpmsg_ctrl      -> /dev/rpmsg_ctrlN",
        "# Two endpoints of one name on one processor share a link (the newer wins).",
        'SUBSYSTEM=="rpmsg", KERNEL=="rpmsg[0-9]*", ATTR{name}=="?*", '
        f'PROGRAM="{program}", SYMLINK+="{LINK_DIR}/%c/$attr{{name}}"',
        'SUBSYSTEM=="rpmsg", KERNEL=="rpmsg_ctrl[0-9]*", '
        f'PROGRAM="{program}", SYMLINK+="{LINK_DIR}/%c/rpmsg_ctrl"',
    ]
    if group is not None or mode is not None:
        access = []
        if group is not None:
            access.append(f'GROUP="{check_group(group)}"')
        access.append(f'MODE="{check_mode(mode or "0660")}"')
        lines.append("# Access without root for the group (add users with `usermod -aG`).")
        lines.append('SUBSYSTEM=="rpmsg", KERNEL=="rpmsg*", ' + ", ".join(access))
    return "\n".join(lines) + "\n"


__all__ = ["LINK_DIR", "check_group", "check_mode", "rproc_name_script", "udev_escape",
           "udev_rules"]
