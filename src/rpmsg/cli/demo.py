"""``rpmsg demo``: a simulated remote processor in a child process and the host talking to it.

The child runs ``rpmsg remote`` over shared memory (the virtio device role); this process is
the host (the driver role, as Linux would be). The demo shows the name-service binding, an
echo, a short latency/throughput table, and cleans up every file it created.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import rpmsg
from rpmsg.cli.args import count as count_arg
from rpmsg.device import Device
from rpmsg.endpoint import Endpoint
from rpmsg.services.ping import ping

ECHO = "rpmsg-echo"
STARTUP_TIMEOUT = 20.0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo", help="run the demo: a simulated remote and a host over shared memory",
        description="Start a simulated remote processor in a child process over shared "
        "memory, bind to its services by name, echo a message, print a latency and "
        "throughput table, and clean up.")
    p.add_argument("--transport", choices=["shm", "loop"], default="shm",
                   help="shm: two processes over shared memory (default); loop: in-process")
    p.add_argument("--count", type=count_arg, default=2000,
                   help="messages per measurement (default 2000)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run)


class _Say:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)


def run(args: argparse.Namespace) -> int:
    say = _Say(args.json)
    if args.transport == "loop":
        return _run_loop(args, say)
    return _run_shm(args, say)


def _run_loop(args: argparse.Namespace, say: _Say) -> int:
    from rpmsg.cli.remote import serve

    name = f"demo-{os.getpid()}"
    say(f"rpmsg demo: host and simulated remote in one process over loop:{name}")
    with rpmsg.open(f"loop:{name}", side="remote") as remote:
        serve(remote, [ECHO], True)
        with rpmsg.open(f"loop:{name}") as host:
            results = _host_session(host, args.count, say)
    _print_results(results, args.json, say)
    return _verdict(results)


def _run_shm(args: argparse.Namespace, say: _Say) -> int:
    tag = f"rpmsg-demo-{os.getpid()}"
    shm_path = Path("/dev/shm") / tag
    sock_path = Path(tempfile.gettempdir()) / f"{tag}.sock"
    url = f"shm:{tag}?socket={sock_path}"
    cmd = [sys.executable, "-m", "rpmsg", "remote", url, "--echo", ECHO, "--ping"]
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    results: dict[str, Any] = {}
    try:
        _wait_ready(child)
        say(f"remote: simulated remote processor, pid {child.pid}, serving '{ECHO}' and "
            "'rpmsg-ping' (virtio device role)")
        say(f"        shared memory {shm_path}, kicks over UNIX socket {sock_path}")
        with rpmsg.open(url) as host:
            results = _host_session(host, args.count, say)
    finally:
        _stop_child(child)
        stale = [str(p) for p in (shm_path, sock_path) if p.exists()]
        for leftover in stale:
            Path(leftover).unlink(missing_ok=True)
    results["stale_files"] = stale
    _print_results(results, args.json, say)
    if stale:
        say(f"warning: removed stale files left by the remote: {', '.join(stale)}")
        return 1
    say("cleaned up: remote stopped, no shared-memory file or socket left behind")
    return _verdict(results)


def _verdict(results: dict[str, Any]) -> int:
    """Exit status 0 only if the echo and every measurement were right; else 1, with what
    failed on stderr (the table says NO, the JSON ok: false, but a script sees the status)."""
    failed = ([] if results.get("echo_ok") else ["the echo"]) + [
        f"{r['test']} of {r['size']} B" for r in results.get("rows", []) if not r["ok"]]
    if not failed:
        return 0
    print(f"rpmsg demo: failed: {', '.join(failed)}", file=sys.stderr)
    return 1


def _wait_ready(child: subprocess.Popen[str]) -> None:
    """Wait for the child's 'serving' line; fail with its stderr if it dies first."""
    assert child.stdout is not None
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([child.stdout], [], [], 0.1)
        if ready:
            line = child.stdout.readline()
            if "serving" in line:
                return
        if child.poll() is not None:
            err = child.stderr.read() if child.stderr else ""
            raise rpmsg.NotAvailableError(f"the simulated remote exited with status "
                                          f"{child.returncode}: {err.strip()}")
    raise rpmsg.RpmsgTimeoutError(f"the simulated remote did not start within "
                                  f"{STARTUP_TIMEOUT} s")


def _stop_child(child: subprocess.Popen[str]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _host_session(host: Device, count: int, say: _Say) -> dict[str, Any]:
    info = host.link.describe()
    say(f"host:   link up as {info.get('role') or 'host'}, MTU {host.mtu} bytes")
    host.wait_service(ECHO, timeout=10)
    host.wait_service("rpmsg-ping", timeout=10)
    for name, addr in host.services:
        say(f"host:   remote announced {name!r} at {addr:#x} (name service CREATE)")
    ept = host.create_endpoint(ECHO)
    dst = ept.wait_bound(timeout=5)
    say(f"host:   endpoint {ECHO!r} at {ept.addr:#x} bound to remote {dst:#x}")
    greeting = b"hello from the host"
    ept.send(greeting, timeout=5)
    reply = ept.recv(timeout=5)
    say(f"host -> remote: {greeting!r}")
    say(f"remote -> host: {reply!r}  ({'echo ok' if reply == greeting else 'MISMATCH'})")
    rows = []
    for size in (16, host.mtu):
        res = ping(host, service="rpmsg-ping", count=max(count // 4, 10), size=max(size, 17),
                   timeout=5)
        s = res.summary()
        rows.append({"test": "rpmsg-ping round trip", "size": res.size, "ok": res.ok,
                     "p50_us": s.get("p50_s", 0) * 1e6, "p99_us": s.get("p99_s", 0) * 1e6,
                     "msgs_per_s": s.get("round_trips_per_s", 0.0),
                     "mb_per_s": s.get("round_trips_per_s", 0.0) * res.size / 1e6})
    for size in (16, host.mtu):
        rows.append(_stream(ept, size, count))
    ept.close()
    return {"echo_ok": reply == greeting, "mtu": host.mtu, "rows": rows,
            "host_stats": host.stats()}


def _stream(ept: Endpoint, size: int, count: int) -> dict[str, Any]:
    """Pipelined echo: one thread sends ``count`` messages, this one checks every echo."""
    def payload(i: int) -> bytes:  # made when needed: --count may be any size
        return (i & 0xFFFFFFFF).to_bytes(4, "little") * (size // 4) + bytes(size % 4)

    errors: list[BaseException] = []

    def sender() -> None:
        try:
            for i in range(count):
                ept.send(payload(i), timeout=10)
        except BaseException as exc:  # reported below
            errors.append(exc)

    t0 = time.perf_counter()
    th = threading.Thread(target=sender, daemon=True)
    th.start()
    good = 0
    for i in range(count):
        try:
            if ept.recv(timeout=10) == payload(i):
                good += 1
        except rpmsg.RpmsgError as exc:
            errors.append(exc)
            break
    elapsed = time.perf_counter() - t0
    th.join(timeout=10)
    rate = count / elapsed if elapsed else 0.0
    return {"test": "echo stream (both ways)", "size": size, "ok": good == count and not errors,
            "p50_us": None, "p99_us": None, "msgs_per_s": rate, "mb_per_s": rate * size / 1e6}


def _print_results(results: dict[str, Any], as_json: bool, say: _Say) -> None:
    if as_json:
        print(json.dumps(results, indent=2))
        return
    say("")
    say(f"  {'measurement':24} {'size':>6} {'p50':>10} {'p99':>10} {'msgs/s':>10} "
        f"{'MB/s':>8}  ok")
    for r in results.get("rows", []):
        p50 = f"{r['p50_us']:.0f} us" if r["p50_us"] is not None else "-"
        p99 = f"{r['p99_us']:.0f} us" if r["p99_us"] is not None else "-"
        say(f"  {r['test']:24} {r['size']:>4} B {p50:>10} {p99:>10} {r['msgs_per_s']:>10.0f} "
            f"{r['mb_per_s']:>8.2f}  {'yes' if r['ok'] else 'NO'}")
    say("")
