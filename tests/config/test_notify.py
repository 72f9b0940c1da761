"""sd_notify against a real `mediasrv run`: the test plays systemd with its own NOTIFY_SOCKET."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mediasrv.config import DEFAULT_CONFIG_DIR
from tests.peers.sipp import free_port


def receive(sock: socket.socket, timeout: float = 20.0) -> dict[str, str]:
    sock.settimeout(timeout)
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines())


def port_is_bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_ready_reloading_stopping(tmp_path: Path, abstract: bool) -> None:
    port = free_port()
    site = tmp_path / "site"
    site.mkdir()
    (site / "99.toml").write_text(f'[sip]\nlisten = ["udp:127.0.0.1:{port}"]\n'
                                  f'[storage]\npath = "{tmp_path}/db.sqlite3"\n'
                                  '[api]\nlisten = ""\n')
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"mediasrv-test-{os.getpid()}-{port}"
        sock.bind("\0" + name)
        address = "@" + name
    else:
        address = str(tmp_path / "notify.sock")
        sock.bind(address)
    env = os.environ | {"NOTIFY_SOCKET": address}
    proc = subprocess.Popen([sys.executable, "-m", "mediasrv", "run", "-c",
                             str(DEFAULT_CONFIG_DIR), "-c", str(site)], env=env,
                            stderr=subprocess.DEVNULL)
    try:
        assert receive(sock) == {"READY": "1", "STATUS": f"SIP on udp:127.0.0.1:{port}"}
        assert port_is_bound(port), "READY=1 came before the listener was bound"

        before = time.monotonic_ns() // 1000
        proc.send_signal(signal.SIGHUP)
        reloading = receive(sock)
        assert reloading["RELOADING"] == "1"
        assert before <= int(reloading["MONOTONIC_USEC"]) <= time.monotonic_ns() // 1000
        assert receive(sock)["READY"] == "1"  # a valid reload, back in service

        proc.send_signal(signal.SIGTERM)
        assert receive(sock) == {"STOPPING": "1"}
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        sock.close()


def test_no_notify_socket_is_fine(tmp_path: Path) -> None:
    """Outside systemd (no NOTIFY_SOCKET) the notifications are no-ops."""
    from mediasrv import notify
    os.environ.pop("NOTIFY_SOCKET", None)
    assert notify.ready("x") is False
    os.environ["NOTIFY_SOCKET"] = str(tmp_path / "nobody-listens")
    try:
        assert notify.stopping() is False  # logged, not raised
    finally:
        del os.environ["NOTIFY_SOCKET"]
