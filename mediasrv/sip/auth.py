"""Digest authentication for SIP, server side (RFC 3261 §22, RFC 7616, RFC 8760, RFC 2617).

How this works:
- `DigestAuthenticator.challenge` returns one WWW-Authenticate value per algorithm of
  `algorithms`, SHA-256 first by default (RFC 8760 §2.4: the client uses the first it
  supports), all with qop=auth. Some real clients stop at the first challenge instead
  (SIPp 3.6 aborts on it, baresip 1.0 / libre gives up with ENOSYS), so a deployment with
  such phones can offer `("MD5",)` alone.
- A nonce is `base64(timestamp || random || HMAC-SHA256(secret, timestamp || random ||
  realm))`: the server keeps no state per challenge, yet cannot be handed a forged nonce,
  and knows its age (RFC 7616 §3.3, §5.5).
- `verify` recomputes the response from the stored HA1 (RFC 7616 §3.4.1-3.4.3, qop=auth
  only; requests without qop are refused, since they cannot be protected against replay).
  The digest `uri` must equal the Request-URI when `check_uri` (RFC 2617 §3.2.2.5: else
  400, status `uri_mismatch`); without it any uri is accepted, as most PBXes do (SIPp's
  `[authentication]` puts `sip:remote_ip:remote_port` there), still covered by the response
  hash and by the nonce-count replay guard.
  An otherwise correct answer to an expired nonce is `stale` (RFC 7616 §3.3: re-challenge
  with stale=true, no new password prompt). Each nonce's highest nonce-count is kept so a
  replayed request is refused (RFC 7616 §5.6); the table is bounded, and a nonce older
  than the last one evicted from it is treated as stale.
- `FailureLimiter` counts failed attempts per source address and blocks a source with a
  doubling back-off (RFC 3261 §26.3.2.4 asks servers to resist guessing attacks).
- `build_authorization` is the client side, used by tests and by the B2BUA towards peers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from mediasrv.sip.errors import SipParseError
from mediasrv.sip.message import Request
from mediasrv.sip.uri import quote, read_quoted, split_outside

HASHES: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda b: hashlib.md5(b).hexdigest(),
    "SHA-256": lambda b: hashlib.sha256(b).hexdigest(),
}
if "sha512_256" in hashlib.algorithms_available:
    HASHES["SHA-512-256"] = lambda b: hashlib.new("sha512_256", b).hexdigest()

Lookup = Callable[[str, str, str], str | None]
_NONCE_STRUCT = struct.Struct(">d8s16s")  # timestamp, random, truncated HMAC
_NC_TABLE_SIZE = 10_000
_REQUIRED_FIELDS = ("username", "nonce", "uri", "response", "nc", "cnonce")


def hash_hex(algorithm: str, text: str) -> str:
    """H(text) as lower-case hex for a digest algorithm name (RFC 7616 §3.4.1)."""
    try:
        return HASHES[algorithm.upper()](text.encode("utf-8"))
    except KeyError:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}") from None


def ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """HA1 = H(username:realm:password), what a user store keeps instead of the password."""
    return hash_hex(algorithm, f"{username}:{realm}:{password}")


def digest_response(
    algorithm: str, ha1_hex: str, nonce: str, nc: str, cnonce: str, method: str, uri: str
) -> str:
    """The qop=auth response value (RFC 7616 §3.4.1): H(HA1:nonce:nc:cnonce:auth:HA2)."""
    ha2 = hash_hex(algorithm, f"{method}:{uri}")
    return hash_hex(algorithm, f"{ha1_hex}:{nonce}:{nc}:{cnonce}:auth:{ha2}")


# One `name=value` or `name="value"` (no backslash inside) and its comma: the shape every
# client sends. Anything else goes through the general parser below.
_PLAIN_PARAM_RE = re.compile(r'[ \t]*([^\s=,"]+)[ \t]*=[ \t]*(?:"([^"\\]*)"|([^\s,"]*))'
                             r'[ \t]*(?:,|$)')


def parse_auth_params(value: str) -> tuple[str, dict[str, str]]:
    """Split `Digest k=v, k="v"` into ("digest", {k: v}); quoted values are unescaped."""
    scheme, _, rest = value.strip().partition(" ")
    params: dict[str, str] = {}
    at, end, match = 0, len(rest), _PLAIN_PARAM_RE.match
    while at < end and (m := match(rest, at)) is not None and m.end() > at:
        quoted = m.group(2)
        params[m.group(1).lower()] = quoted if quoted is not None else m.group(3)
        at = m.end()
    if at >= end:
        return scheme.lower(), params
    params.clear()
    for part in split_outside(rest, ","):
        name, eq, raw = part.partition("=")
        name, raw = name.strip().lower(), raw.strip()
        if not part.strip():
            continue
        if not eq or not name:
            raise SipParseError(f"bad auth parameter {part.strip()[:40]!r}")
        params[name] = read_quoted(raw)[0] if raw.startswith('"') else raw
    return scheme.lower(), params


@dataclass(frozen=True)
class AuthResult:
    """The outcome of `verify`: `status` is "ok", "stale", "uri_mismatch" or "bad"; `reason`
    says why."""

    status: str
    username: str | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True when the request is authenticated."""
        return self.status == "ok"


class DigestAuthenticator:
    """Issues digest challenges and checks answers for one realm (server side)."""

    def __init__(self, secret: bytes, realm: str, nonce_ttl: float = 300,
                 algorithms: tuple[str, ...] = ("SHA-256", "MD5")) -> None:
        if len(secret) < 16:
            raise ValueError("the nonce secret must be at least 16 bytes")
        unknown = [a for a in algorithms if a.upper() not in HASHES]
        if not algorithms or unknown:
            raise ValueError(f"digest algorithms must be some of {sorted(HASHES)}: {unknown}")
        self.algorithms = algorithms
        self._secret = secret
        self.realm = realm
        self.nonce_ttl = nonce_ttl
        self._opaque = hmac.new(secret, b"opaque" + realm.encode(), "sha256").hexdigest()[:32]
        self._nc_seen: OrderedDict[str, int] = OrderedDict()
        self._evicted_up_to = float("-inf")

    def challenge(
        self, now: float, *, stale: bool = False, algorithms: tuple[str, ...] | None = None
    ) -> list[str]:
        """WWW-Authenticate (or Proxy-Authenticate) values, one per algorithm (default:
        `self.algorithms`, in order of preference), all with the same nonce."""
        nonce = self._make_nonce(now)
        tail = ", stale=true" if stale else ""
        return [
            f"Digest realm={quote(self.realm)}, nonce={quote(nonce)}, "
            f"opaque={quote(self._opaque)}, algorithm={alg}, qop=\"auth\"{tail}"
            for alg in algorithms or self.algorithms
        ]

    def _mac(self, stamp_and_random: bytes) -> bytes:
        message = stamp_and_random + self.realm.encode()
        return hmac.new(self._secret, message, "sha256").digest()[:16]

    def _make_nonce(self, now: float) -> str:
        head = struct.pack(">d", now) + secrets.token_bytes(8)
        return base64.b64encode(head + self._mac(head)).decode()

    def _nonce_time(self, nonce: str) -> float | None:
        """The nonce's issue time if we issued it, else None."""
        try:
            raw = base64.b64decode(nonce, validate=True)
            stamp, rand, mac = _NONCE_STRUCT.unpack(raw)
        except (ValueError, struct.error):
            return None
        ok = hmac.compare_digest(mac, self._mac(raw[:16]))
        return stamp if ok else None

    def verify(self, request: Request, header_value: str, lookup: Lookup, now: float,
               check_uri: bool = True) -> AuthResult:
        """Check an Authorization (or Proxy-Authorization) value against `request`.

        `lookup(username, realm, algorithm)` returns the user's HA1 hex or None.
        """
        try:
            scheme, p = parse_auth_params(header_value)
        except SipParseError as exc:
            return AuthResult("bad", None, exc.reason)
        user = p.get("username")
        problem = self._check_fields(scheme, p, request)
        if problem:
            return AuthResult("bad", user, problem)
        if check_uri and p["uri"] != request.uri:
            return AuthResult("uri_mismatch", user, f"digest uri {p['uri']!r} is not the "
                              f"Request-URI {request.uri!r}")
        assert user is not None  # _check_fields requires it
        algorithm = p.get("algorithm", "MD5").upper()
        stored = lookup(user, self.realm, algorithm)
        if stored is None:
            return AuthResult("bad", user, "unknown user")
        expected = digest_response(
            algorithm, stored, p["nonce"], p["nc"], p["cnonce"], request.method, p["uri"]
        )
        if not hmac.compare_digest(expected.encode(), p["response"].lower().encode()):
            return AuthResult("bad", user, "wrong response")
        return self._check_nonce(p["nonce"], int(p["nc"], 16), user, now)

    def _check_fields(self, scheme: str, p: dict[str, str], request: Request) -> str | None:
        """The first reason the answer cannot be valid, before any hashing; None if none."""
        if scheme != "digest":
            return f"scheme {scheme!r} is not Digest"
        missing = [k for k in _REQUIRED_FIELDS if k not in p]
        if missing:
            return f"missing {', '.join(missing)}"
        if p.get("realm") != self.realm:
            return "wrong realm"
        if p.get("qop", "").lower() != "auth":
            return "qop must be auth"
        if p.get("algorithm", "MD5").upper() not in HASHES:
            return "unsupported algorithm"
        if len(p["nc"]) != 8 or not all(c in "0123456789abcdefABCDEF" for c in p["nc"]):
            return "bad nc"
        return None

    def _check_nonce(self, nonce: str, nc: int, user: str, now: float) -> AuthResult:
        issued = self._nonce_time(nonce)
        if issued is None:
            return AuthResult("bad", user, "nonce not issued by us")
        if now - issued > self.nonce_ttl or issued <= self._evicted_up_to:
            return AuthResult("stale", user, "nonce expired")
        if nc <= self._nc_seen.get(nonce, 0):
            return AuthResult("bad", user, "nonce count replayed")
        self._remember(nonce, nc, issued)
        return AuthResult("ok", user)

    def _remember(self, nonce: str, nc: int, issued: float) -> None:
        self._nc_seen[nonce] = nc
        self._nc_seen.move_to_end(nonce)
        while len(self._nc_seen) > _NC_TABLE_SIZE:
            old, _ = self._nc_seen.popitem(last=False)
            old_time = self._nonce_time(old)
            if old_time is not None:
                self._evicted_up_to = max(self._evicted_up_to, old_time)


def build_authorization(
    challenge: str, method: str, uri: str, username: str, password: str,
    *, cnonce: str | None = None, nc: int = 1,
) -> str:
    """Client side: the Authorization value answering one WWW-Authenticate `challenge`."""
    scheme, p = parse_auth_params(challenge)
    if scheme != "digest" or "nonce" not in p or "realm" not in p:
        raise SipParseError("not a usable Digest challenge")
    algorithm = p.get("algorithm", "MD5")
    cnonce = cnonce or secrets.token_hex(8)
    nc_hex = f"{nc:08x}"
    response = digest_response(
        algorithm, ha1(username, p["realm"], password, algorithm), p["nonce"], nc_hex,
        cnonce, method, uri,
    )
    fields = [
        f"username={quote(username)}", f"realm={quote(p['realm'])}", f"nonce={quote(p['nonce'])}",
        f"uri={quote(uri)}", f"response={quote(response)}", f"algorithm={algorithm}",
        f"cnonce={quote(cnonce)}", "qop=auth", f"nc={nc_hex}",
    ]
    if "opaque" in p:
        fields.append(f"opaque={quote(p['opaque'])}")
    return "Digest " + ", ".join(fields)


@dataclass
class _Failures:
    count: int = 0
    first: float = 0.0
    blocked_until: float = float("-inf")
    blocks: int = 0


class FailureLimiter:
    """Per-source counter of failed authentications with a doubling back-off.

    After `max_failures` failures within `window` seconds a source is blocked for
    `base_block` seconds, doubling on each further block up to `max_block`. Memory is
    bounded by `max_sources`: the least recently failing source is forgotten first (a
    blocked source that keeps failing stays recent).
    """

    def __init__(
        self, max_failures: int = 5, window: float = 60.0, base_block: float = 30.0,
        max_block: float = 3600.0, max_sources: int = 10_000,
    ) -> None:
        self.max_failures, self.window = max_failures, window
        self.base_block, self.max_block = base_block, max_block
        self.max_sources = max_sources
        self._sources: OrderedDict[object, _Failures] = OrderedDict()

    def allow(self, addr: object, now: float) -> bool:
        """False while `addr` is blocked."""
        entry = self._sources.get(addr)
        return entry is None or now >= entry.blocked_until

    def record_failure(self, addr: object, now: float) -> bool:
        """Count a failure; True exactly when this failure starts a block (log it once)."""
        entry = self._sources.pop(addr, None) or _Failures(first=now)
        self._sources[addr] = entry  # most recent last
        if now < entry.blocked_until:
            return False
        if now - entry.first > self.window:
            entry.count, entry.first = 0, now
        entry.count += 1
        started = entry.count >= self.max_failures
        if started:
            block = min(self.base_block * 2**entry.blocks, self.max_block)
            entry.blocked_until, entry.blocks, entry.count = now + block, entry.blocks + 1, 0
        self._prune()
        return started

    def record_success(self, addr: object) -> None:
        """Forget a source's failures after it authenticates."""
        self._sources.pop(addr, None)

    def _prune(self) -> None:
        while len(self._sources) > self.max_sources:
            self._sources.popitem(last=False)
