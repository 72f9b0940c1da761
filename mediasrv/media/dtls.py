"""DTLS-SRTP key agreement (RFC 5763, RFC 5764) for one media component, without sockets.

How this works: the server has one self-signed certificate (EC P-256, made at start-up);
its SHA-256 fingerprint goes into our SDP (`a=fingerprint`, RFC 8122 §5). For each leg
component that negotiated DTLS-SRTP we run an OpenSSL DTLS 1.2 server (pyOpenSSL, memory
BIOs): the engine hands up every datagram whose first byte is 20-63 (RFC 5764 §5.1.2),
`feed()` returns the datagrams to send back. We always take `a=setup:passive` (the phone is
the DTLS client, RFC 5763 §5), so no retransmission timer of ours is needed: the client's
timer drives the handshake. The phone's certificate must match the fingerprint its SDP
gave (RFC 5763 §5: otherwise the keys are refused). Once done, the SRTP master keys come
from the TLS exporter "EXTRACTOR-dtls_srtp" (RFC 5764 §4.2): client key, server key,
client salt, server salt; as the server we send with the server's and receive with the
client's. Profile: SRTP_AES128_CM_SHA1_80 (and _32), the two libsrtp2 suites RFC 5764 names.
"""

from __future__ import annotations

import datetime
import hmac
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

# RFC 5764 §4.1.2 profile name -> our suite name (srtp.pyx), master key and salt lengths
PROFILES = {b"SRTP_AES128_CM_SHA1_80": "AES_CM_128_HMAC_SHA1_80",
            b"SRTP_AES128_CM_SHA1_32": "AES_CM_128_HMAC_SHA1_32"}
_KEY, _SALT = 16, 14


@dataclass(frozen=True)
class Identity:
    """The server's DTLS certificate, key and SDP fingerprint ("sha-256 AB:CD:...")."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    fingerprint: str


def make_identity() -> Identity:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mediasrv")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    pretty = ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))
    return Identity(cert, key, f"sha-256 {pretty}")


class DtlsError(Exception):
    """The handshake failed, or the peer's certificate is not the one its SDP named."""


class DtlsServer:
    """One DTLS association (one component of one leg), we the server."""

    def __init__(self, identity: Identity, remote_fingerprint: str) -> None:
        ctx = SSL.Context(SSL.DTLS_METHOD)
        ctx.use_certificate(identity.cert)
        ctx.use_privatekey(identity.key)
        ctx.set_tlsext_use_srtp(b":".join(PROFILES))
        # any certificate is accepted by OpenSSL; the fingerprint check below is the trust
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *_: True)
        self.conn = SSL.Connection(ctx, None)
        self.conn.set_accept_state()
        self.remote_fingerprint = remote_fingerprint
        self.done = False

    def feed(self, datagram: bytes) -> list[bytes]:
        """Take one datagram from the peer; the datagrams to send back."""
        self.conn.bio_write(datagram)
        if not self.done:
            try:
                self.conn.do_handshake()
                self.done = True
            except SSL.WantReadError:
                pass
            except SSL.Error as exc:
                raise DtlsError(f"DTLS handshake failed: {exc}") from None
        out = []
        while True:
            try:
                out.append(self.conn.bio_read(65536))
            except SSL.WantReadError:
                return out

    def keys(self) -> tuple[str, bytes, bytes]:
        """(suite, rx master key||salt, tx master key||salt) once `done`; DtlsError when the
        peer's certificate does not match its SDP fingerprint."""
        self._check_fingerprint()
        profile = self.conn.get_selected_srtp_profile()
        if profile not in PROFILES:
            raise DtlsError(f"no SRTP profile agreed ({profile!r})")
        km = self.conn.export_keying_material(b"EXTRACTOR-dtls_srtp", 2 * (_KEY + _SALT))
        ck, sk = km[:_KEY], km[_KEY:2 * _KEY]
        cs, ss = km[2 * _KEY:2 * _KEY + _SALT], km[2 * _KEY + _SALT:]
        return PROFILES[profile], ck + cs, sk + ss

    def _check_fingerprint(self) -> None:
        algo, _, want = self.remote_fingerprint.partition(" ")
        cert = self.conn.get_peer_certificate(as_cryptography=True)
        hashes_ = {"sha-1": hashes.SHA1(), "sha-256": hashes.SHA256(),
                   "sha-384": hashes.SHA384(), "sha-512": hashes.SHA512()}
        if cert is None or algo.lower() not in hashes_:
            raise DtlsError("no peer certificate, or a fingerprint hash we do not know")
        got = cert.fingerprint(hashes_[algo.lower()]).hex().upper()
        if not hmac.compare_digest(got, want.strip().upper().replace(":", "")):
            raise DtlsError("peer certificate does not match its SDP fingerprint")
