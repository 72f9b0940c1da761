"""The voicemail index per node: every row names the node that recorded it, old stores get
the column, and `mediasrv voicemail` prints it (the nodes' `--json` merge into one index)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from mediasrv.call.records import open_readonly
from mediasrv.call.store import Store, voicemail_index
from mediasrv.cli import main
from mediasrv.config import DEFAULT_CONFIG_DIR

OLD_SCHEMA = """CREATE TABLE voicemail (id INTEGER PRIMARY KEY, mailbox TEXT NOT NULL,
    caller TEXT NOT NULL, path TEXT NOT NULL, seconds REAL NOT NULL,
    received_at REAL NOT NULL, heard INTEGER NOT NULL DEFAULT 0);
INSERT INTO voicemail (mailbox, caller, path, seconds, received_at)
    VALUES ('104', '101', '/old/1.wav', 3.5, 1000.0);"""


def node_store(tmp_path: Path, node: str, *messages: tuple[str, str, float]) -> Path:
    """A node's store with `messages` (mailbox, caller, received_at) in its index."""
    path = tmp_path / node / "db.sqlite3"
    store = Store(path, node)
    for mailbox, caller, at in messages:
        store.add_voicemail(mailbox, caller, f"/{node}/voicemail/{mailbox}/{at}.wav", 2.0, at)
    store.close()
    return path


def index(path: Path, mailbox: str = "") -> list:
    db = open_readonly(str(path))
    try:
        return voicemail_index(db, mailbox)
    finally:
        db.close()


def test_rows_carry_their_node_and_the_nodes_indexes_merge(tmp_path: Path) -> None:
    one = node_store(tmp_path, "node1", ("104", "101", 10.0), ("105", "102", 30.0))
    two = node_store(tmp_path, "node2", ("104", "103", 20.0))
    merged = sorted(index(one) + index(two), key=lambda r: r.received_at)
    assert [(r.node, r.mailbox, r.caller) for r in merged] == [
        ("node1", "104", "101"), ("node2", "104", "103"), ("node1", "105", "102")]
    assert len({(r.node, r.id) for r in merged}) == 3  # ids repeat across nodes, pairs do not
    assert [r.caller for r in index(one, "104") + index(two, "104")] == ["101", "103"]
    assert all(r.path.startswith(f"/{r.node}/") and not r.heard for r in merged)


def test_a_store_from_before_the_node_column_gets_it(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.close()
    [row] = index(path)  # read as it is, before any server opened it
    assert (row.node, row.caller, row.path) == ("", "101", "/old/1.wav")
    store = Store(path, "node3")
    store.add_voicemail("104", "102", "/node3/2.wav", 1.0, 2000.0)
    store.close()
    assert [(r.node, r.caller) for r in index(path)] == [("", "101"), ("node3", "102")]


def site(tmp_path: Path, store: Path) -> list[str]:
    conf = tmp_path / "site"
    conf.mkdir(exist_ok=True)
    (conf / "99-store.toml").write_text(f'[storage]\npath = "{store}"\n')
    return ["-c", str(DEFAULT_CONFIG_DIR), "-c", str(conf)]


def test_voicemail_command_prints_table_and_json(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    args = site(tmp_path, node_store(tmp_path, "node2", ("104", "101", 10.0),
                                     ("105", "103", 20.0)))
    assert main(["voicemail", "--json", *args]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["node"], r["mailbox"], r["caller"], r["seconds"]) for r in rows] == [
        ("node2", "104", "101", 2.0), ("node2", "105", "103", 2.0)]
    assert main(["voicemail", "--mailbox", "105", *args]) == 0
    header, line = capsys.readouterr().out.strip().split("\n")
    assert header.split() == ["RECEIVED", "MAILBOX", "FROM", "LENGTH", "HEARD", "NODE", "FILE"]
    assert line.split()[2:] == ["105", "103", "2.0s", "no", "node2",
                                "/node2/voicemail/105/20.0.wav"]
    assert main(["voicemail", "--mailbox", "109", *args]) == 0
    assert capsys.readouterr().out.strip() == "no messages for 109"


def test_voicemail_command_without_a_store(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["voicemail", *site(tmp_path, tmp_path / "none.sqlite3")]) == 1
    assert "does not exist" in capsys.readouterr().err
