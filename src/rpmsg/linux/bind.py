"""Bind an announced rpmsg channel to a driver through sysfs ``driver_override``.

This is how the OpenAMP Linux demos reach a remote service with rpmsg_char (and the only way
before Linux 5.18): write ``rpmsg_chrdev`` to the channel's ``driver_override``, then its bus
device name to ``/sys/bus/rpmsg/drivers/rpmsg_chrdev/bind`` (``shared/spec/rpmsg-virtio.md``
§2.5). On 5.18+ that gives a ``/dev/rpmsgN`` on the channel's default endpoint; before, a
``/dev/rpmsg_ctrlN`` below the channel. Needs root (sysfs writes).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from rpmsg.errors import NotAvailableError
from rpmsg.linux.ctrl import FIND_TIMEOUT
from rpmsg.linux.errors import AmbiguousEndpointError, map_os_error
from rpmsg.linux.sysfs import (
    Channel,
    ControlDevice,
    EndpointDevice,
    Sysfs,
    default_sysfs,
    write_attr,
)

#: ``drv.name`` of rpmsg_char's channel driver in mainline.
CHRDEV_DRIVER = "rpmsg_chrdev"


def _write(path: Path, text: str) -> None:
    try:
        write_attr(path, text)
    except OSError as exc:
        raise map_os_error(exc, "sysfs", f"writing {text!r} to {path}") from exc


def resolve_channel(channel: str | Channel, sysfs: Sysfs) -> Channel:
    """A channel from its bus device name or its service name (which must be unique)."""
    if isinstance(channel, Channel):
        return sysfs.channel(channel.device)
    if os.path.exists(sysfs.bus_dir / channel):
        return sysfs.channel(channel)
    matches = sysfs.find_channels(channel)
    if not matches:
        raise NotAvailableError(f"no rpmsg channel named {channel!r} in {sysfs.bus_dir} "
                                "(has the remote announced it?)")
    if len(matches) > 1:
        raise AmbiguousEndpointError(
            f"several channels are named {channel!r}: "
            f"{', '.join(c.device for c in matches)}; give the bus device name")
    return matches[0]


def bind_channel(channel: str | Channel, driver: str = CHRDEV_DRIVER, *,
                 sysfs: Sysfs | None = None) -> EndpointDevice | ControlDevice:
    """Bind ``channel`` (bus device or service name) to ``driver``; return the new device.

    A channel bound to another driver is unbound from it first; one already bound to
    ``driver`` is left as it is. Returns the endpoint device (5.18+) or control device
    (before 5.18) that rpmsg_char created below the channel.
    """
    sysfs = sysfs or default_sysfs()
    chan = resolve_channel(channel, sysfs)
    entry = sysfs.bus_dir / chan.device
    if chan.driver != driver:
        driver_dir = sysfs.drivers_dir / driver
        if not driver_dir.is_dir():
            raise NotAvailableError(f"no rpmsg driver {driver!r} in {sysfs.drivers_dir}: is "
                                    "its module loaded (rpmsg_char for rpmsg_chrdev)?")
        if chan.driver is not None:
            _write(sysfs.drivers_dir / chan.driver / "unbind", chan.device)
        _write(entry / "driver_override", driver)
        _write(driver_dir / "bind", chan.device)
    deadline = time.monotonic() + FIND_TIMEOUT
    while True:
        now = sysfs.channel(chan.device)
        if now.endpoints:
            return sysfs.endpoint(now.endpoints[-1])
        if now.ctrls:
            return sysfs.control(now.ctrls[-1])
        if time.monotonic() >= deadline:
            raise NotAvailableError(
                f"{chan.device} is bound to {now.driver!r} but no rpmsg device appeared "
                f"below {entry}")
        time.sleep(0.01)
