"""The rpmsg command line: help, error reporting without tracebacks, demo over loop:."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rpmsg.cli.main import main

COMMANDS = ["demo", "remote", "ping", "bench", "transports", "send", "listen", "services"]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rpmsg", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: rpmsg" in capsys.readouterr().out


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_bad_url_is_one_line_error_without_traceback() -> None:
    proc = run_cli("ping", "nosuch:thing")
    assert proc.returncode == 1
    assert proc.stderr.startswith("rpmsg: error: unknown transport 'nosuch'")
    assert "Traceback" not in proc.stderr


def test_unknown_option_in_url_is_rejected() -> None:
    proc = run_cli("ping", "shm:x?bufers=3")
    assert proc.returncode == 1
    assert "unknown option(s) bufers" in proc.stderr and "Traceback" not in proc.stderr


def test_transports_json_lists_builtin_schemes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["transports", "--json"]) == 0
    schemes = {t["scheme"] for t in json.loads(capsys.readouterr().out)}
    assert {"loop", "shm", "vhost-user", "linux", "uart", "spi", "spisim"} <= schemes


def test_demo_over_loop_binds_echoes_and_measures() -> None:
    proc = run_cli("demo", "--transport", "loop", "--count", "200", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["echo_ok"] is True and result["mtu"] == 496
    assert [r["size"] for r in result["rows"]] == [17, 496, 16, 496]
    assert all(r["ok"] for r in result["rows"])


def test_stats_line_of_each_kind_of_counter() -> None:
    from rpmsg.cli.stats import stats_line

    now = {"tx_messages": 120, "tx_bytes": 7680, "link_rx_messages": 50,
           "dropped_queue_full": 2, "link_framing_errors": 0, "ns_send_failures": 1,
           "link_restarts": 1, "reconnects": 2}
    before = {"tx_messages": 20, "link_rx_messages": 10}
    assert stats_line(now, before, 2.0) == (
        "tx 120 msg 7680 B (50 msg/s) | rx 50 msg (20 msg/s) | "
        "drops: dropped_queue_full=2 ns_send_failures=1 | reconnects 3")
    assert stats_line(now, None, 1.0).startswith("tx 120 msg 7680 B | rx 50 msg | ")
    assert stats_line({}, None, 1.0) == "drops: none | reconnects 0"
