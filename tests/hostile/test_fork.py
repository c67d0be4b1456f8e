"""fork() with an open Device: the child cannot use or close the parent's link.

Found by using the library from outside the suite: a child of ``fork()`` that sent on an
inherited shm Device wrote the parent's ring and broke its link for good
(``TransportBrokenError: used.idx jumped``); one that closed it reset the parent's session.
Now the child's copy raises :class:`TransportBrokenError` saying why, and its ``close()``
touches nothing of the link.
"""

from __future__ import annotations

import os

from hostile_helpers import bind

import rpmsg
from rpmsg import TransportBrokenError


def _in_child(client: rpmsg.Endpoint, server: rpmsg.Endpoint,
              host: rpmsg.Device, remote: rpmsg.Device) -> int:
    """What the child tries; the exit status says what went wrong (0: all as expected)."""
    calls = [lambda: client.send(b"from the child", timeout=1),
             lambda: server.send_to(client.addr, b"from the child", timeout=1),
             lambda: server.recv(timeout=0.2),
             lambda: client.get_tx_buffer(timeout=1),
             lambda: host.create_endpoint("child"),
             lambda: client.send_many([b"a", b"b"], timeout=1)]
    for n, call in enumerate(calls, 1):
        try:
            call()
        except TransportBrokenError as exc:
            if "fork()" not in str(exc):
                return 100 + n
        except BaseException:
            return 50 + n
        else:
            return n
    client.close()
    host.close()
    remote.close()
    return 0


def test_a_forked_child_neither_uses_nor_closes_the_parents_link(
        pair: tuple[rpmsg.Device, rpmsg.Device]) -> None:
    host, remote = pair
    client, server = bind(host, remote)
    zc = remote.create_endpoint("zc", zero_copy=True)
    zc_client = host.create_endpoint("zc")
    zc_client.wait_bound(timeout=20)
    zc_client.send(b"held across the fork", timeout=20)
    held = zc.recv_buffer(timeout=20)
    client.send(b"queued across the fork", timeout=20)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 99
        try:
            status = _in_child(client, server, host, remote)
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert host.is_up and remote.is_up
    assert server.recv(timeout=20) == b"queued across the fork"  # the child took nothing
    for n in range(300):  # more than the ring's buffers: nothing was lost or reused
        client.send(n.to_bytes(2, "little"), timeout=20)
        assert server.recv(timeout=20) == n.to_bytes(2, "little")
        server.send_to(client.addr, b"back", timeout=20)
        assert client.recv(timeout=20) == b"back"
    assert bytes(held) == b"held across the fork"
    held.release()
    zc_client.send(b"after", timeout=20)
    with zc.recv_buffer(timeout=20) as buf:
        assert bytes(buf) == b"after"
