"""A self-signed certificate and key for SIP over TLS on first start (and for the tests).

How this works: `make_self_signed()` runs the `openssl` command (OpenSSL 1.1.1 or later):
an ECDSA P-256 key and an X.509 v3 certificate valid for `days`, whose subject CN is the first
host name and whose subjectAltName lists every name (IP addresses as `IP:`, the rest as
`DNS:`), as RFC 5922 §7.1 wants a SIP server's identity in the subjectAltName. The key file is
written with mode 0600. Phones will not trust it until told to (import it as a CA, or turn
their verification off): a real deployment replaces the pair with one from its own CA.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from pathlib import Path


class CertError(Exception):
    """The pair could not be made; the message says why."""


def make_self_signed(cert_path: Path | str, key_path: Path | str,
                     hostnames: list[str] | tuple[str, ...] = ("localhost", "127.0.0.1"),
                     days: int = 3650) -> None:
    """Write a new self-signed certificate and its private key (PEM)."""
    if not hostnames:
        raise CertError("at least one host name is needed")
    openssl = shutil.which("openssl")
    if openssl is None:
        raise CertError("the openssl command is not installed (Debian package openssl)")
    cert, key = Path(cert_path), Path(key_path)
    for path in (cert, key):
        path.parent.mkdir(parents=True, exist_ok=True)
    san = ",".join(f"{'IP' if _is_ip(h) else 'DNS'}:{h}" for h in hostnames)
    cmd = [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
           "-nodes", "-days", str(days), "-subj", f"/CN={hostnames[0]}/O=mediasrv",
           "-addext", f"subjectAltName={san}", "-addext", "basicConstraints=critical,CA:TRUE",
           "-keyout", str(key), "-out", str(cert)]
    old_umask = os.umask(0o077)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    finally:
        os.umask(old_umask)
    if done.returncode != 0:
        raise CertError(f"openssl failed: {done.stderr.strip()[-300:]}")
    key.chmod(0o600)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
