"""The systemd unit (deploy/systemd/mediasrv.service): `systemd-analyze verify` finds nothing
to say about it, and the installed wheel does what the unit relies on when started the way
systemd starts it (ConfigurationDirectory/StateDirectory environment, a NOTIFY_SOCKET, no -c).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.package.test_wheel import edit_site, installed_env
from tests.parallel import server_rtp_ports
from tests.peers.require import missing
from tests.peers.sipp import free_port

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "mediasrv.service"
EXEC = "/opt/mediasrv/bin/mediasrv"
pytestmark = pytest.mark.xdist_group("package")  # with test_wheel.py: one wheel, one venv


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_unit_passes_systemd_analyze_verify(venv: Path, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        missing("systemd-analyze is not installed (Debian package systemd)")
    text = UNIT.read_text()
    assert EXEC in text
    unit = tmp_path / "mediasrv.service"  # ExecStart must exist: the installed wheel's command
    unit.write_text(text.replace(EXEC, str(venv / "bin" / "mediasrv")))
    out = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stdout + out.stderr == "", out.stdout + out.stderr
    broken = tmp_path / "broken.service"  # and the check does see mistakes
    broken.write_text(text.replace("Type=notify", "Type=notiffy"))
    out = subprocess.run([analyze, "verify", str(broken)], capture_output=True, text=True,
                         timeout=60)
    assert "Failed to parse service type" in out.stderr


def test_unit_is_what_mediasrv_implements() -> None:
    s = unit_settings()
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["ExecStart"] == [f"{EXEC} run"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["ConfigurationDirectory"] == ["mediasrv"] and s["StateDirectory"] == ["mediasrv"]
    assert s["StandardError"] == ["journal"]
    assert int(s["TimeoutStopSec"][0]) > 600  # longer than the default sip.drain_timeout


def receive(notify: socket.socket, proc: subprocess.Popen, log: Path,
            timeout: float = 90.0) -> str:
    """The next sd_notify message; fails at once, with the server's log, if the server exits
    (the first start in a fresh venv on a loaded machine may take tens of seconds)."""
    deadline = time.monotonic() + timeout
    notify.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            return notify.recv(4096).decode()
        except TimeoutError:
            if proc.poll() is not None:
                pytest.fail(f"mediasrv exited {proc.returncode}:\n{log.read_text()}")
    pytest.fail(f"no sd_notify message in {timeout:.0f} s:\n{log.read_text()}")


def test_started_as_systemd_starts_it(venv: Path, tmp_path: Path) -> None:
    """/etc/mediasrv and /var/lib/mediasrv stand-ins, the unit's environment, `mediasrv run`."""
    etc, lib = tmp_path / "etc" / "mediasrv", tmp_path / "var" / "lib" / "mediasrv"
    mediasrv = str(venv / "bin" / "mediasrv")
    env = installed_env()
    init = subprocess.run([mediasrv, "init", str(etc), "--state-dir", str(lib)], env=env,
                          capture_output=True, text=True, timeout=30)
    assert init.returncode == 0, init.stderr
    port = free_port()
    edit_site(etc / "conf.d", port, server_rtp_ports()[0])
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    env |= {"CONFIGURATION_DIRECTORY": str(etc), "STATE_DIRECTORY": str(lib),
            "NOTIFY_SOCKET": str(tmp_path / "notify")}
    log = tmp_path / "stderr.log"   # a file, not a pipe: a full pipe would block the server
    with log.open("w") as stderr:
        proc = subprocess.Popen([mediasrv, "run"], cwd="/", env=env, stderr=stderr)
    try:
        assert receive(notify, proc, log).startswith("READY=1\n")
        assert (lib / "mediasrv.sqlite3").is_file()
        proc.send_signal(signal.SIGHUP)
        assert receive(notify, proc, log).startswith("RELOADING=1\nMONOTONIC_USEC=")
        assert receive(notify, proc, log).startswith("READY=1\n")
        proc.send_signal(signal.SIGTERM)
        assert receive(notify, proc, log) == "STOPPING=1"
        assert proc.wait(timeout=10) == 0
        assert f"mediasrv ready: SIP on udp:127.0.0.1:{port}" in log.read_text()
    finally:
        proc.kill()
        notify.close()
    # the same unit environment with nothing in /etc/mediasrv: one line, exit 1
    shutil.rmtree(etc)
    out = subprocess.run([mediasrv, "run"], cwd="/", env=env, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"mediasrv: not starting: no configuration found: looked for {etc}/conf.d (no -c DIR, "
        "no MEDIASRV_CONFIG); write one with `mediasrv init DIR`, then "
        "`mediasrv run -c DIR/conf.d`"]
