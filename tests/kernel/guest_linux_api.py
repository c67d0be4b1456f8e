"""Guest program for ``test_linux_api.py``: runs INSIDE User-Mode Linux, prints one JSON object.

It drives the real ``rpmsg_ctrl``/``rpmsg_char`` of Linux 6.12 through the library's generic
API (``rpmsg.open("linux:...")``: Device/Endpoint) and through the ``rpmsg`` command run as
subprocesses, against the host's vhost-user device (``remote.py`` plus the relay of
``test_linux_api.py``). Only ctrl-created endpoints are used (created from process context), no
name-service announcement. Each check records its own result (``{"ok", "value"}`` or
``{"ok": False, "trace"}``) so one failure does not hide the others. ``PARAMS`` comes from the
host in ``RPMSG_TEST_PARAMS``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import rpmsg
from rpmsg.linux import Ctrl, Endpoint, list_endpoints

PARAMS: dict[str, Any] = json.loads(os.environ["RPMSG_TEST_PARAMS"])
ECHO: int = PARAMS["echo_addr"]
RELAY: int = PARAMS["relay_addr"]
RESULTS: dict[str, Any] = {}
CLASS = "/sys/class/rpmsg"
WAIT = 5.0


def check(name: str) -> Callable[[Callable[[], Any]], None]:
    """Run the decorated function now; record its return value or its error."""

    def run(fn: Callable[[], Any]) -> None:
        try:
            RESULTS[name] = {"ok": True, "value": fn()}
        except BaseException as exc:
            RESULTS[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                             "trace": traceback.format_exc()}

    return run


class NodeFallback(threading.Thread):
    """Make ``/dev/rpmsg*`` nodes from sysfs ``dev`` (major:minor) if nothing else does.

    Where devtmpfs or the boot's own node daemon keeps ``/dev`` current this never acts: a
    node must be missing (or stale) on two scans ``GRACE`` s apart before it is touched.
    ``made``/``removed`` count what it did.
    """

    GRACE = 0.2

    def __init__(self) -> None:
        super().__init__(name="node-fallback", daemon=True)
        self.made = 0
        self.removed = 0
        self._suspects: set[str] = set()

    def run(self) -> None:
        while True:
            suspects = set()
            for path, rdev in self._wanted().items():
                if not os.path.exists(path):
                    suspects.add(path)
                    if path in self._suspects:
                        try:
                            os.mknod(path, stat.S_IFCHR | 0o600, rdev)
                            self.made += 1
                        except FileExistsError:
                            pass
            for entry in os.listdir("/dev"):
                if re.fullmatch(r"rpmsg(_ctrl)?\d+", entry) and \
                        not os.path.exists(f"{CLASS}/{entry}"):
                    path = f"/dev/{entry}"
                    suspects.add(path)
                    if path in self._suspects:
                        try:
                            os.unlink(path)
                            self.removed += 1
                        except FileNotFoundError:
                            pass
            self._suspects = suspects
            time.sleep(self.GRACE)

    @staticmethod
    def _wanted() -> dict[str, int]:
        wanted = {}
        try:
            names = os.listdir(CLASS)
        except FileNotFoundError:
            return {}
        for name in names:
            try:
                with open(f"{CLASS}/{name}/dev", encoding="ascii") as f:
                    major, _, minor = f.read().strip().partition(":")
                wanted[f"/dev/{name}"] = os.makedev(int(major), int(minor))
            except (OSError, ValueError):  # gone meanwhile
                continue
        return wanted


def gone(path: str, timeout: float = WAIT) -> bool:
    """Whether ``path`` is gone within ``timeout`` s (a node goes shortly after its device)."""
    deadline = time.monotonic() + timeout
    while os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def appears(path: str, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def kernel_endpoints(prefix: str) -> dict[str, dict[str, Any]]:
    """The endpoint devices whose name starts with ``prefix``, by name."""
    return {e.name: e.to_dict() for e in list_endpoints() if e.name.startswith(prefix)}


def error_name(fn: Callable[[], Any]) -> str:
    try:
        fn()
    except Exception as exc:
        return type(exc).__name__
    return "no error"


FALLBACK = NodeFallback()
FALLBACK.start()


@check("generic_ctrl")
def _generic_ctrl() -> dict[str, Any]:
    out: dict[str, Any] = {}
    with rpmsg.open("linux:rpmsg_ctrl0") as dev:
        ep = dev.create_endpoint("api-echo", dst=ECHO)
        info = kernel_endpoints("api-echo")["api-echo"]
        node, sys_entry = info["path"], f"{CLASS}/rpmsg{info['index']}"
        out["kernel"] = {k: info[k] for k in ("name", "src", "dst", "ctrl")}
        out["node_before"] = os.path.exists(node)
        out["sysfs_before"] = os.path.exists(sys_entry)
        out["ep_dst"] = ep.dst
        ep.send(b"hello")
        out["echo"] = ep.recv(timeout=WAIT).decode()
        for i in range(20):
            ep.send(f"m{i}".encode())
        out["in_order"] = [ep.recv(timeout=WAIT) for _ in range(20)] == \
            [f"m{i}".encode() for i in range(20)]
        m = (ep.send(b"who"), ep.recv_message(timeout=WAIT))[1]
        out["message"] = {"data": m.data.decode(), "src": m.src, "dst": m.dst,
                          "dst_is_addr": m.dst == ep.addr}
        big = bytes(i & 0xFF for i in range(496))
        ep.send(big)
        out["496_echoed"] = ep.recv(timeout=WAIT) == big
        out["497"] = error_name(lambda: ep.send(bytes(497)))
        out["after_497"] = (ep.send(b"still ok"), ep.recv(timeout=WAIT))[1].decode()
        out["recv_timeout"] = error_name(lambda: ep.recv(timeout=0.3))
        # A chosen local address is the kernel endpoint's address: the echo comes back to it.
        fixed = dev.create_endpoint("api-fixed", src=0x600, dst=ECHO)
        out["fixed"] = {"addr": fixed.addr,
                        "kernel_src": kernel_endpoints("api-fixed")["api-fixed"]["src"]}
        fixed.send(b"fixed")
        out["fixed"]["echo"] = fixed.recv(timeout=WAIT).decode()
        ep.close()
        out["sysfs_after_close"] = os.path.exists(sys_entry)
        out["node_gone_after_close"] = gone(node)
        out["remaining"] = sorted(kernel_endpoints("api-"))
        fixed_node = kernel_endpoints("api-fixed")["api-fixed"]["path"]
    # Closing the device destroys what it created and did not close.
    out["left_after_device_close"] = sorted(kernel_endpoints("api-"))
    out["fixed_node_gone"] = gone(fixed_node)
    # The short form linux: is control device 0.
    with rpmsg.open("linux:") as dev:
        eps = [dev.create_endpoint(f"api-short-{i}", dst=ECHO) for i in range(2)]
        for i, e in enumerate(eps):
            e.send(f"short{i}".encode())
        out["short_form"] = [e.recv(timeout=WAIT).decode() for e in eps]
    out["short_left"] = sorted(kernel_endpoints("api-"))
    return out


@check("generic_device")
def _generic_device() -> dict[str, Any]:
    out: dict[str, Any] = {}
    with Ctrl.open(0) as ctrl:
        n = ctrl.create_endpoint("api-dev", dst=ECHO)
    node = f"/dev/rpmsg{n}"
    out["index"] = n
    out["urls"] = {}
    for url in (f"linux:{node}", f"linux:rpmsg{n}"):
        with rpmsg.open(url) as dev:
            # Name and destination are the device's (from sysfs); others are refused.
            got: dict[str, Any] = {
                "wrong_dst": error_name(lambda d=dev: d.create_endpoint(dst=ECHO + 1)),
                "wrong_name": error_name(lambda d=dev: d.create_endpoint("other"))}
            ep = dev.create_endpoint() if url.startswith("linux:/") else \
                dev.create_endpoint("api-dev", dst=ECHO)
            got["dst"] = ep.dst
            ep.send(url.encode())
            got["echo"] = ep.recv(timeout=WAIT).decode()
            got["second_endpoint"] = error_name(lambda d=dev: d.create_endpoint())
            got["497"] = error_name(lambda e=ep: e.send(bytes(497)))
            got["recv_timeout"] = error_name(lambda e=ep: e.recv(timeout=0.3))
        out["urls"][url] = got
    # The device existed before; closing does not destroy it.
    out["node_after_close"] = os.path.exists(node)
    out["missing_device"] = error_name(lambda: rpmsg.open("linux:/dev/rpmsg999"))
    with Ctrl.open(0) as ctrl:
        ctrl.destroy_endpoint(name="api-dev", dst=ECHO)
    out["node_gone_after_destroy"] = gone(node)
    return out


def cli(*args: str, timeout: float = 30) -> dict[str, Any]:
    """Run ``python -m rpmsg ARGS``; its exit status and output."""
    proc = subprocess.run([sys.executable, "-m", "rpmsg", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    return {"rc": proc.returncode, "out": proc.stdout, "err": proc.stderr}


def has_open(pid: int, node: str) -> bool:
    """Whether process ``pid`` has ``node`` open (so its kernel endpoint exists)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == node:
                return True
        except OSError:
            continue
    return False


@check("cli")
def _cli() -> dict[str, Any]:
    out: dict[str, Any] = {}
    # An echo endpoint (send) and a receive-only one at a fixed address (listen): a process's
    # open of /dev/rpmsgN creates the kernel endpoint and its close destroys it, and rpmsg_char
    # allows one open at a time, so `send` and `listen` need one device each; the host's relay
    # forwards what `send` sends to the listener's address.
    tx = cli("create", "cli-tx", "--dst", str(RELAY))
    rx = cli("create", "--ctrl", "0", "cli-rx", "--src", "0x700")
    out["create"] = {"tx": tx, "rx": rx}
    tx_node, rx_node = tx["out"].strip(), rx["out"].strip()
    out["nodes_exist"] = appears(tx_node) and appears(rx_node)
    listing = cli("list", "--json")
    out["list_rc"] = listing["rc"]
    out["list"] = json.loads(listing["out"]) if listing["rc"] == 0 else listing
    out["list_text"] = cli("list")
    listener = subprocess.Popen(
        [sys.executable, "-m", "rpmsg", "listen", rx_node, "--count", "1", "--timeout", "20",
         "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not has_open(listener.pid, rx_node) and listener.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        out["send"] = cli("send", tx_node, "to=0x700;hello from the CLI")
        lout, lerr = listener.communicate(timeout=25)
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()
    out["listen"] = {"rc": listener.returncode, "out": lout, "err": lerr}
    out["destroy_tx"] = cli("destroy", tx_node)
    out["tx_gone"] = gone(tx_node)
    out["destroy_rx_by_name"] = cli("destroy", "cli-rx", "--src", "0x700")
    out["rx_gone"] = gone(rx_node)
    out["left"] = sorted(kernel_endpoints("cli-"))
    # Errors: a destroyed device, a silent endpoint, a missing control device.
    out["err_send_gone"] = cli("send", tx_node, "x")
    quiet = cli("create", "cli-quiet")
    quiet_node = quiet["out"].strip()
    out["err_listen_timeout"] = cli("listen", quiet_node, "--count", "1", "--timeout", "0.3")
    cli("destroy", quiet_node)
    out["err_no_ctrl"] = cli("create", "--ctrl", "7", "cli-x")
    return out


def ask(addr: int, command: bytes) -> bytes:
    """Send ``command`` to the remote's endpoint ``addr`` and return its answer."""
    with Ctrl.open(0) as ctrl:
        n = ctrl.create_endpoint(name="api-ask", dst=addr)
    try:
        with Endpoint.open(n) as ep:
            ep.send(command)
            return ep.recv(timeout=WAIT) or b""
    finally:
        with Ctrl.open(0) as ctrl:
            ctrl.destroy_endpoint(name="api-ask", dst=addr)


def opened_in_thread(url: str, timeout: float) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["dev"] = rpmsg.open(url, timeout=timeout)
        except BaseException as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"

    t = threading.Thread(target=run)
    t.start()
    return t, result


@check("service")
def _service() -> dict[str, Any]:
    """linux:?service= against real announcements (no remoteproc in UML: no rproc=)."""
    from rpmsg import registry
    from rpmsg.linux.service import find_service
    from rpmsg.linux.sysfs import default_sysfs

    out: dict[str, Any] = {}
    notices: list[str] = []

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            notices.append(record.getMessage())

    wait_log = logging.getLogger("rpmsg.wait")
    wait_log.addHandler(Grab())
    wait_log.setLevel(logging.INFO)
    registry.WAIT_NOTICE_AFTER = 0.0  # say it at once: the notice is this test's signal
    out["before"] = find_service(default_sysfs(), "svc-late", None) is None
    thread, result = opened_in_thread("linux:?service=svc-late", 60)
    deadline = time.monotonic() + 30
    while not notices and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    out["notice"] = notices[:1]
    out["still_waiting"] = thread.is_alive()
    out["announce"] = ask(PARAMS["announcer_addr"], b"announce:svc-late").decode()
    thread.join(60)
    if "error" in result:
        raise AssertionError(result["error"])
    with result["dev"] as dev:
        out["link_service"] = dev.link.describe()["service"]
        ep = dev.create_endpoint()
        out["ep_dst"] = ep.dst
        out["kernel"] = {k: v for k, v in kernel_endpoints("svc-late")["svc-late"].items()
                         if k in ("name", "dst", "ctrl")}
        ep.send(b"late hello")
        out["echo"] = (ep.recv(timeout=WAIT) or b"").decode()
    out["left"] = sorted(kernel_endpoints("svc-late"))
    try:
        rpmsg.open("linux:?service=never-announced", timeout=0.5)
        out["timeout"] = "no error"
    except Exception as exc:
        out["timeout"] = f"{type(exc).__name__}: {exc}"
    t0 = time.monotonic()
    out["rproc"] = error_name(lambda: rpmsg.open("linux:?rproc=m4&service=x", timeout=60))
    out["rproc_seconds"] = time.monotonic() - t0
    # A service with its own endpoint device: rpmsg-raw, bound by rpmsg_char.
    out["announce_raw"] = ask(PARAMS["control_addr"], b"announce-raw").decode()
    with rpmsg.open("linux:?service=rpmsg-raw", timeout=30) as dev:
        out["raw_device"] = dev.link.describe()["device"]
        raw_ep = dev.create_endpoint()
        raw_ep.send(b"raw hello")
        out["raw_echo"] = (raw_ep.recv(timeout=WAIT) or b"").decode()
    listing = cli("list", "--json")
    out["list_remoteprocs"] = json.loads(listing["out"])["remoteprocs"] \
        if listing["rc"] == 0 else listing
    return out


def run_as_nobody(fn: Callable[[], Any]) -> str:
    """``fn()`` in a forked child with uid/gid nobody; what it raised (``Type|message``)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 0
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            fn()
            os.write(w, b"no error")
        except BaseException as exc:
            os.write(w, f"{type(exc).__name__}|{exc}".encode())
            status = 1
        finally:
            os._exit(status)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    os.waitpid(pid, 0)
    return out


@check("nodes")
def _nodes() -> dict[str, Any]:
    """rpmsg_char's one opener (EBUSY) names the holder; EACCES names the node and the fix."""
    import encodings.ascii  # noqa: F401  (the unprivileged child can import nothing more)
    import grp  # noqa: F401
    import pwd  # noqa: F401

    out: dict[str, Any] = {}
    with Ctrl.open(0) as ctrl:
        n = ctrl.create_endpoint(name="api-busy", dst=ECHO)
    node = f"/dev/rpmsg{n}"
    appears(node)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import os,sys; fd=os.open(sys.argv[1], os.O_RDWR); "
         "print('open', flush=True); sys.stdin.read()", node],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        out["holder_open"] = holder.stdout.readline().strip()
        out["holder_pid"] = holder.pid
        try:
            Endpoint.open(n)
            out["busy"] = "no error"
        except Exception as exc:
            out["busy"] = f"{type(exc).__name__}: {exc}"
    finally:
        holder.kill()
        holder.wait()
    os.chmod(node, 0o600)
    out["denied"] = run_as_nobody(lambda: Endpoint.open_fd(n))
    with Endpoint.open(n) as ep:  # root still may, and the device works
        ep.send(b"after")
        out["after"] = (ep.recv(timeout=WAIT) or b"").decode()
    with Ctrl.open(0) as ctrl:
        ctrl.destroy_endpoint(name="api-busy", dst=ECHO)
    return out


RESULTS["fallback_nodes"] = {"made": FALLBACK.made, "removed": FALLBACK.removed}
print(json.dumps(RESULTS))
sys.stdout.flush()
