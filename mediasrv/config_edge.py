"""The `[tls]` and `[security]` sections: SIP over TLS and the abuse limits at the edge.

How this works: `config.py` hands each section's `_Reader` to `read_tls` / `read_security`,
which take typed values off it (unknown keys stay for the reader's `finish()`) and check what
only these sections know: the certificate and key load as a pair, the CA file loads, the TLS
version is one we allow (TLS 1.2 or 1.3, RFC 8996 retired the older ones), the limits are in
range. A `tls:` listener without a certificate is an error on `tls.cert`, named by the file
that declared the listener.

Several certificates, chosen by the name a client asks for (SNI, RFC 6066 §3): each
`[[tls.certificates]]` entry is a `cert`/`key` pair with the `names` it serves (host names,
`*.example.com` for one label under it); without `names` the entry serves the DNS names of its
certificate's subjectAltName. Listed names must be covered by the certificate, an IP address
is never a name (clients send no SNI for one) and a name belongs to one entry only. `tls.cert`
stays the default: what a client that sends no name, or one no entry serves, is shown.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography import x509

TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
TLS_PATH_KEYS = ("tls.cert", "tls.key", "tls.ca")


@dataclass(frozen=True)
class SniCertificate:
    """One `[[tls.certificates]]` entry: the pair shown to clients asking for `names`."""

    names: tuple[str, ...]
    cert: str
    key: str


@dataclass(frozen=True)
class TlsConfig:
    """Certificate, key and peer verification for `tls:` listeners and outbound TLS."""

    cert: str = ""
    key: str = ""
    ca: str = ""
    verify_client: bool = False
    min_version: str = "1.2"
    ciphers: str = ""
    certificates: tuple[SniCertificate, ...] = ()


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
        _check_pair(r, cfg.cert, cfg.key)
    certificates = _read_certificates(r)
    if certificates and not cfg.cert:
        r.error("cert", "is required with tls.certificates (shown to clients that send no "
                        "server name or one no entry serves)")
    cfg = replace(cfg, certificates=certificates)
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


def _check_pair(r: Any, cert: str, key: str) -> bool:
    for name, path in (("cert", cert), ("key", key)):
        if not Path(path).is_file():
            r.error(name, f"{path} does not exist")
            return False
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        r.error("cert", f"{cert} with key {key} does not load: {_why(exc)}")
        return False
    return True


_NAME_RE = re.compile(r"(\*\.)?([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*"
                      r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _read_certificates(r: Any) -> tuple[SniCertificate, ...]:
    """`[[tls.certificates]]`: each entry read with its own reader (`tls.certificates[N]`)."""
    entries = r.take("certificates", list, [], "a list of tables ([[tls.certificates]])")
    out: list[SniCertificate] = []
    owner: dict[str, int] = {}
    for i, entry in enumerate(entries or []):
        e = type(r)(entry, r.full(f"certificates[{i}]"), r.tree, r.problems)
        names = e.strings("names", [])
        cert, key = e.str("cert"), e.str("key")
        e.finish()
        if not (isinstance(cert, str) and isinstance(key, str) and _check_pair(e, cert, key)):
            continue
        served = _san_dns_names(cert)
        names = [n.lower().rstrip(".") for n in names] or served
        if not names:
            e.error("names", f"none given, and {cert} has no DNS name in its subjectAltName")
            continue
        bad = [n for n in names if _NAME_RE.fullmatch(n) is None or _is_ip(n)]
        uncovered = [n for n in names if n not in bad and not any(
            host_matches(pattern, n) for pattern in served)]
        for n in bad:
            e.error("names", f"{n!r} is not a host name (clients send no server name for an "
                             "IP address, RFC 6066 §3)")
        for n in uncovered:
            e.error("names", f"{n} is not in the subjectAltName of {cert} "
                             f"({', '.join(served) or 'no DNS names'})")
        for n in names:
            if n in owner:
                e.error("names", f"{n} is served by tls.certificates[{owner[n]}] already")
            owner.setdefault(n, i)
        if not bad and not uncovered:
            out.append(SniCertificate(tuple(names), cert, key))
    return tuple(out)


def _san_dns_names(cert_path: str) -> list[str]:
    try:
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return []
    return [n.lower().rstrip(".") for n in san.get_values_for_type(x509.DNSName)]


def host_matches(pattern: str, host: str) -> bool:
    """`host` is `pattern`, or `pattern` is `*.parent` and `host` is one label under it."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        label, _, parent = host.partition(".")
        return bool(label) and parent == pattern[2:]
    return pattern == host


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


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
