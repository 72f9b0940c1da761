"""The server's SQLite store: registrations and the voicemail index (call records: records.py).

How this works: one `sqlite3` connection on the asyncio thread (all writes are small and made
on the loop), WAL journal so a crash loses no committed row, schema created on open. Each
user of the store (registrar, voicemail) owns its own table and its own methods here, so the
SQL lives in one file. Their writes are committed at once (`_write`); call records batch theirs
in a transaction on the same connection (records.py), which such a write commits as well.

Each voicemail row carries the node that recorded the message (`sip.node_id`), as call records
do: behind a proxy a mailbox's messages are spread over the nodes' stores (and their WAVs
over the nodes' disks), and the indexes merge into one, rows unique by (node, id). A store
written before the column existed gets it on open (its rows: node '').
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS bindings (
    extension   TEXT NOT NULL,
    contact     TEXT NOT NULL,
    expires_at  REAL NOT NULL,
    call_id     TEXT NOT NULL,
    cseq        INTEGER NOT NULL,
    q           REAL NOT NULL DEFAULT 1.0,
    source_host TEXT NOT NULL,
    source_port INTEGER NOT NULL,
    transport   TEXT NOT NULL,
    PRIMARY KEY (extension, contact)
);
CREATE TABLE IF NOT EXISTS voicemail (
    id          INTEGER PRIMARY KEY,
    mailbox     TEXT NOT NULL,
    caller      TEXT NOT NULL,
    path        TEXT NOT NULL,
    seconds     REAL NOT NULL,
    received_at REAL NOT NULL,
    heard       INTEGER NOT NULL DEFAULT 0,
    node        TEXT NOT NULL DEFAULT ''
);
"""
_VOICEMAIL = "id, mailbox, caller, path, seconds, received_at, heard, node"


@dataclass(frozen=True)
class BindingRow:
    extension: str
    contact: str
    expires_at: float
    call_id: str
    cseq: int
    q: float
    source_host: str
    source_port: int
    transport: str


@dataclass(frozen=True)
class VoicemailRow:
    """One message in the voicemail index; `path` is on the disk of node `node`."""

    id: int
    mailbox: str
    caller: str
    path: str
    seconds: float
    received_at: float
    heard: bool
    node: str


class Store:
    def __init__(self, path: Path | str, node: str = "") -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.node = node  # sip.node_id, written in every voicemail row
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        if not _has_node_column(self.db):  # a store from before the index carried the node
            self.db.execute("ALTER TABLE voicemail ADD COLUMN node TEXT NOT NULL DEFAULT ''")

    def close(self) -> None:
        self.db.close()

    def _write(self, sql: str, params: tuple[object, ...]) -> None:
        """One statement committed now, with the call records' open batch if there is one."""
        self.db.execute(sql, params)
        if self.db.in_transaction:
            self.db.commit()

    # ------------------------------------------------------------------ bindings

    def load_bindings(self, now: float) -> list[BindingRow]:
        self.db.execute("DELETE FROM bindings WHERE expires_at <= ?", (now,))
        rows = self.db.execute("SELECT extension, contact, expires_at, call_id, cseq, q, "
                               "source_host, source_port, transport FROM bindings")
        return [BindingRow(*r) for r in rows]

    def save_binding(self, b: BindingRow) -> None:
        self._write("INSERT OR REPLACE INTO bindings VALUES (?,?,?,?,?,?,?,?,?)",
                    (b.extension, b.contact, b.expires_at, b.call_id, b.cseq, b.q,
                     b.source_host, b.source_port, b.transport))

    def delete_binding(self, extension: str, contact: str) -> None:
        self._write("DELETE FROM bindings WHERE extension = ? AND contact = ?",
                    (extension, contact))

    # ------------------------------------------------------------------ voicemail

    def add_voicemail(self, mailbox: str, caller: str, path: str, seconds: float,
                      received_at: float) -> None:
        self._write("INSERT INTO voicemail (mailbox, caller, path, seconds, received_at, node) "
                    "VALUES (?,?,?,?,?,?)",
                    (mailbox, caller, path, seconds, received_at, self.node))

    def voicemails(self, mailbox: str) -> list[tuple[str, str, float, float]]:
        rows = self.db.execute("SELECT caller, path, seconds, received_at FROM voicemail "
                               "WHERE mailbox = ? ORDER BY id", (mailbox,))
        return list(rows)


def voicemail_index(db: sqlite3.Connection, mailbox: str = "") -> list[VoicemailRow]:
    """The index (of `mailbox`, or all), oldest first; `db` may be a read-only connection to
    a store of any age (before the node column: node '')."""
    columns = _VOICEMAIL if _has_node_column(db) else _VOICEMAIL.replace(", node", ", ''")
    where, params = ("WHERE mailbox = ?", (mailbox,)) if mailbox else ("", ())
    rows = db.execute(f"SELECT {columns} FROM voicemail {where} ORDER BY received_at, id",
                      params)
    return [VoicemailRow(i, m, c, p, s, r, bool(h), n) for i, m, c, p, s, r, h, n in rows]


def _has_node_column(db: sqlite3.Connection) -> bool:
    return any(row[1] == "node" for row in db.execute("PRAGMA table_info(voicemail)"))
