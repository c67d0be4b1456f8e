"""Guest program for the kernel tests: runs INSIDE User-Mode Linux, prints one JSON object.

It exercises the real ``rpmsg_char``/``rpmsg_ctrl`` of Linux 6.12 through :mod:`rpmsg.linux`
against the vhost-user device the host test serves (see ``test_vhost_rpmsg.py``). Each check
records its own result, so one failure does not hide the others. ``PARAMS`` (echo address,
control address, which checks to run) comes from the host in ``RPMSG_TEST_PARAMS``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from rpmsg.errors import MessageTooLargeError, RemoteDisconnectedError
from rpmsg.linux import Ctrl, Endpoint, list_channels, list_endpoints

PARAMS: dict[str, Any] = json.loads(os.environ["RPMSG_TEST_PARAMS"])
ECHO = PARAMS["echo_addr"]
CONTROL = PARAMS["control_addr"]
RESULTS: dict[str, Any] = {}


def check(name: str) -> Callable[[Callable[[], Any]], None]:
    """Run the decorated function now; record its return value or its error."""

    def run(fn: Callable[[], Any]) -> None:
        if name not in PARAMS["checks"]:
            return
        t0 = time.monotonic()
        try:
            RESULTS[name] = {"ok": True, "value": fn()}
        except BaseException as exc:
            RESULTS[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                             "trace": traceback.format_exc()}
        RESULTS[name]["seconds"] = round(time.monotonic() - t0, 3)

    return run


def sysfs_name(n: int) -> str:
    with open(f"/sys/class/rpmsg/rpmsg{n}/name", encoding="utf-8") as f:
        return f.read().strip()


def raw_channel_index(timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        for ch in list_channels():
            if ch.name == "rpmsg-raw" and ch.endpoints:
                return ch.endpoints[0]
        if time.monotonic() > deadline:
            raise TimeoutError("no rpmsg-raw channel with a /dev/rpmsgN appeared")
        time.sleep(0.01)


def announce_raw() -> list[str]:
    """Have the remote announce ``rpmsg-raw``; return the channel device(s) Linux made for it.

    Nothing is done by hand: the NS CREATE makes Linux add the channel, rpmsg_char probes it
    and guest_devd creates its /dev/rpmsgN (raw_channel_index and Endpoint.open wait for it).
    """
    control(b"announce-raw")
    raw_channel_index()
    return [c.device for c in list_channels() if c.name == "rpmsg-raw"]


def node_gone(path: str, timeout: float = 5.0) -> bool:
    """Whether ``path`` is gone within ``timeout`` s (the node is removed after its uevent)."""
    deadline = time.monotonic() + timeout
    while os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def control(command: bytes) -> float:
    """Ask the host-side test remote to do something (destroy a service, go away); the
    monotonic time its acknowledgement arrived (the remote acts a known delay after it)."""
    with Ctrl.open(0) as ctrl:
        n = ctrl.create_endpoint(name="test-control", dst=CONTROL)
    with Endpoint.open(n) as ep:
        ep.send(command)
        assert ep.recv(timeout=5) == b"ok:" + command
        acked = time.monotonic()
    try:
        with Ctrl.open(0) as ctrl:
            ctrl.destroy_endpoint(name="test-control", dst=CONTROL)
    except Exception:
        pass
    return acked


if "announce" in PARAMS["checks"]:
    RESULTS["announce"] = announce_raw()


@check("announced_channel")
def _announced() -> dict[str, Any]:
    n = raw_channel_index()
    channels = {c.name: {"src": c.src, "dst": c.dst, "driver": c.driver, "device": c.device}
                for c in list_channels()}
    with Endpoint.open(n) as ep:
        ep.send(b"hello from the guest")
        echo = ep.recv(timeout=5)
    return {"index": n, "node": os.path.exists(f"/dev/rpmsg{n}"), "channels": channels,
            "echo": echo.decode() if echo else None}


@check("sizes")
def _sizes() -> dict[str, Any]:
    n = raw_channel_index()
    out: dict[str, Any] = {}
    with Endpoint.open(n) as ep:
        big = bytes(i & 0xFF for i in range(496))
        ep.send(big)
        out["496_echoed"] = ep.recv(timeout=5) == big
        try:
            ep.send(bytes(497))
            out["497"] = "sent"
        except MessageTooLargeError as exc:
            out["497"] = type(exc).__name__
        ep.send(b"")
        out["empty_echo"] = repr(ep.recv(timeout=5))
    return out


@check("ctrl_endpoints")
def _ctrl_endpoints() -> dict[str, Any]:
    out: dict[str, Any] = {}
    with Ctrl.open(0) as ctrl:
        created = {name: ctrl.create_endpoint(name=name, dst=ECHO)
                   for name in ("ept-a", "ept-b", "ept-c")}
        out["created"] = created
        out["names_match"] = all(sysfs_name(n) == name for name, n in created.items())
        eps = {name: Endpoint.open(n) for name, n in created.items()}
        try:
            for name, ep in eps.items():
                ep.send(name.encode())
            out["echoes"] = {name: (ep.recv(timeout=5) or b"").decode()
                             for name, ep in eps.items()}
            # The remote starts a conversation on its own: ask it (via the echo of a
            # command) to send twice.
            eps["ept-b"].send(b"twice:xyz")
            out["twice"] = [(eps["ept-b"].recv(timeout=5) or b"").decode() for _ in range(2)]
        finally:
            for ep in eps.values():
                ep.close()
        ctrl.destroy_endpoint(name="ept-b", dst=ECHO)
        out["b_node_after_destroy"] = not node_gone(f"/dev/rpmsg{created['ept-b']}")
        out["remaining"] = sorted(e.name for e in list_endpoints()
                                  if e.name.startswith("ept-"))
        with Endpoint.open(created["ept-c"]) as ep:
            ep.send(b"still here")
            out["c_after"] = (ep.recv(timeout=5) or b"").decode()
        for name in ("ept-a", "ept-c"):
            ctrl.destroy_endpoint(name=name, dst=ECHO)
        # A freed /dev/rpmsgN index is reused: the next create returns the right one again.
        n = ctrl.create_endpoint(name="ept-d", dst=ECHO)
        out["d_name"] = sysfs_name(n)
        with Endpoint.open(n) as ep:
            ep.send(b"d")
            out["d_echo"] = (ep.recv(timeout=5) or b"").decode()
        ctrl.destroy_endpoint(name="ept-d", dst=ECHO)
    return out


@check("many_endpoints")
def _many() -> dict[str, Any]:
    count = 32
    with Ctrl.open(0) as ctrl:
        nodes = [ctrl.create_endpoint(name=f"many-{i}", dst=ECHO) for i in range(count)]
        eps = [Endpoint.open(n) for n in nodes]
        try:
            for rnd in range(3):
                for i, ep in enumerate(eps):
                    ep.send(f"{i}:{rnd}".encode())
            wrong = []
            for i, ep in enumerate(eps):
                for rnd in range(3):
                    got = ep.recv(timeout=5)
                    if got != f"{i}:{rnd}".encode():
                        wrong.append((i, rnd, got.decode() if got else None))
        finally:
            for ep in eps:
                ep.close()
        for i in range(count):
            ctrl.destroy_endpoint(name=f"many-{i}", dst=ECHO)
    return {"count": count, "distinct_nodes": len(set(nodes)), "wrong": wrong}


@check("asyncio")
def _asyncio() -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        with Ctrl.open(0) as ctrl:
            nodes = [ctrl.create_endpoint(name=f"aio-{i}", dst=ECHO) for i in range(4)]
        eps = [Endpoint.open(n).as_async() for n in nodes]

        async def talk(i: int, ep: Any) -> list[bytes]:
            got = []
            for k in range(20):
                await ep.send(f"{i}/{k}".encode(), timeout=5)
                got.append(await ep.recv(timeout=5))
            return got

        try:
            results = await asyncio.gather(*(talk(i, ep) for i, ep in enumerate(eps)))
            timed_out = False
            try:
                await eps[0].recv(timeout=0.1)
            except TimeoutError:
                timed_out = True
        finally:
            for ep in eps:
                await ep.close()  # the asyncio view's close is a coroutine, as everywhere
            with Ctrl.open(0) as ctrl:
                for i in range(4):
                    ctrl.destroy_endpoint(name=f"aio-{i}", dst=ECHO)
        ok = all(r == [f"{i}/{k}".encode() for k in range(20)] for i, r in enumerate(results))
        return {"all_echoed_in_order": ok, "recv_timeout": timed_out}

    return asyncio.run(main())


def blocked_recv(ep: Endpoint, trigger: Callable[[], float], delay: float) -> dict[str, Any]:
    """Block in recv in a thread, run ``trigger``; report what recv raised and how long after
    the event, which the remote causes ``delay`` seconds after acknowledging the trigger."""
    outcome: dict[str, Any] = {}
    started = threading.Event()

    def reader() -> None:
        started.set()
        try:
            outcome["returned"] = repr(ep.recv(timeout=10))
        except BaseException as exc:
            outcome["error"] = type(exc).__name__
            outcome["is_remote_disconnected"] = isinstance(exc, RemoteDisconnectedError)
        outcome["t_end"] = time.monotonic()

    t = threading.Thread(target=reader)
    t.start()
    started.wait()
    time.sleep(0.1)  # let it block in poll()
    t_ack = trigger()  # when the remote acknowledged: it acts ``delay`` s later
    # Sleep (do not spin): the event must find every guest thread asleep.
    t.join(timeout=15)
    outcome["seconds_after_event"] = round(outcome.pop("t_end", float("nan")) - t_ack - delay, 3)
    return outcome


@check("remote_destroy")
def _destroy() -> dict[str, Any]:
    n = raw_channel_index()
    with Endpoint.open(n) as ep:
        out = blocked_recv(ep, lambda: control(b"destroy-raw"), PARAMS["destroy_delay"])
    out["node_left"] = not node_gone(f"/dev/rpmsg{n}")
    out["channel_left"] = [c.name for c in list_channels() if c.name == "rpmsg-raw"]
    return out


@check("remote_gone")
def _gone() -> dict[str, Any]:
    with Ctrl.open(0) as ctrl:
        n = ctrl.create_endpoint(name="gone", dst=ECHO)
    with Endpoint.open(n) as ep:
        ep.send(b"before")
        assert ep.recv(timeout=5) == b"before"
        out = blocked_recv(ep, lambda: control(b"go-away"), PARAMS["go_away_delay"])
        try:
            ep.send(b"after")
            out["send_after"] = "sent"
        except RemoteDisconnectedError as exc:
            out["send_after"] = type(exc).__name__
    out["ctrl_left"] = not node_gone("/dev/rpmsg_ctrl0")
    return out


print(json.dumps(RESULTS))
sys.stdout.flush()
