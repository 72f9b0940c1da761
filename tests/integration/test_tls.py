"""SIP over TLS (issue 12): real baresips calling through mediasrv over TLS, our own TLS client.

How this works: one self-signed pair per test session is made by `mediasrv.tlscert` (the same
function `mediasrv init` uses); the harness's server gets a `tls:` listener on its own port
with that pair, and the peers trust it as their CA. SIPp is not used here: Debian's SIPp 3.6.1
is built without TLS (`sipp -v` shows no TLS feature; `sipp -t l1` stops with "To use a TLS
transport you must compile SIPp with OpenSSL"), so the real peer is baresip, whose
libre has TLS, and the protocol edges are driven by `tests.peers.stream_client`.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest

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


@pytest.fixture(scope="session")
def sni_pairs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    """Two more pairs, for SNI: `b` names sip.b.test, `w` names *.w.test and w.test."""
    d = tmp_path_factory.mktemp("sni")
    make_self_signed(d / "b.pem", d / "b.key", ["sip.b.test"])
    make_self_signed(d / "w.pem", d / "w.key", ["*.w.test", "w.test"])
    return {"b": (str(d / "b.pem"), str(d / "b.key")), "w": (str(d / "w.pem"), str(d / "w.key"))}


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


def sni_entries(pairs: dict[str, tuple[str, str]]) -> str:
    """`[[tls.certificates]]` for `sni_pairs`: `b` with its names listed, `w` with none (its
    subjectAltName's)."""
    return (f'[[tls.certificates]]\nnames = ["sip.b.test"]\ncert = "{pairs["b"][0]}"\n'
            f'key = "{pairs["b"][1]}"\n'
            f'[[tls.certificates]]\ncert = "{pairs["w"][0]}"\nkey = "{pairs["w"][1]}"\n')


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
async def tls(tmp_path: Path, tls_pair: tuple[str, str], sni_pairs: dict[str, tuple[str, str]],
              request: pytest.FixtureRequest) -> AsyncIterator[TlsHarness]:
    """The TLS server, with the SNI certificates configured too (so every test, baresip's
    included, runs through the SNI callback; clients asking for localhost or for no name
    get the default pair). Parametrized indirectly with "ca", `tls.ca` is set, so every
    client is asked for an (optional) certificate."""
    marker = request.node.get_closest_marker("site")
    ca = f'ca = "{tls_pair[0]}"\n' if getattr(request, "param", "") == "ca" else ""
    extra = ca + (marker.args[0] if marker else "") + sni_entries(sni_pairs)
    site = tls_site(tmp_path, tls_pair, extra)
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


async def _presented(addr: tuple[str, int], name: str | None, ca: str,
                     check_name: bool = True) -> bytes:
    """The certificate the server shows a client asking for `name`; the client verifies it
    against `ca` (and the host name, when one is sent and `check_name`), so a wrong pair
    fails the handshake."""
    ctx = tls_client_context(ca)
    ctx.check_hostname = check_name and name is not None
    _, writer = await asyncio.open_connection(*addr, ssl=ctx, server_hostname=name)
    try:
        return writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()


def _der(pem_path: str) -> bytes:
    return ssl.PEM_cert_to_DER_cert(Path(pem_path).read_text())


async def test_sni_picks_the_certificate_for_the_name_asked(
        tls: TlsHarness, tls_pair: tuple[str, str],
        sni_pairs: dict[str, tuple[str, str]]) -> None:
    b, w, default = sni_pairs["b"][0], sni_pairs["w"][0], tls_pair[0]
    cases = [("sip.b.test", b), ("SIP.B.test", b), ("w.test", w), ("pbx.w.test", w),
             ("localhost", default), (None, default)]
    for name, cert in cases:
        assert await _presented(tls.tls_addr, name, cert) == _der(cert), name
    # names no entry serves (two labels under the wildcard, an unknown one) get the default
    # pair, which does not name them: a verifying client refuses it
    for name in ("a.pbx.w.test", "nobody.test"):
        with pytest.raises(ssl.SSLCertVerificationError):
            await _presented(tls.tls_addr, name, default)
        assert await _presented(tls.tls_addr, name, default, check_name=False) == \
            _der(default), name
    await wait_until(lambda: not tls.tls_listener.connections, 3, "the probes to be closed")


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


def test_sni_certificates_are_checked_with_file_key_reason(
        tmp_path: Path, tls_pair: tuple[str, str],
        sni_pairs: dict[str, tuple[str, str]]) -> None:
    site = tls_site(tmp_path, tls_pair, sni_entries(sni_pairs))
    b, w = sni_pairs["b"], sni_pairs["w"]
    cfg = load_config([DEFAULT_CONFIG_DIR, site], DEFAULT_PLUGIN_DIR).tls
    assert [(c.names, c.cert) for c in cfg.certificates] == [
        (("sip.b.test",), b[0]), (("*.w.test", "w.test"), w[0])]
    (site / "99-zz-sni.toml").write_text(
        f'[[tls.certificates]]\nnames = ["sip.b.test", "other.test", "10.0.0.1", "bad_name"]\n'
        f'cert = "{b[0]}"\nkey = "{b[1]}"\n'
        f'[[tls.certificates]]\nnames = ["x.w.test"]\ncert = "{w[0]}"\nkey = "{b[1]}"\n'
        f'[[tls.certificates]]\ncert = "missing.pem"\nkey = "{b[1]}"\nnmes = []\n'
        f'[[tls.certificates]]\nnames = ["sip.b.test"]\ncert = "{b[0]}"\nkey = "{b[1]}"\n')
    with pytest.raises(ConfigError) as err:
        load_config([DEFAULT_CONFIG_DIR, site], DEFAULT_PLUGIN_DIR)
    text = str(err.value)
    f = "99-zz-sni.toml: tls.certificates"
    assert f"{f}[0].names: other.test is not in the subjectAltName of {b[0]} (sip.b.test)" \
        in text
    assert f"{f}[0].names: '10.0.0.1' is not a host name" in text
    assert f"{f}[0].names: 'bad_name' is not a host name" in text
    assert f"{f}[1].cert: {w[0]} with key {b[1]} does not load" in text
    assert f"{f}[2].cert: {site / 'missing.pem'} does not exist" in text
    assert f"{f}[2].nmes: unknown key (did you mean 'names'?)" in text
    assert f"{f}[3].names: sip.b.test is served by tls.certificates[0] already" in text
    (site / "99-zz-sni.toml").write_text('[tls]\ncert = ""\n')
    with pytest.raises(ConfigError) as err:
        load_config([DEFAULT_CONFIG_DIR, site], DEFAULT_PLUGIN_DIR)
    assert "tls.cert: is required with tls.certificates" in str(err.value)


@pytest.mark.peer
@pytest.mark.parametrize("tls", ["", "ca"], indirect=True)  # "ca": asked for a certificate
async def test_baresip_calls_baresip_over_tls_with_audio_both_ways(tls: TlsHarness) -> None:
    cert = tls.server.config.tls.cert
    asks = ssl.CERT_OPTIONAL if tls.server.config.tls.ca else ssl.CERT_NONE
    assert tls.tls_listener._server_ctx.verify_mode == asks
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


@pytest.mark.parametrize("transport,with_cert,via_host,reused", [
    ("tls", True, "localhost", True),    # its verified certificate names the sent-by host
    ("tls", False, "localhost", False),  # no certificate: a name is not taken on its word
    ("tcp", False, "127.0.0.1", True),   # TCP: the connection's own source address
    ("tcp", False, "localhost", False),  # TCP: never a name
])
async def test_an_alias_via_makes_the_connection_carry_our_requests_to_its_sent_by(
        tmp_path: Path, tls_pair: tuple[str, str], transport: str, with_cert: bool,
        via_host: str, reused: bool) -> None:
    """RFC 5923: a proxy connects to us and sends a request whose top Via carries `alias`
    and names its own listening port, where nothing listens here. Our INVITE to that
    address (the outbound proxy) must then travel on the proxy's connection; without the
    alias a new connection is tried, refused, and the call fails."""
    dead = free_port()
    site = tls_site(tmp_path, tls_pair, f'ca = "{tls_pair[0]}"\n')
    (site / "99-zz-proxy.toml").write_text(
        f'[sip]\noutbound_proxy = "sip:{via_host}:{dead};transport={transport}"\n')
    server = Server(load_config([DEFAULT_CONFIG_DIR, site], DEFAULT_PLUGIN_DIR))
    await server.start()
    h = TlsHarness(server, tmp_path)
    ctx = tls_client_context(tls_pair[0])
    if with_cert:
        ctx.load_cert_chain(*tls_pair)  # the proxy's certificate: localhost, 127.0.0.1
    addr = h.tls_addr if transport == "tls" else h.sip_addr
    proxy = StreamClient("proxy", "", addr, transport=transport, ssl_context=ctx)
    listener = next(t for t in server.driver.tcp if t.transport == transport)
    try:
        await proxy.connect()
        options = proxy.request("OPTIONS", f"sip:{addr[0]}:{addr[1]}")
        options.headers = [(k, f"SIP/2.0/{transport.upper()} {via_host}:{dead};branch="
                               f"z9hG4bKalias{transport}{with_cert};alias" if k == "Via" else v)
                           for k, v in options.headers]
        assert (await proxy.transact(options)).status < 500
        assert bool(listener.aliases) == reused
        metrics = generate_latest(server.metrics.registry).decode()
        labels = f'{{transport="{transport}"}}'
        assert f"mediasrv_sip_connection_aliases{labels} {int(reused)}.0" in metrics
        assert f"mediasrv_sip_aliases_refused_total{labels} {int(not reused)}.0" in metrics
        a = await h.phone("A", "101")
        call = await a.call(h.uri("105"), wait=False)  # 105 is not registered: the proxy's
        if not reused:
            assert await call.wait_final() >= 400
            with pytest.raises(TimeoutError):
                await proxy.read_message(timeout=0.3)
        else:
            invite = await proxy.read_message()
            assert invite.method == "INVITE" and invite.start.startswith("INVITE sip:105@")
            busy = Msg("SIP/2.0 486 Busy Here", [(k, v) for k, v in invite.headers
                                                  if k in ("Via", "From", "Call-ID", "CSeq")])
            busy.headers.append(("To", invite.get("To") + ";tag=alias1"))
            await proxy.send_raw(bytes(busy))
            assert await call.wait_final() == 486
            assert (await proxy.read_message()).method == "ACK"
            assert list(listener.connections.values())[0].inbound
            assert len(listener.connections) == 1  # no connection of ours was opened
        await proxy.close()
        await wait_until(lambda: not listener.aliases, 3, "the alias to end with its connection")
        await assert_nothing_leaked(h)
    finally:
        await proxy.close()
        for phone in h.phones:
            await phone.close()
        await server.stop()
