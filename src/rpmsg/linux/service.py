"""Finding a remote service's channel by name, the way TI's ti-rpmsg-char library does.

A remote processor announces a service (name-service CREATE); Linux makes a channel bus device
``virtioN.<service>.<src>.<dst>`` below that processor's virtio device (see
:mod:`rpmsg.linux.remoteproc`). :func:`find_service` looks the name up (on one remote
processor, or on every virtio rpmsg device) and says how to reach it from userspace, in this
order of preference:

1. the channel's own endpoint device (``rpmsg-raw`` channels, or any channel bound to
   ``rpmsg_chrdev``, get one on Linux 5.18+): open that ``/dev/rpmsgN``;
2. a control device below the channel (a channel bound to ``rpmsg_chrdev`` before 5.18);
3. the ``rpmsg_ctrl`` of the channel's virtio device (5.18+): create an endpoint device there
   with the service's name and the channel's destination address, as ti-rpmsg-char does.

The result is None while the service (or the processor's virtio device) is not there yet, so
callers can wait; names that cannot be right raise at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from rpmsg.errors import NotAvailableError
from rpmsg.linux.bind import CHRDEV_DRIVER
from rpmsg.linux.errors import AmbiguousNameError
from rpmsg.linux.remoteproc import RemoteProc, find_remoteproc
from rpmsg.linux.sysfs import Channel, Sysfs
from rpmsg.wire.rpmsg import ADDR_ANY

#: Bus devices that are the kernel's own, not services of the remote.
PSEUDO_CHANNELS = frozenset({"rpmsg_ns", "rpmsg_ctrl"})
#: Channel names rpmsg_char binds by itself (``rpmsg_chrdev_id_table`` of
#: drivers/rpmsg/rpmsg_char.c, 5.18+): such a channel gets its own endpoint device.
CHRDEV_NAMES = frozenset({"rpmsg-raw"})


@dataclass(frozen=True)
class ServiceTarget:
    """How to reach a service: an existing endpoint device, or a control device to create one
    on (with the service's name and destination)."""

    channel: Channel | None
    rproc: RemoteProc | None
    #: Path of the channel's own endpoint device, if it has one.
    node: str | None = None
    #: Index of the control device to create the endpoint through, otherwise.
    ctrl: int | None = None

    @property
    def name(self) -> str:
        return self.channel.name if self.channel is not None else ""

    @property
    def dst(self) -> int:
        """The remote address endpoints should send to (ANY if unknown)."""
        if self.channel is None or self.channel.dst is None:
            return ADDR_ANY
        return self.channel.dst


def scope_channels(sysfs: Sysfs, rproc: RemoteProc | None) -> list[Channel]:
    """Channels of ``rproc`` (all when None), the kernel's pseudo-channels included."""
    channels = sysfs.channels()
    if rproc is None:
        return channels
    mine = set(rproc.channels)
    return [c for c in channels if c.device in mine]


def find_service(sysfs: Sysfs, service: str | None, rproc_name: str | None) -> ServiceTarget | None:
    """Where ``service`` (on remote processor ``rproc_name``) can be reached; None if not yet.

    With ``service`` None the target is ``rproc_name``'s control device. Raises
    NotAvailableError for an unknown remote processor or a channel no device can reach, and
    :class:`~rpmsg.linux.errors.AmbiguousNameError` when several virtio devices offer the
    service (name the remote processor).
    """
    rproc = find_remoteproc(rproc_name, sysfs) if rproc_name is not None else None
    channels = scope_channels(sysfs, rproc)
    if service is None:
        ctrl = _ctrl_of(sysfs, channels, None)
        return None if ctrl is None else ServiceTarget(None, rproc, ctrl=ctrl)
    matches = [c for c in channels if c.name == service and c.name not in PSEUDO_CHANNELS]
    if not matches:
        return None
    if len({c.virtio for c in matches}) > 1:
        where = ", ".join(c.device for c in matches)
        raise AmbiguousNameError(f"several rpmsg devices offer service {service!r} ({where}); "
                                 "name the remote processor with rproc=")
    # Several channels of one name on one virtio device (announced with different addresses):
    # the newest (highest remote address) is the one the remote announced last.
    chan = max(matches, key=lambda c: c.dst if c.dst is not None else -1)
    if chan.endpoints:
        return ServiceTarget(chan, rproc, node=sysfs.endpoint_node(chan.endpoints[-1]))
    if chan.ctrls:
        return ServiceTarget(chan, rproc, ctrl=chan.ctrls[-1])
    if chan.driver == CHRDEV_DRIVER or chan.name in CHRDEV_NAMES:
        return None  # rpmsg_char is probing it: its /dev/rpmsgN is about to appear
    ctrl = _ctrl_of(sysfs, channels, chan.virtio)
    if ctrl is not None:
        return ServiceTarget(chan, rproc, ctrl=ctrl)
    raise NotAvailableError(
        f"service {service!r} ({chan.device}) has no endpoint device and its virtio device "
        "has no rpmsg_ctrl (Linux 5.18+, module rpmsg_ctrl); bind it to rpmsg_chrdev with "
        "rpmsg.linux.bind_channel()")


def _ctrl_of(sysfs: Sysfs, channels: list[Channel], virtio: str | None) -> int | None:
    """The rpmsg_ctrl control device among ``channels`` (on ``virtio`` if given)."""
    for chan in channels:
        if chan.name == "rpmsg_ctrl" and chan.ctrls and virtio in (None, chan.virtio):
            return chan.ctrls[0]
    return None


def describe_scope(sysfs: Sysfs, rproc_name: str | None) -> str:
    """What is there to see, for "waiting" notices and timeout errors."""
    rproc = None
    if rproc_name is not None:
        try:
            rproc = find_remoteproc(rproc_name, sysfs)
        except NotAvailableError as exc:
            return str(exc)
    services = sorted({c.name for c in scope_channels(sysfs, rproc)} - PSEUDO_CHANNELS)
    seen = f"services seen: {', '.join(services)}" if services else "no services announced"
    if rproc is not None:
        return f"{rproc.label()} is {rproc.state}; {seen}"
    return seen


def wait_hint(sysfs: Sysfs, rproc_name: str | None) -> str:
    """How the user can make the awaited service appear."""
    if rproc_name is not None:
        try:
            rproc = find_remoteproc(rproc_name, sysfs)
        except NotAvailableError:
            return ""
        if not rproc.running:
            return f"it is {rproc.state}: start it with `rpmsg rproc start {rproc_name}`"
    return "the remote firmware announces it (name service) once it runs; `rpmsg list` shows " \
           "what is there"


__all__ = ["PSEUDO_CHANNELS", "ServiceTarget", "describe_scope", "find_service",
           "scope_channels", "wait_hint"]
