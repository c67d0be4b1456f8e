"""The hello exchange two rpmsg processes add to the OpenAMP shared-memory convention.

Facts this project defines (no other stack speaks it; C/OpenAMP peers never see it):

* The device advertises it in the **config space of its rpmsg vdev entry** (the bytes after
  the vring entries, ``config_len`` long; spec rpmsg-virtio §4.1): :data:`SHM_CAPS`. OpenAMP
  and Linux ignore an rpmsg device's config space, so a C driver is unaffected.
* A driver that finds the caps sends :data:`SHM_HELLO` as the first bytes on the kick socket
  (a C device would read them as one more kick, which is harmless).
* The device answers :data:`SHM_WELCOME`, followed by ``text_len`` bytes of UTF-8 (why it
  refused, e.g. who it already serves), with descriptors attached (``SCM_RIGHTS``): the sealed
  memfd holding this session's memory if ``MEMFD`` is set, then the two kick eventfds (to the
  device, to the driver) if ``EVENTFD`` is set.
"""

from __future__ import annotations

import enum

from rpmsg.wire.layout import Layout

SHM_CAPS = Layout("rpmsg_shm_caps", [("magic", "4s"), ("version", "H"), ("flags", "H")])
SHM_HELLO = Layout("rpmsg_shm_hello", [("magic", "4s"), ("version", "H"), ("flags", "H")])
SHM_WELCOME = Layout("rpmsg_shm_welcome", [("magic", "4s"), ("status", "B"), ("flags", "B"),
                                           ("text_len", "H")])

CAPS_MAGIC = b"RPyC"
HELLO_MAGIC = b"RPyH"
WELCOME_MAGIC = b"RPyW"
VERSION = 1
#: Longest refusal text a welcome carries.
MAX_TEXT = 1024


class ShmFlags(enum.IntFlag):
    """Caps (what the device offers), hello (what the driver wants), welcome (what it got)."""

    #: This session's memory is a memfd sealed against shrinking, passed over the socket.
    MEMFD = 1
    #: Kicks go over two eventfds passed over the socket (the socket only says "gone").
    EVENTFD = 2


class WelcomeStatus(enum.IntEnum):
    """The device's answer to a hello."""

    OK = 0
    #: The device serves another driver (the text names it).
    BUSY = 1
    #: The driver asked for something the device does not do (the text says what).
    REFUSED = 2


__all__ = [
    "CAPS_MAGIC",
    "HELLO_MAGIC",
    "MAX_TEXT",
    "SHM_CAPS",
    "SHM_HELLO",
    "SHM_WELCOME",
    "VERSION",
    "WELCOME_MAGIC",
    "ShmFlags",
    "WelcomeStatus",
]
