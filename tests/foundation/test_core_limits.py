"""The core under numbers a test rig or a hostile peer reaches: many endpoints, many services.

Found by trying the library from outside the suite: creating 10,000 endpoints took 10 s
(every allocation recounted every taken address), and a peer announcing new (name, address)
pairs grew the list of services, and the time of each lookup, without bound.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rpmsg.core import LINUX, NUTTX, OPENAMP, Policy, RpmsgCore
from rpmsg.core.addresses import AddressSpace
from rpmsg.core.core import SERVICES_MAX, Dropped, ServiceAnnounced
from rpmsg.errors import AddressInUseError
from rpmsg.wire import ADDR_ANY, NS_ADDR, NsFlags


class CountingSet(set[int]):
    """A set that counts how often it is searched and walked."""

    lookups = 0
    walks = 0

    def __contains__(self, item: object) -> bool:
        CountingSet.lookups += 1
        return super().__contains__(item)

    def __iter__(self) -> Iterator[int]:
        CountingSet.walks += 1
        return super().__iter__()


@pytest.mark.parametrize("policy", [LINUX, OPENAMP, NUTTX], ids=lambda p: p.name)
def test_allocation_does_not_walk_the_taken_addresses(policy: Policy) -> None:
    space = AddressSpace(policy)
    counting = CountingSet()
    space._used = counting  # the one place the taken addresses live
    span = policy.addr_max - policy.addr_min + 1
    n = min(span - 10, 5000)
    for _ in range(n):
        space.allocate()
    CountingSet.lookups = CountingSet.walks = 0
    for _ in range(8):
        space.allocate()
    assert CountingSet.walks == 0
    assert CountingSet.lookups <= 8 * 2  # one look (two at a wrap) per new address


def test_lowest_free_reuses_the_lowest_released_address() -> None:
    space = AddressSpace(LINUX)
    got = [space.allocate() for _ in range(10)]
    assert got == list(range(1024, 1034))
    space.release(1027)
    space.release(1025)
    assert space.allocate() == 1025
    assert space.allocate() == 1027
    assert space.allocate() == 1034
    space.allocate(1036)  # a fixed one inside the range is skipped later
    assert space.allocate() == 1035
    assert space.allocate() == 1037


def test_next_fit_continues_after_the_last_one_and_wraps() -> None:
    space = AddressSpace(OPENAMP)
    first = [space.allocate() for _ in range(3)]
    assert first == [1024, 1025, 1026]
    space.release(1024)
    assert space.allocate() == 1027  # next-fit: not back to the hole yet
    for _ in range(1151 - 1027):
        space.allocate()
    assert space.allocate() == 1024  # wrapped into the hole
    with pytest.raises(AddressInUseError):
        space.allocate()


def test_static_addresses_below_the_range_do_not_fill_it() -> None:
    space = AddressSpace(OPENAMP)
    for addr in (53, 1, 2, 1000):
        space.allocate(addr)
    got = [space.allocate() for _ in range(128)]
    assert sorted(got) == list(range(1024, 1152))
    with pytest.raises(AddressInUseError):
        space.allocate()
    space.release(1100)
    space.release(1100)  # twice: counted once
    assert space.allocate() == 1100
    with pytest.raises(AddressInUseError):
        space.allocate()


def _create(core: RpmsgCore, name: str, addr: int) -> None:
    body = name.encode().ljust(32, b"\0") + addr.to_bytes(4, "little") + \
        int(NsFlags.CREATE).to_bytes(4, "little")
    assert core.receive(addr, NS_ADDR, body) is None


def test_a_flood_of_announcements_keeps_a_bounded_list() -> None:
    core = RpmsgCore(NUTTX)
    core.set_link_up()
    notes: list[object] = []
    for i in range(SERVICES_MAX + 50):
        _create(core, f"svc{i % 7}", 0x400 + i)
        notes += core.take_notes()  # as the Device does after each message
    assert len(core.services) == SERVICES_MAX
    assert core.stats.ns_services_overflow == 50
    events = core.take_events()
    assert sum(isinstance(e, ServiceAnnounced) for e in events) == SERVICES_MAX
    assert sum(isinstance(n, Dropped) and "services already known" in n.reason
               for n in notes) == 50
    # The first ones are still there and still bind; taking one makes room for another.
    rec = core.create("svc0", ADDR_ANY, ADDR_ANY)
    assert rec.dst == 0x400
    _create(core, "late", 0x9000)
    assert ("late", 0x9000) in core.services
