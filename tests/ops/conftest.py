"""A real mediasrv with its operations API on a free loopback port, and an HTTP client for it.

The client is written on asyncio streams (the server runs in the test's own loop, so a blocking
client would deadlock it); it speaks plain HTTP/1.1 and reads SSE frames, which also exercises
our server against a second, independent implementation of the message syntax.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mediasrv.config import DEFAULT_CONFIG_DIR, DEFAULT_PLUGIN_DIR, load_config
from mediasrv.server import Server
from tests.integration.conftest import (
    Harness,
    assert_nothing_leaked,
    free_port,
    moh_tone_site,
    site_config,
)

TOKEN = "s3cret-token"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


class Api:
    """An HTTP/1.1 client for the API under test (one connection per request)."""

    def __init__(self, port: int, token: str = TOKEN) -> None:
        self.port = port
        self.token = token

    async def raw(self, data: bytes) -> Reply:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(data)
            await writer.drain()
            return await read_reply(reader)
        finally:
            writer.close()

    async def request(self, method: str, path: str, body: object = None, *,
                      token: str | None = "") -> Reply:
        payload = b"" if body is None else json.dumps(body).encode()
        headers = [f"{method} {path} HTTP/1.1", "Host: test", f"Content-Length: {len(payload)}",
                   "Connection: close"]
        auth = self.token if token == "" else token
        if auth is not None:
            headers.append(f"Authorization: Bearer {auth}")
        return await self.raw(("\r\n".join(headers) + "\r\n\r\n").encode() + payload)

    async def get(self, path: str, **kw) -> Reply:
        return await self.request("GET", path, **kw)

    async def get_json(self, path: str) -> object:
        reply = await self.get(path)
        assert reply.status == 200, (reply.status, reply.body)
        return reply.json()

    async def events(self, query: str = "") -> EventReader:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(f"GET /v1/events{query} HTTP/1.1\r\nHost: t\r\n"
                     f"Authorization: Bearer {self.token}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"text/event-stream" in head
        return EventReader(reader, writer)


class EventReader:
    """Reads SSE frames: (event name, data dict) pairs."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.seen: list[tuple[str, dict]] = []

    async def next(self, timeout: float = 5.0) -> tuple[str, dict]:
        while True:
            block = await asyncio.wait_for(self.reader.readuntil(b"\n\n"), timeout)
            fields: dict[str, str] = {}
            for line in block.decode().strip("\n").split("\n"):
                if line.startswith(":"):
                    continue  # a keep-alive comment
                name, _, value = line.partition(": ")
                fields[name] = fields[name] + "\n" + value if name in fields else value
            if "event" in fields:
                item = (fields["event"], json.loads(fields["data"]))
                self.seen.append(item)
                return item

    async def until(self, predicate, timeout: float = 5.0) -> tuple[str, dict]:
        while True:
            item = await self.next(timeout)
            if predicate(*item):
                return item

    def close(self) -> None:
        self.writer.close()


async def read_reply(reader: asyncio.StreamReader) -> Reply:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, *lines = head.strip("\r\n").split("\r\n")
    headers = {}
    for line in lines:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Reply(int(status_line.split(" ")[1]), headers, body)


class OpsHarness(Harness):
    def __init__(self, server: Server, tmp_path: Path) -> None:
        super().__init__(server, tmp_path)
        assert server.api is not None
        self.api = Api(server.api.port)


def ops_site(tmp_path: Path, extra: str = "") -> tuple[Path, int]:
    """The integration site config, with the API on a free port and a known token."""
    site = site_config(tmp_path, extra)
    port = free_port()
    (site / "99-zz-ops.toml").write_text(f'[api]\nlisten = "127.0.0.1:{port}"\n'
                                         f'token = "{TOKEN}"\n')
    return site, port


@pytest.fixture
async def ops(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[OpsHarness]:
    marker = request.node.get_closest_marker("site")
    extra = marker.args[0] if marker else ""
    if request.node.get_closest_marker("moh_tone"):
        extra += moh_tone_site(tmp_path)
    site, _port = ops_site(tmp_path, extra)
    server = Server(load_config([DEFAULT_CONFIG_DIR, site], DEFAULT_PLUGIN_DIR),
                    reload=lambda: load_config([DEFAULT_CONFIG_DIR, site], DEFAULT_PLUGIN_DIR))
    await server.start()
    h = OpsHarness(server, tmp_path)
    try:
        yield h
        await assert_nothing_leaked(h)
        assert not server.api.hub.subscribers, "an event stream outlived its client"
    finally:
        for phone in h.phones:
            await phone.close()
        await server.stop()
