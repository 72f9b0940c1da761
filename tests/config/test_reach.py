"""Listeners, API address and port ranges are checked before anything binds; demo secrets
never face the network; every start-up failure is one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mediasrv.config import DEFAULT_CONFIG_DIR, DEFAULT_PLUGIN_DIR, ConfigError, load_config
from mediasrv.paths import default_config_dir, default_state_dir


def site(tmp_path: Path, text: str) -> Path:
    d = tmp_path / "site"
    d.mkdir(exist_ok=True)
    (d / "99-site.toml").write_text(text)
    return d


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config([DEFAULT_CONFIG_DIR, site(tmp_path, text)], DEFAULT_PLUGIN_DIR)
    return [str(p) for p in info.value.problems]


def here(tmp_path: Path) -> str:
    return os.path.relpath(tmp_path / "site" / "99-site.toml")


CASES = [
    ('[sip]\nlisten = ["udp:127.0.0.1:99999"]\n',
     "sip.listen[0]: port 99999 is out of range 1-65535"),
    ('[sip]\nlisten = ["udp:127.0.0.1:0"]\n', "sip.listen[0]: port 0 is out of range 1-65535"),
    ('[sip]\nlisten = ["tcp:[::1]:70000"]\n', "sip.listen[0]: port 70000 is out of range 1-65535"),
    ('[sip]\nlisten = ["udp:127.0.0.300:5060"]\n',
     "sip.listen[0]: '127.0.0.300' is not an IP address (IPv6 in brackets) or localhost"),
    ('[sip]\nlisten = ["udp:pbx.example.com:5060"]\n',
     "sip.listen[0]: 'pbx.example.com' is not an IP address (IPv6 in brackets) or localhost"),
    ('[sip]\nlisten = ["udp:[127.0.0.1]:5060"]\n',
     "sip.listen[0]: '[127.0.0.1]' is not an IP address (IPv6 in brackets) or localhost"),
    ('[sip]\nlisten = ["udp:127.0.0.1"]\n',
     "sip.listen[0]: '127.0.0.1' is not host:port (IPv6 as [addr]:port)"),
    ('[sip]\nlisten = ["udp:127.0.0.1:20002"]\n',
     "sip.listen[0]: port 20002 is inside rtp.ports 20000-29999"),
    ('[api]\nlisten = "127.0.0.1:99999"\n',
     'api.listen: port 99999 is out of range 1-65535 (or "" for off)'),
    ('[api]\nlisten = "::1:8088"\n',
     "api.listen: '::1:8088' is not host:port (IPv6 as [addr]:port) (or \"\" for off)"),
    ('[api]\nlisten = "example:8088"\n',
     "api.listen: 'example' is not an IP address (IPv6 in brackets) or localhost "
     '(or "" for off)'),
    ("[rtp]\nports = [20000, 70000]\n",
     "rtp.ports: ports must be between 1024 and 65535, not [20000, 70000]"),
    ('[rtp]\naddress = "10.0.0.256"\n', "rtp.address: '10.0.0.256' is not an IP address"),
]


@pytest.mark.parametrize("text,expected", CASES, ids=[c[1].split(":")[0] + c[0][:30]
                                                     for c in CASES])
def test_addresses_and_ports_are_checked(tmp_path: Path, text: str, expected: str) -> None:
    assert problems(tmp_path, text) == [f"{here(tmp_path)}: {expected}"]


def test_good_addresses_pass(tmp_path: Path) -> None:
    cfg = load_config([DEFAULT_CONFIG_DIR, site(tmp_path, '[sip]\nlisten = ["udp:[::1]:5062", '
                                                '"tcp:localhost:5062"]\n[api]\n'
                                                'listen = "[::1]:8089"\n')], DEFAULT_PLUGIN_DIR)
    assert [str(lst) for lst in cfg.sip.listen] == ["udp:[::1]:5062", "tcp:localhost:5062"]


def test_demo_passwords_are_refused_beyond_loopback(tmp_path: Path) -> None:
    found = problems(tmp_path, '[sip]\nlisten = ["udp:127.0.0.1:5060", "udp:0.0.0.0:5070"]\n'
                               '[extensions.105]\npassword = "a-real-one"\n'
                               '[api]\nlisten = "0.0.0.0:8088"\n')
    shipped = os.path.relpath(DEFAULT_CONFIG_DIR / "10-extensions.toml")
    expected = [f"{shipped}: extensions.{n}.password: demo password 'demo{n}' on a "
                "non-loopback listener (udp:0.0.0.0:5070): set a real one"
                for n in range(100, 110) if n != 105]
    api = (f"{os.path.relpath(DEFAULT_CONFIG_DIR / '00-server.toml')}: api.token: demo token "
           "'change-me' on a non-loopback API address (0.0.0.0:8088): set a random one")
    assert found == [*expected, api]


def test_demo_passwords_are_fine_on_loopback(tmp_path: Path) -> None:
    cfg = load_config([DEFAULT_CONFIG_DIR, site(tmp_path, '[sip]\nlisten = ["udp:[::1]:5060", '
                                                '"tcp:127.0.0.2:5060"]\n')], DEFAULT_PLUGIN_DIR)
    assert cfg.extensions["100"].password == "demo100"


def test_platform_default_places() -> None:
    assert default_config_dir({}) == Path("conf.d")
    assert default_state_dir({}) == Path("var").resolve()
    unit = {"CONFIGURATION_DIRECTORY": "/etc/mediasrv", "STATE_DIRECTORY": "/var/lib/mediasrv"}
    assert default_config_dir(unit) == Path("/etc/mediasrv/conf.d")
    assert default_state_dir(unit) == Path("/var/lib/mediasrv")
    assert default_config_dir({"STATE_DIRECTORY": "/srv/a:/srv/b"}) == Path(
        "/etc/mediasrv/conf.d")
    assert default_state_dir({"STATE_DIRECTORY": "/srv/a:/srv/b"}) == Path("/srv/a")
    # A desktop terminal inherits $INVOCATION_ID: that alone is not a system service.
    assert default_config_dir({"INVOCATION_ID": "abc"}) == Path("conf.d")


# --------------------------------------------------------------------------- the command


def run(*args: str, cwd: Path, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("MEDIASRV_CONFIG", "CONFIGURATION_DIRECTORY", "STATE_DIRECTORY")}
    return subprocess.run([sys.executable, "-m", "mediasrv", *args], capture_output=True,
                          text=True, timeout=30, cwd=cwd, env=environ | (env or {}))


def test_run_without_configuration_says_so_in_one_line(tmp_path: Path) -> None:
    out = run("run", cwd=tmp_path)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.splitlines() == [
        f"mediasrv: not starting: no configuration found: looked for {tmp_path / 'conf.d'} "
        "(no -c DIR, no MEDIASRV_CONFIG); write one with `mediasrv init DIR`, then "
        "`mediasrv run -c DIR/conf.d`"]


def test_run_as_a_service_looks_in_the_configuration_directory(tmp_path: Path) -> None:
    out = run("run", cwd=tmp_path, env={"CONFIGURATION_DIRECTORY": str(tmp_path / "etc")})
    assert out.returncode == 1
    assert f"looked for {tmp_path / 'etc' / 'conf.d'} " in out.stderr
    assert len(out.stderr.splitlines()) == 1


def test_run_finds_conf_d_in_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "00.toml").write_text('[sip]\nlisten = ["udp:127.0.0.1:99999"]\n')
    out = run("check-config", "--plugins", str(DEFAULT_PLUGIN_DIR), cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        "conf.d/00.toml: sip.listen[0]: port 99999 is out of range 1-65535"]


def test_each_start_up_failure_is_one_line(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    s = site(tmp_path, f'[sip]\nlisten = ["udp:127.0.0.1:0"]\n[storage]\n'
                       f'path = "{blocked}/db.sqlite3"\n[api]\nlisten = ""\n')
    out = run("run", "-c", str(DEFAULT_CONFIG_DIR), "-c", str(s), cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        "mediasrv: not starting: site/99-site.toml: sip.listen[0]: port 0 is out of range "
        "1-65535"]
    (s / "99-site.toml").write_text(f'[sip]\nlisten = ["udp:127.0.0.1:5999"]\n[storage]\n'
                                    f'path = "{blocked}/db.sqlite3"\n[api]\nlisten = ""\n')
    out = run("run", "-c", str(DEFAULT_CONFIG_DIR), "-c", str(s), cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"mediasrv: not starting: storage.path {blocked}/db.sqlite3: File exists"]


def test_a_missing_media_core_is_one_line(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['mediasrv._media'] = None\n"
            "from mediasrv.cli import main\n"
            f"sys.exit(main(['run', '-c', {str(DEFAULT_CONFIG_DIR)!r}]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        "mediasrv: not starting: cannot load mediasrv._media: import of mediasrv._media "
        "halted; None in sys.modules"]
