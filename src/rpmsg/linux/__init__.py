"""Linux userspace rpmsg: ``/dev/rpmsg_ctrlN`` (:class:`Ctrl`), ``/dev/rpmsgN``
(:class:`Endpoint`), sysfs discovery and channel binding, remote processors
(:mod:`~rpmsg.linux.remoteproc`), service lookup (:mod:`~rpmsg.linux.service`), udev rules
(:mod:`~rpmsg.linux.udev`), with the kernel's errors mapped to the library's.

Example::

    from rpmsg.linux import Ctrl, Endpoint

    with Ctrl.open(0) as ctrl:
        n = ctrl.create_endpoint(name="my-ept", dst=0x400)
    with Endpoint.open(n) as ep:
        ep.send(b"ping")
        print(ep.recv(timeout=1.0))
"""

from __future__ import annotations

from rpmsg.linux import nodes, remoteproc, udev
from rpmsg.linux.bind import CHRDEV_DRIVER, bind_channel
from rpmsg.linux.chardev import Chardev
from rpmsg.linux.ctrl import Ctrl, destroy_endpoint_device
from rpmsg.linux.endpoint import AsyncEndpoint, Endpoint
from rpmsg.linux.errors import (
    AccessDeniedError,
    AmbiguousEndpointError,
    KernelError,
    TruncatedMessageError,
    map_os_error,
)
from rpmsg.linux.ioctl import (
    RPMSG_CREATE_DEV_IOCTL,
    RPMSG_CREATE_EPT_IOCTL,
    RPMSG_DESTROY_EPT_IOCTL,
    RPMSG_GET_OUTGOING_FLOWCONTROL,
    RPMSG_RELEASE_DEV_IOCTL,
    RPMSG_SET_INCOMING_FLOWCONTROL,
)
from rpmsg.linux.remoteproc import RemoteProc, find_remoteproc, list_remoteprocs
from rpmsg.linux.sysfs import Channel, ControlDevice, EndpointDevice, Sysfs
from rpmsg.wire.linux import ENDPOINT_INFO_SIZE, EndpointInfo


def list_channels(sysfs: Sysfs | None = None) -> list[Channel]:
    """Every rpmsg channel (bus device) with its name, addresses, announce flag and driver."""
    from rpmsg.linux.sysfs import default_sysfs

    return (sysfs or default_sysfs()).channels()


def list_endpoints(sysfs: Sysfs | None = None) -> list[EndpointDevice]:
    """Every ``/dev/rpmsgN`` endpoint device with its name and addresses."""
    from rpmsg.linux.sysfs import default_sysfs

    return (sysfs or default_sysfs()).endpoints()


def list_controls(sysfs: Sysfs | None = None) -> list[ControlDevice]:
    """Every ``/dev/rpmsg_ctrlN`` control device."""
    from rpmsg.linux.sysfs import default_sysfs

    return (sysfs or default_sysfs()).controls()


__all__ = [
    "CHRDEV_DRIVER",
    "ENDPOINT_INFO_SIZE",
    "RPMSG_CREATE_DEV_IOCTL",
    "RPMSG_CREATE_EPT_IOCTL",
    "RPMSG_DESTROY_EPT_IOCTL",
    "RPMSG_GET_OUTGOING_FLOWCONTROL",
    "RPMSG_RELEASE_DEV_IOCTL",
    "RPMSG_SET_INCOMING_FLOWCONTROL",
    "AccessDeniedError",
    "AmbiguousEndpointError",
    "AsyncEndpoint",
    "Channel",
    "Chardev",
    "ControlDevice",
    "Ctrl",
    "Endpoint",
    "EndpointDevice",
    "EndpointInfo",
    "KernelError",
    "RemoteProc",
    "Sysfs",
    "TruncatedMessageError",
    "bind_channel",
    "destroy_endpoint_device",
    "find_remoteproc",
    "list_channels",
    "list_controls",
    "list_endpoints",
    "list_remoteprocs",
    "map_os_error",
    "nodes",
    "remoteproc",
    "udev",
]
