"""RFC 5923 connection reuse on its own: the endpoint's alias offers, the listeners' checks.

How this works: the sans-I/O endpoint gets requests with and without `;alias` on fake stream
connections and must offer exactly the sent-by of those that carry it on their own transport.
The listeners run on loopback with real clients: a plain TCP client, and TLS clients with and
without a client certificate (self-signed pairs from `mediasrv.tlscert`, the server's `ca`
trusting the one the "proxy" shows). `alias()` must accept only what the connection can speak
for, `find()` must then return that connection for the aliased address, and the alias must go
with its connection.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mediasrv.config_edge import TlsConfig
from mediasrv.sip.endpoint import AliasOffer, SipEndpoint
from mediasrv.tlscert import make_self_signed
from mediasrv.transport.tcp import TcpListener
from mediasrv.transport.tls import TlsListener, certificate_hosts

LOCAL = {"udp": ("127.0.0.1", 5060), "tcp": ("127.0.0.1", 5060), "tls": ("127.0.0.1", 5061)}


def _options(via: str) -> bytes:
    return (f"OPTIONS sip:100@127.0.0.1 SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n"
            "From: <sip:p@example.com>;tag=1\r\nTo: <sip:100@127.0.0.1>\r\nCall-ID: a1\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


@pytest.mark.parametrize("via,transport,conn,offer", [
    ("SIP/2.0/TLS Proxy.Example.com;branch=z9hG4bK1;alias", "tls", 7,
     AliasOffer(7, "tls", "proxy.example.com", 5061)),
    ("SIP/2.0/TCP 192.0.2.1:5070;alias;branch=z9hG4bK1", "tcp", 8,
     AliasOffer(8, "tcp", "192.0.2.1", 5070)),
    ("SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK1;alias", "tcp", 8,
     AliasOffer(8, "tcp", "192.0.2.1", 5060)),
    ("SIP/2.0/TLS [2001:DB8::1]:5061;branch=z9hG4bK1;alias", "tls", 9,
     AliasOffer(9, "tls", "2001:db8::1", 5061)),
    ("SIP/2.0/TLS proxy.example.com;branch=z9hG4bK1", "tls", 7, None),   # no alias
    ("SIP/2.0/TCP proxy.example.com;branch=z9hG4bK1;alias", "tls", 7, None),  # other transport
    ("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1;alias", "udp", None, None),   # no connection
    ("SIP/2.0/TLS proxy.example.com;branch=z9hG4bK1;x-alias=1", "tls", 7, None),
])
def test_the_endpoint_offers_the_sent_by_of_an_alias_via(
        via: str, transport: str, conn: int | None, offer: AliasOffer | None) -> None:
    ep = SipEndpoint(LOCAL)
    ep.receive(_options(via), ("192.0.2.1", 40000), transport, conn, LOCAL[transport], 0.0)
    assert ep.aliases_offered() == ([offer] if offer else [])
    assert ep.aliases_offered() == []  # drained
    assert [type(e).__name__ for e in ep.next_events()] == ["RequestReceived"]


def test_certificate_hosts_follow_rfc_5922() -> None:
    cert = {"subject": ((("commonName", "cn.example.com"),),),
            "subjectAltName": (("DNS", "Proxy.Example.com."), ("DNS", "*.example.com"),
                               ("IP Address", "192.0.2.9"))}
    assert certificate_hosts(cert) == {"proxy.example.com", "192.0.2.9"}  # no CN, no wildcard
    assert certificate_hosts({"subject": ((("commonName", "CN.example.com"),),)}) == \
        {"cn.example.com"}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    d = tmp_path_factory.mktemp("alias")
    out = {}
    for name, hosts in (("server", ["localhost", "127.0.0.1"]),
                        ("proxy", ["proxy.test", "127.0.0.2"])):
        make_self_signed(d / f"{name}.pem", d / f"{name}.key", hosts)
        out[name] = (str(d / f"{name}.pem"), str(d / f"{name}.key"))
    return out


async def _listener(lst: TcpListener) -> AsyncIterator[tuple[TcpListener, int]]:
    await lst.listen("127.0.0.1", 0)
    assert lst._server is not None
    yield lst, lst._server.sockets[0].getsockname()[1]
    await lst.close()


@pytest.fixture
async def tcp() -> AsyncIterator[tuple[TcpListener, int]]:
    async for item in _listener(TcpListener(lambda *a: None, lambda _c: None)):
        yield item


@pytest.fixture
async def tls(pairs: dict[str, tuple[str, str]]) -> AsyncIterator[tuple[TcpListener, int]]:
    cfg = TlsConfig(cert=pairs["server"][0], key=pairs["server"][1], ca=pairs["proxy"][0])
    async for item in _listener(TlsListener(lambda *a: None, lambda _c: None, config=cfg)):
        yield item


async def _accepted(lst: TcpListener, count: int) -> list[int]:
    for _ in range(200):
        if len(lst.connections) >= count and all(c.transport for c in lst.connections.values()):
            return sorted(lst.connections)
        await asyncio.sleep(0.01)
    raise AssertionError("the connection was not accepted")


async def test_tcp_aliases_only_the_clients_own_address(tcp: tuple[TcpListener, int]) -> None:
    lst, port = tcp
    _, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
    [conn] = await _accepted(lst, 1)
    assert lst.find(("127.0.0.2", 5070)) is None
    assert lst.alias(conn, "127.0.0.2", 5070)
    assert lst.find(("127.0.0.2", 5070)) == conn
    assert not lst.alias(conn, "127.0.0.3", 5070)           # someone else's address
    assert not lst.alias(conn, "proxy.test", 5070)          # a name: nothing proves it over TCP
    assert lst.find(("127.0.0.3", 5070)) is None and lst.aliases_refused == 2
    writer.close()
    for _ in range(200):
        if not lst.connections:
            break
        await asyncio.sleep(0.01)
    assert lst.aliases == {} and lst.find(("127.0.0.2", 5070)) is None


async def test_a_newer_alias_for_the_same_address_wins(tcp: tuple[TcpListener, int]) -> None:
    lst, port = tcp
    writers = [(await asyncio.open_connection("127.0.0.1", port,
                                              local_addr=("127.0.0.2", 0)))[1] for _ in range(2)]
    first, second = await _accepted(lst, 2)
    assert lst.alias(first, "127.0.0.2", 5070) and lst.alias(second, "127.0.0.2", 5070)
    assert lst.find(("127.0.0.2", 5070)) == second
    writers[0].close()
    await asyncio.sleep(0.1)
    assert lst.find(("127.0.0.2", 5070)) == second  # the older one closing does not remove it
    writers[1].close()


def _client_ctx(pairs: dict[str, tuple[str, str]], with_cert: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pairs["server"][0])
    if with_cert:
        ctx.load_cert_chain(*pairs["proxy"])
    return ctx


async def test_tls_aliases_the_names_of_a_verified_client_certificate(
        tls: tuple[TcpListener, int], pairs: dict[str, tuple[str, str]]) -> None:
    lst, port = tls
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=_client_ctx(pairs, True), server_hostname="localhost",
        local_addr=("127.0.0.1", 0))
    [conn] = await _accepted(lst, 1)
    assert lst.alias(conn, "Proxy.Test", 5061) and lst.find(("proxy.test", 5061)) == conn
    assert lst.alias(conn, "127.0.0.2", 5062)       # an IP entry of the certificate
    assert lst.alias(conn, "127.0.0.1", 5063)       # its source address
    assert not lst.alias(conn, "other.test", 5061)  # named by nothing
    writer.close()


async def test_tls_without_a_client_certificate_gets_the_tcp_rule(
        tls: tuple[TcpListener, int], pairs: dict[str, tuple[str, str]]) -> None:
    lst, port = tls
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=_client_ctx(pairs, False), server_hostname="localhost")
    [conn] = await _accepted(lst, 1)
    assert not lst.alias(conn, "proxy.test", 5061)
    assert not lst.alias(conn, "127.0.0.2", 5061)
    assert lst.alias(conn, "127.0.0.1", 5061)
    writer.close()


async def test_a_client_certificate_the_ca_did_not_sign_is_refused(
        tls: tuple[TcpListener, int], pairs: dict[str, tuple[str, str]],
        tmp_path: Path) -> None:
    """With `ca` set a certificate is optional, but one that is shown must verify."""
    lst, port = tls
    make_self_signed(tmp_path / "rogue.pem", tmp_path / "rogue.key", ["proxy.test"])
    ctx = _client_ctx(pairs, False)
    ctx.load_cert_chain(tmp_path / "rogue.pem", tmp_path / "rogue.key")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="localhost")
        await asyncio.wait_for(reader.read(1), 3)  # TLS 1.3: the alert comes after the handshake
        raise ConnectionError("closed")
    assert not lst.aliases
