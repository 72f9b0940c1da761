"""The API's own HTTP/1.1 server: the sans-I/O parser, then the asyncio adapter on loopback."""

from __future__ import annotations

import asyncio

import pytest

from mediasrv.api.http import (
    MAX_BODY,
    EventStream,
    HttpError,
    HttpRequest,
    HttpResponse,
    HttpServer,
    body_length,
    parse_head,
)
from tests.ops.conftest import read_reply

# ---------------------------------------------------------------------- parser


def test_parse_head_request_line_fields_and_query() -> None:
    req = parse_head(b"GET /v1/calls/a%2Fb?x=1&y=two HTTP/1.1\r\nHost: h\r\n"
                     b"X-Multi: a\r\nx-multi: b\r\nAuthorization:  Bearer t \r\n\r\n")
    assert (req.method, req.path, req.version) == ("GET", "/v1/calls/a%2Fb", "HTTP/1.1")
    assert req.query == {"x": "1", "y": "two"}
    assert req.headers == {"host": "h", "x-multi": "a, b", "authorization": "Bearer t"}


@pytest.mark.parametrize("head, status", [
    (b"GET /\r\n\r\n", 400),  # no version
    (b"GET / HTTP/2.0\r\n\r\n", 505),
    (b"GET http://host/ HTTP/1.1\r\n\r\n", 400),  # absolute-form is for proxies
    (b"G(T / HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),  # RFC 9112 5.1: no whitespace in name
    (b"GET / HTTP/1.1\r\nno-colon\r\n\r\n", 400),
])
def test_parse_head_rejects(head: bytes, status: int) -> None:
    with pytest.raises(HttpError) as err:
        parse_head(head)
    assert err.value.status == status


@pytest.mark.parametrize("headers, result", [
    ({}, 0), ({"content-length": "12"}, 12),
    ({"content-length": "-1"}, 400), ({"content-length": "1e3"}, 400),
    ({"content-length": str(MAX_BODY + 1)}, 413), ({"transfer-encoding": "chunked"}, 501),
])
def test_body_length(headers: dict[str, str], result: int) -> None:
    req = HttpRequest("POST", "/", {}, headers)
    if result < 100:
        assert body_length(req) == result
    else:
        with pytest.raises(HttpError) as err:
            body_length(req)
        assert err.value.status == result


def test_keep_alive_defaults_per_version() -> None:
    assert HttpRequest("GET", "/", {}, {}).keep_alive
    assert not HttpRequest("GET", "/", {}, {"connection": "close"}).keep_alive
    assert not HttpRequest("GET", "/", {}, {}, version="HTTP/1.0").keep_alive
    assert HttpRequest("GET", "/", {}, {"connection": "Keep-Alive"}, version="HTTP/1.0").keep_alive


def test_json_body_errors_are_the_clients() -> None:
    assert HttpRequest("POST", "/", {}, {}, b'{"a": 1}').json() == {"a": 1}
    with pytest.raises(HttpError) as err:
        HttpRequest("POST", "/", {}, {}, b"{nope").json()
    assert err.value.status == 400


def test_sse_frame_splits_data_lines() -> None:
    assert EventStream.frame(("call.started", "a\nb"), 7) == \
        b"id: 7\nevent: call.started\ndata: a\ndata: b\n\n"
    assert EventStream.frame(None, 7) == b": keep-alive\n\n"


# ---------------------------------------------------------------------- adapter


async def echo(request: HttpRequest) -> HttpResponse | EventStream:
    if request.path == "/boom":
        raise HttpError(409, "no", (("X-Why", "because"),))
    if request.path == "/stream":
        async def gen():
            yield ("one", "1")
            yield None
            yield ("two", "2")
        return EventStream(gen(), close=closed.set)
    return HttpResponse.json(200, {"method": request.method, "path": request.path,
                                   "body": request.body.decode()})


closed = asyncio.Event()


@pytest.fixture
async def http() -> HttpServer:
    server = HttpServer(echo)
    await server.start("127.0.0.1", 0)
    yield server
    await server.close()


async def exchange(server: HttpServer, data: bytes) -> tuple[asyncio.StreamReader,
                                                             asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(data)
    await writer.drain()
    return reader, writer


async def test_keep_alive_serves_two_requests_on_one_connection(http: HttpServer) -> None:
    reader, writer = await exchange(http, b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz"
                                          b"GET /b HTTP/1.1\r\n\r\n")
    first, second = await read_reply(reader), await read_reply(reader)
    assert first.json() == {"method": "POST", "path": "/a", "body": "xyz"}
    assert second.json()["path"] == "/b"
    assert first.headers["connection"] == "keep-alive"
    writer.close()


async def test_connection_close_is_honoured(http: HttpServer) -> None:
    reader, writer = await exchange(http, b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n")
    reply = await read_reply(reader)
    assert reply.headers["connection"] == "close"
    assert await reader.read() == b""  # the server closed its side
    writer.close()


@pytest.mark.parametrize("data, status", [
    (b"BLAH\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 431),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
])
async def test_bad_requests_get_an_answer_and_a_close(http: HttpServer, data: bytes,
                                                      status: int) -> None:
    reader, writer = await exchange(http, data)
    reply = await read_reply(reader)
    assert reply.status == status
    assert reply.json()["detail"]
    assert await reader.read() == b""
    writer.close()


async def test_handler_errors_carry_their_headers(http: HttpServer) -> None:
    reader, writer = await exchange(http, b"GET /boom HTTP/1.1\r\n\r\n")
    reply = await read_reply(reader)
    assert (reply.status, reply.headers["x-why"]) == (409, "because")
    writer.close()


async def test_event_stream_frames_and_close_hook(http: HttpServer) -> None:
    closed.clear()
    reader, writer = await exchange(http, b"GET /stream HTTP/1.1\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 3)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Content-Type: text/event-stream" in head
    assert body == (b"id: 1\nevent: one\ndata: 1\n\n: keep-alive\n\n"
                    b"id: 2\nevent: two\ndata: 2\n\n")
    await asyncio.wait_for(closed.wait(), 1)
    writer.close()


async def test_close_ends_open_connections(http: HttpServer) -> None:
    reader, writer = await exchange(http, b"GET /a HTTP/1.1\r\n\r\n")
    await read_reply(reader)  # the connection now idles, kept alive
    await http.close()
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
