"""Capture RPMsg traffic to pcapng, read it back, and trace it to the log.

- :func:`open_capture` makes the tap ``rpmsg.open`` installs for ``?capture=PATH`` (or
  ``RPMSG_CAPTURE``): every message, link event and (``level="frames"``) frame of the layer
  below goes to a pcapng file that Wireshark decodes with the plugin at :func:`plugin_path`.
- :class:`CaptureReader` / :func:`read_capture` turn a capture back into
  :class:`CapturedMessage`, :class:`CapturedEvent` and :class:`CapturedFrame` records
  (``rpmsg dump`` and ``rpmsg replay`` use them).
- :func:`trace_tap` is the ``rpmsg.trace`` logger's tap; :func:`combine` joins taps.
"""

from __future__ import annotations

from pathlib import Path

from rpmsg.capture.reader import (
    CapturedEvent,
    CapturedFrame,
    CapturedMessage,
    CaptureReader,
    Interface,
    Record,
    TruncatedCaptureError,
    read_capture,
)
from rpmsg.capture.tap import LEVELS, CaptureTap, check_level, open_capture
from rpmsg.capture.trace import TeeTap, TraceTap, combine, trace_enabled, trace_tap

PLUGIN_NAME = "rpmsg.lua"


def plugin_path() -> Path:
    """The Wireshark Lua dissector shipped with this package."""
    return Path(__file__).with_name("wireshark") / PLUGIN_NAME


__all__ = [
    "LEVELS",
    "PLUGIN_NAME",
    "CaptureReader",
    "CaptureTap",
    "CapturedEvent",
    "CapturedFrame",
    "CapturedMessage",
    "Interface",
    "Record",
    "TeeTap",
    "TraceTap",
    "TruncatedCaptureError",
    "check_level",
    "combine",
    "open_capture",
    "plugin_path",
    "read_capture",
    "trace_enabled",
    "trace_tap",
]
