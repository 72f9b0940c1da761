"""Engine with G.722 and Opus legs over real UDP: relay unchanged, transcode, wideband kept.

How this works: RTP test peers play phones in each codec, encoding and decoding with the
kernels (G722Encoder/Decoder, OpusEncoder/Decoder, G.711). Audio is proved by audio: a tone
is sent and its power measured at the far end, including a 6 kHz tone that must pass a
wideband path (G.722 <-> Opus) and must not pass a narrowband one (-> PCMU).
"""

from __future__ import annotations

import asyncio

import numpy as np
from rtp_peer import RtpPeer, build, goertzel_power

from mediasrv import _media
from mediasrv.media.engine import MediaEngine
from mediasrv.media.events import DtmfReceived

PT = {"PCMU": 0, "PCMA": 8, "G722": 9, "OPUS": 111}
CLOCK_STEP = {"PCMU": 160, "PCMA": 160, "G722": 160, "OPUS": 960}   # per 20 ms
RATE = {"PCMU": 8000, "PCMA": 8000, "G722": 16000, "OPUS": 16000}


def wire(eng: MediaEngine, peer: RtpPeer, codec: str, event_pt: int | None = 101) -> int:
    sid = eng.open_stream()
    eng.set_remote(sid, "127.0.0.1", peer.port, codec=codec, pt=PT[codec], event_pt=event_pt)
    return sid


class Phone:
    """A peer that speaks one codec: encodes 20 ms frames and decodes what it receives."""

    def __init__(self, peer: RtpPeer, codec: str) -> None:
        self.peer, self.codec, self.rate = peer, codec, RATE[codec]
        self.enc = {"G722": _media.G722Encoder, "OPUS": _media.OpusEncoder}.get(codec)
        self.enc = self.enc() if self.enc else None
        self.seq, self.ts = 100, 5000

    def encode(self, pcm: np.ndarray) -> bytes:
        if self.codec == "PCMU":
            return _media.ulaw_encode(pcm)
        if self.codec == "PCMA":
            return _media.alaw_encode(pcm)
        return self.enc.encode(pcm)

    def send_frame(self, port: int, pcm: np.ndarray) -> bytes:
        payload = self.encode(pcm)
        self.peer.send_raw(port, build(payload, pt=PT[self.codec], seq=self.seq, ts=self.ts,
                                       ssrc=0x5150))
        self.seq += 1
        self.ts += CLOCK_STEP[self.codec]
        return payload

    def decode(self, packets: list) -> np.ndarray:
        if self.codec in ("PCMU", "PCMA"):
            data = b"".join(p.payload for p in packets)
            return (_media.ulaw_decode if self.codec == "PCMU" else _media.alaw_decode)(data)
        if self.codec == "G722":
            return _media.G722Decoder().decode(b"".join(p.payload for p in packets))
        dec = _media.OpusDecoder(16000)
        return np.concatenate([dec.decode(p.payload) for p in packets])


def tone(freq: float, rate: int, frames: int, amp: float = 8000) -> list[np.ndarray]:
    n = rate // 50
    t = np.arange(n * frames) / rate
    pcm = np.round(amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    return [pcm[i * n:(i + 1) * n] for i in range(frames)]


async def talk(eng, a: Phone, sa: int, b: Phone, freq: float, frames: int = 25) -> list:
    """a sends a tone to stream sa (bridged to b's stream); returns what b received."""
    b.peer.drain()
    for f in tone(freq, a.rate, frames):
        a.send_frame(eng.local_port(sa), f)
        await asyncio.sleep(0.002)
    return b.peer.recv_for(0.15)


def power_at(phone: Phone, packets: list, freq: float) -> tuple[float, float]:
    """(relative power of freq, rms) of what phone heard, after the codec's start-up."""
    pcm = phone.decode(packets)[phone.rate // 10:]
    rms = float(np.sqrt(np.mean(pcm.astype(float) ** 2))) if len(pcm) else 0.0
    return goertzel_power(pcm, freq, phone.rate), rms


async def test_same_codec_is_relayed_unchanged(engines, peers) -> None:
    eng = engines().engine
    for codec in ("OPUS", "G722"):
        pa, pb = peers(2)
        a = Phone(pa, codec)
        sa, sb = wire(eng, pa, codec), wire(eng, pb, codec)
        eng.connect(sa, sb)
        sent = [a.send_frame(eng.local_port(sa), f) for f in tone(1000, a.rate, 5)]
        got = [pb.recv() for _ in sent]
        assert [g.payload for g in got] == sent          # not decoded, not re-encoded
        assert {g.pt for g in got} == {PT[codec]}
        assert [g.ts - got[0].ts for g in got] == [CLOCK_STEP[codec] * k for k in range(5)]
        for sid in (sa, sb):
            eng.close_stream(sid)


async def test_wideband_to_pcmu_transcodes_and_drops_above_4khz(engines, peers) -> None:
    eng = engines().engine
    for wide in ("G722", "OPUS"):
        pw, pn = peers(2)
        w, n = Phone(pw, wide), Phone(pn, "PCMU")
        sw, sn = wire(eng, pw, wide), wire(eng, pn, "PCMU")
        eng.connect(sw, sn)
        heard = await talk(eng, w, sw, n, 1000)
        assert {p.pt for p in heard} == {0} and len(heard) >= 20
        assert {len(p.payload) for p in heard} == {160}
        assert np.all(np.diff([p.ts for p in heard]) % 160 == 0)
        p1k, rms = power_at(n, heard, 1000)
        assert p1k > 0.8 and rms > 2000, (wide, p1k, rms)
        _, rms6k = power_at(n, await talk(eng, w, sw, n, 6000), 6000)
        assert rms6k < 300, (wide, rms6k)                # G.711 cannot carry it
        back = await talk(eng, n, sn, w, 1000)           # and the other way
        assert {p.pt for p in back} == {PT[wide]}
        steps = np.diff([p.ts for p in back])
        assert np.all(steps % CLOCK_STEP[wide] == 0) and np.all(steps > 0)
        p1k, rms = power_at(w, back, 1000)
        assert p1k > 0.7 and rms > 2000, (wide, p1k, rms)
        for sid in (sw, sn):
            eng.close_stream(sid)


async def test_g722_opus_transcode_keeps_a_6khz_tone(engines, peers) -> None:
    eng = engines().engine
    pg, po = peers(2)
    g, o = Phone(pg, "G722"), Phone(po, "OPUS")
    sg, so = wire(eng, pg, "G722"), wire(eng, po, "OPUS")
    eng.connect(sg, so)
    for src, ssrc, dst in ((g, sg, o), (o, so, g)):
        p6k, rms = power_at(dst, await talk(eng, src, ssrc, dst, 6000), 6000)
        assert p6k > 0.7 and rms > 2000, (src.codec, p6k, rms)
    for sid in (sg, so):
        eng.close_stream(sid)


async def test_local_tone_on_wideband_streams(engines, peers) -> None:
    eng = engines(zone="us").engine
    for codec in ("G722", "OPUS"):
        (p,) = peers(1)
        ph = Phone(p, codec)
        s = wire(eng, p, codec)
        eng.play_tone(s, "busy")
        pkts = p.recv_for(0.35)
        assert {q.pt for q in pkts} == {PT[codec]}
        pcm = ph.decode(pkts)[1600:]
        assert goertzel_power(pcm, 480, 16000) + goertzel_power(pcm, 620, 16000) > 0.8
        eng.close_stream(s)


def dtmf_16k(digit: str, ms: int) -> np.ndarray:
    rows, cols = (697, 770, 852, 941), (1209, 1336, 1477, 1633)
    i = "123A456B789C*0#D".index(digit)
    t = np.arange(ms * 16) / 16000
    x = 6000 * (np.sin(2 * np.pi * rows[i // 4] * t) + np.sin(2 * np.pi * cols[i % 4] * t))
    return np.round(x).astype(np.int16)


async def test_inband_dtmf_detected_on_wideband_legs(engines, peers) -> None:
    eut = engines()
    eng = eut.engine
    for codec in ("G722", "OPUS"):
        eut.events.clear()
        (p,) = peers(1)
        ph = Phone(p, codec)
        s = wire(eng, p, codec)
        eng.set_dtmf(s, mode="inband")
        pcm = np.concatenate([np.zeros(3200, np.int16), dtmf_16k("5", 120),
                              np.zeros(3200, np.int16)])
        for k in range(0, len(pcm) - 319, 320):
            ph.send_frame(eng.local_port(s), pcm[k:k + 320])
            await asyncio.sleep(0.002)
        (ev,) = await eut.wait_for(DtmfReceived)
        assert (ev.stream, ev.digit, ev.source) == (s, "5", "inband"), codec
        assert abs(ev.duration_ms - 120) <= 25
        eng.close_stream(s)


async def test_conference_mixes_opus_g722_and_pcmu(engines, peers) -> None:
    eng = engines().engine
    codecs = ("OPUS", "G722", "PCMU")
    trio = [Phone(p, c) for p, c in zip(peers(3), codecs, strict=True)]
    sids = [wire(eng, ph.peer, ph.codec) for ph in trio]
    eng.conference(sids)
    freqs = (500.0, 1100.0, 1700.0)
    frames = [tone(f, ph.rate, 40, 5000) for f, ph in zip(freqs, trio, strict=True)]
    for i in range(40):
        for k, ph in enumerate(trio):
            ph.send_frame(eng.local_port(sids[k]), frames[k][i])
        await asyncio.sleep(0.02)
    got = [ph.peer.recv_for(0.1) for ph in trio]
    for sid in sids:
        eng.close_stream(sid)
    for k, ph in enumerate(trio):
        pcm = ph.decode(got[k])[ph.rate // 5: ph.rate * 7 // 10]
        power = [goertzel_power(pcm, f, ph.rate) for f in freqs]
        assert power[k] < 0.02, (ph.codec, power)
        assert min(power[j] for j in range(3) if j != k) > 0.2, (ph.codec, power)


async def test_codec_change_mid_call_switches_between_transcode_and_relay(engines,
                                                                        peers) -> None:
    # A re-INVITE (hold/unhold, transfer to another phone) may change a leg's codec: the
    # bridge then relays or transcodes according to the new pair, on the same streams.
    eng = engines().engine
    pa, pb = peers(2)
    b = Phone(pb, "PCMU")
    sa, sb = wire(eng, pa, "G722"), wire(eng, pb, "PCMU")
    eng.connect(sa, sb)
    for codec in ("G722", "PCMU", "OPUS"):
        eng.set_remote(sa, "127.0.0.1", pa.port, codec=codec, pt=PT[codec], event_pt=101)
        a = Phone(pa, codec)
        heard = await talk(eng, a, sa, b, 1000, frames=15)
        assert {p.pt for p in heard} == {0} and len(heard) >= 12, codec
        p1k, rms = power_at(b, heard, 1000)
        assert p1k > 0.8 and rms > 2000, (codec, p1k, rms)
        if codec == "PCMU":                       # both PCMU now: relayed byte for byte
            sent = a.send_frame(eng.local_port(sa), tone(1000, 8000, 1)[0])
            assert pb.recv().payload == sent
    for sid in (sa, sb):
        eng.close_stream(sid)


async def test_recording_of_a_wideband_leg_is_16khz(engines, peers, tmp_path) -> None:
    import wave

    from mediasrv.media.events import RecordingFinished

    eut = engines()
    eng = eut.engine
    (p,) = peers(1)
    ph = Phone(p, "G722")
    s = wire(eng, p, "G722")
    path = str(tmp_path / "wide.wav")
    eng.record_start(s, path, max_seconds=0.4)
    sent = [ph.send_frame(eng.local_port(s), f) for f in tone(6000, 16000, 20)]
    (ev,) = await eut.wait_for(RecordingFinished)
    assert ev.seconds == 0.4
    with wave.open(path, "rb") as w:
        assert w.getframerate() == 16000
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    # exactly what a G.722 decoder makes of the packets: 6 kHz kept, nothing resampled
    np.testing.assert_array_equal(pcm, _media.G722Decoder().decode(b"".join(sent))[:6400])
    assert goertzel_power(pcm[1600:], 6000, 16000) > 0.8
    eng.close_stream(s)


def voiced(frames: int) -> list[np.ndarray]:
    """A voiced, modulated harmonic signal at 16 kHz: Opus codes it in SILK, with FEC."""
    t = np.arange(320 * frames) / 16000
    phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * 3 * t)) / 16000
    x = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.6 + 0.4 * np.sin(8 * np.pi * t))
    pcm = np.round(6000 * x).astype(np.int16)
    return [pcm[i * 320:(i + 1) * 320] for i in range(frames)]


async def test_a_lost_opus_packet_is_recovered_from_fec_when_transcoding(engines,
                                                                       peers) -> None:
    eng = engines().engine
    po, pn = peers(2)
    o, n = Phone(po, "OPUS"), Phone(pn, "PCMU")
    so, sn = wire(eng, po, "OPUS"), wire(eng, pn, "PCMU")
    eng.connect(so, sn)
    frames = voiced(30)
    for i, f in enumerate(frames):
        payload = o.encode(f)
        if i != 20:                                   # packet 20 is lost on the way
            po.send_raw(eng.local_port(so), build(payload, pt=PT["OPUS"], seq=o.seq,
                                                  ts=o.ts, ssrc=0x5150))
        o.seq += 1
        o.ts += 960
        await asyncio.sleep(0.002)
    heard = pn.recv_for(0.15)
    assert len(heard) == 30                           # 29 packets in, 30 frames out
    pcm = n.decode(heard)
    recovered = pcm[20 * 160:21 * 160].astype(float)
    assert np.sqrt(np.mean(recovered ** 2)) > 1000    # speech, not a silent gap
    for sid in (so, sn):
        eng.close_stream(sid)


async def send_opus_losing(eng, po, o: Phone, so: int, frames: list, lost: set[int]) -> None:
    for i, f in enumerate(frames):
        payload = o.encode(f)
        if i not in lost:
            po.send_raw(eng.local_port(so), build(payload, pt=PT["OPUS"], seq=o.seq,
                                                  ts=o.ts, ssrc=0x5150))
        o.seq += 1
        o.ts += 960
        await asyncio.sleep(0.002)


async def test_lost_opus_packets_are_concealed_then_recovered_when_transcoding(engines,
                                                                             peers) -> None:
    # Packets 10-11 and 20-22 lost: the last of each run comes from the next packet's FEC,
    # the ones before it from libopus's concealment (PLC); a run of 4 (30-33) is longer
    # than ENG_OPUS_CONCEAL and left as a gap. Every filled frame carries audio.
    eng = engines().engine
    po, pn = peers(2)
    o, n = Phone(po, "OPUS"), Phone(pn, "PCMU")
    so, sn = wire(eng, po, "OPUS"), wire(eng, pn, "PCMU")
    eng.connect(so, sn)
    lost = {10, 11, 20, 21, 22, 30, 31, 32, 33}
    await send_opus_losing(eng, po, o, so, voiced(40), lost)
    heard = pn.recv_for(0.15)
    assert len(heard) == 40 - 4                       # 31 in, 5 filled in, 4 left out
    assert np.all(np.diff([p.ts for p in heard]) == 160)
    pcm = n.decode(heard).astype(float)
    for k in (10, 11, 20, 21, 22):
        frame = pcm[k * 160:(k + 1) * 160]
        assert np.sqrt(np.mean(frame ** 2)) > 500, k  # speech-like, not a silent gap
    for sid in (so, sn):
        eng.close_stream(sid)


async def test_a_conference_member_at_30ms_is_reframed(engines, peers) -> None:
    # A PCMU member sends 30 ms packets (240 samples, timestamp +240) into a conference
    # ticking at 20 ms: its audio is cut into 20 ms frames for its jitter buffer, so the
    # others hear its tone whole (not 20 of every 30 ms) and it hears theirs.
    eng = engines().engine
    trio = [Phone(p, c) for p, c in zip(peers(3), ("PCMU", "G722", "PCMU"), strict=True)]
    sids = [wire(eng, ph.peer, ph.codec) for ph in trio]
    eng.conference(sids)
    freqs = (500.0, 1100.0, 1700.0)
    slow = tone(freqs[0], 8000, 60, 5000)
    slow = np.concatenate(slow)
    frames = [tone(f, ph.rate, 60, 5000) for f, ph in zip(freqs[1:], trio[1:], strict=True)]
    a = trio[0]
    for i in range(60):                               # 1.2 s: 40 packets of 30 ms
        if i % 3 != 2:
            k = i // 3 * 2 + i % 3
            payload = _media.ulaw_encode(slow[k * 240:(k + 1) * 240])
            a.peer.send_raw(eng.local_port(sids[0]), build(payload, pt=0, seq=a.seq,
                                                           ts=a.ts, ssrc=0x5150))
            a.seq += 1
            a.ts += 240
        for ph, sid, f in zip(trio[1:], sids[1:], frames, strict=True):
            ph.send_frame(eng.local_port(sid), f[i])
        await asyncio.sleep(0.02)
    got = [ph.peer.recv_for(0.1) for ph in trio]
    for sid in sids:
        eng.close_stream(sid)
    for k, ph in enumerate(trio):
        pcm = ph.decode(got[k])[ph.rate // 2: ph.rate]
        powers = {f: goertzel_power(pcm, f, ph.rate) for f in freqs}
        others = [f for j, f in enumerate(freqs) if j != k]
        assert all(powers[f] > 0.3 for f in others), (k, powers)
        if k != 0:
            # Its tone is as coherent as the 20 ms member's (0.99 of it); cut to 160 of each
            # 240 samples, with concealment between, it measured 0.66 to 0.9 of it.
            assert powers[500] > 0.95 * powers[freqs[3 - k]], (k, powers)


async def test_a_conference_with_wideband_members_mixes_at_16khz(engines, peers) -> None:
    # G.722 sends 6 kHz, Opus 1.1 kHz, PCMU 1.7 kHz: the wideband members hear 6 kHz from
    # each other, the PCMU member hears the rest and nothing folded down from 6 kHz.
    eng = engines().engine
    codecs = ("G722", "OPUS", "PCMU")
    trio = [Phone(p, c) for p, c in zip(peers(3), codecs, strict=True)]
    sids = [wire(eng, ph.peer, ph.codec) for ph in trio]
    eng.conference(sids)
    freqs = (6000.0, 1100.0, 1700.0)
    frames = [tone(f, ph.rate, 40, 5000) for f, ph in zip(freqs, trio, strict=True)]
    for i in range(40):
        for k, ph in enumerate(trio):
            ph.send_frame(eng.local_port(sids[k]), frames[k][i])
        await asyncio.sleep(0.02)
    got = [ph.peer.recv_for(0.1) for ph in trio]
    for sid in sids:
        eng.close_stream(sid)
    heard = []
    for ph, pkts in zip(trio, got, strict=True):
        pcm = ph.decode(pkts)[ph.rate // 5: ph.rate * 7 // 10]
        heard.append({f: goertzel_power(pcm, f, ph.rate) for f in (*freqs, 2000.0)})
    g722, opus, pcmu = heard
    assert opus[6000] > 0.2 and opus[1700] > 0.2 and opus[1100] < 0.02, opus
    assert g722[1100] > 0.2 and g722[1700] > 0.2 and g722[6000] < 0.02, g722
    assert pcmu[1100] > 0.8 and pcmu[2000] < 0.01, pcmu


async def test_prompts_and_moh_play_their_16khz_copy_to_wideband_legs(engines, peers) -> None:
    # The 8 kHz copy is a 1 kHz tone, the 16 kHz copy a 6 kHz one: each leg gets its own.
    eut = engines()
    eng = eut.engine
    t8, t16 = np.arange(8000) / 8000, np.arange(16000) / 16000
    narrow = np.round(8000 * np.sin(2 * np.pi * 1000 * t8)).astype(np.int16)
    wide = np.round(8000 * np.sin(2 * np.pi * 6000 * t16)).astype(np.int16)
    eng.define_moh_class("hd", narrow, wide)
    eng.load_sound("hd-prompt", narrow, wide)
    for play in (lambda s: eng.play_moh(s, "hd"), lambda s: eng.play_prompt(s, "hd-prompt")):
        for codec, freq in (("G722", 6000), ("OPUS", 6000), ("PCMU", 1000)):
            (p,) = peers(1)
            ph = Phone(p, codec)
            s = wire(eng, p, codec)
            play(s)
            pcm = ph.decode(p.recv_for(0.3))[ph.rate // 10:]
            assert goertzel_power(pcm, freq, ph.rate) > 0.8, (codec, freq)
            eng.close_stream(s)
