"""The server's SQLite store: registrations and the voicemail index (call records later).

How this works: one `sqlite3` connection on the asyncio thread (all writes are small and made
on the loop), WAL journal so a crash loses no committed row, schema created on open. Each
user of the store (registrar, voicemail, call records) owns its own table and its own methods
here, so the SQL lives in one file.
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
    heard       INTEGER NOT NULL DEFAULT 0
);
"""


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


class Store:
    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ bindings

    def load_bindings(self, now: float) -> list[BindingRow]:
        self.db.execute("DELETE FROM bindings WHERE expires_at <= ?", (now,))
        rows = self.db.execute("SELECT extension, contact, expires_at, call_id, cseq, q, "
                               "source_host, source_port, transport FROM bindings")
        return [BindingRow(*r) for r in rows]

    def save_binding(self, b: BindingRow) -> None:
        self.db.execute("INSERT OR REPLACE INTO bindings VALUES (?,?,?,?,?,?,?,?,?)",
                        (b.extension, b.contact, b.expires_at, b.call_id, b.cseq, b.q,
                         b.source_host, b.source_port, b.transport))

    def delete_binding(self, extension: str, contact: str) -> None:
        self.db.execute("DELETE FROM bindings WHERE extension = ? AND contact = ?",
                        (extension, contact))

    # ------------------------------------------------------------------ voicemail

    def add_voicemail(self, mailbox: str, caller: str, path: str, seconds: float,
                      received_at: float) -> None:
        self.db.execute("INSERT INTO voicemail (mailbox, caller, path, seconds, received_at) "
                        "VALUES (?,?,?,?,?)", (mailbox, caller, path, seconds, received_at))

    def voicemails(self, mailbox: str) -> list[tuple[str, str, float, float]]:
        rows = self.db.execute("SELECT caller, path, seconds, received_at FROM voicemail "
                               "WHERE mailbox = ? ORDER BY id", (mailbox,))
        return list(rows)
