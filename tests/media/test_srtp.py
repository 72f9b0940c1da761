"""SRTP (ext/srtp.pyx over libsrtp2): the sessions alone, then in the engine over real UDP.

The known answer is libsrtp's own AES_CM_128_HMAC_SHA1_80 test vector (RFC 3711 keying,
an RTP packet of sixteen 0xab bytes); everything else round-trips through an independent
session of the other direction, so a key or suite mix-up shows as an authentication failure.
"""

from __future__ import annotations

import os

import pytest
from rtp_peer import build, parse, wire

from mediasrv._media import SRTP_OPENSSL, SRTP_SUITES, SrtpError, SrtpSession
from mediasrv.media.engine import MediaError

KEY = bytes.fromhex("e1f97a0d3e018be0d64fa32c06de41390ec675ad498afeebb6960b3aabe6")
PLAIN = bytes.fromhex("800f1234decafbadcafebabe") + b"\xab" * 16
CIPHER = bytes.fromhex("800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215"
                       "949d2402b78d6acc99ea179b8dbb")
TAGS = {"AES_CM_128_HMAC_SHA1_80": 10, "AES_CM_128_HMAC_SHA1_32": 4, "AEAD_AES_128_GCM": 16}


def pair(suite: str, key: bytes | None = None) -> tuple[SrtpSession, SrtpSession]:
    key = key or os.urandom(SRTP_SUITES[suite][1])
    return SrtpSession(suite, key, False), SrtpSession(suite, key, True)


def test_known_answer_aes_cm_128_hmac_sha1_80() -> None:
    assert SRTP_OPENSSL        # so the vector runs through our OpenSSL AES-ICM and HMAC-SHA1
    tx, rx = pair("AES_CM_128_HMAC_SHA1_80", KEY)
    assert tx.protect(PLAIN) == CIPHER
    assert rx.unprotect(CIPHER) == PLAIN


@pytest.mark.parametrize("suite", sorted(TAGS))
def test_round_trip_each_suite(suite: str) -> None:
    tx, rx = pair(suite)
    for seq in range(5):
        pkt = build(bytes(range(seq, seq + 160)), seq=seq, ts=160 * seq, ssrc=0x5EC0)
        wire_pkt = tx.protect(pkt)
        assert len(wire_pkt) == len(pkt) + TAGS[suite]
        assert wire_pkt[:12] == pkt[:12] and pkt[12:] not in wire_pkt
        assert rx.unprotect(wire_pkt) == pkt
    rtcp = bytes.fromhex("80c90001") + (0x5EC0).to_bytes(4, "big")
    assert rx.unprotect_rtcp(tx.protect_rtcp(rtcp)) == rtcp


def test_replay_and_forgery_are_refused_and_counted() -> None:
    tx, rx = pair("AES_CM_128_HMAC_SHA1_80")
    first = tx.protect(build(b"\x01" * 160, seq=7))
    rx.unprotect(first)
    with pytest.raises(SrtpError) as err:
        rx.unprotect(first)
    assert err.value.reason == "replay"
    forged = bytearray(tx.protect(build(b"\x02" * 160, seq=8)))
    forged[20] ^= 0x01
    with pytest.raises(SrtpError) as err:
        rx.unprotect(bytes(forged))
    assert err.value.reason == "auth_fail"
    _, stranger = pair("AES_CM_128_HMAC_SHA1_80")          # right suite, wrong key
    with pytest.raises(SrtpError):
        stranger.unprotect(tx.protect(build(b"\x03" * 160, seq=9)))
    assert rx.counters() == {"auth_fail": 1, "replay": 1, "protect_fail": 0}


def test_bad_suite_or_key_length_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not supported"):
        SrtpSession("F8_128_HMAC_SHA1_80", KEY, True)
    with pytest.raises(ValueError, match="30-byte"):
        SrtpSession("AES_CM_128_HMAC_SHA1_80", KEY[:16], True)


# ---------------------------------------------------------------- in the engine


def keys(suite: str = "AES_CM_128_HMAC_SHA1_80") -> tuple[bytes, bytes]:
    n = SRTP_SUITES[suite][1]
    return os.urandom(n), os.urandom(n)


async def test_srtp_leg_bridged_to_plain_leg(engines, peers) -> None:
    """A (SRTP) <-> B (plain): B hears A's audio in clear, A gets B's encrypted."""
    eng = engines().engine
    pa, pb = peers(2)
    a, b = wire(eng, pa), wire(eng, pb)
    theirs, ours = keys()
    eng.set_srtp(a, "AES_CM_128_HMAC_SHA1_80", rx_key=theirs, tx_key=ours)
    eng.connect(a, b)
    a_tx = SrtpSession("AES_CM_128_HMAC_SHA1_80", theirs, False)
    a_rx = SrtpSession("AES_CM_128_HMAC_SHA1_80", ours, True)
    for i in range(3):
        pkt = build(bytes([i + 1]) * 160, seq=100 + i, ts=160 * i, ssrc=pa.ssrc)
        pa.send_raw(eng.local_port(a), a_tx.protect(pkt))
        got = pb.recv()
        assert got is not None and got.payload == bytes([i + 1]) * 160
    plain = pb.send(eng.local_port(b), b"\x55" * 160)
    pa.sock.settimeout(1.0)
    raw = pa.sock.recv(4096)
    assert len(raw) == 12 + 160 + 10 and plain[12:] not in raw
    assert parse(a_rx.unprotect(raw)).payload == b"\x55" * 160
    stats = eng.stats(a)
    assert stats["srtp_auth_fail"] == stats["srtp_replay"] == 0 and stats["packets_in"] == 3
    eng.close_stream(a)
    eng.close_stream(b)


async def test_both_legs_srtp_are_re_encrypted_with_each_legs_key(engines, peers) -> None:
    eng = engines().engine
    pa, pb = peers(2)
    a, b = wire(eng, pa), wire(eng, pb)
    ka, kb = keys("AEAD_AES_128_GCM"), keys("AEAD_AES_128_GCM")
    eng.set_srtp(a, "AEAD_AES_128_GCM", rx_key=ka[0], tx_key=ka[1])
    eng.set_srtp(b, "AEAD_AES_128_GCM", rx_key=kb[0], tx_key=kb[1])
    eng.connect(a, b)
    tx = SrtpSession("AEAD_AES_128_GCM", ka[0], False)
    rx = SrtpSession("AEAD_AES_128_GCM", kb[1], True)
    pa.send_raw(eng.local_port(a), tx.protect(build(b"\x42" * 160, seq=1, ssrc=pa.ssrc)))
    pb.sock.settimeout(1.0)
    raw = pb.sock.recv(4096)
    assert b"\x42" * 160 not in raw
    assert parse(rx.unprotect(raw)).payload == b"\x42" * 160
    eng.close_stream(a)
    eng.close_stream(b)


async def test_replayed_forged_and_plain_packets_are_counted_and_not_forwarded(
        engines, peers) -> None:
    eng = engines().engine
    pa, pb = peers(2)
    a, b = wire(eng, pa), wire(eng, pb)
    theirs, ours = keys()
    eng.set_srtp(a, "AES_CM_128_HMAC_SHA1_80", rx_key=theirs, tx_key=ours)
    eng.connect(a, b)
    port = eng.local_port(a)
    tx = SrtpSession("AES_CM_128_HMAC_SHA1_80", theirs, False)
    good = tx.protect(build(b"\x01" * 160, seq=10, ssrc=pa.ssrc))
    pa.send_raw(port, good)
    assert pb.recv() is not None
    pa.send_raw(port, good)                                          # replay
    forged = bytearray(tx.protect(build(b"\x02" * 160, seq=11, ssrc=pa.ssrc)))
    forged[30] ^= 0xFF
    pa.send_raw(port, bytes(forged))                                 # tampered
    pa.send_raw(port, build(b"\x03" * 160, seq=12, ssrc=pa.ssrc))    # plain RTP
    assert pb.recv_for(0.2) == []
    stats = eng.stats(a)
    assert stats["srtp_replay"] == 1 and stats["srtp_auth_fail"] == 2
    assert stats["packets_in"] == 1
    pa.send_raw(port, tx.protect(build(b"\x04" * 160, seq=13, ssrc=pa.ssrc)))
    got = pb.recv()
    assert got is not None and got.payload == b"\x04" * 160
    eng.close_stream(a)
    eng.close_stream(b)


async def test_set_srtp_none_returns_to_plain_and_bad_keys_refused(engines, peers) -> None:
    eng = engines().engine
    (pa,) = peers(1)
    a = wire(eng, pa)
    with pytest.raises(MediaError, match="30-byte"):
        eng.set_srtp(a, "AES_CM_128_HMAC_SHA1_80", rx_key=b"short", tx_key=b"short")
    with pytest.raises(MediaError, match="not supported"):
        eng.set_srtp(a, "NULL", rx_key=b"", tx_key=b"")
    theirs, ours = keys()
    eng.set_srtp(a, "AES_CM_128_HMAC_SHA1_80", rx_key=theirs, tx_key=ours)
    eng.set_srtp(a, None)
    eng.play_silence(a)
    pa.sock.settimeout(1.0)
    assert parse(pa.sock.recv(4096)).payload == b"\xff" * 160       # clear G.711 silence
    eng.close_stream(a)
