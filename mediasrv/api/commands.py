"""The operator's commands: `mediasrv show registrations|calls|channels`, `mediasrv calls` and
`mediasrv voicemail`.

How this works: `show` asks a running server through its API (address and token from the same
configuration `run` reads, or `--api`/`--token`) with the standard library's `http.client`,
and prints a table or, with `--json`, the API's JSON as is. `calls` reads the call records
straight from the SQLite store (`storage.path`) opened read-only, so it works whether or not
the server runs; `--since` takes a date/time (`2026-11-26`, `2026-11-26T09:30`) or an age
(`90s`, `15m`, `4h`, `2d`). `voicemail` reads the voicemail index from the store the same way.
Both print each row's node (`sip.node_id`): behind a proxy, the `--json` of every node
concatenated is the whole history (rows unique by node and call id, or node and message id).
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime

from mediasrv.call.records import CallRecord, open_readonly, query
from mediasrv.call.store import VoicemailRow, voicemail_index
from mediasrv.config import Config

VIEWS = ("registrations", "calls", "channels")
_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class CommandError(Exception):
    """What the operator is told when a command cannot do its job (exit status 1)."""


def add_parsers(sub: argparse._SubParsersAction,
                config_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Adds `show` and `calls` to the CLI's sub-commands."""
    show = sub.add_parser("show", help="show a running server's state through its API")
    show.add_argument("view", choices=VIEWS)
    show.add_argument("--api", metavar="HOST:PORT", help="API address (default: [api] listen)")
    show.add_argument("--token", help="API token (default: [api] token)")
    show.add_argument("--json", action="store_true", help="print the API's JSON")
    show.add_argument("--nodes", metavar="HOST:PORT,...",
                      help="ask these nodes' APIs (behind a proxy) and merge their answers")
    config_options(show)
    calls = sub.add_parser("calls", help="print call records from the store")
    calls.add_argument("--since", default="1d", help="date/time or age like 4h (default 1d)")
    calls.add_argument("--limit", type=int, default=1000)
    calls.add_argument("--json", action="store_true", help="print JSON")
    config_options(calls)
    mail = sub.add_parser("voicemail", help="print the voicemail index from the store")
    mail.add_argument("--mailbox", default="", help="only this extension's messages")
    mail.add_argument("--json", action="store_true", help="print JSON")
    config_options(mail)


# ---------------------------------------------------------------------- show


def show(cfg: Config, args: argparse.Namespace) -> str:
    """The text `mediasrv show VIEW` prints."""
    token = args.token if args.token is not None else cfg.api.token
    if args.nodes:
        return _show_nodes(args.view, [n.strip() for n in args.nodes.split(",") if n.strip()],
                           token, args.json)
    listen = args.api or cfg.api.listen
    if not listen:
        raise CommandError("the API is off ([api] listen is empty); give --api HOST:PORT")
    data = fetch(listen, token, f"/v1/{args.view}")
    if args.json:
        return json.dumps(data, indent=2)
    return {"registrations": _registrations, "calls": _calls,
            "channels": _channels}[args.view](data)


def _show_nodes(view: str, nodes: list[str], token: str, as_json: bool) -> str:
    """One view over several nodes: each node's rows tagged with it, in node order; a node
    that cannot be asked is named with the reason and the others are still shown."""
    merged: list[dict] = []
    down: list[str] = []
    for listen in nodes:
        try:
            rows = fetch(listen, token, f"/v1/{view}")
        except CommandError as exc:
            down.append(f"node {listen}: {exc}")
            continue
        for row in rows if isinstance(rows, list) else []:
            merged.append({**row, "node": row.get("node") or listen, "api": listen})
    if as_json:
        return json.dumps({"rows": merged, "unreachable": down}, indent=2)
    render = {"registrations": _registrations, "calls": _calls, "channels": _channels}[view]
    parts = []
    for node in dict.fromkeys(r["node"] for r in merged):
        parts.append(f"== node {node}\n" + render([r for r in merged if r["node"] == node]))
    return "\n".join(parts + down) or f"no {view} on {', '.join(nodes)}"


def fetch(listen: str, token: str, path: str) -> object:
    """GET one API resource; a refusal or an unreachable server is a `CommandError`."""
    host, _, port = listen.rpartition(":")
    conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=5)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        reply = conn.getresponse()
        body = reply.read()
    except OSError as exc:
        raise CommandError(f"cannot reach the API at {listen}: {exc}") from exc
    finally:
        conn.close()
    if reply.status != 200:
        raise CommandError(f"the API at {listen} answered {reply.status}: {_detail(body)}")
    return json.loads(body)


def _detail(body: bytes) -> str:
    try:
        return str(json.loads(body)["detail"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode(errors="replace")


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
                     for r in [header, *rows])


def _registrations(data: list[dict]) -> str:
    if not data:
        return "no registrations"
    return _table(["EXT", "CONTACT", "SOURCE", "TRANSPORT", "EXPIRES"],
                  [[r["extension"], r["contact"], r["source"], r["transport"],
                    f"{r['expires_in']:.0f}s"] for r in data])


def _calls(data: list[dict]) -> str:
    if not data:
        return "no calls"
    lines = []
    for call in data:
        started = _clock(call["started_at"]) if call["started_at"] else "?"
        transfer = call["transfer"]
        lines.append(f"call {call['id']}  {call['caller']} -> {call['callee']}  since {started}"
                     + (f"  transfer {transfer['state']}" if transfer else ""))
        rows = [[leg["id"], leg["number"], leg["direction"], leg["state"], leg["codec"] or "-",
                 _hears(leg["hears"]), leg["owner"] or ""] for leg in call["legs"]]
        lines += ["  " + line for line in _table(
            ["LEG", "NUMBER", "DIR", "STATE", "CODEC", "HEARS", "SERVICE"], rows).split("\n")]
    return "\n".join(lines)


def _hears(h: dict) -> str:
    if h["kind"] == "peer":
        return f"peer {h['peer']}"
    if h["kind"] == "mix":
        return "mix " + ",".join(h["group"])
    return f"{h['kind']} {h['name']}" if h["name"] else h["kind"]


def _channels(data: list[dict]) -> str:
    if not data:
        return "no channels"
    return _table(["LEG", "NUMBER", "PORT", "CODEC", "RX", "TX", "LOST", "LATE", "JITTER"],
                  [[c["leg"], c["number"], str(c["local_port"]), c["codec"] or "-",
                    str(c["rx"]["packets"]), str(c["tx"]["packets"]), str(c["rx"]["lost"]),
                    str(c["rx"]["late"]), str(c["rx"]["jitter"])] for c in data])


# ---------------------------------------------------------------------- calls


def parse_since(text: str, now: float) -> float:
    """`--since`: an age (`15m`) before `now`, or an ISO date/time in local time."""
    age = _AGE.fullmatch(text.strip())
    if age:
        return now - float(age.group(1)) * _UNIT[age.group(2)]
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError as exc:
        raise CommandError(f"--since {text!r}: give an age like 4h or a date like "
                           "2026-11-26T09:30") from exc


def calls(cfg: Config, args: argparse.Namespace) -> str:
    """The text `mediasrv calls` prints."""
    since = parse_since(args.since, time.time())
    path = cfg.storage.path
    if not path.exists():
        raise CommandError(f"no call records yet: {path} does not exist")
    try:
        db = open_readonly(str(path))
        try:
            records = query(db, since, args.limit)
        finally:
            db.close()
    except sqlite3.Error as exc:
        if "no such table" in str(exc):  # a store from before any call was recorded
            raise CommandError(f"no call records in {path} yet") from exc
        raise CommandError(f"cannot read call records from {path}: {exc}") from exc
    if args.json:
        return json.dumps([r.to_json() for r in records], indent=2)
    return _records(records) if records else "no calls since " + _clock(since)


def _records(records: list[CallRecord]) -> str:
    rows = []
    for r in records:
        length = f"{r.ended_at - r.started_at:.1f}s" if r.ended_at else "-"
        talk = f"{r.ended_at - r.answered_at:.1f}s" if r.ended_at and r.answered_at else "-"
        states = [str(t.get("state")) for t in r.transfers]
        rows.append([_clock(r.started_at), r.caller, r.callee, r.answered_by or "-", r.result,
                     length, talk, " > ".join(dict.fromkeys(states)) or "-"])
    return _table(["STARTED", "FROM", "TO", "ANSWERED BY", "RESULT", "LENGTH", "TALK",
                   "TRANSFER"], rows)


# ---------------------------------------------------------------------- voicemail


def voicemail(cfg: Config, args: argparse.Namespace) -> str:
    """The text `mediasrv voicemail` prints."""
    path = cfg.storage.path
    if not path.exists():
        raise CommandError(f"no voicemail yet: {path} does not exist")
    try:
        db = open_readonly(str(path))
        try:
            rows = voicemail_index(db, args.mailbox)
        finally:
            db.close()
    except sqlite3.Error as exc:
        if "no such table" in str(exc):
            raise CommandError(f"no voicemail index in {path} yet") from exc
        raise CommandError(f"cannot read the voicemail index from {path}: {exc}") from exc
    if args.json:
        return json.dumps([asdict(r) for r in rows], indent=2)
    return _messages(rows) if rows else "no messages" + (
        f" for {args.mailbox}" if args.mailbox else "")


def _messages(rows: list[VoicemailRow]) -> str:
    return _table(["RECEIVED", "MAILBOX", "FROM", "LENGTH", "HEARD", "NODE", "FILE"],
                  [[_clock(r.received_at), r.mailbox, r.caller, f"{r.seconds:.1f}s",
                    "yes" if r.heard else "no", r.node or "-", r.path] for r in rows])


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")
