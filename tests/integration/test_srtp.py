"""SRTP with SDES keys (RFC 4568) through a live mediasrv, with real baresips.

How this works: extensions 106 and 107 get `srtp = "required"` and their baresips
`mediaenc=srtp-mand` (RTP/SAVP, a=crypto). Each side sends its identity tone; what each
baresip heard (its decoded receive audio) proves the audio path through the engine, which
decrypts one leg and re-encrypts for the other with that leg's own keys. A raw capture on
`lo` of everything to and from the server's RTP ports proves the wire: the same payloads,
read as G.711, carry no tone on SRTP legs, and do on a plain leg (the check's own control).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

import pytest

from tests.integration.conftest import Harness, MakeBaresip, wait_until
from tests.integration.test_refer import ReplacingPhone, replaces_of
from tests.peers.capture import LoopbackCapture, rtp_packets, tones_in_clear

pytestmark = [pytest.mark.asyncio, pytest.mark.peer]

REQUIRED = '[extensions.106]\nsrtp = "required"\n[extensions.107]\nsrtp = "required"\n'
TAG_80 = 10


def rtp_range(h: Harness) -> Callable[[int], bool]:
    lo, hi = h.server.config.rtp.port_min, h.server.config.rtp.port_max
    return lambda port: lo <= port <= hi


def leg_ports(h: Harness, number: str) -> set[int]:
    """The server's RTP port and the phone's, of the live leg of extension `number`."""
    leg = next(x for x in h.server.b2bua.legs if x.number == number and not x.ended)
    assert leg.media is not None
    return {h.server.engine.local_port(leg.stream), leg.media.remote_port}


def srtp_counters(h: Harness) -> list[tuple[str, bool, int, int, int]]:
    out = []
    for leg in sorted(h.server.b2bua.legs, key=lambda x: x.number):
        st = h.server.engine.stats(leg.stream)
        out.append((leg.number, leg.srtp is not None and leg.srtp.active, st["packets_in"],
                    st["srtp_auth_fail"], st["srtp_replay"]))
    return out


@pytest.mark.parametrize("mediaenc", [
    pytest.param("srtp-mand", marks=pytest.mark.site(REQUIRED)),   # RTP/SAVP, srtp required
    "srtp",                        # best effort: RTP/AVP with a=crypto, the default "optional"
])
async def test_baresip_to_baresip_both_legs_srtp(harness: Harness, baresip: MakeBaresip,
                                                 mediaenc: str) -> None:
    alice = await baresip("106", "D", mediaenc=mediaenc)
    bob = await baresip("107", "E", mediaenc=mediaenc)
    with LoopbackCapture(rtp_range(harness)) as cap:
        await alice.dial(harness.uri("107"))
        await alice.wait_event("CALL_ESTABLISHED")
        await bob.wait_event("CALL_ESTABLISHED")
        await bob.wait_hearing({"D"})
        await alice.wait_hearing({"E"})
        await asyncio.sleep(1.0)                   # a second of audio on the wire
        counters = srtp_counters(harness)
        legs = {n: leg_ports(harness, n) for n in ("106", "107")}
    assert [(n, active) for n, active, *_ in counters] == [("106", True), ("107", True)]
    assert all(pkts > 40 and auth == replay == 0 for _, _, pkts, auth, replay in counters), counters
    for number, ports in legs.items():
        packets = rtp_packets(cap.between(ports))
        assert len(packets) > 40, f"leg {number}: {len(packets)} RTP packets captured"
        assert all(len(p) == 12 + 160 + TAG_80 for p in packets), f"leg {number}: not SRTP"
        assert tones_in_clear(packets) == set(), f"leg {number}: tone in clear on the wire"
    await alice.hangup()
    await bob.wait_event("CALL_CLOSED")
    await wait_until(lambda: not harness.server.b2bua.legs, 3, "both legs to end")


@pytest.mark.site('[extensions.106]\nsrtp = "required"\n')
async def test_srtp_leg_bridged_to_plain_leg(harness: Harness, baresip: MakeBaresip) -> None:
    """106 (srtp-mand) calls 107 (plain baresip, default "optional"): only 106's leg is
    encrypted; 107's leg carries the tones in clear, which also proves the capture check."""
    alice = await baresip("106", "D", mediaenc="srtp-mand")
    bob = await baresip("107", "E")
    with LoopbackCapture(rtp_range(harness)) as cap:
        await alice.dial(harness.uri("107"))
        await alice.wait_event("CALL_ESTABLISHED")
        await bob.wait_hearing({"D"})
        await alice.wait_hearing({"E"})
        legs = {n: leg_ports(harness, n) for n in ("106", "107")}
        active = {n: a for n, a, *_ in srtp_counters(harness)}
    assert active == {"106": True, "107": False}
    assert tones_in_clear(rtp_packets(cap.between(legs["106"]))) == set()
    assert tones_in_clear(rtp_packets(cap.between(legs["107"]))) == {"D", "E"}
    await alice.hangup()
    await wait_until(lambda: not harness.server.b2bua.legs, 3, "both legs to end")


@pytest.mark.site(REQUIRED)
async def test_required_refuses_a_plain_offer_with_488(harness: Harness) -> None:
    a = await harness.phone("A", "106")
    call = await a.call(harness.uri("101"))
    assert call.final_status == 488
    assert not harness.server.b2bua.legs


@pytest.mark.moh_tone
@pytest.mark.site('[extensions.106]\nsrtp = "required"\n')
async def test_attended_transfer_with_one_srtp_leg(harness: Harness, baresip: MakeBaresip) -> None:
    """A = baresip 106 (srtp-mand) calls B (102, plain TestPhone); B transfers it with #4 to
    C (103, plain): A's leg stays SRTP throughout and ends up talking to C in clear."""
    a = await baresip("106", "D", mediaenc="srtp-mand")
    b = await harness.phone("B", "102")
    c = await harness.phone("C", "103")
    with LoopbackCapture(rtp_range(harness)) as cap:
        await a.dial(harness.uri("102"))
        await a.wait_event("CALL_ESTABLISHED")
        b_call = b.active_calls()[0]
        await b.wait_hearing({"D"})
        await a.wait_hearing({"B"})
        await b_call.send_dtmf("#4")
        await wait_until(lambda: a.heard_tones() == set(), 3, "A to hear MoH, not B")
        await b_call.send_dtmf("103#")
        await c.next_incoming()                    # C answers at once
        await b.wait_hearing({"C"})
        await c.wait_hearing({"B"})
        await b_call.hangup()
        await a.wait_hearing({"C"})
        await c.wait_hearing({"D"})
        await asyncio.sleep(0.5)
        a_leg, c_leg = leg_ports(harness, "106"), leg_ports(harness, "103")
        active = {n: on for n, on, *_ in srtp_counters(harness)}
    assert active == {"106": True, "103": False}
    assert tones_in_clear(rtp_packets(cap.between(a_leg))) == set()
    assert {"C", "D"} <= tones_in_clear(rtp_packets(cap.between(c_leg)))
    await a.hangup()
    await wait_until(lambda: not harness.server.b2bua.legs, 3, "all legs to end")


@pytest.mark.moh_tone
@pytest.mark.site(REQUIRED)
async def test_hold_and_resume_keep_the_srtp_keys(harness: Harness, baresip: MakeBaresip) -> None:
    """baresip's hold and resume are re-INVITEs carrying its a=crypto again: the leg keeps
    its keys (no new sessions, so the replay window and rollover counter carry on)."""
    alice = await baresip("106", "D", mediaenc="srtp-mand")
    bob = await baresip("107", "E", mediaenc="srtp-mand")
    await alice.dial(harness.uri("107"))
    await alice.wait_event("CALL_ESTABLISHED")
    await bob.wait_hearing({"D"})
    leg = next(x for x in harness.server.b2bua.legs if x.number == "106")
    assert leg.srtp is not None
    keys = leg.srtp.applied
    await alice.hold()
    await wait_until(lambda: leg.remote_hold, 3, "the server to see the hold")
    await wait_until(lambda: bob.heard_tones() == set(), 3, "bob to stop hearing alice")
    await alice.resume()
    await bob.wait_hearing({"D"})
    await alice.wait_hearing({"E"})
    assert leg.srtp.applied == keys
    stats = harness.server.engine.stats(leg.stream)
    assert stats["srtp_auth_fail"] == stats["srtp_replay"] == 0
    await alice.hangup()
    await wait_until(lambda: not harness.server.b2bua.legs, 3, "both legs to end")


class SdesReplacingPhone(ReplacingPhone):
    """Sends its INVITEs as RTP/SAVP with an a=crypto line but its RTP in clear, as a
    broken or hostile phone would: every packet must fail authentication."""

    __test__ = False

    def _request(self, method, uri, from_, to, call_id, cseq, extra=(), body=b"",  # noqa: ANN001
                 ctype="application/sdp"):
        if method == "INVITE" and body:
            key = base64.b64encode(bytes(range(30))).decode()
            body = body.replace(b"RTP/AVP", b"RTP/SAVP") + \
                f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}\r\n".encode()
        return super()._request(method, uri, from_, to, call_id, cseq, extra, body, ctype)


@pytest.mark.site('[extensions.104]\nsrtp = "required"\n')
async def test_invite_with_replaces_keys_the_new_leg_and_drops_forged_packets(
        harness: Harness) -> None:
    a = await harness.phone("A", "101")
    b = await harness.phone("B", "102")
    d = SdesReplacingPhone("D", "104", harness.server.config.extensions["104"].password,
                           server=harness.sip_addr)
    await d.start()
    harness.phones.append(d)
    call = await a.call(harness.uri("102"))
    assert await call.wait_final() == 200
    await b.wait_hearing({"A"})
    d.replaces = [replaces_of(call)]
    new = await d.call(harness.uri("102"))
    assert await new.wait_final() == 200
    await call.wait_state("terminated")
    leg = next(x for x in harness.server.b2bua.legs if x.number == "104")
    assert leg.srtp is not None and leg.srtp.active
    await wait_until(lambda: harness.server.engine.stats(leg.stream)["srtp_auth_fail"] > 20, 3,
                     "D's clear RTP to be refused")
    assert harness.server.engine.stats(leg.stream)["packets_in"] == 0
    await b.wait_hearing(set())                     # nothing of D's reaches B
    await new.hangup()
    await wait_until(lambda: not any(x.number == "104" for x in harness.server.b2bua.legs), 3,
                     "D's leg to end")
    metrics = harness.server.metrics
    assert metrics is not None
    body = metrics.exposition()[0].decode()         # the ended leg's final counters stay
    refused = next(line for line in body.splitlines()
                   if line.startswith('mediasrv_srtp_packets_refused_total{reason="auth"}'))
    assert float(refused.split()[-1]) > 20


@pytest.mark.site('[extensions.107]\nsrtp = "required"\n')
async def test_dtls_srtp_baresip_to_sdes_baresip(harness: Harness, baresip: MakeBaresip) -> None:
    """106 (baresip dtls_srtp: UDP/TLS/RTP/SAVPF, a=fingerprint, a=setup:actpass) calls
    107 (srtp-mand): the server is the DTLS server on 106's RTP and RTCP ports, checks
    baresip's certificate against its fingerprint, keys 106's leg from the exporter, and
    relays to 107's SDES leg; no tone in clear on either."""
    alice = await baresip("106", "D", mediaenc="dtls_srtp")
    bob = await baresip("107", "E", mediaenc="srtp-mand")
    with LoopbackCapture(rtp_range(harness)) as cap:
        await alice.dial(harness.uri("107"))
        await alice.wait_event("CALL_ESTABLISHED")
        await bob.wait_hearing({"D"}, timeout=5)
        await alice.wait_hearing({"E"})
        await asyncio.sleep(1.0)
        counters = srtp_counters(harness)
        legs = {n: leg_ports(harness, n) for n in ("106", "107")}
        a_leg = next(x for x in harness.server.b2bua.legs if x.number == "106")
    assert a_leg.srtp is not None and a_leg.srtp.dtls_fingerprint
    assert set(a_leg.srtp.dtls) == {False, True} and all(d.done for d in a_leg.srtp.dtls.values())
    assert [(n, active) for n, active, *_ in counters] == [("106", True), ("107", True)]
    assert all(pkts > 40 and auth == replay == 0 for _, _, pkts, auth, replay in counters), \
        counters
    for number, ports in legs.items():
        packets = rtp_packets(cap.between(ports))
        assert len(packets) > 40 and all(len(p) == 12 + 160 + TAG_80 for p in packets)
        assert tones_in_clear(packets) == set(), f"leg {number}: tone in clear"
    await alice.hangup()
    await wait_until(lambda: not harness.server.b2bua.legs, 3, "both legs to end")


@pytest.mark.site('[extensions.106]\nsrtp = "required"\n[extensions.107]\nsrtp = "dtls"\n')
async def test_sdes_baresip_calls_a_dtls_srtp_extension(harness: Harness,
                                                        baresip: MakeBaresip) -> None:
    """107 has srtp = "dtls": our offer to it is UDP/TLS/RTP/SAVP with a=setup:actpass; baresip
    answers active and runs the handshake to us. 106 is SDES. Tones both ways, none in clear."""
    alice = await baresip("106", "D", mediaenc="srtp-mand")
    bob = await baresip("107", "E", mediaenc="dtls_srtp")
    with LoopbackCapture(rtp_range(harness)) as cap:
        await alice.dial(harness.uri("107"))
        await alice.wait_event("CALL_ESTABLISHED")
        await bob.wait_hearing({"D"}, timeout=5)
        await alice.wait_hearing({"E"})
        await asyncio.sleep(1.0)
        counters = srtp_counters(harness)
        bob_leg = next(x for x in harness.server.b2bua.legs if x.number == "107")
        ports = leg_ports(harness, "107")
    assert bob_leg.srtp is not None and bob_leg.srtp.dtls_fingerprint
    assert bob_leg.invite is not None and b"UDP/TLS/RTP/SAVP" in bob_leg.invite.body
    assert [(n, active) for n, active, *_ in counters] == [("106", True), ("107", True)]
    assert all(auth == replay == 0 for *_, auth, replay in counters), counters
    packets = rtp_packets(cap.between(ports))
    assert len(packets) > 40 and tones_in_clear(packets) == set()
    await alice.hangup()
    await wait_until(lambda: not harness.server.b2bua.legs, 3, "both legs to end")
