"""Local endpoint address allocation (Linux lowest-free idr, or OpenAMP next-fit bitmap)."""

from __future__ import annotations

from rpmsg.core.policy import Policy
from rpmsg.errors import AddressInUseError
from rpmsg.wire.rpmsg import ADDR_ANY


class AddressSpace:
    """Which local addresses are taken; hands out dynamic ones according to the policy."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._used: set[int] = set()
        self._next = policy.addr_min

    def __contains__(self, addr: int) -> bool:
        return addr in self._used

    def allocate(self, src: int = ADDR_ANY) -> int:
        """Take ``src``, or a free dynamic address if ``src`` is ANY."""
        if src != ADDR_ANY:
            return self._take_fixed(src)
        lo, hi = self.policy.addr_min, self.policy.addr_max
        span = hi - lo + 1
        start = self._next if self.policy.allocation == "next-fit" else lo
        # Count only the dynamic range: the NS address and static addresses below it
        # must not make the range look full.
        if sum(1 for a in self._used if lo <= a <= hi) < span:
            for i in range(span):
                addr = lo + (start - lo + i) % span
                if addr not in self._used:
                    self._used.add(addr)
                    self._next = addr + 1 if addr < hi else lo
                    return addr
        raise AddressInUseError(f"no free dynamic address in {lo}..{hi}")

    def _take_fixed(self, src: int) -> int:
        if not 0 <= src < ADDR_ANY:
            raise AddressInUseError(f"address {src:#x} is not a valid endpoint address")
        if self.policy.addr_min <= src and src > self.policy.addr_max:
            raise AddressInUseError(
                f"address {src} is above the {self.policy.name} limit {self.policy.addr_max}")
        if src in self._used:
            raise AddressInUseError(f"address {src} (0x{src:x}) is already in use")
        self._used.add(src)
        return src

    def release(self, addr: int) -> None:
        self._used.discard(addr)
