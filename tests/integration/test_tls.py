"""SIP over TLS (issue 12): real baresips calling through mediasrv over TLS, our own TLS client.

How this works: one self-signed pair per test session is made by `mediasrv.tlscert` (the same
function `mediasrv init` uses); the harness's server gets a `tls:` listener on its own port
with that pair, and the peers trust it as their CA. SIPp is not used here: Debian's SIPp 3.6.1
is built without TLS (`sipp -v` shows no TLS feature), so the real peer is baresip, whose
libre has TLS, and the protocol edges are driven by `tests.peers.stream_client`.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mediasrv.config import DEFAULT_CONFIG_DIR, DEFAULT_PLUGIN_DIR, ConfigError, load_config
from mediasrv.server import Server
from mediasrv.tlscert import make_self_signed
from tests.integration.conftest import (
    Harness,
    assert_nothing_leaked,
    free_port,
    site_config,
    wait_until,
)
from tests.peers.baresip import Baresip
from tests.peers.sipmsg import Msg
from tests.peers.stream_client import StreamClient, tls_client_context


@pytest.fixture(scope="session")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("tls")
    make_self_signed(d / "cert.pem", d / "key.pem", ["localhost", "127.0.0.1"])
    return str(d / "cert.pem"), str(d / "key.pem")


class TlsHarness(Harness):
    @property
    def tls_addr(self) -> tuple[str, int]:
        lst = next(x for x in self.server.config.sip.listen if x.transport == "tls")
        return (lst.host, lst.port)

    def client(self, ext: str, **kw) -> StreamClient:
        cert = self.server.config.tls.cert
        kw.setdefault("ssl_context", tls_client_context(cert))
        return StreamClient(ext, f"demo{ext}", self.tls_addr, **kw)

    @property
    def tls_listener(self):  # noqa: ANN201
        return next(t for t in self.server.driver.tcp if t.transport == "tls")


def tls_site(tmp_path: Path, pair: tuple[str, str], extra: str = "") -> Path:
    site = site_config(tmp_path)
    port = int(site.joinpath("99-test.toml").read_text().split("udp:127.0.0.1:")[1][:5]
               .rstrip('",'))
    tls_port = free_port()
    (site / "99-tls.toml").write_text(
        f'[sip]\nlisten = ["udp:127.0.0.1:{port}", "tcp:127.0.0.1:{port}", '
        f'"tls:127.0.0.1:{tls_port}"]\n[tls]\ncert = "{pair[0]}"\nkey = "{pair[1]}"\n' + extra)
    return site


@pytest.fixture
async def tls(tmp_path: Path, tls_pair: tuple[str, str],
              request: pytest.FixtureRequest) -> AsyncIterator[TlsHarness]:
    marker = request.node.get_closest_marker("site")
    site = tls_site(tmp_path, tls_pair, marker.args[0] if marker else "")
    server = Server(load_config([DEFAULT_CONFIG_DIR, site], DEFAULT_PLUGIN_DIR))
    await server.start()
    h = TlsHarness(server, tmp_path)
    try:
        yield h
        await assert_nothing_leaked(h)
    finally:
        for phone in h.phones:
            await phone.close()
        await server.stop()


async def test_register_over_tls_with_digest_and_sni(tls: TlsHarness) -> None:
    client = await tls.client("105").connect()
    try:
        resp = await client.register()
        assert resp.status == 200, resp
        binding = tls.server.b2bua.registrar.contacts("105", time.time())[0]
        assert (binding.transport, binding.source_port) == ("tls", client.local[1])
        conn = tls.tls_listener.find(client.local)
        assert conn is not None and tls.tls_listener.sni_of(conn) == "localhost"
        tls_obj = tls.tls_listener.connections[conn].transport.get_extra_info("ssl_object")
        assert tls_obj.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        await client.close()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
async def test_tls_1_1_client_is_refused(tls: TlsHarness) -> None:
    ctx = tls_client_context(tls.server.config.tls.cert)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await tls.client("105", ssl_context=ctx).connect()
    assert not tls.tls_listener.connections


async def test_plain_tcp_bytes_on_the_tls_port_get_nothing(tls: TlsHarness) -> None:
    reader, writer = await asyncio.open_connection(*tls.tls_addr)
    writer.write(b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n")
    data = await asyncio.wait_for(reader.read(100), 5)
    assert b"SIP/2.0" not in data  # an alert or a close, never a SIP answer in clear text
    writer.close()


async def test_server_request_goes_back_on_the_phones_tls_connection(tls: TlsHarness) -> None:
    """A call to a phone registered over TLS reaches it on its own connection (RFC 5923)."""
    callee = await tls.client("106").connect()
    try:
        assert (await callee.register()).status == 200
        caller = await tls.phone("A", "101")
        call = await caller.call(tls.uri("106"), wait=False)
        invite = await callee.read_message()
        assert invite.method == "INVITE"
        assert invite.get("Via").startswith("SIP/2.0/TLS ") and ";alias" in invite.get("Via")
        assert ";transport=tls>" in invite.get("Contact")
        assert len(tls.tls_listener.connections) == 1  # no second connection was opened
        busy = Msg("SIP/2.0 486 Busy Here", [(k, v) for k, v in invite.headers
                                              if k in ("Via", "From", "Call-ID", "CSeq")])
        busy.headers.append(("To", invite.get("To") + ";tag=busy1"))
        await callee.send_raw(bytes(busy))
        assert await call.wait_final() == 486
        ack = await callee.read_message()
        assert ack.method == "ACK" and ack.branch == invite.branch
    finally:
        await callee.close()
    await wait_until(lambda: not tls.server.b2bua.legs, 5, "the call to end")


async def test_sips_request_uri_is_served(tls: TlsHarness) -> None:
    client = await tls.client("105").connect()
    try:
        msg = client.request("OPTIONS", f"sips:105@127.0.0.1:{tls.tls_addr[1]}")
        resp = await client.transact(msg)
        assert resp.status < 500 and resp.status != 416, resp
    finally:
        await client.close()


def test_tls_listener_without_cert_is_a_config_error(tmp_path: Path) -> None:
    site = site_config(tmp_path)
    (site / "99-tls.toml").write_text('[sip]\nlisten = ["tls:127.0.0.1:5061"]\n'
                                      '[tls]\nmin_version = "1.0"\n')
    with pytest.raises(ConfigError) as err:
        load_config([DEFAULT_CONFIG_DIR, site], DEFAULT_PLUGIN_DIR)
    text = str(err.value)
    assert "99-tls.toml: tls.cert: is required by the tls: listener" in text
    assert "99-tls.toml: tls.min_version: must be one of 1.2, 1.3, not '1.0'" in text


def test_unloadable_pair_is_a_config_error(tmp_path: Path, tls_pair: tuple[str, str]) -> None:
    site = site_config(tmp_path)
    (tmp_path / "bad.pem").write_text("not a key")
    (site / "99-tls.toml").write_text(f'[tls]\ncert = "{tls_pair[0]}"\nkey = "../bad.pem"\n'
                                      'verify_client = true\n')
    with pytest.raises(ConfigError) as err:
        load_config([DEFAULT_CONFIG_DIR, site], DEFAULT_PLUGIN_DIR)
    text = str(err.value)
    assert f"99-tls.toml: tls.cert: {tls_pair[0]} with key {tmp_path}/bad.pem does not load" \
        in text
    assert "99-tls.toml: tls.verify_client: needs tls.ca" in text


@pytest.mark.peer
async def test_baresip_calls_baresip_over_tls_with_audio_both_ways(tls: TlsHarness) -> None:
    cert = tls.server.config.tls.cert
    phones = [Baresip(ext, f"demo{ext}", tone=tone, registrar=tls.tls_addr, transport="tls",
                      cafile=cert) for ext, tone in (("106", "D"), ("107", "E"))]
    alice, bob = phones
    try:
        for phone in phones:
            await phone.start()
            await phone.wait_registered()
        now = time.time()
        assert {b.transport for x in ("106", "107")
                for b in tls.server.b2bua.registrar.contacts(x, now)} == {"tls"}
        await alice.dial(tls.uri("107"))
        await alice.wait_event("CALL_ESTABLISHED")
        await bob.wait_event("CALL_ESTABLISHED")
        await bob.wait_hearing({"D"})
        await alice.wait_hearing({"E"})
        conns = list(tls.tls_listener.connections.values())
        assert len(conns) == 2 and all(c.inbound for c in conns), conns  # both reused
        await alice.hangup()
        await bob.wait_event("CALL_CLOSED")
        await wait_until(lambda: not tls.server.b2bua.legs, 3, "both legs to end")
    finally:
        for phone in phones:
            await phone.close()


class _TlsPeer:
    """A TLS server standing in for a front proxy: records SNI, answers INVITEs 486."""

    def __init__(self, pair: tuple[str, str]) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(*pair)
        self.ctx.sni_callback = lambda _obj, name, _ctx: self.sni.append(name)
        self.sni: list[str | None] = []
        self.invites: list[Msg] = []
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ctx)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = StreamClient("proxy", "", ("", 0))
        client.reader, client.writer = reader, writer
        try:
            while True:
                msg = await client.read_message(timeout=10)
                if msg.method == "INVITE" and msg.is_request:
                    self.invites.append(msg)
                    busy = Msg("SIP/2.0 486 Busy Here", [(k, v) for k, v in msg.headers if k in
                                                         ("Via", "From", "Call-ID", "CSeq")])
                    busy.headers.append(("To", msg.get("To") + ";tag=px1"))
                    await client.send_raw(bytes(busy))
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError, ssl.SSLError):
            writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_outbound_tls_to_a_proxy_sends_sni_and_verifies_it(
        tmp_path: Path, tls_pair: tuple[str, str]) -> None:
    peer = _TlsPeer(tls_pair)
    port = await peer.start()
    site = tls_site(tmp_path, tls_pair, f'ca = "{tls_pair[0]}"\n')
    (site / "99-zz-proxy.toml").write_text(
        f'[sip]\noutbound_proxy = "sip:localhost:{port};transport=tls"\n')
    server = Server(load_config([DEFAULT_CONFIG_DIR, site], DEFAULT_PLUGIN_DIR))
    await server.start()
    h = TlsHarness(server, tmp_path)
    try:
        a = await h.phone("A", "101")
        call = await a.call(h.uri("105"))  # not registered here: the proxy's
        assert await call.wait_final() == 486
        assert peer.sni == ["localhost"]
        [invite] = peer.invites
        assert invite.get("Via").startswith("SIP/2.0/TLS ") and ";alias" in invite.get("Via")
        conns = list(h.tls_listener.connections.values())
        assert len(conns) == 1 and not conns[0].inbound  # ours, kept for reuse
        await assert_nothing_leaked(h)
    finally:
        for phone in h.phones:
            await phone.close()
        await server.stop()
        peer.close()


async def test_outbound_tls_to_an_unverifiable_peer_is_not_used(
        tmp_path: Path, tls_pair: tuple[str, str]) -> None:
    """Without `tls.ca` the self-signed proxy is checked against the system store: refused."""
    peer = _TlsPeer(tls_pair)
    port = await peer.start()
    site = tls_site(tmp_path, tls_pair)
    (site / "99-zz-proxy.toml").write_text(
        f'[sip]\noutbound_proxy = "sip:localhost:{port};transport=tls"\n')
    server = Server(load_config([DEFAULT_CONFIG_DIR, site], DEFAULT_PLUGIN_DIR))
    await server.start()
    h = TlsHarness(server, tmp_path)
    try:
        a = await h.phone("A", "101")
        call = await a.call(h.uri("105"))
        assert await call.wait_final() >= 400
        assert peer.sni == ["localhost"] and peer.invites == []  # handshake began, no request
        await assert_nothing_leaked(h)
    finally:
        for phone in h.phones:
            await phone.close()
        await server.stop()
        peer.close()


@pytest.mark.site("[security]\nheader_timeout = 1\n")
async def test_a_client_that_never_finishes_the_handshake_is_closed(tls: TlsHarness) -> None:
    reader, writer = await asyncio.open_connection(*tls.tls_addr)
    writer.write(b"\x16\x03\x01")  # the start of a ClientHello, then nothing
    t0 = time.monotonic()
    assert await asyncio.wait_for(reader.read(100), 5) == b""
    assert 0.8 < time.monotonic() - t0 < 3.5
    writer.close()


async def test_verify_client_wants_a_certificate_signed_by_ca(
        tmp_path: Path, tls_pair: tuple[str, str]) -> None:
    site = tls_site(tmp_path, tls_pair, f'ca = "{tls_pair[0]}"\nverify_client = true\n')
    server = Server(load_config([DEFAULT_CONFIG_DIR, site], DEFAULT_PLUGIN_DIR))
    await server.start()
    h = TlsHarness(server, tmp_path)
    try:
        anonymous = h.client("105")
        with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
            await anonymous.connect()
            await anonymous.register()  # TLS 1.3: the refusal arrives after the handshake
        ctx = tls_client_context(tls_pair[0])
        ctx.load_cert_chain(*tls_pair)  # the phone's certificate, signed by the CA
        phone = await h.client("105", ssl_context=ctx).connect()
        try:
            assert (await phone.register()).status == 200
        finally:
            await phone.close()
    finally:
        await server.stop()
