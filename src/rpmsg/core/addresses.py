"""Local endpoint address allocation (Linux lowest-free idr, or OpenAMP next-fit bitmap)."""

from __future__ import annotations

from rpmsg.core.policy import Policy
from rpmsg.errors import AddressInUseError
from rpmsg.wire.rpmsg import ADDR_ANY


class AddressSpace:
    """Which local addresses are taken; hands out dynamic ones according to the policy.

    Allocation costs O(1) amortised however many endpoints exist (10,000 endpoints used to
    take seconds to create): the taken addresses of the dynamic range are counted, not
    recounted, and the lowest-free rule starts its search above a floor below which every
    address is known to be taken.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._used: set[int] = set()
        self._next = policy.addr_min
        #: Taken addresses inside addr_min..addr_max (the NS address and static ones below
        #: it must not make the range look full).
        self._dynamic = 0
        #: Every address in addr_min..floor-1 is taken (lowest-free searches from here).
        self._floor = policy.addr_min

    def __contains__(self, addr: int) -> bool:
        return addr in self._used

    def _in_range(self, addr: int) -> bool:
        return self.policy.addr_min <= addr <= self.policy.addr_max

    def allocate(self, src: int = ADDR_ANY) -> int:
        """Take ``src``, or a free dynamic address if ``src`` is ANY."""
        if src != ADDR_ANY:
            return self._take_fixed(src)
        lo, hi = self.policy.addr_min, self.policy.addr_max
        span = hi - lo + 1
        if self._dynamic >= span:
            raise AddressInUseError(f"no free dynamic address in {lo}..{hi}")
        lowest = self.policy.allocation != "next-fit"
        start = self._floor if lowest else self._next
        used = self._used
        addr = start
        for i in range(span):  # a free one exists: the count says so
            addr = lo + (start - lo + i) % span
            if addr not in used:
                break
        used.add(addr)
        self._dynamic += 1
        self._next = addr + 1 if addr < hi else lo
        if lowest:
            self._floor = addr + 1
        return addr

    def _take_fixed(self, src: int) -> int:
        if not 0 <= src < ADDR_ANY:
            raise AddressInUseError(f"address {src:#x} is not a valid endpoint address")
        if self.policy.addr_min <= src and src > self.policy.addr_max:
            raise AddressInUseError(
                f"address {src} is above the {self.policy.name} limit {self.policy.addr_max}")
        if src in self._used:
            raise AddressInUseError(f"address {src} (0x{src:x}) is already in use")
        self._used.add(src)
        if self._in_range(src):
            self._dynamic += 1
        return src

    def release(self, addr: int) -> None:
        if addr not in self._used:
            return
        self._used.discard(addr)
        if self._in_range(addr):
            self._dynamic -= 1
            if addr < self._floor:
                self._floor = addr
