"""The vhost-user back-end state machine (sans-IO): requests in, replies and events out.

:meth:`VhostUserBackend.handle` takes one :class:`~rpmsg.vhost_user.messages.Message` and
returns the events the driver must carry out: bytes to send back (:class:`Reply`), a new memory
table to map, kick/call descriptors, and when to start or stop the virtqueues. It negotiates
features (the rpmsg name-service bit, ``VHOST_USER_F_PROTOCOL_FEATURES``, ``VERSION_1``) and
protocol features (BACKEND_REQ, which UML 6.12 needs, and REPLY_ACK), and validates every
request; a bad one raises :class:`~rpmsg.vhost_user.messages.VhostUserError` and the driver
drops the connection.

Request handling, following the order UML 6.12 uses (spec kernel-peer-uml.md §3):

========================  =========================================================
SET_OWNER / RESET_OWNER   start / forget a session (RESET_OWNER stops the queues)
GET_FEATURES              reply u64 device features
SET_FEATURES              must be a subset of what was offered
GET/SET_PROTOCOL_FEATURES reply u64 / must be a subset
SET_BACKEND_REQ_FD        one descriptor, kept open (closing it tells UML we left)
SET_MEM_TABLE             regions + one descriptor each -> :class:`MemoryTable`
SET_VRING_NUM/BASE/ADDR   per-queue configuration (the queue must be stopped)
SET_VRING_KICK/CALL/ERR   per-queue descriptors -> :class:`QueueFd`
SET_VRING_ENABLE          enable/disable; both queues ready and enabled -> :class:`Start`
GET_VRING_BASE            stop the queue -> :class:`VringBaseWanted`; the driver answers
                          with :meth:`VhostUserBackend.vring_base_reply`
GET_QUEUE_NUM             reply u64 number of queues
========================  =========================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from rpmsg.vhost_user.messages import (
    MemRegion,
    Message,
    VhostUserError,
    close_fds,
    decode_mem_table,
    decode_single_fd,
    decode_u64,
    decode_vring_addr,
    decode_vring_fd,
    decode_vring_state,
    encode_u64_reply,
    encode_vring_state_reply,
    expect_no_payload,
)
from rpmsg.wire.vhost_user import (
    VHOST_USER_F_PROTOCOL_FEATURES,
    VIRTIO_F_VERSION_1,
    ProtocolFeature,
    Request,
)
from rpmsg.wire.virtio import VIRTIO_RPMSG_F_NS

#: Device features offered by default: NS | PROTOCOL_FEATURES | VERSION_1 = 0x140000001.
DEFAULT_FEATURES = (1 << VIRTIO_RPMSG_F_NS) | (1 << VHOST_USER_F_PROTOCOL_FEATURES) \
    | (1 << VIRTIO_F_VERSION_1)
#: Protocol features offered by default. BACKEND_REQ is needed by UML 6.12 (without it the
#: vring interrupt collides with the timer IRQ); REPLY_ACK makes errors visible to it.
DEFAULT_PROTOCOL_FEATURES = (1 << ProtocolFeature.BACKEND_REQ) | (1 << ProtocolFeature.REPLY_ACK)
#: rpmsg uses two virtqueues: vq0 device->driver, vq1 driver->device.
RPMSG_QUEUES = 2
MAX_QUEUE_SIZE = 32768


# Events ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """Bytes to send back on the connection."""

    data: bytes


@dataclass(frozen=True)
class MemoryTable:
    """A new memory table; the driver maps it and owns (closes) the region descriptors."""

    regions: tuple[MemRegion, ...]


@dataclass(frozen=True)
class QueueFd:
    """A kick, call or err descriptor for queue ``index`` (None: none, poll instead).

    The driver owns ``fd`` from now on and closes the descriptor it replaces.
    """

    kind: str  # "kick" | "call" | "err"
    index: int
    fd: int | None


@dataclass(frozen=True)
class BackendReqFd:
    """The back-end request channel; the driver keeps it open while connected."""

    fd: int


@dataclass(frozen=True)
class QueueConfig:
    """Where one started virtqueue lives, in guest physical addresses."""

    index: int
    num: int
    desc: int
    avail: int
    used: int
    #: Index of the next avail entry to process (SET_VRING_BASE); usually 0.
    base: int


@dataclass(frozen=True)
class Start:
    """All queues are configured and enabled: start the device engine on them."""

    queues: tuple[QueueConfig, ...]
    features: int


@dataclass(frozen=True)
class Stop:
    """Stop the device engine (a queue was disabled or reconfigured)."""

    reason: str


@dataclass(frozen=True)
class VringBaseWanted:
    """GET_VRING_BASE: the driver reports the queue's next avail index with
    :meth:`VhostUserBackend.vring_base_reply` (after the Stop that precedes this event)."""

    index: int


Event = Reply | MemoryTable | QueueFd | BackendReqFd | Start | Stop | VringBaseWanted


@dataclass
class _Queue:
    num: int = 0
    base: int = 0
    addr: tuple[int, int, int] | None = None  # desc, avail, used (user addresses)
    kick_set: bool = False
    enabled: bool = False


@dataclass
class VhostUserBackend:
    """State of one front-end session of a virtio-rpmsg vhost-user back-end."""

    features: int = DEFAULT_FEATURES
    protocol_features: int = DEFAULT_PROTOCOL_FEATURES
    num_queues: int = RPMSG_QUEUES
    #: Negotiated values (what the front-end acknowledged).
    acked_features: int = 0
    acked_protocol_features: int = 0
    owner: bool = False
    running: bool = False
    queues: list[_Queue] = field(default_factory=list)
    regions: tuple[MemRegion, ...] = ()

    def __post_init__(self) -> None:
        self.queues = [_Queue() for _ in range(self.num_queues)]

    # Queries ------------------------------------------------------------------------------

    @property
    def ns_negotiated(self) -> bool:
        return bool(self.acked_features >> VIRTIO_RPMSG_F_NS & 1)

    def _proto(self, bit: int) -> bool:
        return bool(self.acked_protocol_features >> bit & 1)

    # Requests -----------------------------------------------------------------------------

    def handle(self, msg: Message) -> list[Event]:
        """Process one request; return the events for the driver, in order.

        Raises VhostUserError (or DecodeError) for a request that breaks the protocol; any
        descriptors still attached to ``msg`` are closed in every case.
        """
        try:
            events = self._dispatch(msg)
        finally:
            msg.close_fds()
        if (msg.need_reply and self._proto(ProtocolFeature.REPLY_ACK)
                and not any(isinstance(e, Reply) for e in events)):
            # REPLY_ACK: success is a u64 0 (errors drop the connection instead).
            events.append(Reply(encode_u64_reply(msg.request, 0)))
        return events

    def _dispatch(self, msg: Message) -> list[Event]:
        handler = _HANDLERS.get(msg.request)
        if handler is None:
            raise VhostUserError(f"unsupported {msg.name} (payload {len(msg.payload)} bytes)")
        return handler(self, msg)

    # Handlers, one per request (the table is _HANDLERS below) ----------------------------

    def _set_owner(self, msg: Message) -> list[Event]:
        expect_no_payload(msg)
        self.owner = True
        return []

    def _reset_owner(self, msg: Message) -> list[Event]:
        expect_no_payload(msg)
        events = self._stop("front-end reset the owner")
        self.owner = False
        self.acked_features = 0
        self.queues = [_Queue() for _ in range(self.num_queues)]
        return events

    def _get_features(self, msg: Message) -> list[Event]:
        expect_no_payload(msg)
        return [Reply(encode_u64_reply(msg.request, self.features))]

    def _set_features(self, msg: Message) -> list[Event]:
        value = decode_u64(msg)
        if value & ~self.features:
            raise VhostUserError(
                f"{msg.name}: features {value:#x} include bits not offered "
                f"({value & ~self.features:#x}; offered {self.features:#x})")
        self.acked_features = value
        if not value >> VHOST_USER_F_PROTOCOL_FEATURES & 1:
            # Without protocol features rings start enabled (vhost-user spec).
            for q in self.queues:
                q.enabled = True
        return self._maybe_start()

    def _get_protocol_features(self, msg: Message) -> list[Event]:
        expect_no_payload(msg)
        return [Reply(encode_u64_reply(msg.request, self.protocol_features))]

    def _set_protocol_features(self, msg: Message) -> list[Event]:
        value = decode_u64(msg)
        if value & ~self.protocol_features:
            raise VhostUserError(
                f"{msg.name}: protocol features {value:#x} include bits not offered "
                f"(offered {self.protocol_features:#x})")
        self.acked_protocol_features = value
        return []

    def _get_queue_num(self, msg: Message) -> list[Event]:
        expect_no_payload(msg)
        return [Reply(encode_u64_reply(msg.request, self.num_queues))]

    def _set_backend_req_fd(self, msg: Message) -> list[Event]:
        if not self._proto(ProtocolFeature.BACKEND_REQ):
            raise VhostUserError(f"{msg.name} without the BACKEND_REQ protocol feature")
        return [BackendReqFd(decode_single_fd(msg))]

    def _set_mem_table(self, msg: Message) -> list[Event]:
        regions = decode_mem_table(msg)
        events = self._stop("memory table replaced")
        self.regions = tuple(MemRegion(r.guest_addr, r.size, r.user_addr,
                                       r.mmap_offset, -1) for r in regions)
        events.append(MemoryTable(tuple(regions)))
        return events + self._maybe_start()

    def _set_vring_addr(self, msg: Message) -> list[Event]:
        addr = decode_vring_addr(msg)
        q = self._queue(msg, addr.index)
        events = self._stop(f"queue {addr.index} address changed")
        for name, value in (("desc", addr.desc), ("avail", addr.avail), ("used", addr.used)):
            if not any(r.contains_user(value) for r in self.regions):
                raise VhostUserError(
                    f"{msg.name}: queue {addr.index} {name} address {value:#x} is outside "
                    "the memory table")
        q.addr = (addr.desc, addr.avail, addr.used)
        return events + self._maybe_start()

    def _set_vring_fd(self, msg: Message) -> list[Event]:
        """SET_VRING_KICK, SET_VRING_CALL and SET_VRING_ERR: a descriptor for one queue."""
        vfd = decode_vring_fd(msg)
        try:
            q = self._queue(msg, vfd.index)
        except VhostUserError:
            if vfd.fd is not None:
                close_fds([vfd.fd])
            raise
        kind = _VRING_FD_KINDS[msg.request]
        events: list[Event] = [QueueFd(kind, vfd.index, vfd.fd)]
        if kind == "kick":
            q.kick_set = True
            if not self._proto_features_acked():
                q.enabled = True
            events += self._maybe_start()
        return events

    def _set_vring_num(self, msg: Message) -> list[Event]:
        state = decode_vring_state(msg)
        q = self._queue(msg, state.index)
        num = state.num
        if num == 0 or num & (num - 1) or num > MAX_QUEUE_SIZE:
            raise VhostUserError(f"{msg.name}: queue {state.index} size {num} is not a "
                                 f"power of two in 1..{MAX_QUEUE_SIZE}")
        events = self._stop(f"queue {state.index} resized")
        q.num = num
        return events + self._maybe_start()

    def _set_vring_base(self, msg: Message) -> list[Event]:
        state = decode_vring_state(msg)
        q = self._queue(msg, state.index)
        if state.num > 0xFFFF:
            raise VhostUserError(f"{msg.name}: base {state.num} does not fit 16 bits")
        events = self._stop(f"queue {state.index} base changed")
        q.base = state.num
        return events + self._maybe_start()

    def _set_vring_enable(self, msg: Message) -> list[Event]:
        state = decode_vring_state(msg)
        q = self._queue(msg, state.index)
        if state.num not in (0, 1):
            raise VhostUserError(f"{msg.name}: enable value {state.num} is not 0 or 1")
        q.enabled = bool(state.num)
        if not q.enabled:
            return self._stop(f"queue {state.index} disabled")
        return self._maybe_start()

    def _get_vring_base(self, msg: Message) -> list[Event]:
        """Stop, then the driver supplies the queue's next avail index."""
        state = decode_vring_state(msg)
        q = self._queue(msg, state.index)
        events = self._stop(f"queue {state.index} stopped by GET_VRING_BASE")
        q.kick_set = False  # the ring restarts only after a new SET_VRING_KICK
        events.append(VringBaseWanted(state.index))
        return events

    def _proto_features_acked(self) -> bool:
        return bool(self.acked_features >> VHOST_USER_F_PROTOCOL_FEATURES & 1)

    def _queue(self, msg: Message, index: int) -> _Queue:
        if not 0 <= index < self.num_queues:
            raise VhostUserError(f"{msg.name}: queue index {index} (device has "
                                 f"{self.num_queues} queues)")
        return self.queues[index]

    def vring_base_reply(self, index: int, next_avail: int) -> Reply:
        """The reply to GET_VRING_BASE for queue ``index``; remembers it as the new base."""
        self.queues[index].base = next_avail & 0xFFFF
        return Reply(encode_vring_state_reply(Request.GET_VRING_BASE, index, next_avail & 0xFFFF))

    # Start / stop -------------------------------------------------------------------------

    def _stop(self, reason: str) -> list[Event]:
        if not self.running:
            return []
        self.running = False
        return [Stop(reason)]

    def _maybe_start(self) -> list[Event]:
        if self.running or not self.regions:
            return []
        for q in self.queues:
            if not (q.enabled and q.kick_set and q.num and q.addr is not None):
                return []
        configs = []
        for i, q in enumerate(self.queues):
            assert q.addr is not None
            desc, avail, used = (self._to_guest(i, name, a)
                                 for name, a in zip(("desc", "avail", "used"), q.addr,
                                                    strict=True))
            configs.append(QueueConfig(i, q.num, desc, avail, used, q.base))
        self.running = True
        return [Start(tuple(configs), self.acked_features)]

    def _to_guest(self, index: int, name: str, user_addr: int) -> int:
        for r in self.regions:
            if r.contains_user(user_addr):
                return user_addr - r.user_addr + r.guest_addr
        raise VhostUserError(
            f"queue {index} {name} address {user_addr:#x} is outside the memory table")

    def reset(self) -> None:
        """Forget the session (the connection was closed); descriptors are the driver's."""
        self.owner = False
        self.running = False
        self.acked_features = 0
        self.acked_protocol_features = 0
        self.regions = ()
        self.queues = [_Queue() for _ in range(self.num_queues)]


Handler = Callable[[VhostUserBackend, Message], list[Event]]
#: Request -> handler: the whole protocol this back-end speaks (anything else is refused).
_HANDLERS: dict[int, Handler] = {
    Request.SET_OWNER: VhostUserBackend._set_owner,
    Request.RESET_OWNER: VhostUserBackend._reset_owner,
    Request.GET_FEATURES: VhostUserBackend._get_features,
    Request.SET_FEATURES: VhostUserBackend._set_features,
    Request.GET_PROTOCOL_FEATURES: VhostUserBackend._get_protocol_features,
    Request.SET_PROTOCOL_FEATURES: VhostUserBackend._set_protocol_features,
    Request.GET_QUEUE_NUM: VhostUserBackend._get_queue_num,
    Request.SET_BACKEND_REQ_FD: VhostUserBackend._set_backend_req_fd,
    Request.SET_MEM_TABLE: VhostUserBackend._set_mem_table,
    Request.SET_VRING_NUM: VhostUserBackend._set_vring_num,
    Request.SET_VRING_BASE: VhostUserBackend._set_vring_base,
    Request.SET_VRING_ADDR: VhostUserBackend._set_vring_addr,
    Request.SET_VRING_ENABLE: VhostUserBackend._set_vring_enable,
    Request.GET_VRING_BASE: VhostUserBackend._get_vring_base,
    Request.SET_VRING_KICK: VhostUserBackend._set_vring_fd,
    Request.SET_VRING_CALL: VhostUserBackend._set_vring_fd,
    Request.SET_VRING_ERR: VhostUserBackend._set_vring_fd,
}
_VRING_FD_KINDS: dict[int, str] = {Request.SET_VRING_KICK: "kick", Request.SET_VRING_CALL: "call",
                   Request.SET_VRING_ERR: "err"}
