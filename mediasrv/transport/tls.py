"""SIP over TLS (RFC 3261 §26.2, RFC 5630): the TCP adapter with the stdlib `ssl` layer.

How this works: `TlsListener` is a `TcpListener` whose server socket and outbound connections
are wrapped by asyncio's SSL protocol (`create_server(ssl=...)`, `create_connection(ssl=...,
server_hostname=...)`), so the SIP layer sees the same decrypted byte stream, named "tls".
`server_context()` and `client_context()` build the contexts from `[tls]`:

- TLS 1.2 or 1.3 only (`min_version`, RFC 8996 retired 1.0/1.1); the cipher list is OpenSSL's
  secure default for TLS 1.2 (ECDHE with AES-GCM or ChaCha20-Poly1305 first, no RC4/3DES/
  export/NULL) unless `ciphers` names another; TLS 1.3 suites are OpenSSL's three defaults;
- the server presents `cert`/`key`; with `verify_client` a phone must show a certificate
  signed by `ca` (mutual TLS, RFC 5630 §3.1.3), otherwise none is asked for;
- outbound connections (to a phone registered over TLS whose connection is gone, or to a
  `;transport=tls` target) verify the peer against `ca` (or the system store) and send the
  destination host as SNI (RFC 6066 §3) with host-name checking (RFC 5922 §7.2) for names;
  an IP-address target is checked against the certificate's IP subjectAltName;
- the handshake must finish within `security.header_timeout` (a slow handshake is a
  slowloris too); the server records the SNI name each client asked for on the connection;
- several certificates (`[[tls.certificates]]`): each entry gets its own context, hardened the
  same way; the ClientHello's server name picks one in the SNI callback (exact names first,
  then `*.parent` for one label under it) and switches the connection to it; no name, or
  one no entry serves, keeps the default `cert`/`key`.

Requests and responses to a phone registered over TLS go back on its own connection, found by
its source address (see `SipDriver._send`). A request carrying `alias` in its top Via
(RFC 5923) makes its connection the one for its sent-by address too, when `may_alias` agrees:
RFC 5923 §5.3 wants the client authenticated by its certificate, so a host named by the
verified client certificate (subjectAltName DNS or IP entries, the subject CN only when there
are no DNS entries; no wildcards, RFC 5922 §7.2) may be aliased. With `ca` set, every client
is asked for a certificate (verified when one is shown, optional unless `verify_client`), so
a proxy with one can alias its name. A phone without a certificate gets the TCP rule: only
its own source address (an IP literal sent-by equal to it) may be aliased, which takes over
no one else's requests.
"""

from __future__ import annotations

import ssl
from typing import Any

from mediasrv.config_edge import TLS_VERSIONS, TlsConfig
from mediasrv.transport.tcp import TcpListener, _Connection, same_ip
from mediasrv.transport.udp import Address


def server_context(cfg: TlsConfig) -> ssl.SSLContext:
    """The context `tls:` listeners accept with (raises ssl.SSLError/OSError on bad files)."""
    ctx = _one_server_context(cfg, cfg.cert, cfg.key)
    exact: dict[str, ssl.SSLContext] = {}
    wildcard: dict[str, ssl.SSLContext] = {}
    for entry in cfg.certificates:
        other = _one_server_context(cfg, entry.cert, entry.key)
        for name in entry.names:
            if name.startswith("*."):
                wildcard[name[2:]] = other
            else:
                exact[name] = other

    def choose(sslobj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        sslobj.sni = name  # type: ignore[attr-defined]  # read back by TlsListener.sni_of
        if name:
            name = name.lower().rstrip(".")
            chosen = exact.get(name) or wildcard.get(name.partition(".")[2])
            if chosen is not None:
                sslobj.context = chosen

    ctx.sni_callback = choose
    return ctx


def _one_server_context(cfg: TlsConfig, cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(ctx, cfg)
    ctx.load_cert_chain(cert, key)
    if cfg.ca:
        ctx.load_verify_locations(cafile=cfg.ca)
    ctx.verify_mode = (ssl.CERT_REQUIRED if cfg.verify_client else
                       ssl.CERT_OPTIONAL if cfg.ca else ssl.CERT_NONE)
    return ctx


def client_context(cfg: TlsConfig) -> ssl.SSLContext:
    """The context of outbound TLS connections: the peer is verified, SNI is sent."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _harden(ctx, cfg)
    if cfg.ca:
        ctx.load_verify_locations(cafile=cfg.ca)
    else:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cfg.cert and cfg.key:
        ctx.load_cert_chain(cfg.cert, cfg.key)  # our identity, for peers that ask (mutual TLS)
    return ctx


def _harden(ctx: ssl.SSLContext, cfg: TlsConfig) -> None:
    ctx.minimum_version = TLS_VERSIONS[cfg.min_version]
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    if cfg.ciphers:
        ctx.set_ciphers(cfg.ciphers)


class TlsListener(TcpListener):
    transport = "tls"

    def __init__(self, *args: Any, config: TlsConfig, handshake_timeout: float = 10.0,
                 **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.config = config
        self.handshake_timeout = handshake_timeout
        self._server_ctx = server_context(config)
        self._client_ctx: ssl.SSLContext | None = None

    def _server_options(self) -> dict[str, Any]:
        return {"ssl": self._server_ctx, "ssl_handshake_timeout": self.handshake_timeout}

    def _client_options(self, dest: Address) -> dict[str, Any]:
        if self._client_ctx is None:
            self._client_ctx = client_context(self.config)
        return {"ssl": self._client_ctx, "server_hostname": dest[0],
                "ssl_handshake_timeout": self.handshake_timeout}

    def sni_of(self, conn_id: int) -> str | None:
        """The server name the client asked for in its ClientHello, if any."""
        conn = self.connections.get(conn_id)
        sslobj = conn.transport.get_extra_info("ssl_object") if conn and conn.transport else None
        return getattr(sslobj, "sni", None)

    def may_alias(self, conn: _Connection, host: str) -> bool:
        """The verified client certificate names `host`, or `host` is the source address."""
        sslobj = conn.transport.get_extra_info("ssl_object") if conn.transport else None
        cert = sslobj.getpeercert() if sslobj is not None else None
        if cert and any(h == host or same_ip(host, h) for h in certificate_hosts(cert)):
            return True
        return same_ip(host, conn.peer[0])


def certificate_hosts(cert: dict[str, Any]) -> set[str]:
    """The hosts a verified peer certificate (`getpeercert()`) names, lower-case: its
    subjectAltName DNS and IP entries, or its subject CN when it has no DNS entry
    (RFC 5922 §7.1)."""
    san = cert.get("subjectAltName", ())
    dns = {v.lower().rstrip(".") for k, v in san if k == "DNS"}
    ips = {v for k, v in san if k == "IP Address"}
    if not dns:
        dns = {v.lower() for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"}
    return {h for h in dns if not h.startswith("*")} | ips
