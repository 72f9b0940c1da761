"""The `[tls]` and `[security]` sections: SIP over TLS and the abuse limits at the edge.

How this works: `config.py` hands each section's `_Reader` to `read_tls` / `read_security`,
which take typed values off it (unknown keys stay for the reader's `finish()`) and check what
only these sections know: the certificate and key load as a pair, the CA file loads, the TLS
version is one we allow (TLS 1.2 or 1.3, RFC 8996 retired the older ones), the limits are in
range. A `tls:` listener without a certificate is an error on `tls.cert`, named by the file
that declared the listener.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
TLS_PATH_KEYS = ("tls.cert", "tls.key", "tls.ca")


@dataclass(frozen=True)
class TlsConfig:
    """Certificate, key and peer verification for `tls:` listeners and outbound TLS."""

    cert: str = ""
    key: str = ""
    ca: str = ""
    verify_client: bool = False
    min_version: str = "1.2"
    ciphers: str = ""


@dataclass(frozen=True)
class SecurityConfig:
    """Per-source limits applied before a message reaches the SIP parser (0 turns one off)."""

    rate_limit: int = 200
    ban_threshold: int = 50
    ban_window: float = 10.0
    ban_time: float = 600.0
    max_message_size: int = 16384
    max_connections_per_source: int = 32
    header_timeout: float = 10.0
    idle_timeout: float = 900.0


def read_tls(r: Any, needs_cert: bool) -> TlsConfig:
    """`[tls]`; `needs_cert` when some listener is `tls:`."""
    cfg = TlsConfig(cert=r.str("cert", ""), key=r.str("key", ""), ca=r.str("ca", ""),
                    verify_client=bool(r.bool("verify_client", False)),
                    min_version=r.str("min_version", "1.2", choices=TLS_VERSIONS),
                    ciphers=r.str("ciphers", ""))
    if needs_cert and not cfg.cert:
        r.error("cert", "is required by the tls: listener in sip.listen "
                        "(`mediasrv init` makes a self-signed pair)")
    if cfg.cert and not cfg.key:
        r.error("key", "is required with tls.cert")
    if cfg.cert and cfg.key:
        _check_pair(r, cfg)
    if cfg.ca:
        try:
            ssl.create_default_context(cafile=cfg.ca)
        except (OSError, ssl.SSLError) as exc:
            r.error("ca", f"cannot load {cfg.ca}: {_why(exc)}")
    elif cfg.verify_client:
        r.error("verify_client", "needs tls.ca (the CA that signs the phones' certificates)")
    if cfg.ciphers:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(cfg.ciphers)
        except ssl.SSLError:
            r.error("ciphers", f"{cfg.ciphers!r} selects no cipher OpenSSL knows")
    return cfg


def _check_pair(r: Any, cfg: TlsConfig) -> None:
    for name, path in (("cert", cfg.cert), ("key", cfg.key)):
        if not Path(path).is_file():
            r.error(name, f"{path} does not exist")
            return
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cfg.cert, cfg.key)
    except (OSError, ssl.SSLError) as exc:
        r.error("cert", f"{cfg.cert} with key {cfg.key} does not load: {_why(exc)}")


def _why(exc: Exception) -> str:
    return getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)


def read_security(r: Any) -> SecurityConfig:
    """`[security]`: rate limit, ban list, message size and connection limits."""
    d = SecurityConfig()
    return SecurityConfig(
        rate_limit=r.number("rate_limit", d.rate_limit, 0, 1_000_000, integer=True),
        ban_threshold=r.number("ban_threshold", d.ban_threshold, 0, 1_000_000, integer=True),
        ban_window=float(r.number("ban_window", d.ban_window, 1, 3600)),
        ban_time=float(r.number("ban_time", d.ban_time, 1, 7 * 86400)),
        max_message_size=r.number("max_message_size", d.max_message_size, 1500, 65535,
                                  integer=True),
        max_connections_per_source=r.number("max_connections_per_source",
                                            d.max_connections_per_source, 0, 100_000,
                                            integer=True),
        header_timeout=float(r.number("header_timeout", d.header_timeout, 0.1, 600)),
        idle_timeout=float(r.number("idle_timeout", d.idle_timeout, 0, 86400)))
