"""``linux:`` — the library's Device/Endpoint API over Linux ``/dev/rpmsgN`` char devices.

The kernel is the RPMsg core here (it allocates addresses, runs the name service and routes
messages), so the link disables our name service and maps every ``create_endpoint`` onto a
kernel endpoint device:

* ``linux:`` or ``linux:rpmsg_ctrlN`` (``/dev/rpmsg_ctrlN``, ``?ctrl=N``): each
  ``create_endpoint(name, src, dst)`` creates ``/dev/rpmsgM`` through the control device
  (``RPMSG_CREATE_EPT_IOCTL``), and closing the endpoint destroys it again.
* ``linux:/dev/rpmsgM`` (or ``linux:rpmsgM``, or a link such as ``/dev/rpmsg/<rproc>/<name>``
  from ``rpmsg udev-rules``): one existing endpoint device, e.g. a channel's default endpoint
  (``rpmsg-raw``, or one bound with ``rpmsg.linux.bind_channel``). Its destination comes from
  sysfs, so ``create_endpoint()`` needs no arguments.
* ``linux:?service=NAME`` and ``linux:?rproc=NAME&service=NAME``: the channel the remote
  announced as NAME (on that remote processor), found in sysfs as TI's ti-rpmsg-char does
  (:mod:`rpmsg.linux.service`): its own endpoint device if it has one, else endpoints are
  created on the control device of its virtio device with the service's name and address, so
  ``create_endpoint()`` needs no arguments either. The open waits (its ``timeout``, default
  30 s) while the service is not announced yet, saying after a second what it waits for.
  ``linux:?rproc=NAME`` alone is that processor's control device.

Addresses: the kernel does not tell userspace the source of a received message, so
``Message.src`` is the endpoint's destination address (the only peer it talks to), or
``ADDR_ANY`` for a receive-only endpoint (dst ANY). When the kernel picks the local address
(src ANY) it does not reveal it either; the endpoint's ``addr`` is then a local handle
(lowest free from 1024), not necessarily the kernel's address. ``send_to`` works only to the
destination the endpoint was created with. Options ``sysfs=`` and ``dev=`` move the sysfs and
/dev roots (containers, tests).
"""

from __future__ import annotations

from rpmsg.errors import InvalidURLError, RpmsgError
from rpmsg.linux.link import CTRL_RE, EPT_RE, LinuxLink, connect_path, connect_service
from rpmsg.linux.sysfs import Sysfs, default_sysfs
from rpmsg.registry import Connect, Opening, Transport
from rpmsg.url import TransportURL
from rpmsg.wire.linux import EndpointInfo

__all__ = ["TRANSPORT", "LinuxLink", "configure"]


def _check_name(url: TransportURL, key: str) -> str | None:
    """Option ``key`` as an rpmsg name (1..31 bytes, as the kernel's 32-byte field holds)."""
    raw = url.take(key)
    if raw is None:
        return None
    text = str(raw)
    try:
        if not text:
            raise ValueError("is empty")
        EndpointInfo(text)
    except (ValueError, RpmsgError) as exc:
        raise InvalidURLError(f"linux: option {key}={text!r}: {exc}") from None
    return text


def configure(url: TransportURL) -> Connect:
    """Check a ``linux:`` URL (see the module docstring) without I/O; open on connect."""
    sys_root = url.get_str("sysfs", "/sys")
    dev_root = url.get_str("dev", "/dev")
    ctrl_opt = url.take("ctrl")
    service = _check_name(url, "service")
    rproc = url.take("rproc")
    if rproc is not None and not str(rproc).strip():
        raise InvalidURLError("linux: option rproc= is empty")
    path = url.path.strip()
    if ctrl_opt is not None and path:
        raise InvalidURLError(f"linux: give a path or ?ctrl=, not both, in {url.text!r}")
    if (service is not None or rproc is not None) and (path or ctrl_opt is not None):
        raise InvalidURLError(f"linux: ?rproc=/?service= find the device themselves; give no "
                              f"path or ?ctrl= with them in {url.text!r}")
    if ctrl_opt is not None:
        path = f"rpmsg_ctrl{url.get_int('ctrl', 0, minimum=0)}"
    if path in ("", "/dev/rpmsg_ctrl") and service is None and rproc is None:
        path = "rpmsg_ctrl0"
    if path and not (path.startswith("/") or CTRL_RE.fullmatch(path)
                     or EPT_RE.fullmatch(path)):
        raise InvalidURLError(
            f"linux: {path!r} is neither a control device (rpmsg_ctrlN) nor an endpoint "
            "device (/dev/rpmsgN, or a link to one such as /dev/rpmsg/<rproc>/<name>)")

    def connect(opening: Opening) -> LinuxLink:
        sysfs = (default_sysfs() if (sys_root, dev_root) == ("/sys", "/dev")
                 else Sysfs(sys_root, dev_root))
        if not path:
            return connect_service(opening, sysfs, service,
                                    None if rproc is None else str(rproc).strip())
        return connect_path(path, sysfs)

    return connect


TRANSPORT = Transport(
    "linux", "Linux /dev/rpmsgN character devices (the kernel is the RPMsg core)", configure)
