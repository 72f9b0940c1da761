"""Per-leg SRTP with SDES keys (RFC 4568): which legs encrypt, their keys, their SDP.

How this works: every leg's extension has `srtp = "off" | "optional" | "required"`
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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mediasrv.sip.errors import SdpNegotiationError
from mediasrv.sip.sdp import Negotiated, SessionDescription
from mediasrv.sip.sdp_crypto import (
    SUITES,
    Crypto,
    crypto_value,
    is_secure,
    new_key,
    parse_crypto,
    secure_proto,
)

if TYPE_CHECKING:
    from mediasrv.config import Extension
    from mediasrv.media.engine import MediaEngine

DEFAULT_POLICY = "optional"


@dataclass(eq=False)
class LegSrtp:
    """One leg's SRTP: its policy, what we offered, and the keys in use (None: plain)."""

    policy: str
    offered: list[Crypto] = field(default_factory=list)   # our offer's lines (outbound)
    local: Crypto | None = None                             # our line in use
    remote_key: bytes = b""
    applied: tuple[str, bytes, bytes] | None = None         # what the engine has

    @property
    def active(self) -> bool:
        return self.local is not None


def policy_of(ext: Extension | None) -> str:
    return ext.srtp if ext is not None else DEFAULT_POLICY


def on_offer(offer: SessionDescription, media: Negotiated, policy: str,
             current: LegSrtp | None = None) -> LegSrtp:
    """An offer arrived for a leg (INVITE or re-INVITE): decide its SRTP, or raise
    SdpNegotiationError (488) as the table above says."""
    m = offer.media[media.media_index]
    state = current or LegSrtp(policy)
    lines = parse_crypto(m) if policy != "off" else []
    if not lines:
        if is_secure(m):
            raise SdpNegotiationError("RTP/SAVP offered without a usable a=crypto"
                                      if policy != "off" else "SRTP is off for this extension")
        if policy == "required":
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


def secure_answer(state: LegSrtp | None, answer: SessionDescription, offer: SessionDescription,
                  media: Negotiated) -> None:
    """Make our answer's accepted stream carry the offer's profile and our a=crypto line."""
    m = answer.media[media.media_index]
    m.proto = offer.media[media.media_index].proto
    if state is not None and state.local is not None:
        m.attributes.append(("crypto", crypto_value(*_fields(state.local))))


def secure_offer(state: LegSrtp, sd: SessionDescription) -> None:
    """Our offer on this leg: a fresh offer lists every suite; once a line was accepted,
    later offers (re-INVITE, 200 to an empty INVITE) repeat that line and its key."""
    if state.policy == "off":
        return
    m = sd.media[0]
    if state.local is not None:
        lines = [state.local]
    else:
        if not state.offered:
            state.offered = [Crypto(i + 1, s, new_key(s)) for i, s in enumerate(SUITES)]
        lines = state.offered
    if state.policy == "required" or state.local is not None:
        m.proto = secure_proto(m.proto)
    m.attributes += [("crypto", crypto_value(*_fields(c))) for c in lines]


def on_answer(state: LegSrtp, answer: SessionDescription, media: Negotiated) -> None:
    """The answer to our offer: the line it accepted sets the keys; a plain answer leaves
    the leg plain, which "required" refuses (SdpNegotiationError)."""
    m = answer.media[media.media_index]
    lines = parse_crypto(m) if state.policy != "off" else []
    ours = {(c.tag, c.suite): c for c in (state.offered or ([state.local] if state.local else []))}
    accepted = next((c for c in lines if (c.tag, c.suite) in ours), None)
    if accepted is None:
        if state.policy == "required" or is_secure(m):
            raise SdpNegotiationError("the answer accepted none of our a=crypto lines")
        state.local, state.remote_key = None, b""
        return
    if state.local != ours[(accepted.tag, accepted.suite)] or state.remote_key != accepted.key:
        state.local = ours[(accepted.tag, accepted.suite)]
        state.remote_key = accepted.key
    state.offered = []


def apply(engine: MediaEngine, stream: int, state: LegSrtp | None) -> None:
    """Give the engine the leg's keys when they changed (re-created sessions restart the
    replay window and rollover counter, so unchanged keys are left alone)."""
    if state is None:
        return
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
