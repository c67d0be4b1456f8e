"""``vhost-user:`` — serve a virtio-rpmsg device to a VM (UML, QEMU) over a vhost-user socket.

``rpmsg.open("vhost-user:/tmp/rpmsg.sock", side="remote")`` listens on that UNIX socket; a
front-end such as User-Mode Linux started with ``virtio_uml.device=/tmp/rpmsg.sock:7``
connects and its kernel's ``virtio_rpmsg_bus`` becomes the virtio driver, so this side is
always the virtio *device* (the remote processor), whatever ``side`` says. The device engine is
:class:`rpmsg.virtio.device.DeviceEngine`, the same one the ``shm:`` transport uses.

The link goes up once the queues are enabled *and* the driver is ready (its first kick after
``DRIVER_OK``, or buffers posted on vq0 with no kick for ``ready_timeout`` seconds): sending a
name-service announcement earlier could reach Linux before its ``rpmsg_ns`` endpoint exists.
When the front-end goes away the link goes down and the next front-end is accepted; a
front-end that breaks the protocol or corrupts a ring is dropped the same way (the error is in
``stats()``/``describe()``), it does not break the Device. ``close()`` unlinks the socket.

Options: ``ready_timeout`` (seconds, default 1), ``reply_ack`` (offer REPLY_ACK, default
true), ``buffer_size`` (default 512, as Linux; at least 56), ``role`` (only
``device``/``remote``), ``perm`` (mode of the socket, default ``0600``; ``0660`` lets the
group's VMs in). The socket path is taken over only if it is a stale socket of ours.

The front-end's memory regions are sealed against shrinking where they are memfds, so a
front-end cannot kill this process with SIGBUS by truncating them; other memory files (UML's)
cannot be sealed, which is said once at INFO (see ``docs/security.md``).
"""

from __future__ import annotations

from rpmsg.errors import InvalidURLError
from rpmsg.registry import Connect, Opening, Transport
from rpmsg.url import TransportURL
from rpmsg.vhost_user.link import VhostUserLink
from rpmsg.virtio.engine import MIN_BUFFER_SIZE
from rpmsg.virtio.shm_files import check_socket_path, parse_perm
from rpmsg.wire.rpmsg import DEFAULT_BUFFER_SIZE, HEADER_SIZE

__all__ = ["TRANSPORT", "VhostUserLink", "configure"]


def configure(url: TransportURL) -> Connect:
    """Check ``vhost-user:/path/to.sock?ready_timeout=S&reply_ack=BOOL``; listen on connect."""
    role = url.get_choice("role", "device", {"device": "device", "remote": "device"})
    del role
    path = url.path
    if path.startswith("//"):
        path = path[1:]
    if not path:
        raise InvalidURLError("vhost-user: give the socket path, e.g. vhost-user:/tmp/rpmsg.sock")
    check_socket_path(path, "vhost-user: the socket path")
    buffer_size = url.get_int("buffer_size", DEFAULT_BUFFER_SIZE, minimum=MIN_BUFFER_SIZE,
                              maximum=65535 + HEADER_SIZE)
    ready_timeout = url.get_float("ready_timeout", 1.0, maximum=3600.0)
    reply_ack = url.get_bool("reply_ack", True)
    perm = parse_perm(url.get_str("perm", "0600"))

    def connect(opening: Opening) -> VhostUserLink:
        return VhostUserLink(path, buffer_size=buffer_size, ready_timeout=ready_timeout,
                             reply_ack=reply_ack, perm=perm)

    return connect


TRANSPORT = Transport(
    "vhost-user",
    "virtio-rpmsg device served over a vhost-user socket (e.g. to a UML/QEMU guest)",
    configure)
