"""SDES a=crypto lines (RFC 4568) and the per-leg SRTP policy table (srtp_policy.py)."""

from __future__ import annotations

import base64

import pytest

from mediasrv.call import srtp_policy
from mediasrv.sip.errors import SdpNegotiationError, SdpParseError
from mediasrv.sip.sdp import SessionDescription, build_answer, build_offer, negotiate
from mediasrv.sip.sdp_crypto import Crypto, crypto_value, parse_crypto

KEY30 = bytes(range(30))
B64 = base64.b64encode(KEY30).decode()


def offer(proto: str = "RTP/AVP", *cryptos: str) -> SessionDescription:
    lines = "".join(f"a=crypto:{c}\r\n" for c in cryptos)
    return SessionDescription.parse(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio 4000 {proto} 0 101\r\na=rtpmap:101 telephone-event/8000\r\n{lines}")


def test_parse_the_rfc4568_forms() -> None:
    sd = offer("RTP/SAVP",
               f"1 AES_CM_128_HMAC_SHA1_80 inline:{B64}|2^20",
               f"2 AES_CM_128_HMAC_SHA1_32 inline:{B64}|2^20|1:4",           # MKI: skipped
               f"3 AES_CM_128_HMAC_SHA1_80 inline:{B64} UNENCRYPTED_SRTP",   # param: skipped
               f"4 F8_128_HMAC_SHA1_80 inline:{B64}",                        # suite: skipped
               "5 AEAD_AES_128_GCM inline:" + base64.b64encode(KEY30[:28]).decode(),
               f"6 AEAD_AES_128_GCM inline:{B64}")                           # length: skipped
    found = parse_crypto(sd.media[0])
    assert found == [Crypto(1, "AES_CM_128_HMAC_SHA1_80", KEY30),
                     Crypto(5, "AEAD_AES_128_GCM", KEY30[:28])]
    assert crypto_value(1, "AES_CM_128_HMAC_SHA1_80", KEY30) == \
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{B64}"


@pytest.mark.parametrize("bad", ["x AES_CM_128_HMAC_SHA1_80 inline:abc",
                                 "1 AES_CM_128_HMAC_SHA1_80 uri:http://k",
                                 "1 AES_CM_128_HMAC_SHA1_80 inline:!!notbase64"])
def test_malformed_crypto_is_a_parse_error(bad: str) -> None:
    with pytest.raises(SdpParseError):
        parse_crypto(offer("RTP/SAVP", bad).media[0])


def answer_to(sd: SessionDescription, policy: str) -> tuple[SessionDescription, object]:
    media = negotiate(sd, ["PCMU"], secure=True)
    state = srtp_policy.on_offer(sd, media, policy)
    answer = build_answer(sd, media, "127.0.0.1", 5000, 1, 1)
    srtp_policy.secure_answer(state, answer, sd, media)
    return SessionDescription.parse(answer.to_bytes()), state


SAVP = ("RTP/SAVP", f"7 AES_CM_128_HMAC_SHA1_80 inline:{B64}")
AVP_CRYPTO = ("RTP/AVP", f"7 AES_CM_128_HMAC_SHA1_80 inline:{B64}")


@pytest.mark.parametrize("policy,sd,proto,keyed", [
    ("off", offer("RTP/AVP"), "RTP/AVP", False),
    ("off", offer(*AVP_CRYPTO), "RTP/AVP", False),
    ("optional", offer("RTP/AVP"), "RTP/AVP", False),
    ("optional", offer(*AVP_CRYPTO), "RTP/AVP", True),
    ("optional", offer(*SAVP), "RTP/SAVP", True),
    ("required", offer(*AVP_CRYPTO), "RTP/AVP", True),
    ("required", offer(*SAVP), "RTP/SAVP", True),
])
def test_answers_follow_the_policy_table(policy, sd, proto, keyed) -> None:
    answer, state = answer_to(sd, policy)
    m = answer.media[0]
    assert m.proto == proto
    lines = parse_crypto(m)
    assert state.active == keyed and len(lines) == keyed
    if keyed:
        assert lines[0].tag == 7 and lines[0].suite == "AES_CM_128_HMAC_SHA1_80"
        assert lines[0].key != KEY30 and state.remote_key == KEY30


@pytest.mark.parametrize("policy,sd", [
    ("off", offer(*SAVP)),
    ("required", offer("RTP/AVP")),
    ("optional", offer("RTP/SAVP")),                      # SAVP without a usable key
    ("required", offer("RTP/SAVP", f"1 AES_CM_128_HMAC_SHA1_80 inline:{B64}|2^20|1:4")),
])
def test_offers_refused_with_488(policy, sd) -> None:
    media = negotiate(sd, ["PCMU"], secure=True)
    with pytest.raises(SdpNegotiationError):
        srtp_policy.on_offer(sd, media, policy)


def test_plain_negotiate_ignores_savp_streams() -> None:
    with pytest.raises(SdpNegotiationError):
        negotiate(offer(*SAVP), ["PCMU"])


def test_reoffer_with_the_same_key_keeps_ours_and_a_new_key_changes_both() -> None:
    sd = offer(*SAVP)
    media = negotiate(sd, ["PCMU"], secure=True)
    state = srtp_policy.on_offer(sd, media, "optional")
    ours = state.local
    assert srtp_policy.on_offer(sd, media, "optional", state).local == ours
    new = offer("RTP/SAVP", "7 AES_CM_128_HMAC_SHA1_80 inline:"
                + base64.b64encode(bytes(30)).decode())
    state = srtp_policy.on_offer(new, media, "optional", state)
    assert state.remote_key == bytes(30) and state.local != ours


@pytest.mark.parametrize("policy,proto,lines", [
    ("off", "RTP/AVP", 0), ("optional", "RTP/AVP", 3), ("required", "RTP/SAVP", 3)])
def test_our_offers(policy, proto, lines) -> None:
    state = srtp_policy.LegSrtp(policy)
    sd = build_offer("127.0.0.1", 5000, ["PCMU"], 101, session_id=1, version=0)
    srtp_policy.secure_offer(state, sd)
    m = SessionDescription.parse(sd.to_bytes()).media[0]
    assert m.proto == proto and len(parse_crypto(m)) == lines
    assert len({c.key for c in parse_crypto(m)}) == lines            # a key per line


def test_answer_to_our_offer_picks_our_key_for_its_tag() -> None:
    state = srtp_policy.LegSrtp("required")
    sd = build_offer("127.0.0.1", 5000, ["PCMU"], 101, session_id=1, version=0)
    srtp_policy.secure_offer(state, sd)
    ours = {c.tag: c for c in parse_crypto(sd.media[0])}
    answer = offer("RTP/SAVP", f"2 AES_CM_128_HMAC_SHA1_32 inline:{B64}")
    srtp_policy.on_answer(state, answer, negotiate(answer, ["PCMU"], secure=True))
    assert state.local == ours[2] and state.remote_key == KEY30
    plain = offer("RTP/AVP")
    with pytest.raises(SdpNegotiationError):               # required: a plain answer is refused
        srtp_policy.on_answer(srtp_policy.LegSrtp("required"), plain,
                              negotiate(plain, ["PCMU"]))


def dtls_offer(setup: str = "actpass", fingerprint: bool = True,
               proto: str = "UDP/TLS/RTP/SAVPF") -> SessionDescription:
    fp = "a=fingerprint:SHA-256 " + ":".join(["AB"] * 32) + "\r\n" if fingerprint else ""
    return SessionDescription.parse(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"a=setup:{setup}\r\n{fp}m=audio 4000 {proto} 0\r\n")


def test_dtls_offer_is_answered_passive_with_our_fingerprint() -> None:
    answer, state = answer_to(dtls_offer(), "optional")
    m = answer.media[0]
    assert m.proto == "UDP/TLS/RTP/SAVPF" and not parse_crypto(m)
    attrs = dict(m.attributes)
    assert attrs["setup"] == "passive"
    assert attrs["fingerprint"] == srtp_policy.identity().fingerprint
    assert state.dtls_fingerprint == "SHA-256 " + ":".join(["AB"] * 32)
    assert not state.active                      # keys come with the handshake


@pytest.mark.parametrize("policy,sd", [
    ("off", dtls_offer()),
    ("optional", dtls_offer(fingerprint=False)),
    ("required", dtls_offer(setup="passive")),    # we would have to be the DTLS client
])
def test_dtls_offers_refused_with_488(policy, sd) -> None:
    media = negotiate(sd, ["PCMU"], secure=True)
    with pytest.raises(SdpNegotiationError):
        srtp_policy.on_offer(sd, media, policy)


def test_dtls_policy_offers_dtls_srtp_and_wants_an_active_answer() -> None:
    state = srtp_policy.LegSrtp("dtls")
    sd = build_offer("127.0.0.1", 5000, ["PCMU"], 101, session_id=1, version=0)
    srtp_policy.secure_offer(state, sd)
    m = SessionDescription.parse(sd.to_bytes()).media[0]
    assert m.proto == "UDP/TLS/RTP/SAVP" and not parse_crypto(m)
    assert dict(m.attributes) == {"setup": "actpass",
                                  "fingerprint": srtp_policy.identity().fingerprint}
    for setup in ("passive", "actpass"):                 # we can only be the DTLS server
        bad = dtls_offer(setup=setup, proto="UDP/TLS/RTP/SAVP")
        with pytest.raises(SdpNegotiationError):
            srtp_policy.on_answer(state, bad, negotiate(bad, ["PCMU"], secure=True))
    good = dtls_offer(setup="active", proto="UDP/TLS/RTP/SAVP")
    srtp_policy.on_answer(state, good, negotiate(good, ["PCMU"], secure=True))
    assert state.dtls_fingerprint.startswith("SHA-256 AB:AB")
    with pytest.raises(SdpNegotiationError):                # "dtls" refuses plain offers
        plain = offer("RTP/AVP")
        srtp_policy.on_offer(plain, negotiate(plain, ["PCMU"]), "dtls")


def test_a_leg_keeps_the_certificate_its_sdp_named_when_the_server_rotates(monkeypatch) -> None:
    monkeypatch.setattr(srtp_policy, "IDENTITY_ROTATE_S", -1.0)      # rotate on every use
    assert srtp_policy.identity().fingerprint != srtp_policy.identity().fingerprint
    state = srtp_policy.LegSrtp("dtls")
    prints = []
    for _ in range(2):
        sd = build_offer("127.0.0.1", 5000, ["PCMU"], 101, session_id=1, version=0)
        srtp_policy.secure_offer(state, sd)
        prints.append(dict(sd.media[0].attributes)["fingerprint"])
    assert prints[0] == prints[1] == state.identity.fingerprint
