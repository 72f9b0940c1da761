"""`mediasrv export-subscribers`: Kamailio's subscriber table from the TOML extensions.

How this works: behind Kamailio (deploy/kamailio/) the proxy authenticates the phones with
auth_db, so the credentials must be in its `subscriber` table; the extensions in conf.d stay
the one source of truth and this command writes the table from them. Each extension becomes
one row: `username` = the number, `domain` = `sip.realm`, `ha1` = MD5(number:realm:password)
(RFC 2617 §3.2.2.2; an extension configured with `ha1` only gives that value), `ha1b` =
MD5(number@realm:realm:password) for proxies that authenticate with the domain in the user
name. Plain passwords are never written. The rows replace the whole table in one
transaction, so a removed extension loses its access at once.

`--sqlite FILE` writes an SQLite database (one proxy); without it the SQL is printed for
`psql`/`mysql` (several proxies sharing PostgreSQL or MySQL).
"""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Callable

from mediasrv.config import Config
from mediasrv.sip.auth import ha1


def add_parser(sub: argparse._SubParsersAction,
               config_options: Callable[[argparse.ArgumentParser], None]) -> None:
    cmd = sub.add_parser("export-subscribers",
                         help="write Kamailio's subscriber table from the extensions")
    config_options(cmd)
    cmd.add_argument("--sqlite", metavar="FILE",
                     help="write this SQLite database (else print SQL on stdout)")


def rows(cfg: Config) -> list[tuple[str, str, str, str]]:
    """(username, domain, ha1, ha1b) per extension, sorted by number."""
    realm = cfg.sip.realm
    out = []
    for number in sorted(cfg.extensions):
        ext = cfg.extensions[number]
        if ext.password:
            out.append((number, realm, ha1(number, realm, ext.password, "MD5"),
                        ha1(f"{number}@{realm}", realm, ext.password, "MD5")))
        elif ext.ha1:
            out.append((number, realm, ext.ha1, ""))
    return out


def to_sql(cfg: Config) -> str:
    """Statements replacing the subscriber table's rows (standard SQL, one transaction)."""
    lines = ["BEGIN;", "DELETE FROM subscriber;"]
    for row in rows(cfg):
        values = ", ".join("'" + v.replace("'", "''") + "'" for v in row)
        lines.append("INSERT INTO subscriber (username, domain, ha1, ha1b) "
                     f"VALUES ({values});")
    lines.append("COMMIT;")
    return "\n".join(lines)


def write_sqlite(cfg: Config, path: str) -> int:
    """Replace the rows of `path`'s subscriber table; returns how many were written."""
    data = rows(cfg)
    db = sqlite3.connect(path)
    try:
        with db:
            db.execute("DELETE FROM subscriber")
            db.executemany("INSERT INTO subscriber (username, domain, ha1, ha1b) "
                           "VALUES (?, ?, ?, ?)", data)
    finally:
        db.close()
    return len(data)


def export(cfg: Config, args: argparse.Namespace) -> str:
    if args.sqlite:
        try:
            count = write_sqlite(cfg, args.sqlite)
        except sqlite3.Error as exc:
            raise ExportError(f"{args.sqlite}: {exc} (create the tables first, see "
                              "deploy/kamailio/README.md)") from exc
        return f"{count} subscriber(s) written to {args.sqlite}"
    return to_sql(cfg)


class ExportError(Exception):
    """The subscriber table cannot be written; the message says where and why."""
