"""The OpenAPI description, served by the API, checked against the API's real answers."""

from __future__ import annotations

import re

from mediasrv.api.app import ROUTES
from tests.ops.conftest import OpsHarness
from tests.ops.test_api import talking

_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool,
          "object": dict, "array": list, "null": type(None)}


def validate(value: object, schema: dict, doc: dict, where: str = "$") -> list[str]:
    """The subset of JSON Schema 2020-12 the document uses; returns the problems found."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return validate(value, doc["components"]["schemas"][name], doc, where)
    if "oneOf" in schema:
        fits = [s for s in schema["oneOf"] if not validate(value, s, doc, where)]
        return [] if len(fits) == 1 else [f"{where}: matches {len(fits)} of oneOf"]
    if "enum" in schema:
        return [] if value in schema["enum"] else [f"{where}: {value!r} not in enum"]
    problems = _type_problems(value, schema, where)
    if problems:
        return problems
    if isinstance(value, dict):
        problems += [f"{where}: missing {k}" for k in schema.get("required", []) if k not in value]
        props = schema.get("properties", {})
        problems += [f"{where}: undocumented {k}" for k in value if props and k not in props]
        for k, sub in props.items():
            if k in value:
                problems += validate(value[k], sub, doc, f"{where}.{k}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += validate(item, schema["items"], doc, f"{where}[{i}]")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
    return problems


def _type_problems(value: object, schema: dict, where: str) -> list[str]:
    if "type" not in schema:
        return []
    names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    ok = any(isinstance(value, _TYPES[n]) and not (n in ("integer", "number")
                                                    and isinstance(value, bool))
             for n in names)
    return [] if ok else [f"{where}: {value!r} is not {names}"]


def test_validator_catches_what_it_claims() -> None:
    doc = {"components": {"schemas": {"X": {"type": "object", "required": ["a"],
                                            "properties": {"a": {"type": "integer"}}}}}}
    ref = {"$ref": "#/components/schemas/X"}
    assert validate({"a": 1}, ref, doc) == []
    assert validate({}, ref, doc) == ["$: missing a"]
    assert validate({"a": "1"}, ref, doc) == ["$.a: '1' is not ['integer']"]
    assert validate({"a": True}, ref, doc)  # a bool is no integer here
    assert validate({"a": 1, "b": 2}, ref, doc) == ["$: undocumented b"]
    assert validate([{"a": 1}, 3], {"type": "array", "items": ref}, doc)


async def check(ops: OpsHarness, doc: dict, method: str, path: str, template: str,
                body: object = None) -> dict:
    reply = await ops.api.request(method.upper(), path, body)
    responses = doc["paths"][template][method]["responses"]
    assert str(reply.status) in responses, (method, path, reply.status, reply.body)
    schema = responses[str(reply.status)]["content"]["application/json"]["schema"]
    data = reply.json()
    assert validate(data, schema, doc) == [], (method, path, data)
    return data


async def test_router_serves_exactly_the_documented_operations(ops: OpsHarness) -> None:
    doc = (await ops.api.get("/openapi.json", token=None)).json()
    assert doc["openapi"] == "3.1.0"
    documented = {(m.upper(), p) for p, ops_ in doc["paths"].items() for m in ops_}
    assert documented == {(r.method, r.template) for r in ROUTES}
    for route in ROUTES:
        op = doc["paths"][route.template][route.method.lower()]
        assert (op.get("security") == []) == (not route.auth), route
        if route.auth:
            assert "401" in op["responses"]
    ids = [op["operationId"] for p in doc["paths"].values() for op in p.values()]
    assert len(ids) == len(set(ids))


async def test_answers_match_their_schemas_during_a_live_call(ops: OpsHarness) -> None:
    doc = (await ops.api.get("/openapi.json", token=None)).json()
    a, b, a_call, b_call = await talking(ops)
    regs = await check(ops, doc, "get", "/v1/registrations", "/v1/registrations")
    assert len(regs) == 2
    [call] = await check(ops, doc, "get", "/v1/calls", "/v1/calls")
    await check(ops, doc, "get", f"/v1/calls/{call['id']}", "/v1/calls/{call_id}")
    await check(ops, doc, "get", "/v1/calls/nope", "/v1/calls/{call_id}")
    assert len(await check(ops, doc, "get", "/v1/channels", "/v1/channels")) == 2
    leg = call["legs"][0]["id"]
    template = "/v1/legs/{leg_id}/transfer"
    await check(ops, doc, "post", f"/v1/legs/{leg}/transfer", template, {"target": "x"})
    await check(ops, doc, "post", "/v1/legs/nope/transfer", template, {})
    await check(ops, doc, "post", "/v1/reload", "/v1/reload")
    ended = await check(ops, doc, "delete", f"/v1/calls/{call['id']}", "/v1/calls/{call_id}")
    assert len(ended["legs"]) == 2
    await a_call.wait_state("terminated")
    unauthorised = await ops.api.get("/v1/calls", token=None)
    schema = doc["paths"]["/v1/calls"]["get"]["responses"]["401"]["content"]
    assert validate(unauthorised.json(), schema["application/json"]["schema"], doc) == []
