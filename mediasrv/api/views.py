"""What the API shows: JSON-ready snapshots of registrations, calls, legs and RTP counters.

How this works: every view is computed on request from the live objects — the registrar's
bindings, the B2BUA's legs grouped by call (the caller's Call-ID), the media topology (who
hears whom: bridge peer, mix-minus group, hold music, prompt, tone, silence), the call records'
in-memory view of each live call (start/answer times, transfer transitions) and the engine's
per-stream counters. Nothing is cached, so a view is never stale; each is a few dict lookups
per leg. The shapes are those of `openapi.py`'s schemas (a test checks them).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import TYPE_CHECKING

from mediasrv.call.leg import SipLeg
from mediasrv.call.records import CallRecords
from mediasrv.media.engine import MediaError

if TYPE_CHECKING:
    from mediasrv.call.b2bua import B2BUA
    from mediasrv.transport.guard import Guard


def registrations(b2bua: B2BUA, now: float | None = None) -> list[dict[str, object]]:
    """Live bindings, by extension then contact."""
    now = time.time() if now is None else now
    rows = []
    for ext, table in sorted(b2bua.registrar.bindings.items()):
        for b in sorted(table.values(), key=lambda b: b.contact):
            if b.expires_at > now:
                rows.append({"extension": ext, "contact": b.contact,
                             "expires_in": round(b.expires_at - now, 1),
                             "source": f"{b.source_host}:{b.source_port}",
                             "transport": b.transport, "q": b.q})
    return rows


def calls(b2bua: B2BUA, records: CallRecords | None) -> list[dict[str, object]]:
    """Live calls with their legs, oldest call first."""
    by_call: dict[str, list[SipLeg]] = defaultdict(list)
    for leg in b2bua.legs:
        by_call[leg.call_id].append(leg)
    def started(call_id: str) -> tuple[float, str]:
        record = records.active.get(call_id) if records else None
        return (record.started_at if record else 0.0, call_id)
    return [call(b2bua, records, call_id, by_call[call_id])
            for call_id in sorted(by_call, key=started)]


def call(b2bua: B2BUA, records: CallRecords | None, call_id: str,
         legs: list[SipLeg]) -> dict[str, object]:
    """One call: parties and times (from its record), legs, mixes and transfer state."""
    record = records.active.get(call_id) if records else None
    legs = sorted(legs, key=lambda leg: _leg_order(leg.id))
    mixes = {tuple(sorted((m.id for m in b2bua.topology.group_of(leg)), key=_leg_order))
             for leg in legs}
    return {
        "id": call_id,
        "node": b2bua.config.sip.node_id,
        "caller": record.caller if record else None,
        "callee": record.callee if record else None,
        "started_at": record.started_at if record else None,
        "answered_at": record.answered_at if record else None,
        "legs": [leg_view(b2bua, leg) for leg in legs],
        "conferences": sorted(list(m) for m in mixes if m),
        "transfer": _transfer(record.transfer) if record and record.transfer else None,
    }


def leg_view(b2bua: B2BUA, leg: SipLeg) -> dict[str, object]:
    """One leg: who, which way, SIP state, codec, and what it hears."""
    media = leg.media
    return {
        "id": leg.id, "number": leg.number, "direction": "in" if leg.inbound else "out",
        "state": leg.state.value, "purpose": leg.purpose,
        "owner": leg.owner.name if leg.owner else None,
        "codec": media.codec if media else None,
        "remote": f"{media.remote_addr}:{media.remote_port}" if media else None,
        "on_hold": leg.remote_hold, "hears": _hears(b2bua, leg),
    }


def channels(b2bua: B2BUA) -> list[dict[str, object]]:
    """Per-leg media stream and its RTP counters (received = from the phone)."""
    rows = []
    for leg in sorted(b2bua.legs, key=lambda leg: _leg_order(leg.id)):
        try:
            stats, port = b2bua.engine.stats(leg.stream), b2bua.engine.local_port(leg.stream)
        except MediaError:
            continue  # the stream closed between the leg listing and now
        rows.append({
            "leg": leg.id, "call_id": leg.call_id, "number": leg.number, "stream": leg.stream,
            "local_port": port, "codec": leg.media.codec if leg.media else None,
            "rx": {"packets": stats["packets_in"], "bytes": stats["bytes_in"],
                   "lost": stats["lost"], "late": stats["late"], "jitter": stats["jitter"]},
            "tx": {"packets": stats["packets_out"], "bytes": stats["bytes_out"]},
            "dropped": stats["dropped"], "malformed": stats["malformed"],
            "srtp": {"suite": leg.srtp.local.suite if leg.srtp and leg.srtp.local else None,
                     "auth_fail": stats["srtp_auth_fail"], "replay": stats["srtp_replay"]},
        })
    return rows


def _hears(b2bua: B2BUA, leg: SipLeg) -> dict[str, object]:
    feed = b2bua.topology.hears(leg)
    return {"kind": feed.kind, "peer": feed.peer.id if feed.peer else None,
            "group": [m.id for m in feed.group if m is not leg], "name": feed.name or None}


def _transfer(step: dict[str, object]) -> dict[str, object]:
    keys = ("service", "state", "transferer", "transferred", "addressee", "time")
    return {k: step.get(k) for k in keys}


def _leg_order(leg_id: str) -> tuple[int, str]:
    digits = "".join(c for c in leg_id if c.isdigit())
    return (int(digits) if digits else 0, leg_id)


def bans(guard: Guard, loop_now: float) -> list[dict[str, object]]:
    """The SIP edge's ban list: who, why, and when the ban is lifted (wall clock)."""
    wall = time.time()
    return [{"address": b.host, "reason": b.reason,
             "expires_in": round(max(0.0, b.until - loop_now), 1),
             "until": round(wall + b.until - loop_now, 1)}
            for b in sorted(guard.bans.values(), key=lambda b: b.until) if b.until > loop_now]
