"""A driver/device pair over in-process memory, for tests and examples without a second process."""

from __future__ import annotations

import socket

from rpmsg.virtio.kick import SocketKick
from rpmsg.virtio.layout import ShmLayout
from rpmsg.virtio.memory import FlatMemory
from rpmsg.virtio.shm_device import ShmDeviceLink
from rpmsg.virtio.shm_driver import ShmDriverLink
from rpmsg.virtio.shm_link import ShmConfig


def pair(layout: ShmLayout | None = None, *, spin: float = 50e-6,
         memory: bytearray | None = None) -> tuple[ShmDriverLink, ShmDeviceLink]:
    """A (driver, device) pair over in-process memory with socketpair kicks.

    The device's table is written and the driver's handshake done before this returns. The
    pair has one session: a protocol error breaks it for good (nothing could reconnect).
    """
    layout = layout or ShmLayout.openamp()
    config = ShmConfig(path="", socket="", layout=layout, spin=spin, url="shm:(in-process)")
    mem = FlatMemory(memory if memory is not None else bytearray(layout.size))
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    device = ShmDeviceLink(config, channel=SocketKick(a), memory=mem)
    driver = ShmDriverLink(config, channel=SocketKick(b), memory=mem)
    driver.handshake()
    return driver, device


__all__ = ["pair"]
