"""The test phone's own SIP text handling: parsing, digest answers, SDP, RTP/RFC 4733 packets."""

import asyncio
import socket

import pytest

from tests.peers import rtp
from tests.peers.audio import Hearing
from tests.peers.sipmsg import (
    digest_authorization,
    parse,
    parse_challenge,
    parse_sdp,
    pick_challenge,
)

RFC7616 = {"realm": "http-auth@example.org",
           "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
           "qop": "auth, auth-int", "opaque": "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"}
CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


@pytest.mark.parametrize("algorithm, response", [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")])
def test_digest_matches_rfc7616_examples(algorithm, response):
    value = digest_authorization({**RFC7616, "algorithm": algorithm}, "GET", "/dir/index.html",
                                 "Mufasa", "Circle of Life", cnonce=CNONCE)
    assert f'response="{response}"' in value
    assert "qop=auth," in value and "nc=00000001" in value and 'opaque="FQhe' in value


def test_first_supported_challenge_is_used():
    ch = pick_challenge(['Digest realm="r", nonce="n", algorithm=SHA-512-256',
                         'Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth"'])
    assert ch["algorithm"] == "SHA-256"
    assert parse_challenge('Digest realm="a,b", nonce=x')["realm"] == "a,b"


def test_parse_compact_folded_and_body():
    data = (b"INVITE sip:b@h SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bKx\r\ni: abc\r\n"
            b"Subject: one\r\n two\r\nCSeq: 3 INVITE\r\nl: 4\r\n\r\nbodyjunk")
    msg = parse(data)
    assert msg.branch == "z9hG4bKx" and msg.call_id == "abc" and msg.cseq == (3, "INVITE")
    assert msg.get("subject") == "one two" and msg.body == b"body"
    assert bytes(msg).endswith(b"Content-Length: 4\r\n\r\nbody")


def test_sdp_media_level_direction_and_dtmf():
    sdp = parse_sdp(b"v=0\r\nc=IN IP4 10.0.0.1\r\na=sendrecv\r\nm=audio 4000 RTP/AVP 8 0 96\r\n"
                    b"a=rtpmap:96 telephone-event/8000\r\na=sendonly\r\n")
    assert (sdp.host, sdp.port, sdp.payloads) == ("10.0.0.1", 4000, [8, 0, 96])
    assert sdp.direction == "sendonly" and sdp.dtmf_pt == 96 and sdp.rtpmap[8] == "PCMA/8000"


async def test_rfc4733_packets_are_exact():
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setblocking(False)
    session = rtp.RtpSession((2300,), Hearing())
    await session.open()
    session.remote, session.dtmf_pt, session.sending = sink.getsockname(), 101, True
    try:
        await asyncio.sleep(0.05)
        seconds = session.queue_rfc4733("#", duration=0.06, volume=10)
        await asyncio.sleep(seconds + 0.05)
        packets = []
        while True:
            try:
                packets.append(rtp.parse_rtp(sink.recv(2048)))
            except BlockingIOError:
                break
    finally:
        session.close()
        sink.close()
    kinds = [p[0] for p in packets]
    first = kinds.index(101)
    assert kinds[first : first + 5] == [101] * 5 and kinds[first + 5] == 0
    events = packets[first : first + 5]  # 2 running + 3 copies of the end (RFC 4733 §2.5.1.4)
    seqs = [p[1] for p in packets]
    assert all((b - a) % 65536 == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    assert len({p[2] for p in events}) == 1  # one timestamp: the event's start
    assert events[0][2] == (packets[first - 1][2] + 160) % 2**32  # ...the next audio tick
    assert [p[4] for p in events] == [True, False, False, False, False]  # marker on the first
    payloads = [p[5] for p in events]
    assert payloads[0] == bytes([11, 10, 0, 160]) and payloads[1] == bytes([11, 10, 1, 64])
    assert payloads[2:] == [bytes([11, 0x80 | 10, 1, 224])] * 3
    assert packets[first + 5][2] == (events[0][2] + 5 * 160) % 2**32  # audio clock kept running
    assert len({p[3] for p in packets}) == 1
