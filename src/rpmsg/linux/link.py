"""The ``linux:`` link: the Device/Endpoint API over the kernel's rpmsg char devices.

:class:`LinuxLink` maps each ``create_endpoint`` onto a kernel endpoint device (created through
a control device, or an existing ``/dev/rpmsgN``) and reads them; :func:`connect_path` and
:func:`connect_service` make one from a device path or an announced service name.
``rpmsg.transports.linux`` is the URL adapter that calls them; the behaviour (addresses, what
the kernel does not tell userspace) is described there.
"""

from __future__ import annotations

import logging
import os
import re
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rpmsg.core.policy import LINUX
from rpmsg.errors import (
    AddressInUseError,
    AlreadyOpenError,
    EndpointClosedError,
    MessageTooLargeError,
    NotAvailableError,
    NotBoundError,
    RemoteDisconnectedError,
    RpmsgError,
)
from rpmsg.linux.chardev import EOF, Chardev, endpoint_node
from rpmsg.linux.ctrl import Ctrl
from rpmsg.linux.nodes import INDEX, canonical_path, check_path
from rpmsg.linux.service import describe_scope, find_service, wait_hint
from rpmsg.linux.sysfs import Sysfs, default_sysfs, format_addr, missing_node_error
from rpmsg.registry import Opening
from rpmsg.transport import Deadline, Link, LinkSink
from rpmsg.wire.layout import Buffer
from rpmsg.wire.rpmsg import ADDR_ANY, DEFAULT_MTU, RESERVED_ADDRESSES

log = logging.getLogger("rpmsg.linux")

Opener = Callable[[int | str], Chardev]
CTRL_RE = re.compile(rf"(?:/dev/)?rpmsg_ctrl({INDEX})")
EPT_RE = re.compile(rf"(?:.*/)?rpmsg({INDEX})|{INDEX}")
#: Messages the reader thread reads from one endpoint before it looks at the others.
_BURST = 32
_ERR_EVENTS = select.POLLERR | select.POLLHUP | select.POLLNVAL


@dataclass(eq=False)
class _KernelEndpoint:
    """One kernel endpoint device behind one core endpoint."""

    addr: int
    dst: int
    chardev: Chardev | None = None
    index: int | None = None
    #: Created through the ctrl device by this link, so destroyed on close.
    created: bool = False
    active: bool = False
    #: Read by its receivers (read_direct); the reader thread only watches it for errors.
    direct: bool = False
    #: The kernel removed it (remote gone); the reason.
    gone: str | None = None
    #: A stream end hung up: the reader thread stops watching (readers find the end).
    hung_up: bool = False


class LinuxLink(Link):
    """A link whose endpoints are kernel endpoint devices (see the module docstring).

    Endpoints without a callback are *direct*: their receivers read the device themselves
    (:meth:`read_direct`: one ``poll`` and one ``read``, no thread hand-off), and the
    kernel's queue holds what nobody reads yet (back-pressure as for any C client). The
    reader thread delivers the messages of callback endpoints and watches direct ones for
    errors (``poll`` with no events), so a remote that goes away is reported even while
    nobody reads.
    """

    role = "linux"
    default_policy = LINUX
    ns_enabled = False
    mtu = DEFAULT_MTU
    direct_receive = True

    def __init__(self, *, ctrl: Ctrl | None = None, device: int | str | None = None,
                 chardev: Chardev | None = None, sysfs: Sysfs | None = None,
                 opener: Opener | None = None,
                 service: tuple[str, int] | None = None) -> None:
        """Use exactly one of ``ctrl`` (owned: closed with the link), ``device`` (a path or
        index, opened at ``create_endpoint``) or ``chardev`` (already open, owned).

        ``service`` (name, remote address) fills in the name and destination of endpoints
        created on ``ctrl`` without them (a ``linux:?service=`` URL).
        """
        if sum(x is not None for x in (ctrl, device, chardev)) != 1:
            raise ValueError("give exactly one of ctrl=, device= or chardev=")
        self._ctrl = ctrl
        self._chardev = chardev
        self._device: int | str | None = device if chardev is None else chardev.path
        self.service = service
        self._sysfs = sysfs or (ctrl.sysfs if ctrl is not None else default_sysfs())
        self._opener: Opener = opener or self._open_chardev
        self._lock = threading.Lock()
        self._eps: dict[int, _KernelEndpoint] = {}
        self._generation = 0
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._sink: LinkSink | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._down = False
        self._stats = {"tx_messages": 0, "tx_bytes": 0, "rx_messages": 0, "rx_bytes": 0,
                       "rx_too_large": 0, "endpoints_created": 0}

    def _open_chardev(self, n: int | str) -> Chardev:
        if self._chardev is not None:
            chardev, self._chardev = self._chardev, None
            return chardev
        return Chardev.open(n, sysfs=self._sysfs)

    @property
    def default_name(self) -> str:  # type: ignore[override]
        """The service's name, or the endpoint device's (from sysfs)."""
        if self.service is not None:
            return self.service[0]
        if self._device is not None and self._chardev is None:
            try:
                _path, index = endpoint_node(self._device, self._sysfs)
                if index is not None:
                    return self._sysfs.endpoint(index).name
            except RpmsgError:
                pass
        return ""

    def describe(self) -> dict[str, Any]:
        with self._lock:
            eps = {f"{k.addr:#x}": (k.chardev.path if k.chardev else None)
                   for k in self._eps.values()}
        return {"role": self.role, "mtu": self.mtu,
                "ctrl": self._ctrl.path if self._ctrl is not None else None,
                "device": None if self._device is None else str(self._device),
                "service": None if self.service is None else
                {"name": self.service[0], "dst": self.service[1]},
                "endpoints": eps}

    def stats(self) -> dict[str, int]:
        return dict(self._stats)

    def seen(self) -> str:
        s = self._stats
        with self._lock:
            gone = [k.gone for k in self._eps.values() if k.gone]
        tail = f"; {gone[0]}" if gone else ""
        return (f"the kernel endpoint delivered {s['rx_messages']} message(s), "
                f"{s['tx_messages']} sent{tail}")

    # Lifecycle --------------------------------------------------------------------------

    def start(self, sink: LinkSink) -> None:
        self._sink = sink
        self._thread = threading.Thread(target=self._run, name="rpmsg-linux-reader",
                                        daemon=True)
        self._thread.start()
        sink.link_up()  # the kernel is the core: it is there as long as the device is

    def close(self, timeout: float | None = None) -> None:
        """Stop the reader, destroy the endpoint devices this link created, close the
        descriptors; within ``timeout`` (the reader never blocks on anything but its wake-up
        pipe, and destroying is one ioctl per endpoint)."""
        budget = Deadline(timeout)
        with self._lock:
            if self._closed:
                return
            self._closed = True
            eps = list(self._eps.values())
            self._eps.clear()
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=budget.remaining())
            if self._thread.is_alive():
                log.warning("linux: reader thread still running after close's budget")
        for kep in eps:
            self._release(kep)
        if self._ctrl is not None:
            self._ctrl.close()
        if self._chardev is not None:  # never used for an endpoint
            self._chardev.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:  # full (a wake-up is pending anyway) or closed
            pass

    # Endpoint hooks ---------------------------------------------------------------------

    def open_endpoint(self, name: str, src: int, dst: int) -> tuple[int, int]:
        if self._ctrl is not None:
            if self.service is not None:
                name = name or self.service[0]
                dst = self.service[1] if dst == ADDR_ANY else dst
            return self._open_via_ctrl(self._ctrl, name, src, dst)
        return self._open_device(name, src, dst)

    def _reserve(self, src: int, dst: int) -> _KernelEndpoint:
        """Take a local address (``src``, or a free handle for ANY) for a new endpoint."""
        with self._lock:
            if self._closed:
                raise EndpointClosedError("the linux: link is closed")
            if src == ADDR_ANY:
                addr = RESERVED_ADDRESSES
                while addr in self._eps:
                    addr += 1
            elif src in self._eps:
                raise AddressInUseError(f"address {src} (0x{src:x}) is already in use")
            else:
                addr = src
            kep = _KernelEndpoint(addr=addr, dst=dst)
            self._eps[addr] = kep
            return kep

    def _unreserve(self, kep: _KernelEndpoint) -> None:
        with self._lock:
            if self._eps.get(kep.addr) is kep:
                del self._eps[kep.addr]
                self._generation += 1

    def _open_via_ctrl(self, ctrl: Ctrl, name: str, src: int, dst: int) -> tuple[int, int]:
        kep = self._reserve(src, dst)
        try:
            kep.index = ctrl.create_endpoint(name, src, dst)
            kep.created = True
            self._stats["endpoints_created"] += 1
            log.info("created %s for endpoint %r (src %s, dst %s) on %s",
                     self._sysfs.endpoint_node(kep.index), name, format_addr(src),
                     format_addr(dst), ctrl.path)
            kep.chardev = self._opener(kep.index)
        except BaseException:
            self._unreserve(kep)
            self._release(kep)
            raise
        return kep.addr, dst

    def _open_device(self, name: str, src: int, dst: int) -> tuple[int, int]:
        assert self._device is not None
        with self._lock:
            if self._eps:
                raise AlreadyOpenError(
                    f"linux:{self._device} carries one endpoint and it is already in use")
        info = None
        index = None
        if self._chardev is None:
            _path, index = endpoint_node(self._device, self._sysfs)
            try:
                info = self._sysfs.endpoint(index) if index is not None else None
            except NotAvailableError:  # no sysfs: trust the caller's addresses
                info = None
        if info is not None:
            if name and name != info.name:
                raise NotAvailableError(
                    f"{info.path} is endpoint {info.name!r}, not {name!r}")
            if info.dst is not None and dst not in (ADDR_ANY, info.dst):
                raise NotAvailableError(f"{info.path} sends to {info.dst:#x}, not {dst:#x}")
            if info.src not in (None, ADDR_ANY) and src not in (ADDR_ANY, info.src):
                raise NotAvailableError(f"{info.path} has address {info.src:#x}, not {src:#x}")
            if info.dst is not None:
                dst = info.dst
            if info.src not in (None, ADDR_ANY) and src == ADDR_ANY:
                src = info.src
        kep = self._reserve(src, dst)
        try:
            kep.chardev = self._opener(self._device)
            kep.index = index if index is not None else kep.chardev.index
        except BaseException:
            self._unreserve(kep)
            raise
        return kep.addr, dst

    def start_endpoint(self, addr: int, direct: bool = False) -> None:
        with self._lock:
            kep = self._eps.get(addr)
            if kep is None:
                return
            kep.active = True
            kep.direct = direct
            self._generation += 1
        self._wake()

    def close_endpoint(self, addr: int) -> None:
        with self._lock:
            kep = self._eps.pop(addr, None)
            self._generation += 1
        if kep is not None:
            self._wake()
            self._release(kep)

    def _release(self, kep: _KernelEndpoint) -> None:
        """Close the endpoint's descriptor; destroy the device if this link created it."""
        chardev, kep.chardev = kep.chardev, None
        try:
            # Never destroy a device the kernel already removed: a second DESTROY_EPT on the
            # same file would delete the kernel's device object twice.
            if kep.gone is not None or not kep.created:
                pass
            elif chardev is not None and not chardev.closed:
                chardev.destroy_device()
                log.info("destroyed %s", chardev.path)
            elif kep.index is not None and self._ctrl is not None:
                self._ctrl.destroy_endpoint(index=kep.index)
                log.info("destroyed %s", self._sysfs.endpoint_node(kep.index))
        except RpmsgError as exc:  # gone already (remote reset) or busy: nothing to free
            log.info("endpoint device rpmsg%s not destroyed: %s", kep.index, exc)
        finally:
            if chardev is not None:
                chardev.close()

    # Data path --------------------------------------------------------------------------

    def send(self, src: int, dst: int, payload: Buffer, timeout: float | None) -> None:
        size = len(payload)
        if size > self.mtu:
            raise MessageTooLargeError(size, self.mtu)
        kep = self._eps.get(src)
        chardev = None if kep is None else kep.chardev
        if chardev is None or self._closed:
            raise EndpointClosedError(f"no open kernel endpoint at address {src:#x}")
        if kep is not None and kep.dst != dst:
            if kep.dst == ADDR_ANY:
                raise NotBoundError(f"{chardev.path} is receive-only (created with dst ANY)")
            raise NotAvailableError(f"{chardev.path} can only send to {kep.dst:#x} (the "
                                    f"kernel fixes the destination), not to {dst:#x}")
        try:
            chardev.write_message(payload, timeout, self.mtu)
        except RemoteDisconnectedError as exc:
            if kep is not None and chardev.is_device:
                self._endpoint_gone(kep, str(exc))
            raise
        stats = self._stats
        stats["tx_messages"] += 1
        stats["tx_bytes"] += size

    def read_direct(self, addr: int, timeout: float | None) -> tuple[int, bytes] | None:
        kep = self._eps.get(addr)
        chardev = None if kep is None else kep.chardev
        if kep is None or chardev is None:
            raise EndpointClosedError(f"no open kernel endpoint at address {addr:#x}")
        if kep.gone is not None and chardev.is_device:  # its queue died with it (read
            raise RemoteDisconnectedError(kep.gone)     # checks the endpoint first)
        try:  # concurrent readers need no lock: each message goes to one of them
            data = chardev.read_message(self.mtu, timeout)
        except RemoteDisconnectedError as exc:
            self._endpoint_gone(kep, str(exc))
            raise
        except MessageTooLargeError:
            self._stats["rx_too_large"] += 1
            raise
        if data is None:
            return None
        if data is EOF:
            reason = f"{chardev.path}: end of stream"
            self._endpoint_gone(kep, reason)
            raise RemoteDisconnectedError(reason)
        assert isinstance(data, bytes)
        stats = self._stats
        stats["rx_messages"] += 1
        stats["rx_bytes"] += len(data)
        return kep.dst, data

    def rx_fileno(self, addr: int) -> int:
        kep = self._eps.get(addr)
        if kep is None or kep.chardev is None or kep.chardev.closed:
            raise EndpointClosedError(f"no open kernel endpoint at address {addr:#x}")
        return kep.chardev.rfd

    def _run(self) -> None:
        """The reader thread: deliver callback endpoints' messages in order, watch direct
        endpoints for errors."""
        try:
            generation = -1
            poller = select.poll()
            by_fd: dict[int, _KernelEndpoint] = {}
            while True:
                with self._lock:
                    if self._closed:
                        return
                    if generation != self._generation:
                        generation = self._generation
                        poller, by_fd = self._build_poller()
                for fd, events in poller.poll():
                    if fd == self._wake_r:
                        try:
                            os.read(self._wake_r, 4096)
                        except OSError:
                            pass
                        continue
                    kep = by_fd.get(fd)
                    if kep is None:
                        continue
                    if kep.direct:
                        self._watch(kep, events)
                    else:
                        self._drain(kep)
        except Exception as exc:  # never die silently: report and stop
            log.exception("linux: reader thread failed")
            if self._sink is not None:
                self._sink.broken(exc)

    def _build_poller(self) -> tuple[select.poll, dict[int, _KernelEndpoint]]:
        """A poll set of the wake-up pipe and every live endpoint (lock held): input for
        callback endpoints, errors only (no events) for direct ones."""
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        by_fd: dict[int, _KernelEndpoint] = {}
        for kep in self._eps.values():
            chardev = kep.chardev
            if kep.active and kep.gone is None and not kep.hung_up and chardev is not None \
                    and not chardev.closed:
                by_fd[chardev.rfd] = kep
                poller.register(chardev.rfd, 0 if kep.direct else select.POLLIN)
        return poller, by_fd

    def _watch(self, kep: _KernelEndpoint, events: int) -> None:
        """A direct endpoint reported an error: a device is gone; a stream hung up (its
        reader drains what is left, then finds the end)."""
        chardev = kep.chardev
        if chardev is None or not events & _ERR_EVENTS:
            return
        if chardev.is_device and not events & select.POLLNVAL:
            self._endpoint_gone(kep, f"{chardev.path}: the endpoint is gone (the remote "
                                     "went away)")
        else:
            with self._lock:
                kep.hung_up = True
                self._generation += 1

    def _drain(self, kep: _KernelEndpoint) -> None:
        sink = self._sink
        for _ in range(_BURST):
            chardev = kep.chardev
            if chardev is None or sink is None:
                return
            try:
                data = chardev.read_message(self.mtu, 0)
            except MessageTooLargeError as exc:
                self._stats["rx_too_large"] += 1
                log.warning("%s: %s", chardev.path, exc)
                continue
            except RemoteDisconnectedError as exc:
                self._endpoint_gone(kep, str(exc))
                return
            except EndpointClosedError:
                return
            if data is None:
                return
            if data is EOF:
                self._endpoint_gone(kep, f"{chardev.path}: end of stream")
                return
            assert isinstance(data, bytes)
            self._stats["rx_messages"] += 1
            self._stats["rx_bytes"] += len(data)
            sink.deliver(kep.dst, kep.addr, data)

    def _endpoint_gone(self, kep: _KernelEndpoint, reason: str) -> None:
        """The kernel removed an endpoint device (remote gone): stop watching it, link down."""
        with self._lock:
            if kep.gone is not None:
                return
            kep.gone = reason
            self._generation += 1
            report = not self._down
            self._down = True
        self._wake()
        if report:
            log.info("remote gone: %s", reason)
            if self._sink is not None:
                self._sink.link_down(reason)


def connect_path(path: str, sysfs: Sysfs) -> LinuxLink:
    """A link on a control device or on one endpoint device given by path or name."""
    if path.startswith("/"):
        path = canonical_path(path)  # follow /dev/rpmsg/<rproc>/<name> to its node
    ctrl_match = CTRL_RE.fullmatch(path) or CTRL_RE.fullmatch(os.path.basename(path))
    if ctrl_match is not None:
        target = path if path.startswith("/") else int(ctrl_match.group(1))
        return LinuxLink(ctrl=Ctrl.open(target, sysfs=sysfs), sysfs=sysfs)
    node, _index = endpoint_node(path, sysfs)
    if not sysfs.wait_node(node):
        raise missing_node_error(node, sysfs, "no such endpoint device (see `rpmsg list`)")
    check_path(node, sysfs)  # refuse a planted link or file now, not at create_endpoint
    return LinuxLink(device=path, sysfs=sysfs)


#: Pause between two looks at sysfs while waiting for a service (grows to the maximum).
_SERVICE_POLL = (0.02, 0.25)


def connect_service(opening: Opening, sysfs: Sysfs, service: str | None,
                     rproc: str | None) -> LinuxLink:
    """Wait (within the open's deadline) for ``service`` on ``rproc``, then link to it."""
    what = (f"service {service!r}" if service is not None else "a control device") + \
        (f" on remote processor {rproc!r}" if rproc is not None else "")
    delay = _SERVICE_POLL[0]
    while True:
        target = find_service(sysfs, service, rproc)
        if target is not None:
            break
        if opening.expired():
            raise opening.timeout_error(what, describe_scope(sysfs, rproc))
        opening.waiting(what, wait_hint(sysfs, rproc))
        remaining = opening.remaining()
        time.sleep(delay if remaining is None else min(delay, remaining))
        delay = min(delay * 2, _SERVICE_POLL[1])
    if target.node is not None:
        log.info("linux: %s is %s", what, target.node)
        return LinuxLink(device=target.node, sysfs=sysfs)
    assert target.ctrl is not None
    defaults = (target.name, target.dst) if target.channel is not None else None
    log.info("linux: %s is reached through %s", what, sysfs.ctrl_node(target.ctrl))
    return LinuxLink(ctrl=Ctrl.open(target.ctrl, sysfs=sysfs), sysfs=sysfs, service=defaults)
