"""The `mediasrv` command as a user runs it: a real process, real signals, real ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mediasrv import __version__
from mediasrv.config import DEFAULT_CONFIG_DIR, DEFAULT_PLUGIN_DIR

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = str(DEFAULT_CONFIG_DIR)


def mediasrv(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mediasrv", *args], capture_output=True,
                          text=True, timeout=30, cwd=ROOT, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A site directory laid over the shipped conf.d: listeners on free ports, a private DB."""
    port = free_port()
    d = tmp_path / "site"
    d.mkdir()
    (d / "99-test.toml").write_text(
        f'[sip]\nlisten = ["udp:127.0.0.1:{port}", "tcp:127.0.0.1:{port}"]\n'
        f'[storage]\npath = "{tmp_path}/db.sqlite3"\n[api]\nlisten = ""\n')
    return d


def test_version() -> None:
    out = mediasrv("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"mediasrv {__version__}"


def test_check_config_on_the_shipped_configuration() -> None:
    out = mediasrv("check-config", "-c", SHIPPED)
    assert out.returncode == 0, out.stderr
    assert "configuration OK" in out.stdout
    assert "service attended_transfer: enabled  start=#4 cancel=*0 swap=*9 three_way=*3" \
        in out.stdout
    assert "extensions (10): 100, 101" in out.stdout
    assert ("SIP edge: 200 requests/s and ban after 50 invalid in 10 s for 600 s per source; "
            "32 connections per source, header timeout 10 s") in out.stdout
    assert "TLS:" not in out.stdout  # the shipped configuration has no tls: listener


def test_check_config_prints_every_problem_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "00.toml").write_text('[rtp]\nptime = 7\nports = [1, 2]\n[sip]\nrelm = "x"\n')
    (bad / "10.toml").write_text('[extensions.200]\nname = "no password"\n'
                                 '[extensions.200.failover]\nbusy = { action = "forward", '
                                 'to = "999" }\n')
    out = mediasrv("check-config", "-c", str(bad), "--plugins", str(DEFAULT_PLUGIN_DIR))
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    f0, f1 = os.path.relpath(bad / "00.toml", ROOT), os.path.relpath(bad / "10.toml", ROOT)
    assert lines == [
        f"{f0}: sip.relm: unknown key (did you mean 'realm'?)",
        f"{f0}: rtp.ports: ports must be between 1024 and 65535, not [1, 2]",
        f"{f0}: rtp.ptime: must be between 10 and 60, not 7",
        f"{f1}: extensions.200.password: is required (or give ha1)",
        f"{f1}: extensions.200.failover.busy.to: extension 999 is not defined",
    ]


def test_run_starts_and_stops_cleanly_on_sigterm(site: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "mediasrv", "run", "-c", SHIPPED, "-c",
                             str(site)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        deadline = time.monotonic() + 20
        while "mediasrv ready" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        assert "mediasrv ready" in line
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - t0 < 1.0
        assert "mediasrv stopped" in proc.stderr.read()
    finally:
        proc.kill()


def test_run_refuses_a_port_it_cannot_bind(site: Path) -> None:
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", 0))
    port = blocker.getsockname()[1]
    (site / "99-test.toml").write_text(f'[sip]\nlisten = ["udp:127.0.0.1:{port}"]\n'
                                       '[api]\nlisten = ""\n')
    try:
        out = mediasrv("run", "-c", SHIPPED, "-c", str(site))
    finally:
        blocker.close()
    assert out.returncode == 1
    assert f"not starting: cannot listen on udp:127.0.0.1:{port}: Address already in use" \
        in out.stderr


def test_run_refuses_a_bad_configuration(tmp_path: Path) -> None:
    (tmp_path / "00.toml").write_text("[rtp]\nptime = 7\n")
    out = mediasrv("run", "-c", str(tmp_path), "--plugins", str(DEFAULT_PLUGIN_DIR))
    assert out.returncode == 1
    assert "rtp.ptime: must be between 10 and 60, not 7" in out.stderr


def test_sighup_reloads_and_keeps_running(site: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "mediasrv", "run", "-c", SHIPPED, "-c",
                             str(site)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        while "mediasrv ready" not in proc.stderr.readline():
            assert proc.poll() is None
        (site / "98-bad.toml").write_text("[rtp]\nptime = 7\n")
        proc.send_signal(signal.SIGHUP)
        while "reload refused" not in (line := proc.stderr.readline()):
            assert line, "server exited"
        (site / "98-bad.toml").unlink()
        proc.send_signal(signal.SIGHUP)
        while "configuration reloaded" not in (line := proc.stderr.readline()):
            assert line, "server exited"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()
