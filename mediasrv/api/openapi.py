"""The OpenAPI 3.1 description of the operations API, served as `GET /openapi.json`.

How this works: the document is built once from the schemas below (JSON Schema 2020-12, as
OpenAPI 3.1 uses it). It is the contract: the tests walk every documented operation against a
running server and check each answer against its schema, and check that the router serves
exactly the documented paths and methods.
"""

from __future__ import annotations

from typing import Any

from mediasrv import __version__

Schema = dict[str, Any]


def _obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    return {"type": "object", "required": sorted(required),
            "properties": {**required, **(optional or {})}}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


STR, INT, NUM, BOOL = ({"type": "string"}, {"type": "integer"}, {"type": "number"},
                       {"type": "boolean"})
NSTR, NNUM = {"type": ["string", "null"]}, {"type": ["number", "null"]}

SCHEMAS: dict[str, Schema] = {
    "Error": _obj({"error": STR, "detail": STR}),
    "Registration": _obj({"extension": STR, "contact": STR, "expires_in": NUM, "source": STR,
                          "transport": STR, "q": NUM}),
    "Hears": _obj({"kind": {"enum": ["peer", "mix", "moh", "prompt", "tone", "silence"]},
                   "peer": NSTR, "group": _array(STR), "name": NSTR}),
    "Leg": _obj({"id": STR, "number": STR, "direction": {"enum": ["in", "out"]},
                 "state": {"enum": ["calling", "ringing", "answered", "ended"]},
                 "purpose": STR, "owner": NSTR, "codec": NSTR, "remote": NSTR,
                 "on_hold": BOOL, "hears": _ref("Hears")}),
    "Transfer": _obj({"service": STR, "state": STR, "transferer": NSTR, "transferred": NSTR,
                      "addressee": NSTR, "time": NUM}),
    "Call": _obj({"id": STR, "node": STR, "caller": NSTR, "callee": NSTR, "started_at": NNUM,
                  "answered_at": NNUM, "legs": _array(_ref("Leg")),
                  "conferences": _array(_array(STR)),
                  "transfer": {"oneOf": [_ref("Transfer"), {"type": "null"}]}}),
    "Channel": _obj({"leg": STR, "call_id": STR, "number": STR, "stream": INT,
                     "local_port": INT, "codec": NSTR,
                     "rx": _obj({"packets": INT, "bytes": INT, "lost": INT, "late": INT,
                                 "jitter": INT}),
                     "tx": _obj({"packets": INT, "bytes": INT}),
                     "dropped": INT, "malformed": INT,
                     "srtp": _obj({"suite": NSTR, "auth_fail": INT, "replay": INT})}),
    "Ban": _obj({"address": STR, "reason": STR, "expires_in": NUM, "until": NUM}),
    "Unbanned": _obj({"address": STR, "unbanned": BOOL}),
    "HangupResult": _obj({"call_id": STR, "legs": _array(STR)}),
    "TransferRequest": _obj({}, {"service": STR, "target": {"type": "string",
                                                              "pattern": "^[0-9*]{0,15}$"}}),
    "TransferStarted": _obj({"call_id": STR, "leg": STR, "service": STR, "state": STR}),
    "ReloadResult": _obj({"reloaded": BOOL, "detail": STR}),
    "Console": _obj({"extension": STR, "registered": BOOL,
                     "state": {"enum": ["idle", "calling", "talking"]}, "peer": NSTR}),
    "ConsoleDial": _obj({"number": {"type": "string", "pattern": "^[0-9*]{1,15}$"}}),
}


def _json(description: str, schema: Schema) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {401: "No or wrong bearer token", 404: "No such call, leg, service or console",
            409: "The call (or the console) is not in a state that allows it",
            422: "The request or the new configuration is not valid",
            503: "The server is stopping"}
    return {str(c): _json(text[c], _ref("Error")) for c in codes}


def _op(op_id: str, summary: str, ok: tuple[int, str, Schema], *errors: int,
        body: Schema | None = None, params: tuple[str, ...] = ()) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": op_id, "summary": summary,
                          "responses": {str(ok[0]): _json(ok[1], ok[2]), **_errors(401, *errors)}}
    if params:
        op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": STR}
                            for p in params]
    if body is not None:
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": body}}}
    return op


PATHS: dict[str, dict[str, Any]] = {
    "/v1/registrations": {"get": _op("listRegistrations", "Live registrations",
                                     (200, "Bindings", _array(_ref("Registration"))), 503)},
    "/v1/calls": {"get": _op("listCalls", "Live calls with their legs and transfer state",
                             (200, "Calls", _array(_ref("Call"))), 503)},
    "/v1/calls/{call_id}": {
        "get": _op("getCall", "One live call", (200, "The call", _ref("Call")), 404, 503,
                   params=("call_id",)),
        "delete": _op("hangupCall", "Hang up every leg of a call",
                      (200, "Legs ended", _ref("HangupResult")), 404, 503,
                      params=("call_id",)),
    },
    "/v1/channels": {"get": _op("listChannels", "Media streams and RTP counters per leg",
                                (200, "Channels", _array(_ref("Channel"))), 503)},
    "/v1/legs/{leg_id}/transfer": {"post": _op(
        "startTransfer", "Start a transfer for a leg as if it dialled the service's start "
        "code (and then `target` and #)", (202, "Started", _ref("TransferStarted")),
        404, 409, 422, 503, body=_ref("TransferRequest"), params=("leg_id",))},
    "/v1/reload": {"post": _op("reload", "Re-read the configuration; new calls use it",
                               (200, "Reloaded", _ref("ReloadResult")), 422, 503)},
    "/v1/events": {"get": {
        "operationId": "streamEvents",
        "summary": "Call and transfer events as server-sent events (event name = kind)",
        "parameters": [{"name": "kinds", "in": "query", "required": False, "schema": STR,
                        "description": "comma-separated kind prefixes, e.g. transfer,leg."}],
        "responses": {"200": {"description": "text/event-stream of JSON events",
                              "content": {"text/event-stream": {"schema": STR}}},
                      **_errors(401)}}},
    "/v1/bans": {"get": _op("listBans", "Source addresses the SIP edge has banned (too many "
                            "invalid or excess requests), with reason and expiry",
                            (200, "Bans", _array(_ref("Ban"))), 503)},
    "/v1/bans/{address}": {"delete": _op("unban", "Lift the ban of one source address",
                                         (200, "Lifted", _ref("Unbanned")), 404, 503,
                                         params=("address",))},
    "/v1/console": {"get": _op("getConsole", "The console extension (the sound card)",
                               (200, "Console", _ref("Console")), 404)},
    "/v1/console/dial": {"post": _op("consoleDial", "The console calls a number",
                                     (202, "Calling", _ref("Console")), 404, 409, 422,
                                     body=_ref("ConsoleDial"))},
    "/v1/console/hangup": {"post": _op("consoleHangup", "The console hangs up",
                                       (200, "Idle", _ref("Console")), 404)},
    "/metrics": {"get": {
        "operationId": "metrics", "summary": "Prometheus metrics (no token needed)",
        "security": [],
        "responses": {"200": {"description": "Prometheus text format",
                              "content": {"text/plain": {"schema": STR}}}}}},
    "/openapi.json": {"get": {
        "operationId": "openapi", "summary": "This description (no token needed)",
        "security": [],
        "responses": {"200": {"description": "OpenAPI 3.1 document",
                              "content": {"application/json": {"schema": {"type": "object"}}}}}}},
}


def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "mediasrv operations API", "version": __version__,
                 "description": "State and control of a running mediasrv; loopback only, "
                                "Bearer token from [api] token."},
        "security": [{"bearer": []}],
        "paths": PATHS,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
