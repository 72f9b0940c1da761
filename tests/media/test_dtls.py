"""DTLS-SRTP (RFC 5763/5764): our DTLS server against an OpenSSL client, and the engine's
demultiplexing of DTLS datagrams from RTP on one port (RFC 5764 §5.1.2)."""

from __future__ import annotations

import asyncio
import socket

import pytest
from OpenSSL import SSL
from rtp_peer import build, wire

from mediasrv._media import SrtpSession
from mediasrv.media.dtls import DtlsError, DtlsServer, Identity, make_identity


class Client:
    """A DTLS-SRTP client on memory BIOs, as a phone would run it."""

    def __init__(self, me: Identity) -> None:
        ctx = SSL.Context(SSL.DTLS_METHOD)
        ctx.use_certificate(me.cert)
        ctx.use_privatekey(me.key)
        ctx.set_tlsext_use_srtp(b"SRTP_AES128_CM_SHA1_80")
        ctx.set_verify(SSL.VERIFY_PEER, lambda *_: True)
        self.conn = SSL.Connection(ctx, None)
        self.conn.set_connect_state()
        self.done = False

    def step(self, incoming: list[bytes]) -> list[bytes]:
        for d in incoming:
            self.conn.bio_write(d)
        try:
            self.conn.do_handshake()
            self.done = True
        except SSL.WantReadError:
            pass
        out = []
        while True:
            try:
                out.append(self.conn.bio_read(65536))
            except SSL.WantReadError:
                return out


def handshake(server: DtlsServer, client: Client) -> None:
    flight = client.step([])
    for _ in range(6):
        back = [d for datagram in flight for d in server.feed(datagram)]
        flight = client.step(back)
        if server.done and client.done and not flight:
            return
    raise AssertionError("handshake did not finish")


def test_keys_from_the_exporter_match_the_clients() -> None:
    ours, phone = make_identity(), make_identity()
    assert ours.fingerprint.startswith("sha-256 ") and len(ours.fingerprint) == 8 + 95
    server, client = DtlsServer(ours, phone.fingerprint), Client(phone)
    handshake(server, client)
    suite, rx, tx = server.keys()
    km = client.conn.export_keying_material(b"EXTRACTOR-dtls_srtp", 60)
    assert suite == "AES_CM_128_HMAC_SHA1_80"
    assert rx == km[:16] + km[32:46] and tx == km[16:32] + km[46:60]  # client's, server's
    pkt = build(b"\x11" * 160, seq=5)                 # and the keys work both ways
    assert SrtpSession(suite, rx, True).unprotect(SrtpSession(suite, rx, False).protect(pkt)) \
        == pkt


def test_a_certificate_other_than_the_fingerprint_is_refused() -> None:
    ours, phone, impostor = make_identity(), make_identity(), make_identity()
    server = DtlsServer(ours, phone.fingerprint)
    handshake(server, Client(impostor))
    with pytest.raises(DtlsError, match="fingerprint"):
        server.keys()


async def test_engine_hands_dtls_up_and_keeps_clear_rtp_out_until_keyed(engines, peers) -> None:
    eng = engines().engine
    pa, pb = peers(2)
    a, b = wire(eng, pa), wire(eng, pb)
    eng.connect(a, b)
    got: list[tuple[int, bool, bytes, str, int]] = []
    eng.dtls_sink = lambda *d: got.append(d)
    eng.set_dtls(a, True)
    hello = bytes([22, 0xFE, 0xFD]) + b"\x00" * 10         # a DTLS 1.2 handshake record
    pa.send_raw(eng.local_port(a), hello)
    pa.send(eng.local_port(a), b"\x01" * 160)              # clear RTP before the keys
    pb.send(eng.local_port(b), b"\x02" * 160)              # must not leave in clear either
    await wait_for(lambda: got)
    assert got == [(a, False, hello, "127.0.0.1", pa.port)]
    assert pb.recv(0.2) is None and pa.recv(0.2) is None
    assert eng.stats(a)["dropped"] == 1
    eng.send_dtls(a, False, b"\x16reply", "127.0.0.1", pa.port)
    pa.sock.settimeout(1.0)
    assert pa.sock.recv(100) == b"\x16reply"
    for sid in (a, b):
        eng.close_stream(sid)


async def wait_for(predicate, timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not predicate():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.01)


async def test_dtls_from_another_host_is_dropped(engines, peers) -> None:
    eng = engines().engine
    (pa,) = peers(1)
    a = wire(eng, pa)
    got: list[tuple[int, bool, bytes, str, int]] = []
    eng.dtls_sink = lambda *d: got.append(d)
    eng.set_dtls(a, True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        stranger.bind(("127.0.0.2", 0))
        stranger.sendto(bytes([22, 0xFE, 0xFD]) + b"\x00" * 10, ("127.0.0.1", eng.local_port(a)))
    pa.send_raw(eng.local_port(a), bytes([22, 0xFE, 0xFD]) + b"\x01" * 10)
    await wait_for(lambda: got)
    await asyncio.sleep(0.05)
    assert [d[2][3] for d in got] == [1]                    # only the phone's
    assert eng.stats(a)["dropped"] == 1
    eng.close_stream(a)
