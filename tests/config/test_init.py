"""`mediasrv init DIR`: the starter site is complete, valid, secret and never overwritten."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from mediasrv.config import load_config
from mediasrv.init import Starter, init_site

DEMO = {f"demo{n}" for n in range(100, 110)} | {"change-me"}


def mediasrv(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mediasrv", *args], capture_output=True,
                          text=True, timeout=30, cwd=cwd)


def test_init_writes_a_site_that_loads(tmp_path: Path) -> None:
    out = mediasrv("init", "site", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    site = tmp_path / "site"
    assert "mediasrv run -c site/conf.d" in out.stdout
    names = sorted(str(p.relative_to(site)) for p in site.rglob("*") if p.is_file())
    assert names == ["conf.d/00-server.toml", "conf.d/10-extensions.toml", "conf.d/20-moh.toml",
                     "plugins/attended_transfer.toml", "plugins/blind_transfer.toml",
                     "sounds/moh/default.wav", "tls/cert.pem", "tls/key.pem"]
    cfg = load_config([site / "conf.d"])  # plugins/ beside conf.d/ is found by default
    assert sorted(cfg.extensions) == ["100", "101", "102"]
    assert {s.name for s in cfg.enabled_services()} == {"attended_transfer", "blind_transfer"}
    assert cfg.moh["default"].files() == [str(site / "conf.d" / ".." / "sounds" / "moh" /
                                              "default.wav")]
    assert cfg.storage.path == (site / "var" / "mediasrv.sqlite3").resolve()
    assert cfg.tls.cert == str((site / "tls" / "cert.pem").resolve())  # loaded as a pair
    assert "tls:127.0.0.1:5061" in [str(lst) for lst in cfg.sip.listen]
    assert (site / "tls" / "key.pem").stat().st_mode & 0o777 == 0o600
    check = mediasrv("check-config", "-c", "site/conf.d", cwd=tmp_path)
    assert check.returncode == 0 and "configuration OK" in check.stdout, check.stderr
    assert "TLS: " in check.stdout and "(TLS 1.2+, client certificates not asked for)" \
        in check.stdout


def test_init_secrets_are_fresh_and_no_demo_password_is_written(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    init_site(a)
    init_site(b)
    ca, cb = load_config([a / "conf.d"]), load_config([b / "conf.d"])
    assert ca.api.token != cb.api.token and len(ca.api.token) >= 24
    passwords = [e.password for e in (*ca.extensions.values(), *cb.extensions.values())]
    assert len(set(passwords)) == 6 and not DEMO & set(passwords)
    assert all(len(p) >= 12 for p in passwords)


def test_init_refuses_to_overwrite_a_site(tmp_path: Path) -> None:
    init_site(tmp_path / "site")
    before = (tmp_path / "site" / "conf.d" / "10-extensions.toml").read_text()
    out = mediasrv("init", "site", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip() == ("mediasrv init: site/conf.d already holds files: "
                                  "not overwriting them")
    assert (tmp_path / "site" / "conf.d" / "10-extensions.toml").read_text() == before


def test_init_state_dir_puts_the_database_there(tmp_path: Path) -> None:
    init_site(tmp_path / "etc", Starter(state_dir=tmp_path / "lib"))
    with (tmp_path / "etc" / "conf.d" / "00-server.toml").open("rb") as f:
        assert tomllib.load(f)["storage"]["path"] == str(tmp_path / "lib" / "mediasrv.sqlite3")
    cfg = load_config([tmp_path / "etc" / "conf.d"])
    assert cfg.storage.path == tmp_path / "lib" / "mediasrv.sqlite3"
