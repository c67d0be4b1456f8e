"""A vhost-user back-end that serves a virtio-rpmsg device to a VM (User-Mode Linux, QEMU).

The pieces, sans-IO first: :mod:`~rpmsg.vhost_user.messages` (framing and payload codecs),
:mod:`~rpmsg.vhost_user.backend` (the request state machine: features, memory table, vrings),
:mod:`~rpmsg.vhost_user.memory` (mmap of the memory regions and address translation) and
:mod:`~rpmsg.vhost_user.server` (the socket thread). The RPMsg device logic itself is
:class:`rpmsg.virtio.device.DeviceEngine`; :mod:`rpmsg.vhost_user.link` ties them into
the ``vhost-user:`` transport.
"""

from __future__ import annotations

from rpmsg.vhost_user.backend import VhostUserBackend
from rpmsg.vhost_user.memory import GuestAddressError, GuestMemory
from rpmsg.vhost_user.messages import Message, MessageReader, VhostUserError
from rpmsg.vhost_user.server import SessionHandler, VhostUserServer

__all__ = [
    "GuestAddressError",
    "GuestMemory",
    "Message",
    "MessageReader",
    "SessionHandler",
    "VhostUserBackend",
    "VhostUserError",
    "VhostUserServer",
]
