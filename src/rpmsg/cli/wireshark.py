"""``rpmsg wireshark``: where the shipped Wireshark dissector is, and installing it."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rpmsg.capture import PLUGIN_NAME, plugin_path
from rpmsg.errors import AccessDeniedError, NotAvailableError

#: Wireshark's personal Lua plugin folder on Linux and macOS when tshark cannot tell us.
DEFAULT_PLUGIN_DIR = "~/.local/lib/wireshark/plugins"


def register(sub: Any) -> None:
    p = sub.add_parser(
        "wireshark", help="print or install the Wireshark dissector for captures",
        description="The Lua dissector that lets Wireshark and tshark decode captures "
        "(capture=PATH / RPMSG_CAPTURE): --path prints where it is, --install copies it to "
        "your personal Wireshark plugin folder, after which 'wireshark FILE' decodes RPMsg "
        "with no other setting. Without installing: wireshark -X lua_script:$(rpmsg "
        "wireshark --path) FILE.")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--path", action="store_true", help="print the plugin's path (default)")
    what.add_argument("--install", action="store_true",
                      help="copy the plugin to Wireshark's personal Lua plugin folder")
    p.add_argument("--dir", help="install into this folder instead")
    p.set_defaults(func=run)


def personal_plugin_dir() -> Path:
    """The personal Lua plugin folder as tshark reports it (``tshark -G folders``)."""
    tshark = shutil.which("tshark")
    if tshark is not None:
        try:
            out = subprocess.run([tshark, "-G", "folders"], capture_output=True, text=True,
                                 timeout=30, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Personal Lua Plugins" and value.strip():
                return Path(value.strip())
    return Path(os.path.expanduser(DEFAULT_PLUGIN_DIR))


def install(target_dir: Path) -> Path:
    """Copy the plugin into ``target_dir`` (created if needed); returns the file written.

    Written to a temporary file and renamed, so an existing file (or a symbolic link put
    there) is replaced, never written through.
    """
    source = plugin_path()
    if not source.is_file():
        raise NotAvailableError(f"the plugin is missing from the installed package: {source}")
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".rpmsg-", suffix=".lua", dir=target_dir)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(source.read_bytes())
            os.chmod(tmp, 0o644)
            dest = target_dir / PLUGIN_NAME
            os.replace(tmp, dest)
        except BaseException:
            os.unlink(tmp)
            raise
    except PermissionError as exc:
        raise AccessDeniedError(f"cannot install into {target_dir}: {exc.strerror}") from None
    except OSError as exc:
        raise NotAvailableError(f"cannot install into {target_dir}: {exc.strerror}") from None
    return dest


def run(args: argparse.Namespace) -> int:
    if args.install:
        target = Path(args.dir).expanduser() if args.dir else personal_plugin_dir()
        dest = install(target)
        print(dest)
        print("rpmsg wireshark: installed; restart Wireshark, then open a capture",
              file=sys.stderr)
        return 0
    print(plugin_path())
    return 0
