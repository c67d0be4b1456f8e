"""``shm:`` — RPMsg over virtio rings in shared memory between two processes, either role.

``shm:NAME`` and ``shm:/NAME`` are the POSIX shared-memory object ``/dev/shm/NAME`` (NAME one
path component); ``shm:/dir/file`` is that file; ``shm:`` alone is ``openamp.shm``. Options:

* ``role``: ``driver``/``host`` or ``device``/``remote`` (default from the opener's side);
* ``preset``: ``openamp`` (the only layout); ``num``, ``align``, ``buffers``, ``buffer_size``
  (at least 56: the 16-byte header and a name-service message), ``size``;
* ``kick``: ``socket`` (default), ``eventfd`` (both sides rpmsg) or ``poll``; ``socket``: the
  kick socket (default ``/tmp/openamp.event.0`` for ``openamp.shm``, else
  ``/tmp/NAME.event.0``); ``spin``: µs to keep polling the rings after work (default 50);
* ``perm``: mode of the file and socket the device creates (default ``0600``; ``0660`` lets
  the group in); ``allow_foreign=1``: use a file or socket another user owns (e.g. a device
  run as root), refused otherwise; ``memfd=0``: share the named file even with an rpmsg peer
  (by default two rpmsg processes share a sealed memfd, which no process can truncate).

The default policy is OPENAMP in both roles: both sides announce named endpoints, as the
OpenAMP demo does; pass ``policy=linux`` to mimic the kernel as driver. The machinery is in
:mod:`rpmsg.virtio`: :class:`~rpmsg.virtio.shm_device.ShmDeviceLink` (creates and locks the
file, serves one driver at a time) and :class:`~rpmsg.virtio.shm_driver.ShmDriverLink`
(connects, handshakes, reconnects); this module only reads the URL.
"""

from __future__ import annotations

import os

from rpmsg.errors import InvalidURLError
from rpmsg.registry import Connect, Opening, Transport
from rpmsg.url import TransportURL
from rpmsg.virtio.engine import MIN_BUFFER_SIZE
from rpmsg.virtio.layout import OPENAMP_KICK_SOCKET, OPENAMP_SHM_NAME, ShmLayout
from rpmsg.virtio.shm_device import ShmDeviceLink
from rpmsg.virtio.shm_driver import ShmDriverLink
from rpmsg.virtio.shm_files import check_socket_path, parse_perm, shm_file_path
from rpmsg.virtio.shm_link import ShmConfig, ShmLink
from rpmsg.virtio.shm_pair import pair

#: Role names a URL may use, and the link class of each role.
_ROLES = {"driver": "driver", "host": "driver", "device": "device", "remote": "device"}
_LINKS: dict[str, type[ShmDriverLink] | type[ShmDeviceLink]] = {
    "driver": ShmDriverLink, "device": ShmDeviceLink}
_KICKS = {"socket": "socket", "eventfd": "eventfd", "poll": "poll"}


def _layout_from_url(url: TransportURL) -> ShmLayout:
    url.get_choice("preset", "openamp", {"openamp": "openamp"})
    num = url.get_int("num", 256, minimum=1, maximum=32768)
    align = url.get_int("align", 0x1000, minimum=1, maximum=1 << 20)
    buffer_size = url.get_int("buffer_size", 512, minimum=MIN_BUFFER_SIZE, maximum=65535 + 16)
    buffers = url.get_int("buffers", min(256, num), minimum=1, maximum=32768)
    try:
        layout = ShmLayout.openamp(num=num, align=align, buffer_size=buffer_size,
                                   buffers=buffers)
    except ValueError as exc:
        raise InvalidURLError(f"shm: {exc}") from None
    size = url.get_int("size", layout.size, minimum=0x1000, maximum=1 << 32)
    if size != layout.size:
        layout = ShmLayout(num=layout.num, align=layout.align, buffer_size=buffer_size,
                           rx_buffers=buffers, tx_buffers=buffers,
                           vring_stride=layout.vring_stride, buffer_base=layout.buffer_base,
                           min_size=size)
        if layout.size != size:
            raise InvalidURLError(f"shm: size={size:#x} is too small for this layout "
                                  f"(needs {layout.size:#x})")
    try:
        layout.check()
    except ValueError as exc:
        raise InvalidURLError(f"shm: {exc}") from None
    return layout


def default_socket(path: str) -> str:
    """The kick socket path for a shm file: OpenAMP's for ``openamp.shm``, else per name."""
    base = os.path.basename(path)
    if base == OPENAMP_SHM_NAME:
        return OPENAMP_KICK_SOCKET
    return f"/tmp/{base}.event.0"


def configure(url: TransportURL) -> Connect:
    """Check ``shm:NAME`` / ``shm:/path`` (options in the module docstring); open on connect."""
    role = url.get_choice("role", "driver" if url.side == "host" else "device", _ROLES)
    kick = url.get_choice("kick", "socket", _KICKS)
    layout = _layout_from_url(url)
    path = shm_file_path(url.path, OPENAMP_SHM_NAME)
    sock_path = check_socket_path(url.get_str("socket", default_socket(path)))
    spin = url.get_float("spin", 50.0, maximum=1e6) * 1e-6
    perm = parse_perm(url.get_str("perm", "0600"))
    allow_foreign = url.get_bool("allow_foreign", False)
    memfd = url.get_bool("memfd", True)
    if kick == "eventfd" and not memfd:
        raise InvalidURLError("shm: kick=eventfd needs the hello exchange; drop memfd=0")
    config = ShmConfig(path=path, socket=sock_path, layout=layout, kick=kick, spin=spin,
                       perm=perm, allow_foreign=allow_foreign, memfd=memfd,
                       url=url.text.partition("?")[0])
    link_class = _LINKS[role]

    def connect(opening: Opening) -> ShmLink:
        return link_class.open(config, opening)

    return connect


TRANSPORT = Transport(
    "shm", "virtio rings in shared memory between two processes (OpenAMP-compatible)",
    configure)

__all__ = ["TRANSPORT", "ShmLink", "configure", "default_socket", "pair"]
