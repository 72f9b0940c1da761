"""Call records carry the node that carried the call; a store from before the column gets it."""

from __future__ import annotations

import sqlite3

from mediasrv.call.records import CallRecords, query
from tests.call.world import FakeClock

OLD_SCHEMA = """CREATE TABLE call_records (id INTEGER PRIMARY KEY, call_id TEXT NOT NULL,
    caller TEXT NOT NULL, callee TEXT NOT NULL, answered_by TEXT, started_at REAL NOT NULL,
    answered_at REAL, ended_at REAL, result TEXT NOT NULL, status INTEGER,
    transfers TEXT NOT NULL DEFAULT '[]');
INSERT INTO call_records (call_id, caller, callee, started_at, result)
    VALUES ('old', '101', '102', 1.0, 'answered');"""
NO_LEGS = type("B", (), {"live_legs": lambda self, _call_id: 0})()


def test_old_store_is_read_and_then_given_the_column() -> None:
    db = sqlite3.connect(":memory:")
    db.executescript(OLD_SCHEMA)
    assert [r.node for r in query(db)] == [""]           # read before the migration
    records = CallRecords(db, NO_LEGS, FakeClock(), node="node2")
    records.observe({"kind": "call.started", "call_id": "new", "caller": "103",
                     "callee": "104", "time": 2.0, "leg": "leg1"})
    records.observe({"kind": "leg.ended", "call_id": "new", "time": 3.0, "leg": "leg1"})
    rows = {r.call_id: r for r in query(db)}
    assert (rows["old"].node, rows["new"].node) == ("", "node2")
    assert rows["new"].to_json()["node"] == "node2" and rows["new"].ended_at == 3.0
