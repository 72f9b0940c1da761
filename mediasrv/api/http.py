"""A small HTTP/1.1 server of our own for the operations API (no web framework).

How this works (RFC 9112, HTTP/1.1 message syntax; RFC 9110 semantics):
- `parse_head()` is sans-I/O: bytes of a request head (request-line §3, header fields §5) in,
  an `HttpRequest` (without body) out, or `HttpError` with the status the client deserves
  (400 malformed, 431 fields too large, 501 an unsupported transfer coding, 505 not HTTP/1.x).
- The body length is Content-Length only (§6.3); chunked request bodies are refused with 501
  because no client of this API sends them. Bodies above `MAX_BODY` get 413.
- `HttpServer` is the asyncio adapter: one task per connection reads a head with
  `readuntil(b"\\r\\n\\r\\n")`, the body, hands the request to the handler and writes the
  response. Connections persist (HTTP/1.1 default, §9.3) until `Connection: close`, an error,
  or `IDLE_TIMEOUT` seconds of silence.
- A handler may answer with an `EventStream` instead of a response: the connection then
  carries server-sent events (WHATWG HTML §9.2, `text/event-stream`) until the stream ends,
  the client goes away or the server closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger("mediasrv.api")

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
IDLE_TIMEOUT = 30.0
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789"
                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class HttpError(Exception):
    """The client's request cannot be served: `status` is the answer it gets."""

    def __init__(self, status: int, detail: str, headers: tuple[tuple[str, str], ...] = ()
                 ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers  # e.g. WWW-Authenticate on 401, Allow on 405

    def response(self) -> HttpResponse:
        """The error answer (JSON `error`/`detail`) with this error's headers."""
        answer = HttpResponse.error(self.status, self.detail)
        answer.headers.extend(self.headers)
        return answer


@dataclass(frozen=True)
class HttpRequest:
    """One parsed request; header names are lower-cased, repeated fields joined by ", ".
    `path` is still percent-encoded: the router decodes each segment (a Call-ID may hold "/")."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    version: str = "HTTP/1.1"

    def json(self) -> object:
        """The body as JSON ({} when empty); malformed JSON is the client's 400."""
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"body is not JSON: {exc}") from exc

    @property
    def keep_alive(self) -> bool:
        """Whether the connection persists after the answer (RFC 9112 §9.3)."""
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


@dataclass
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, data: object) -> HttpResponse:
        return cls(status, json.dumps(data, indent=None, separators=(",", ":")).encode())

    @classmethod
    def error(cls, status: int, detail: str) -> HttpResponse:
        return cls.json(status, {"error": HTTPStatus(status).phrase, "detail": detail})

    def head(self, keep_alive: bool) -> bytes:
        """Status line and header fields, ending with the empty line."""
        lines = [f"HTTP/1.1 {self.status} {HTTPStatus(self.status).phrase}",
                 f"Content-Type: {self.content_type}", f"Content-Length: {len(self.body)}",
                 "Connection: keep-alive" if keep_alive else "Connection: close",
                 "Cache-Control: no-store",
                 *(f"{k}: {v}" for k, v in self.headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class EventStream:
    """A server-sent-events answer: `events` yields (event name, data) pairs, or None for a
    keep-alive comment; `close` is called when the connection ends for any reason."""

    events: AsyncIterator[tuple[str, str] | None]
    close: Callable[[], None] = lambda: None

    HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Cache-Control: no-store\r\nConnection: close\r\n\r\n")

    @staticmethod
    def frame(item: tuple[str, str] | None, event_id: int) -> bytes:
        """One event block; data lines are split so a newline in data cannot end it early."""
        if item is None:
            return b": keep-alive\n\n"
        name, data = item
        lines = [f"id: {event_id}", f"event: {name}", *(f"data: {d}" for d in data.split("\n"))]
        return ("\n".join(lines) + "\n\n").encode()


Handler = Callable[[HttpRequest], Awaitable[HttpResponse | EventStream]]


# ---------------------------------------------------------------------- parsing (sans-I/O)


def parse_head(head: bytes) -> HttpRequest:
    """Parses a request head (request-line and fields, CRLF CRLF included or not)."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes every byte
        raise HttpError(400, str(exc)) from exc
    lines = text.rstrip("\r\n").split("\r\n")
    method, target, version = _request_line(lines[0])
    headers = _fields(lines[1:])
    parts = urlsplit(target)
    return HttpRequest(method, parts.path, dict(parse_qsl(parts.query)), headers,
                       version=version)


def _request_line(line: str) -> tuple[str, str, str]:
    parts = line.split(" ")
    if len(parts) != 3 or not parts[0] or not set(parts[0]) <= _TOKEN_CHARS:
        raise HttpError(400, f"malformed request line {line[:80]!r}")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(505, f"{version[:20]!r} is not HTTP/1.x")
    if not target.startswith("/"):
        raise HttpError(400, "only origin-form request targets are served")
    return method, target, version


def _fields(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name or not set(name) <= _TOKEN_CHARS:
            raise HttpError(400, f"malformed header field {line[:80]!r}")  # §5.1: no space
        key, value = name.lower(), value.strip(" \t")
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def body_length(request: HttpRequest) -> int:
    """The body length the head announces (RFC 9112 §6.3)."""
    if "transfer-encoding" in request.headers:
        raise HttpError(501, "chunked request bodies are not supported; send Content-Length")
    raw = request.headers.get("content-length", "0")
    if not raw.isdigit():
        raise HttpError(400, f"bad Content-Length {raw[:20]!r}")
    if int(raw) > MAX_BODY:
        raise HttpError(413, f"body over {MAX_BODY} bytes")
    return int(raw)


# ---------------------------------------------------------------------- the asyncio adapter


class HttpServer:
    """Serves `handler` on one TCP address; `close()` ends every connection, streams too."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._connection, host, port, limit=MAX_HEAD)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stops listening and ends every open connection, event streams included."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while await self._exchange(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away or stayed silent: nothing to answer
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _exchange(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> bool:
        """Serves one request; True when the connection stays open for another."""
        try:
            request = await self._read(reader)
        except HttpError as exc:
            writer.write(_error_bytes(exc))
            await writer.drain()
            return False
        if request is None:
            return False
        try:
            answer = await self.handler(request)
        except HttpError as exc:
            answer = exc.response()
        except Exception:  # our bug: answered 500, logged, and the server goes on
            log.exception("API handler failed on %s %s", request.method, request.path)
            answer = HttpResponse.error(500, "internal error (see the server log)")
        if isinstance(answer, EventStream):
            await _stream(answer, reader, writer)
            return False
        writer.write(answer.head(request.keep_alive) + answer.body)
        await writer.drain()
        return request.keep_alive

    async def _read(self, reader: asyncio.StreamReader) -> HttpRequest | None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
        except asyncio.LimitOverrunError as exc:
            raise HttpError(431, "request head too large") from exc
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise HttpError(400, "incomplete request head") from exc
            return None
        if len(head) > MAX_HEAD:
            raise HttpError(431, "request head too large")
        request = parse_head(head)
        length = body_length(request)
        if not length:
            return request
        body = await asyncio.wait_for(reader.readexactly(length), IDLE_TIMEOUT)
        return HttpRequest(request.method, request.path, request.query, request.headers,
                           body, request.version)


async def _stream(stream: EventStream, reader: asyncio.StreamReader,
                  writer: asyncio.StreamWriter) -> None:
    """Pumps the stream until it ends or the client closes its side (a client sends nothing
    on an event stream, so any read completing means it is gone)."""
    pump = asyncio.ensure_future(_pump(stream, writer))
    gone = asyncio.ensure_future(reader.read(1))
    try:
        await asyncio.wait((pump, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pump, gone):
            task.cancel()
        await asyncio.gather(pump, gone, return_exceptions=True)
        stream.close()


async def _pump(stream: EventStream, writer: asyncio.StreamWriter) -> None:
    writer.write(EventStream.HEAD)
    await writer.drain()
    event_id = 0
    async for item in stream.events:
        event_id += item is not None
        writer.write(EventStream.frame(item, event_id))
        await writer.drain()


def _error_bytes(exc: HttpError) -> bytes:
    response = exc.response()
    return response.head(keep_alive=False) + response.body
