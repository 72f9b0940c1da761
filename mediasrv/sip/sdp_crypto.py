"""SDES: SRTP keys in SDP (RFC 4568) and the secure RTP profiles (RFC 3711 §12).

How this works:
- `parse_crypto` reads the `a=crypto:<tag> <suite> inline:<key||salt>[|lifetime][|MKI:len]
  [session-params]` lines of one m-section (RFC 4568 §9.1 grammar). A line we cannot use is
  skipped, as §7.1.1 tells an answerer to: an unknown suite, a key of the wrong length, more
  than one key, an MKI, or any session parameter (UNENCRYPTED_SRTP, KDR, FEC_ORDER, ...:
  each would change what the engine must do). A line that is not the grammar at all is a
  400 (`SdpParseError`).
- `crypto_value` writes one such line's value; `new_key` draws a master key||salt.
- `is_secure` tells RTP/SAVP and RTP/SAVPF (RFC 3711 §12, RFC 5124) from RTP/AVP(F);
  `is_dtls` finds DTLS-SRTP's UDP/TLS/RTP/SAVP(F) (RFC 5764 §8), whose keys come from a DTLS
  handshake named by `a=fingerprint` and `a=setup` (RFC 5763 §5), read by `attribute`.
Nothing here decides policy: `mediasrv.call.srtp_policy` does.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass

from mediasrv.sip.errors import SdpParseError
from mediasrv.sip.sdp import MediaDescription, SessionDescription

# RFC 4568 §6.2 and RFC 7714 §14.2: suite -> master key||salt length in bytes. Our offers
# list them in this order (the first is the one every SDES endpoint has).
SUITES = {
    "AES_CM_128_HMAC_SHA1_80": 30,
    "AES_CM_128_HMAC_SHA1_32": 30,
    "AEAD_AES_128_GCM": 28,
}
SECURE_PROTOS = ("RTP/SAVP", "RTP/SAVPF")
DTLS_PROTOS = ("UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF")       # RFC 5764 §8
PLAIN_PROTOS = ("RTP/AVP", "RTP/AVPF")
_LINE = re.compile(r"(\d{1,9}) +([A-Za-z0-9_]+) +(\S+)(?: +(.*))?")
_LIFETIME = re.compile(r"(2\^)?\d+")


@dataclass(frozen=True)
class Crypto:
    """One usable a=crypto line."""

    tag: int
    suite: str
    key: bytes          # master key || master salt


def is_secure(m: MediaDescription) -> bool:
    return m.proto.upper() in SECURE_PROTOS


def is_dtls(m: MediaDescription) -> bool:
    return m.proto.upper() in DTLS_PROTOS


def attribute(sd: SessionDescription, m: MediaDescription, name: str) -> str | None:
    """An attribute's value at media level, else at session level (a=fingerprint and
    a=setup may be either, RFC 8122 §5, RFC 4145 §4)."""
    for n, v in m.attributes + sd.attributes:
        if n == name:
            return v
    return None


def secure_proto(proto: str) -> str:
    """RTP/AVP -> RTP/SAVP, RTP/AVPF -> RTP/SAVPF (others unchanged)."""
    return {"RTP/AVP": "RTP/SAVP", "RTP/AVPF": "RTP/SAVPF"}.get(proto.upper(), proto)


def new_key(suite: str) -> bytes:
    """A fresh master key||salt for suite (RFC 4568 §6.1: from a strong random source)."""
    return secrets.token_bytes(SUITES[suite])


def crypto_value(tag: int, suite: str, key: bytes) -> str:
    """The value of an a=crypto attribute (after "crypto:")."""
    return f"{tag} {suite} inline:{base64.b64encode(key).decode()}"


def parse_crypto(m: MediaDescription) -> list[Crypto]:
    """The usable a=crypto lines of m, in the offerer's order of preference."""
    out = []
    for name, value in m.attributes:
        if name == "crypto":
            found = _parse_line(value or "")
            if found is not None:
                out.append(found)
    return out


def _parse_line(value: str) -> Crypto | None:
    match = _LINE.fullmatch(value.strip())
    if match is None:
        raise SdpParseError(f"bad a=crypto {value[:60]!r}")
    tag, suite, key_params, session_params = match.groups()
    if suite not in SUITES or session_params or ";" in key_params:
        return None
    method, _, info = key_params.partition(":")
    if method != "inline":
        raise SdpParseError(f"a=crypto key method {method[:20]!r} is not inline")
    key_b64, *rest = info.split("|")
    try:
        key = base64.b64decode(key_b64, validate=True)
    except (binascii.Error, ValueError):
        raise SdpParseError(f"a=crypto key is not base64: {key_b64[:40]!r}") from None
    if len(key) != SUITES[suite] or len(rest) > 1 or (rest and not _LIFETIME.fullmatch(rest[0])):
        return None                                # wrong length, MKI, or not a lifetime
    return Crypto(int(tag), suite, key)
