"""NuttX-compatible ``rpmsg-ping``: the service that answers pings, and the client that sends them.

The client also works against an echo service (``protocol="echo"``): each payload carries a
sequence number and a pattern, and the reply must be byte-identical.
"""

from __future__ import annotations

import logging
import random
import statistics
import struct
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from rpmsg import checks
from rpmsg.device import Device
from rpmsg.endpoint import Endpoint
from rpmsg.errors import MessageTooLargeError, RpmsgError, RpmsgTimeoutError
from rpmsg.transport import Deadline
from rpmsg.wire.ping import (
    PING_ACK,
    PING_CHECK,
    PING_CMD_MASK,
    PING_CMD_REQ,
    PING_CMD_RSP,
    PING_HEADER,
    PING_MIN_SIZE,
    PING_NAME,
    PingHeader,
)

log = logging.getLogger("rpmsg.services")

PING_SEND_TIMEOUT = 5.0


class PingService:
    """Answers NuttX pings on endpoint ``rpmsg-ping``, exactly as NuttX's ``rpmsg_ping.c``.

    A request with the ACK bit is echoed with ``cmd = 0x20`` (response) and ``len`` set to
    the received length; anything else gets no answer. Responses are never sent unprompted:
    NuttX treats a response's ``cookie`` as a pointer to a semaphore it posts.
    """

    def __init__(self, device: Device, name: str = PING_NAME) -> None:
        self.name = name
        self.answered = 0
        self.unanswered = 0
        self.invalid = 0
        self.check_failures = 0
        self.endpoint = device.create_endpoint(name, callback=self._on_message)

    def _on_message(self, ept: Endpoint, data: bytes, src: int) -> None:
        if len(data) < PING_HEADER.size:
            self.invalid += 1
            return
        hdr = PingHeader.decode(data)
        if hdr.is_response or not hdr.cmd & PING_ACK:
            self.unanswered += 1  # responses to pings we never sent, or no answer asked
            return
        body = data[PING_HEADER.size :]
        if hdr.cmd & PING_CHECK and body and body.count(body[0]) != len(body):
            self.check_failures += 1
            log.warning("rpmsg-ping: data check failed in a %d-byte ping", len(data))
        length = len(data) if hdr.cmd & PING_CMD_MASK == PING_CMD_REQ else PING_MIN_SIZE
        reply = PING_HEADER.pack(PING_CMD_RSP, length, hdr.cookie) + body[: length - 16]
        try:
            ept.send_to(src, reply, timeout=PING_SEND_TIMEOUT)
            self.answered += 1
        except RpmsgError as exc:
            log.warning("rpmsg-ping: reply to %#x failed: %s", src, exc)

    def close(self) -> None:
        self.endpoint.close()


@dataclass
class PingResult:
    """Outcome of a ping run: counts, sizes and round-trip times in seconds."""

    service: str
    protocol: str
    count: int
    size: int
    sent: int = 0
    received: int = 0
    lost: int = 0
    corrupt: int = 0
    late: int = 0
    mtu: int = 0
    rtts: list[float] = field(default_factory=list, repr=False)
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """Every reply arrived and matched."""
        return self.received == self.count and not self.corrupt and not self.lost

    def summary(self) -> dict[str, Any]:
        rtts = sorted(self.rtts)
        out = {k: v for k, v in asdict(self).items() if k != "rtts"}
        if rtts:
            avg = statistics.fmean(rtts)
            out.update(
                min_s=rtts[0], avg_s=avg, max_s=rtts[-1],
                p50_s=rtts[len(rtts) // 2],
                p99_s=rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))],
                rate_mbit_s=self.size * 8 / avg / 1e6,
                round_trips_per_s=len(rtts) / self.elapsed if self.elapsed else 0.0,
            )
        out["ok"] = self.ok
        return out

    def report(self) -> str:
        """NuttX ``rpmsg ping``-style text."""
        s = self.summary()
        lines = [f"ping times: {self.count}", f"buffer_len: {self.mtu}, send_len: {self.size}"]
        if self.rtts:
            for key in ("avg", "min", "max"):
                ns = round(s[f"{key}_s"] * 1e9)
                lines.append(f"{key}: {ns // 1_000_000_000} s, {ns % 1_000_000_000} ns")
            lines.append(f"rate: {s['rate_mbit_s']:.6f} Mbits/sec")
            lines.append(f"p50: {s['p50_s'] * 1e6:.1f} us, p99: {s['p99_s'] * 1e6:.1f} us, "
                         f"{s['round_trips_per_s']:.0f} round trips/s")
        lines.append(f"{self.sent} sent, {self.received} received, {self.lost} lost, "
                     f"{self.corrupt} corrupt, {self.late} late")
        return "\n".join(lines)


_SEQ = struct.Struct("<Q")


class PingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`ping`; :attr:`result` holds the round trips made until then."""

    def __init__(self, result: PingResult) -> None:
        super().__init__()
        self.result = result


def ping(
    device: Device,
    *,
    service: str = PING_NAME,
    count: int = 10,
    size: int = 64,
    timeout: float | None = 5.0,
    protocol: Literal["ping", "echo", "auto"] = "auto",
    check: bool = True,
    random_size: bool = False,
    interval: float = 0.0,
    seed: int | None = None,
) -> PingResult:
    """Measure ``count`` round trips to ``service`` on ``device``.

    ``size`` is the whole payload (for ``rpmsg-ping`` including its 16-byte header, at least
    17, as NuttX counts it). ``protocol`` ``auto`` speaks rpmsg-ping to a service of that
    name and plain echo otherwise. Replies are matched by sequence number; a reply that does
    not arrive within ``timeout`` counts as lost, one that differs as corrupt. Ctrl-C
    raises :class:`PingInterrupted` (a ``KeyboardInterrupt``) carrying the result so far.
    """
    checks.count(count, "count", minimum=0)
    checks.count(size, "size", minimum=0)
    timeout = checks.timeout(timeout)  # None: a reply may take for ever
    interval = checks.pause(interval)
    proto = ("ping" if service == PING_NAME else "echo") if protocol == "auto" else protocol
    mtu = device.mtu
    floor = PING_MIN_SIZE if proto == "ping" else _SEQ.size
    if size > mtu:
        raise MessageTooLargeError(size, mtu)
    size = max(size, floor)
    rng = random.Random(seed)
    result = PingResult(service=service, protocol=proto, count=count, size=size, mtu=mtu)
    ept = device.create_endpoint(service)
    try:
        ept.wait_bound(timeout)
        start = time.perf_counter()
        try:
            for seq in range(1, count + 1):
                n = rng.randint(floor, size) if random_size else size
                payload = _make_payload(proto, seq, n, check)
                t0 = time.perf_counter()
                ept.send(payload, timeout)
                result.sent += 1
                if _await_reply(ept, proto, seq, payload, timeout, result):
                    result.rtts.append(time.perf_counter() - t0)
                if interval:
                    time.sleep(interval)
        except KeyboardInterrupt:
            result.elapsed = time.perf_counter() - start
            raise PingInterrupted(result) from None
        result.elapsed = time.perf_counter() - start
    finally:
        ept.close()
    return result


def _make_payload(proto: str, seq: int, n: int, check: bool) -> bytes:
    if proto == "ping":
        cmd = PING_CMD_REQ | PING_ACK | (PING_CHECK if check else 0)
        fill = seq & 0xFF if check else 0
        return PING_HEADER.pack(cmd, n, seq) + bytes([fill]) * (n - PING_HEADER.size)
    body = bytes((seq + i) & 0xFF for i in range(min(n - _SEQ.size, 256)))
    body = (body * (n // max(len(body), 1) + 1))[: n - _SEQ.size] if body else b""
    return _SEQ.pack(seq) + body


def _await_reply(ept: Endpoint, proto: str, seq: int, sent: bytes, timeout: float | None,
                 result: PingResult) -> bool:
    """Wait for the reply to ``seq``; older replies are counted late and skipped."""
    deadline = Deadline(timeout)
    while True:
        try:
            reply = ept.recv(deadline.remaining())
        except RpmsgTimeoutError:
            result.lost += 1
            return False
        if proto == "ping":
            if len(reply) < PING_HEADER.size:
                result.corrupt += 1
                continue
            hdr = PingHeader.decode(reply)
            got = hdr.cookie
            expected = PING_HEADER.pack(PING_CMD_RSP, len(sent), seq) + sent[PING_HEADER.size:]
        else:
            got = _SEQ.unpack_from(reply)[0] if len(reply) >= _SEQ.size else -1
            expected = sent
        if 0 <= got < seq:
            result.late += 1
            continue
        result.received += 1
        if reply != expected:
            result.corrupt += 1
        return True
