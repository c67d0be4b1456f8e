"""The C reference of the shm benchmark is a real interop peer of our shm: transport.

The C device and C driver are built with the system compiler (skipped, with the reason, where
there is none) and run for about a second against our Python side in both roles, through
the public Endpoint API: messages must arrive complete, unmodified and in order. The C device
must also write exactly the resource table our layout declares. No timing is asserted.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import rpmsg
from rpmsg.bench import cref
from rpmsg.bench.shm_proto import ECHO_NAME, SEQ, SINK_NAME, StreamCheck, control, payload
from rpmsg.errors import NotAvailableError
from rpmsg.virtio.layout import OPENAMP_LINUX


@pytest.fixture(scope="module")
def programs() -> dict[str, Path]:
    try:
        return cref.build_shm()
    except NotAvailableError as exc:
        pytest.skip(f"C reference not built: {exc}")


@pytest.fixture
def name() -> Iterator[str]:
    name = f"rpmsg-ctest-{uuid.uuid4().hex[:8]}"
    yield name
    for path in (f"/dev/shm/{name}", f"/tmp/{name}.event.0"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _wait_for_file(path: str, size: int, timeout: float = 30.0) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            data = Path(path).read_bytes()
            if len(data) >= size and data[:4] == b"\x01\x00\x00\x00":
                return data
        time.sleep(0.01)
    raise AssertionError(f"{path} did not appear")


def _c_device(programs: dict[str, Path], name: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(programs["shm_device"]), "--shm", name, "--timeout", "60"],
                            stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str]) -> str:
    try:
        _out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
        raise AssertionError("the C program did not exit") from None
    assert proc.returncode == 0, err
    return err


def test_c_device_writes_the_table_our_layout_declares(programs: dict[str, Path],
                                                       name: str) -> None:
    proc = _c_device(programs, name)
    try:
        data = _wait_for_file(f"/dev/shm/{name}", OPENAMP_LINUX.size)
        table = OPENAMP_LINUX.resource_table().encode()
        assert len(data) == OPENAMP_LINUX.size
        assert data[: len(table)] == table
    finally:
        proc.kill()
        proc.communicate()


def test_python_driver_endpoints_against_the_c_device(programs: dict[str, Path],
                                                      name: str) -> None:
    proc = _c_device(programs, name)
    try:
        rng = random.Random(7)
        with rpmsg.open(f"shm:{name}?timeout=30") as dev:
            echo = dev.create_endpoint(ECHO_NAME)
            sink = dev.create_endpoint(SINK_NAME)
            assert echo.wait_bound(30) == 1024 and sink.wait_bound(30) == 1025
            # Echo: varied sizes, one at a time and pipelined, must come back verbatim in order.
            sent = [rng.randbytes(rng.randint(1, dev.mtu)) for _ in range(1500)]
            for msg in sent[:500]:
                echo.send(msg, timeout=30)
                assert echo.recv(timeout=30) == msg
            for i in range(500, 1500, 50):
                assert echo.send_many(sent[i : i + 50], timeout=30) == 50
                for msg in sent[i : i + 50]:
                    assert echo.recv(timeout=30) == msg
            # Stream: the C sink checks sequence numbers and the CRC-32 of everything.
            for size in (16, 496):
                count = 10_000
                sink.send(control(count), timeout=30)
                assert sink.recv(timeout=30) == b"ok"
                check = StreamCheck()
                check.reset(count)
                msgs = [payload(i, size) for i in range(count)]
                for msg in msgs:
                    check.take(msg)
                for i in range(0, count, 128):
                    assert sink.send_many(msgs[i : i + 128], timeout=30) == len(msgs[i : i + 128])
                assert json.loads(sink.recv(timeout=60)) == json.loads(check.report())
    finally:
        err = _finish(proc)
    assert "messages" in err


def test_c_driver_against_python_device_endpoints(programs: dict[str, Path], name: str) -> None:
    received: list[bytes] = []
    check = StreamCheck()
    lock = threading.Lock()

    def on_echo(ept: rpmsg.Endpoint, data: bytes, src: int) -> None:
        ept.send_to(src, data, timeout=30)

    def on_sink(ept: rpmsg.Endpoint, data: bytes, src: int) -> None:
        with lock:
            if len(data) < SEQ.size:
                check.reset(int(data))
                ept.send_to(src, b"ok", timeout=30)
                return
            received.append(data)
            if check.take(data):
                ept.send_to(src, check.report(), timeout=30)

    dev = rpmsg.open(f"shm:{name}?timeout=30", side="remote")
    try:
        dev.create_endpoint(ECHO_NAME, callback=on_echo)
        dev.create_endpoint(SINK_NAME, callback=on_sink)
        count = 3000
        proc = subprocess.run(
            [str(programs["shm_driver"]), "--shm", name, "--timeout", "60", "--rounds", "200",
             "--echo", "2000", "--min-seconds", "0", "--stream", str(count),
             "--sizes", "16,496", "--windows", "1,16,64"],
            capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        figures = json.loads(proc.stdout)
    finally:
        dev.close()
    for size in (16, 496):
        for window in (1, 16, 64):
            echo = figures[f"echo_w{window}_{size}"]
            assert echo["in_order"] is True and echo["messages"] >= 2000
        assert figures[f"stream_{size}"]["complete_in_order"] is True
        assert figures[f"rtt_{size}"]["count"] == 180
    expected = [payload(i, 16) for i in range(count)] + [payload(i, 496) for i in range(count)]
    assert received == expected


def test_bench_runs_every_pairing_and_compares_with_c(programs: dict[str, Path]) -> None:
    from rpmsg.bench import shm
    from rpmsg.bench.shm_host import Workload

    work = Workload(rounds=50, echo=300, min_seconds=0.0, stream=2000, windows=(1, 16))
    result = shm.run(work=work)
    json.dumps(result)
    assert set(result["pairs"]) == {shm._label(d, v) for d, v in shm.PAIRS}
    for label, fig in result["pairs"].items():
        assert "error" not in fig and "device_error" not in fig, (label, fig)
        for size in (16, 496):
            assert fig[f"stream_{size}"]["complete_in_order"], (label, size)
            assert all(fig[f"echo_w{w}_{size}"]["in_order"] for w in (1, 16)), (label, size)
    assert result["vs_c"]["C<->C"]["rtt_16_p50"] == 1.0
    assert set(result["floor"]) == {"python", "c"}
    text = shm.render(shm.summary(result))
    assert "C<->rpmsg" in text and "rpmsg<->C" in text and "ratio to C<->C" in text


def test_without_a_compiler_the_c_reference_is_skipped_with_a_note(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from rpmsg.bench import shm
    from rpmsg.bench.shm_host import Workload

    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("CC", raising=False)
    with pytest.raises(NotAvailableError, match="no C compiler"):
        cref.compiler()
    work = Workload(rounds=20, echo=50, min_seconds=0.0, stream=200, sizes=(16,), windows=(1,))
    result = shm.run(work=work, pairs=(("link", "link"),))
    assert result["c_reference"].startswith("skipped: no C compiler")
    assert list(result["pairs"]) == ["rpmsg link<->rpmsg link"]
    assert "no C compiler" in capsys.readouterr().err


def test_a_built_program_is_cached_by_content(tmp_path: Path, programs: dict[str, Path],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    src = tmp_path / "hello.c"
    src.write_text("int main(void) { return 3; }\n")
    first = cref.build("hello", [src])
    assert first.is_relative_to(tmp_path / "rpmsg-bench")
    assert subprocess.run([str(first)]).returncode == 3
    assert cref.build("hello", [src]) == first
    src.write_text("int main(void) { return 4; }\n")
    second = cref.build("hello", [src])
    assert second != first and subprocess.run([str(second)]).returncode == 4
    bad = tmp_path / "bad.c"
    bad.write_text("this is not C\n")
    with pytest.raises(NotAvailableError, match="building the C reference bad failed"):
        cref.build("bad", [bad])
