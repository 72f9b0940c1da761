"""Per-leg SRTP, keyed by SDES (RFC 4568) or DTLS-SRTP (RFC 5763/5764): policy, keys, SDP.

How this works: every leg's extension has `srtp = "off" | "optional" | "required" | "dtls"`
(callers without an extension get the default, "optional"). The B2BUA terminates media,
so each leg is keyed on its own and the engine decrypts and re-encrypts between them:
an SRTP leg can be bridged to a plain one.

| policy    | offer we receive                      | offer we send                          |
|-----------|---------------------------------------|----------------------------------------|
| off       | RTP/AVP: plain, a=crypto ignored;     | RTP/AVP, no a=crypto                   |
|           | RTP/SAVP: 488                         |                                        |
| optional  | a usable a=crypto (SAVP, or AVP as    | RTP/AVP with a=crypto ("best effort":  |
|           | baresip's best effort): SRTP;         | a plain phone ignores the attribute,   |
|           | plain AVP: plain; SAVP without a      | one that knows SDES answers with its   |
|           | usable a=crypto: 488                  | key and the leg is SRTP)               |
| required  | a usable a=crypto: SRTP; else 488     | RTP/SAVP with a=crypto; a plain answer |
|           |                                       | is refused (the leg gets no media)     |

Answers (RFC 4568 §7.1.2) keep the offer's profile and accept one line: same tag and suite,
our own fresh key. Our offers list one line per suite of `SUITES`, each with its own key.
Keys change only when the remote's do (a re-INVITE with a new a=crypto); then ours change
too, so no packet index is ever used twice under one key after the engine's sessions are
re-created. `apply` hands the keys to the engine only when they changed.

DTLS-SRTP: an offer on UDP/TLS/RTP/SAVP(F) with a=fingerprint and a=setup actpass/active is
answered a=setup:passive with our certificate's fingerprint (we are the DTLS server, RFC 5763
§5); the engine then hands the leg's DTLS datagrams up and drops its RTP until keyed;
`on_dtls` runs the handshake (mediasrv/media/dtls.py) per component and keys the engine from
the exporter once the phone's certificate matches its fingerprint. Our offers use SDES,
except to an extension with `srtp = "dtls"`: UDP/TLS/RTP/SAVP, a=setup:actpass and our
fingerprint; its answer must be a=setup:active (we stay the DTLS server). "dtls" refuses plain
offers as "required" does.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mediasrv.media.dtls import DtlsError, DtlsServer, Identity, make_identity
from mediasrv.sip.errors import SdpNegotiationError
from mediasrv.sip.sdp import MediaDescription, Negotiated, SessionDescription
from mediasrv.sip.sdp_crypto import (
    DTLS_PROTOS,
    SUITES,
    Crypto,
    attribute,
    crypto_value,
    is_dtls,
    is_secure,
    new_key,
    parse_crypto,
    secure_proto,
)

if TYPE_CHECKING:
    from mediasrv.config import Extension
    from mediasrv.media.engine import MediaEngine

DEFAULT_POLICY = "optional"
_REQUIRE = ("required", "dtls")           # policies that refuse plain RTP
_OFFER_KEY_BYTES = sum(SUITES.values())   # the keys of a fresh offer's lines, end to end


@dataclass(eq=False)
class LegSrtp:
    """One leg's SRTP: its policy, what we offered, and the keys in use (None: plain)."""

    policy: str
    offered: list[Crypto] = field(default_factory=list)   # our offer's lines (outbound)
    local: Crypto | None = None                             # our line in use
    remote_key: bytes = b""
    applied: tuple[str, bytes, bytes] | None = None         # what the engine has
    dtls_fingerprint: str = ""          # DTLS-SRTP: the phone's a=fingerprint ("" = SDES)
    dtls: dict[bool, DtlsServer] = field(default_factory=dict)   # per component (rtcp?)
    dtls_on: bool = False               # the engine hands this stream's DTLS up
    identity: Identity | None = None    # the certificate our SDP named to this leg

    @property
    def active(self) -> bool:
        return self.local is not None

    @property
    def encrypted(self) -> bool:
        """Keyed, or keys on the way (a DTLS-SRTP handshake): media must stay with us."""
        return self.active or bool(self.dtls_fingerprint)


def policy_of(ext: Extension | None) -> str:
    return ext.srtp if ext is not None else DEFAULT_POLICY


def on_offer(offer: SessionDescription, media: Negotiated, policy: str,
             current: LegSrtp | None = None) -> LegSrtp:
    """An offer arrived for a leg (INVITE or re-INVITE): decide its SRTP, or raise
    SdpNegotiationError (488) as the table above says."""
    m = offer.media[media.media_index]
    state = current or LegSrtp(policy)
    if is_dtls(m):
        return _dtls_offer(offer, m, policy, state)
    lines = parse_crypto(m) if policy != "off" else []
    if not lines:
        if is_secure(m):
            raise SdpNegotiationError("RTP/SAVP offered without a usable a=crypto"
                                      if policy != "off" else "SRTP is off for this extension")
        if policy in _REQUIRE:
            raise SdpNegotiationError("this extension requires SRTP")
        state.local, state.remote_key = None, b""
        return state
    chosen = lines[0]
    unchanged = (state.local is not None and state.local.tag == chosen.tag
                 and state.local.suite == chosen.suite and state.remote_key == chosen.key)
    if not unchanged:
        state.local = Crypto(chosen.tag, chosen.suite, new_key(chosen.suite))
        state.remote_key = chosen.key
    return state


def _dtls_offer(offer: SessionDescription, m: MediaDescription, policy: str,
                state: LegSrtp) -> LegSrtp:
    """DTLS-SRTP offered (RFC 5763 §5): we will be the DTLS server (a=setup:passive), so the
    offerer must be able to be the client (actpass or active); keys come later (on_dtls)."""
    fingerprint = attribute(offer, m, "fingerprint")
    setup = (attribute(offer, m, "setup") or "actpass").lower()
    if policy == "off":
        raise SdpNegotiationError("SRTP is off for this extension")
    if not fingerprint or setup not in ("actpass", "active"):
        raise SdpNegotiationError("DTLS-SRTP offer without a=fingerprint, or a=setup:passive")
    if state.dtls_fingerprint and state.dtls_fingerprint != fingerprint:
        state.dtls.clear()                              # a new certificate: a new handshake
    state.dtls_fingerprint = fingerprint
    return state


def secure_answer(state: LegSrtp | None, answer: SessionDescription, offer: SessionDescription,
                  media: Negotiated) -> None:
    """Make our answer's accepted stream carry the offer's profile and our a=crypto line
    (SDES), or our a=setup:passive and a=fingerprint (DTLS-SRTP)."""
    m = answer.media[media.media_index]
    m.proto = offer.media[media.media_index].proto
    if state is not None and state.dtls_fingerprint:
        m.attributes += [("setup", "passive"), ("fingerprint", _leg_identity(state).fingerprint)]
    elif state is not None and state.local is not None:
        m.attributes.append(("crypto", crypto_value(*_fields(state.local))))


def secure_offer(state: LegSrtp, sd: SessionDescription) -> None:
    """Our offer on this leg: a fresh offer lists every suite; once a line was accepted,
    later offers (re-INVITE, 200 to an empty INVITE) repeat that line and its key."""
    if state.policy == "off":
        return
    m = sd.media[0]
    if state.policy == "dtls" or state.dtls_fingerprint:       # RFC 5763 §5: actpass first
        m.proto = DTLS_PROTOS[0]
        m.attributes += [("setup", "passive" if state.dtls_fingerprint else "actpass"),
                         ("fingerprint", _leg_identity(state).fingerprint)]
        return
    if state.local is not None:
        lines = [state.local]
    else:
        if not state.offered:
            state.offered = _fresh_lines()
        lines = state.offered
    if state.policy == "required" or state.local is not None:
        m.proto = secure_proto(m.proto)
    m.attributes += [("crypto", crypto_value(*_fields(c))) for c in lines]


def _fresh_lines() -> list[Crypto]:
    """One line per suite of `SUITES`, each with its own key: all keys from one read of the
    strong random source (one system call per offer instead of one per suite)."""
    pool = secrets.token_bytes(_OFFER_KEY_BYTES)
    lines, at = [], 0
    for tag, (suite, size) in enumerate(SUITES.items(), 1):
        lines.append(Crypto(tag, suite, pool[at:at + size]))
        at += size
    return lines


def on_answer(state: LegSrtp, answer: SessionDescription, media: Negotiated) -> None:
    """The answer to our offer: the line it accepted sets the keys; a plain answer leaves
    the leg plain, which "required" refuses (SdpNegotiationError)."""
    m = answer.media[media.media_index]
    if state.policy == "dtls":
        _dtls_answer(state, answer, m)
        return
    lines = parse_crypto(m) if state.policy != "off" else []
    ours = {(c.tag, c.suite): c for c in (state.offered or ([state.local] if state.local else []))}
    accepted = next((c for c in lines if (c.tag, c.suite) in ours), None)
    if accepted is None:
        if state.policy in _REQUIRE or is_secure(m):
            raise SdpNegotiationError("the answer accepted none of our a=crypto lines")
        state.local, state.remote_key = None, b""
        return
    if state.local != ours[(accepted.tag, accepted.suite)] or state.remote_key != accepted.key:
        state.local = ours[(accepted.tag, accepted.suite)]
        state.remote_key = accepted.key
    state.offered = []


def _dtls_answer(state: LegSrtp, answer: SessionDescription, m: MediaDescription) -> None:
    """The answer to our DTLS-SRTP offer: the phone must take the client role (active)."""
    fingerprint = attribute(answer, m, "fingerprint")
    setup = (attribute(answer, m, "setup") or "").lower()
    if not is_dtls(m) or not fingerprint or setup != "active":
        raise SdpNegotiationError("the answer is not DTLS-SRTP with a=setup:active")
    if state.dtls_fingerprint and state.dtls_fingerprint != fingerprint:
        state.dtls.clear()
    state.dtls_fingerprint = fingerprint


def apply(engine: MediaEngine, stream: int, state: LegSrtp | None) -> None:
    """Give the engine the leg's keys when they changed (re-created sessions restart the
    replay window and rollover counter, so unchanged keys are left alone)."""
    if state is None:
        return
    if state.dtls_fingerprint and not state.dtls_on:
        engine.set_dtls(stream, True)
        state.dtls_on = True
    want = ((state.local.suite, state.remote_key, state.local.key)
            if state.local is not None else None)
    if want == state.applied:
        return
    if want is None:
        engine.set_srtp(stream, None)
    else:
        engine.set_srtp(stream, want[0], rx_key=want[1], tx_key=want[2])
    state.applied = want


def _fields(c: Crypto) -> tuple[int, str, bytes]:
    return c.tag, c.suite, c.key


# ---------------------------------------------------------------- DTLS-SRTP

IDENTITY_ROTATE_S = 7 * 86400         # a new certificate weekly (each is valid 30 days)
_identity: list[tuple[float, Identity]] = []


def identity() -> Identity:
    """The server's current DTLS certificate: made on first use, replaced after a week so a
    long-running server never names an expired one; a leg keeps the one its SDP named."""
    now = time.monotonic()
    if not _identity or now - _identity[0][0] > IDENTITY_ROTATE_S:
        _identity[:] = [(now, make_identity())]
    return _identity[0][1]


def _leg_identity(state: LegSrtp) -> Identity:
    if state.identity is None:
        state.identity = identity()
    return state.identity


def on_dtls(engine: MediaEngine, stream: int, state: LegSrtp, rtcp: bool, data: bytes,
            host: str, port: int) -> str | None:
    """One DTLS datagram for a leg's RTP (or RTCP) component: answer it, and once the
    handshake is done and the peer's certificate matches its fingerprint, key the engine
    (the RTCP component keys SRTCP alone, RFC 5764 §4.1). Returns an error to log, or None."""
    if not state.dtls_fingerprint:
        return "DTLS datagram on a leg that did not negotiate DTLS-SRTP"
    server = state.dtls.get(rtcp)
    if server is None:
        server = state.dtls[rtcp] = DtlsServer(_leg_identity(state), state.dtls_fingerprint)
    was_done = server.done
    try:
        for out in server.feed(data):
            engine.send_dtls(stream, rtcp, out, host, port)
        if server.done and not was_done:
            suite, rx, tx = server.keys()
            if rtcp:
                engine.set_srtp(stream, suite, rx_key=rx, tx_key=tx, rtcp=True)
            else:
                state.local, state.remote_key = Crypto(0, suite, tx), rx
                apply(engine, stream, state)
    except DtlsError as exc:
        state.dtls.pop(rtcp, None)
        return str(exc)
    return None
