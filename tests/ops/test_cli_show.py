"""`mediasrv show registrations|calls|channels` against a running server through its API."""

from __future__ import annotations

import asyncio
import json

from mediasrv.cli import main
from mediasrv.config import DEFAULT_CONFIG_DIR
from tests.integration.conftest import free_port
from tests.ops.conftest import OpsHarness
from tests.ops.test_api import talking


def args(ops: OpsHarness, *extra: str) -> list[str]:
    return [*extra, "-c", str(DEFAULT_CONFIG_DIR), "-c", str(ops.tmp_path / "site")]


async def show(ops: OpsHarness, capsys, *extra: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["show", *args(ops, *extra)])
    out = capsys.readouterr()
    return code, out.out, out.err


async def test_show_views_during_a_call(ops: OpsHarness, capsys) -> None:
    a, b, a_call, b_call = await talking(ops)
    code, out, _ = await show(ops, capsys, "registrations")
    header, *lines = out.strip().split("\n")
    assert code == 0 and header.split() == ["EXT", "CONTACT", "SOURCE", "TRANSPORT", "EXPIRES"]
    assert [line.split()[0] for line in lines] == ["101", "102"]
    code, out, _ = await show(ops, capsys, "calls")
    title, legs_header, first, second = out.strip().split("\n")
    assert title.startswith(f"call {a_call.call_id}  101 -> 102  since ")
    assert legs_header.split()[:5] == ["LEG", "NUMBER", "DIR", "STATE", "CODEC"]
    assert first.split()[1:7] == ["101", "in", "answered", "PCMU", "peer", second.split()[0]]
    code, out, _ = await show(ops, capsys, "channels")
    header, *lines = out.strip().split("\n")
    assert header.split()[:4] == ["LEG", "NUMBER", "PORT", "CODEC"] and len(lines) == 2
    assert all(int(line.split()[4]) > 0 for line in lines)  # packets received
    code, out, _ = await show(ops, capsys, "calls", "--json")
    assert code == 0 and json.loads(out)[0]["id"] == a_call.call_id
    await a_call.hangup()
    await ops.settle()
    assert (await show(ops, capsys, "calls"))[1].strip() == "no calls"


async def test_show_errors(ops: OpsHarness, capsys) -> None:
    code, _, err = await show(ops, capsys, "calls", "--token", "wrong")
    assert code == 1 and "answered 401: wrong token" in err
    code, _, err = await show(ops, capsys, "calls", "--api", f"127.0.0.1:{free_port()}")
    assert code == 1 and "cannot reach the API" in err
