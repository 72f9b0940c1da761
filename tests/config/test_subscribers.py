"""`mediasrv export-subscribers`: Kamailio's subscriber rows from the TOML extensions."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

from mediasrv.config import DEFAULT_CONFIG_DIR, DEFAULT_PLUGIN_DIR, load_config
from mediasrv.subscribers import rows, to_sql, write_sqlite

TABLE = ("CREATE TABLE subscriber (id INTEGER PRIMARY KEY, username TEXT, domain TEXT, "
         "password TEXT DEFAULT '', ha1 TEXT, ha1b TEXT)")


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def site(tmp_path: Path) -> Path:
    (tmp_path / "99.toml").write_text(
        '[sip]\nrealm = "pbx.example"\n'
        '[extensions.150]\nha1 = "0123456789abcdef0123456789abcdef"\n')
    return tmp_path


def test_rows_carry_ha1_never_the_password(tmp_path: Path) -> None:
    cfg = load_config([DEFAULT_CONFIG_DIR, site(tmp_path)], DEFAULT_PLUGIN_DIR)
    by_user = {r[0]: r for r in rows(cfg)}
    assert set(by_user) == set(cfg.extensions)
    assert by_user["101"] == ("101", "pbx.example", md5("101:pbx.example:demo101"),
                              md5("101@pbx.example:pbx.example:demo101"))
    assert by_user["150"] == ("150", "pbx.example", "0123456789abcdef0123456789abcdef", "")
    assert "demo101" not in to_sql(cfg)


def test_sqlite_table_is_replaced_whole(tmp_path: Path) -> None:
    cfg = load_config([DEFAULT_CONFIG_DIR], DEFAULT_PLUGIN_DIR)
    db_path = tmp_path / "k.sqlite"
    db = sqlite3.connect(db_path)
    db.execute(TABLE)
    db.execute("INSERT INTO subscriber (username, domain, ha1, ha1b) VALUES ('999', 'x', 'y', '')")
    db.commit()
    assert write_sqlite(cfg, str(db_path)) == len(cfg.extensions)
    users = {u for (u,) in db.execute("SELECT username FROM subscriber")}
    assert users == set(cfg.extensions)  # the removed extension lost its access
    db.close()


def test_sql_applies_to_a_database(tmp_path: Path) -> None:
    cfg = load_config([DEFAULT_CONFIG_DIR], DEFAULT_PLUGIN_DIR)
    db = sqlite3.connect(":memory:")
    db.execute(TABLE)
    db.executescript(to_sql(cfg))
    assert db.execute("SELECT count(*) FROM subscriber").fetchone()[0] == len(cfg.extensions)


def test_command_without_tables_says_what_to_do(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "mediasrv", "export-subscribers", "-c",
                          str(DEFAULT_CONFIG_DIR), "--sqlite", str(tmp_path / "empty.sqlite")],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert "no such table: subscriber" in out.stderr and "deploy/kamailio" in out.stderr
