"""Call records: one row per call with times, parties, result and transfers; kept across a kill."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mediasrv.call import records as records_module
from mediasrv.call.records import ACTIVE, INTERRUPTED, CallRecords, open_readonly, query
from mediasrv.call.store import Store
from mediasrv.cli import main
from mediasrv.config import DEFAULT_CONFIG_DIR, DEFAULT_PLUGIN_DIR, load_config
from tests.call.world import FakeClock
from tests.integration.conftest import wait_until
from tests.ops.conftest import OpsHarness, ops_site
from tests.ops.test_api import talking
from tests.peers.phone import TestPhone

REPO = Path(__file__).resolve().parents[2]
NO_LEGS = type("B", (), {"live_legs": lambda self, _c: 0})()


def rows(ops: OpsHarness) -> list:
    return query(ops.server.store.db)


async def test_answered_call_row(ops: OpsHarness) -> None:
    t0 = time.time()
    a, b, a_call, b_call = await talking(ops)
    [row] = rows(ops)
    assert (row.call_id, row.caller, row.callee, row.result) == (a_call.call_id, "101", "102",
                                                                 ACTIVE)
    await asyncio.sleep(0.2)
    await a_call.hangup()
    await wait_until(lambda: rows(ops)[0].result != ACTIVE, 3, "the record to close")
    [row] = rows(ops)
    assert (row.result, row.answered_by, row.status, row.transfers) == ("answered", "102",
                                                                        None, [])
    assert t0 <= row.started_at <= row.answered_at < row.ended_at <= time.time()
    assert row.ended_at - row.answered_at >= 0.2


@pytest.mark.parametrize("callee, kw, result, status", [
    ("102", {"answer": 486}, "busy", 486),
    ("104", None, "not_registered", 480),
])
async def test_unanswered_calls(ops: OpsHarness, callee: str, kw: dict | None, result: str,
                                status: int) -> None:
    a = await ops.phone("A", "101")
    if kw is not None:
        await ops.phone("B", callee, **kw)
    call = await a.call(ops.uri(callee))
    assert await call.wait_final() == status
    await ops.settle()
    [row] = rows(ops)
    assert (row.result, row.status, row.answered_at, row.answered_by) == (result, status, None,
                                                                          None)
    assert row.ended_at >= row.started_at


async def test_cancelled_call(ops: OpsHarness) -> None:
    a = await ops.phone("A", "101")
    await ops.phone("C", "103", answer=None)
    call = await a.call(ops.uri("103"), wait=False)
    await wait_until(lambda: 180 in call.provisional, 3, "ringing")
    await call.hangup()  # CANCEL while ringing
    await ops.settle()
    [row] = rows(ops)
    assert (row.result, row.status) == ("cancelled", None)


async def test_transfer_history_is_recorded(ops: OpsHarness) -> None:
    a, b, a_call, b_call = await talking(ops)
    c = await ops.phone("C", "103")  # answers at once
    b_leg = (await ops.api.get_json("/v1/calls"))[0]["legs"][1]["id"]
    assert (await ops.api.request("POST", f"/v1/legs/{b_leg}/transfer",
                                  {"target": "103"})).status == 202
    await b.wait_hearing({"C"})
    await b_call.hangup()
    await a.wait_hearing({"C"})
    await a_call.hangup()
    await ops.settle()
    [row] = rows(ops)
    assert row.result == "answered" and row.answered_by == "102"
    states = [t["state"] for t in row.transfers]
    assert states == ["COLLECTING", "CALLING_TARGET", "CONSULTING", "COMPLETE"]
    assert all(t["service"] == "attended_transfer" and t["transferer"] == "102"
               for t in row.transfers)
    assert row.transfers[-1]["addressee"] == "103"
    times = [t["time"] for t in row.transfers]
    assert times == sorted(times) and row.started_at <= times[0] <= row.ended_at
    assert c.active_calls() == []


async def test_leftover_active_rows_become_interrupted(tmp_path: Path) -> None:
    db = sqlite3.connect(":memory:", isolation_level=None)
    first = CallRecords(db, NO_LEGS, FakeClock())
    first.observe({"kind": "call.started", "call_id": "x", "leg": "leg1", "time": 1.0,
                   "caller": "101", "callee": "102"})
    assert query(db)[0].result == ACTIVE
    first.flush()
    CallRecords(db, NO_LEGS, FakeClock())  # the next start
    assert query(db)[0].result == INTERRUPTED


# ---------------------------------------------------------------------- batched commits


def started(call_id: str, t: float) -> dict[str, object]:
    return {"kind": "call.started", "call_id": call_id, "leg": "leg1", "time": t,
            "caller": "101", "callee": "102"}


def ended(call_id: str, t: float) -> dict[str, object]:
    return {"kind": "leg.ended", "call_id": call_id, "leg": "leg1", "time": t}


def test_a_batch_is_committed_by_its_timer(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    clock = FakeClock()
    records = CallRecords(db, NO_LEGS, clock)
    other = open_readonly(str(tmp_path / "db"))
    records.observe(started("x", 1.0))
    records.observe(ended("x", 2.0))
    records.observe(started("y", 3.0))
    assert [r.call_id for r in query(db)] == ["x", "y"]  # this connection sees them at once
    assert query(other) == []                           # others once committed
    clock.t += records_module.COMMIT_DELAY
    clock.run_due()
    assert [(r.call_id, r.result) for r in query(other)] == [("x", "cancelled"), ("y", ACTIVE)]
    assert not db.in_transaction and clock.next_deadline() is None
    records.observe(ended("y", 4.0))                    # the next batch sets its own timer
    assert clock.next_deadline() == clock.t + records_module.COMMIT_DELAY


def test_flush_and_a_registrar_write_commit_the_batch(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    clock = FakeClock()
    records = CallRecords(store.db, NO_LEGS, clock)
    other = open_readonly(str(tmp_path / "db"))
    records.observe(started("x", 1.0))
    records.flush()
    assert [r.call_id for r in query(other)] == ["x"] and clock.next_deadline() is None
    records.observe(ended("x", 2.0))
    store.delete_binding("101", "sip:101@127.0.0.1")   # committed at once, the batch with it
    assert query(other)[0].result == "cancelled" and not store.db.in_transaction
    clock.t += records_module.COMMIT_DELAY
    clock.run_due()                                      # the timer finds nothing to commit
    store.close()


async def test_reload_and_stop_commit_finished_calls(ops: OpsHarness,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(records_module, "COMMIT_DELAY", 3600.0)  # only a flush commits
    path = str(ops.tmp_path / "db.sqlite3")
    a, b, a_call, b_call = await talking(ops)
    await a_call.hangup()
    await wait_until(lambda: rows(ops) and rows(ops)[0].result != ACTIVE, 3, "the call's end")
    assert [r.result for r in query(open_readonly(path))] in ([], [ACTIVE])
    ops.server.reload()                                 # SIGHUP
    assert [r.result for r in query(open_readonly(path))] == ["answered"]
    a_call = await a.call(ops.uri("102"))
    assert await a_call.wait_final() == 200
    await a_call.hangup()
    await wait_until(lambda: len(rows(ops)) == 2 and rows(ops)[1].result != ACTIVE, 3, "the end")
    await ops.server.stop()                             # also what SIGTERM ends in
    assert [r.result for r in query(open_readonly(path))] == ["answered", "answered"]
    await ops.server.start()                            # for the harness's teardown


# ---------------------------------------------------------------------- the CLI


async def test_calls_command_prints_table_and_json(ops: OpsHarness, capsys) -> None:
    a, b, a_call, b_call = await talking(ops)
    await a_call.hangup()
    await ops.settle()
    args = ["-c", str(DEFAULT_CONFIG_DIR), "-c", str(ops.tmp_path / "site")]
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["calls", "--since", "5m", "--json", *args]) == 0
    [record] = json.loads(capsys.readouterr().out)
    assert (record["call_id"], record["result"], record["caller"]) == (a_call.call_id,
                                                                        "answered", "101")
    assert await asyncio.to_thread(main, ["calls", *args]) == 0
    header, line = capsys.readouterr().out.strip().split("\n")
    assert header.split()[:5] == ["STARTED", "FROM", "TO", "ANSWERED", "BY"]
    assert line.split()[2:6] == ["101", "102", "102", "answered"]
    future = time.strftime("%Y-%m-%dT%H:%M", time.localtime(time.time() + 120))
    assert await asyncio.to_thread(main, ["calls", "--since", future, *args]) == 0
    assert capsys.readouterr().out.startswith("no calls since")
    assert await asyncio.to_thread(main, ["calls", "--since", "yesterday", *args]) == 1
    assert "--since 'yesterday'" in capsys.readouterr().err


# ---------------------------------------------------------------------- a killed server


def wait_http(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


async def test_kill_loses_no_committed_call(tmp_path: Path) -> None:
    site, api_port = ops_site(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "mediasrv", "run", "-c",
                             str(DEFAULT_CONFIG_DIR), "-c", str(site), "--log-level", "WARNING"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    phones: list[TestPhone] = []
    try:
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{api_port}/metrics")
        config = load_config([DEFAULT_CONFIG_DIR, site], DEFAULT_PLUGIN_DIR)
        sip_port = config.sip.listen[0].port
        for name, ext in (("A", "101"), ("B", "102")):
            phone = TestPhone(name, ext, config.extensions[ext].password,
                              server=("127.0.0.1", sip_port))
            await phone.start()
            phones.append(phone)
            assert (await phone.register()).status == 200
        a, b = phones
        finished = await a.call(f"sip:102@127.0.0.1:{sip_port}")
        assert await finished.wait_final() == 200
        await finished.hangup()
        reader = open_readonly(str(tmp_path / "db.sqlite3"))  # committed within COMMIT_DELAY
        await wait_until(lambda: [r.result for r in query(reader)] == ["answered"], 3,
                         "the finished call's record committed")
        live = await a.call(f"sip:102@127.0.0.1:{sip_port}")
        assert await live.wait_final() == 200
        await wait_until(lambda: len(query(reader)) == 2, 3, "the live call's row committed")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for phone in phones:
            await phone.close()
    db = sqlite3.connect(tmp_path / "db.sqlite3")
    by_id = {r.call_id: r for r in query(db)}
    assert by_id[finished.call_id].result == "answered"
    assert by_id[finished.call_id].ended_at is not None
    assert by_id[live.call_id].result == ACTIVE  # the kill came mid-call
    CallRecords(db, NO_LEGS, FakeClock())  # what the next start does
    assert {r.call_id: r.result for r in query(db)}[live.call_id] == INTERRUPTED
