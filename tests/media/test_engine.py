"""Media engine over real UDP on 127.0.0.1: streams, bridging, latching, players, recording.

Each test checks exact bytes in and out; the `engines` fixture checks for leaks at the end.
"""

from __future__ import annotations

import asyncio
import wave

import numpy as np
import pytest
from rtp_peer import RtpPeer, build, goertzel_power, wire

from mediasrv import _media
from mediasrv.media.engine import MediaEngine, MediaError
from mediasrv.media.events import (
    DtmfReceived,
    FirstPacketReceived,
    PlayFinished,
    RecordingFinished,
    RtpTimedOut,
)

ULAW_FRAME = bytes(range(0, 160))


async def test_open_close_port_reuse_and_exhaustion(engines) -> None:
    eut = engines(ports=4)
    eng = eut.engine
    a, b = eng.open_stream(), eng.open_stream()
    ports = {eng.local_port(a), eng.local_port(b)}
    assert ports == {eut.port_min, eut.port_min + 2}
    with pytest.raises(MediaError, match="no free RTP port"):
        eng.open_stream()
    freed = eng.local_port(a)
    eng.close_stream(a)
    c = eng.open_stream()
    assert eng.local_port(c) == freed and c not in (a, b)
    with pytest.raises(MediaError):
        eng.local_port(a)                       # ids are never reused
    for sid in (b, c):
        eng.close_stream(sid)


async def test_bad_arguments_raise_media_error(engines) -> None:
    eng = engines().engine
    sid = eng.open_stream()
    for bad in (lambda: eng.set_remote(sid, "nowhere", 1, codec="PCMU", pt=0, event_pt=None),
                lambda: eng.set_remote(sid, "127.0.0.1", 1, codec="G729", pt=18, event_pt=None),
                lambda: eng.connect(sid, sid),
                lambda: eng.play_moh(sid, "nope"),
                lambda: eng.play_prompt(sid, "nope"),
                lambda: eng.send_dtmf(sid, "x"),
                lambda: eng.set_dtmf(sid, mode="both")):
        with pytest.raises(MediaError):
            bad()
    eng.close_stream(sid)
    with pytest.raises(MediaError):
        MediaEngine("127.0.0.1", 5000, 5000)


async def test_forwarding_rewrites_header_and_keeps_continuity(engines, peers) -> None:
    eng = engines().engine
    pa, pb = peers(2)
    a, b = wire(eng, pa), wire(eng, pb)
    eng.connect(a, b)
    sent = [pa.send(eng.local_port(a), bytes([i]) * 160) for i in range(5)]
    got = [pb.recv() for _ in sent]
    assert all(g is not None for g in got)
    assert [g.payload for g in got] == [s[12:] for s in sent]
    assert len({g.ssrc for g in got}) == 1 and got[0].ssrc != pa.ssrc
    assert [g.seq - got[0].seq for g in got] == [0, 1, 2, 3, 4]
    assert [g.ts - got[0].ts for g in got] == [0, 160, 320, 480, 640]
    assert [g.marker for g in got] == [True, False, False, False, False]
    # a change of feed: silence, then the bridge again; seq/ts/SSRC continue, marker on each change
    eng.play_silence(b)
    silence = pb.recv_for(0.1)
    eng.connect(a, b)
    await asyncio.sleep(0.03)
    pa.send(eng.local_port(a), b"\x11" * 160)
    after = pb.recv_for(0.1)             # maybe a last silence frame, then the bridge
    seqs = [p.seq for p in got + silence + after]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert {p.ssrc for p in silence + after} == {got[0].ssrc}
    assert silence[0].marker and silence[0].payload == b"\xff" * 160
    assert after[-1].payload == b"\x11" * 160 and after[-1].marker
    assert all(p.payload == b"\xff" * 160 for p in after[:-1])
    ts = [p.ts for p in got + silence + after]
    steps = np.diff(np.array(ts, dtype=np.int64))
    assert all(s > 0 and s % 160 == 0 for s in steps), steps
    for sid in (a, b):
        eng.close_stream(sid)


async def test_transcoding_pcmu_to_pcma_exact(engines, peers) -> None:
    eng = engines().engine
    pa, pb = peers(2)
    a, b = wire(eng, pa, "PCMU"), wire(eng, pb, "PCMA")
    eng.connect(a, b)
    for chunk in (bytes(range(0, 160)), bytes(range(96, 256))):
        pa.send(eng.local_port(a), chunk, pt=0)
        got = pb.recv()
        assert got is not None and got.pt == 8
        assert got.payload == _media.ulaw_to_alaw(chunk)
        pb.send(eng.local_port(b), got.payload, pt=8)
        back = pa.recv()
        assert back is not None and back.pt == 0
        assert back.payload == _media.alaw_to_ulaw(got.payload)
    for sid in (a, b):
        eng.close_stream(sid)


async def test_latching_only_early_and_for_a_stable_ssrc(engines, peers) -> None:
    eut = engines()
    eng = eut.engine
    nat, other, intruder, far = peers(4)
    a = wire(eng, nat)                 # SDP said `nat`, but media comes from `other`
    b = wire(eng, far)
    eng.connect(a, b)
    port = eng.local_port(a)
    for i in range(4):                 # changing SSRC: never stable, never latched
        other.send(port, ULAW_FRAME, ssrc=0x100 + i)
    assert far.recv(0.2) is None
    for _ in range(3):                 # three packets, one SSRC: latched on the third
        other.send(port, ULAW_FRAME, ssrc=0x555)
    assert far.recv() is not None and far.recv(0.1) is None
    (first,) = await eut.wait_for(FirstPacketReceived)
    assert (first.stream, first.host, first.port) == (a, "127.0.0.1", other.port)
    for _ in range(3):                 # after media flows, another source is an injection:
        intruder.send(port, ULAW_FRAME, ssrc=0x555)   # the socket is connected to `other`
    other.send(port, ULAW_FRAME, ssrc=0x555)          # now, so the kernel drops them
    assert len(far.recv_for(0.2)) == 1
    st = eng.stats(a)
    assert st["dropped"] == 4 + 2 and st["packets_in"] == 2
    eng.send_dtmf(a, "1")              # and what a sends goes to the latched source
    assert other.recv() is not None and nat.recv(0.1) is None
    for sid in (a, b):
        eng.close_stream(sid)


async def test_a_new_remote_unsettles_the_source(engines, peers) -> None:
    eut = engines()
    eng = eut.engine
    first, second, far = peers(3)
    a, b = wire(eng, first), wire(eng, far)
    eng.connect(a, b)
    port = eng.local_port(a)
    first.send(port, ULAW_FRAME)
    assert far.recv() is not None      # settled on `first`: only it gets through
    second.send(port, ULAW_FRAME)
    assert far.recv(0.2) is None
    eng.set_remote(a, "127.0.0.1", second.port, codec="PCMU", pt=0, event_pt=101)
    second.send(port, ULAW_FRAME)      # a re-INVITE moved the remote: `second` is accepted,
    first.send(port, ULAW_FRAME)       # `first` no longer is
    assert len(far.recv_for(0.2)) == 1
    far.send(eng.local_port(b), ULAW_FRAME)
    assert second.recv() is not None and first.recv(0.1) is None
    assert eng.stats(a)["packets_in"] == 2
    for sid in (a, b):
        eng.close_stream(sid)


async def test_malformed_packets_counted_and_dropped(engines, peers) -> None:
    eng = engines().engine
    pa, pb = peers(2)
    a, b = wire(eng, pa), wire(eng, pb)
    eng.connect(a, b)
    good = build(ULAW_FRAME, seq=1, ssrc=7)
    bad = [
        good[:11],                                        # shorter than the fixed header
        bytes([0x40]) + good[1:],                         # version 1
        bytes([0x83]) + good[1:12] + b"\x00" * 8,         # CC=3 but only 8 bytes follow
        bytes([0x90]) + good[1:12] + b"\xbe\xde\x00\x09" + b"\x00" * 8,  # ext overruns
        bytes([0xA0]) + good[1:] [:-1] + b"\x00",         # padding count 0
        bytes([0xA0]) + good[1:12] + b"\x01\x02\xff",     # padding count > payload
        bytes([0x80, 0xC8]) + good[2:],                   # RTCP SR (PT 72) on the RTP port
    ]
    for pkt in bad:
        pa.send_raw(eng.local_port(a), pkt)
    pa.send_raw(eng.local_port(a), bytes([0xA0]) + good[1:] + b"\x00\x00\x03")  # padding ok
    got = pb.recv()
    assert got is not None and got.payload == ULAW_FRAME and pb.recv(0.1) is None
    assert eng.stats(a)["malformed"] == len(bad)
    assert eng.stats(a)["packets_in"] == 1
    for sid in (a, b):
        eng.close_stream(sid)


async def test_close_stream_returns_the_final_counters(engines, peers) -> None:
    eng = engines().engine
    pa, pb = peers(2)
    a, b = wire(eng, pa), wire(eng, pb)
    eng.connect(a, b)
    for i in range(3):
        pa.send(eng.local_port(a), bytes([i]) * 160)
    assert all(pb.recv() is not None for _ in range(3))
    pa.send_raw(eng.local_port(a), b"short")
    await asyncio.sleep(0.05)
    before = eng.stats(a)
    assert before["packets_in"] == 3 and before["malformed"] == 1
    assert eng.close_stream(a) == before
    assert eng.close_stream(b)["packets_out"] == 3
    with pytest.raises(MediaError):
        eng.close_stream(a)


async def test_random_starts_differ_per_stream(engines, peers) -> None:
    eng = engines().engine
    peer_list = peers(3)
    sids = [wire(eng, p) for p in peer_list]
    for sid in sids:
        eng.play_silence(sid)
    got = [p.recv() for p in peer_list]
    assert all(g is not None for g in got)
    assert len({g.ssrc for g in got}) == 3 and len({(g.seq, g.ts) for g in got}) == 3
    for sid in sids:
        eng.close_stream(sid)


async def test_rtp_timeout_event(engines, peers) -> None:
    eut = engines(rtp_timeout=0.3)
    eng = eut.engine
    (pa,) = peers(1)
    a = wire(eng, pa)
    idle = eng.open_stream()               # no remote yet: no timeout expected
    (ev,) = await eut.wait_for(RtpTimedOut, timeout=2.0)
    assert ev.stream == a
    await asyncio.sleep(0.6)
    assert len(eut.of(RtpTimedOut)) == 1   # once, not every check
    for sid in (a, idle):
        eng.close_stream(sid)


async def test_moh_fans_out_one_player_with_distinct_ssrcs(engines, peers) -> None:
    eng = engines().engine
    ramp = (np.arange(8000 * 2) % 2000 * 8).astype(np.int16)
    eng.define_moh_class("default", ramp)
    listeners = peers(3)
    sids = [wire(eng, p) for p in listeners]
    for sid in sids:
        eng.play_moh(sid, "default")
    got = [p.recv_for(0.25) for p in listeners]
    for sid in sids:
        eng.close_stream(sid)
    assert len({pk[0].ssrc for pk in got}) == 3
    # one shared player: every listener hears the same frames (a listener added a tick
    # later starts one frame further on)
    first = [p.payload for p in got[0]]
    n = min(len(g) for g in got) - 2
    assert n >= 8
    for k in (1, 2):
        off = first.index(got[k][0].payload)
        assert off <= 1
        assert [p.payload for p in got[k][:n]] == first[off:off + n]
    pcm = _media.ulaw_decode(b"".join(p.payload for p in got[0][:n]))
    start = int(np.argmax(ramp == _media.ulaw_decode(_media.ulaw_encode(ramp[:1]))[0]))
    expect = _media.ulaw_decode(_media.ulaw_encode(ramp[start:start + len(pcm)]))
    assert np.array_equal(pcm, expect)


async def test_prompt_plays_once_then_silence_and_reports(engines, peers) -> None:
    eut = engines()
    eng = eut.engine
    (pa,) = peers(1)
    a = wire(eng, pa, "PCMA")
    sound = (np.sin(np.arange(480) * 0.3) * 8000).astype(np.int16)
    eng.load_sound("hello", sound)
    play_id = eng.play_prompt(a, "hello")
    (ev,) = await eut.wait_for(PlayFinished)
    assert (ev.stream, ev.play_id, ev.completed) == (a, play_id, True)
    got = pa.recv_for(0.1)
    assert b"".join(p.payload for p in got[:3]) == _media.alaw_encode(sound)
    assert got[3].payload == b"\xd5" * 160 and eng.feed(a) == "silence"
    second = eng.play_prompt(a, "hello")
    eng.stop_feed(a)
    evs = await eut.wait_for(PlayFinished, count=2)
    assert (evs[1].play_id, evs[1].completed) == (second, False)
    eng.close_stream(a)


async def test_send_dtmf_rfc4733_packets_exact(engines, peers) -> None:
    eng = engines().engine
    (pa,) = peers(1)
    a = wire(eng, pa, event_pt=101)
    eng.play_silence(a)
    pa.recv_for(0.05)
    eng.send_dtmf(a, "5", 100)
    pkts = [p for p in pa.recv_for(0.3) if p.pt == 101]
    eng.close_stream(a)
    # RFC 4733 §2.5: one timestamp, marker first, duration growing by ptime, the last
    # duration (800 = 100 ms) sent three times with the E bit.
    assert len(pkts) == 4 + 3
    assert [p.marker for p in pkts] == [True] + [False] * 6
    assert len({p.ts for p in pkts}) == 1
    assert [p.payload for p in pkts] == (
        [bytes([5, 10]) + d.to_bytes(2, "big") for d in (160, 320, 480, 640)]
        + [bytes([5, 0x80 | 10]) + (800).to_bytes(2, "big")] * 3)
    seqs = [p.seq for p in pkts]
    assert seqs == list(range(seqs[0], seqs[0] + 7))


async def test_recording_inbound_audio_to_wav(engines, peers, tmp_path) -> None:
    eut = engines()
    eng = eut.engine
    (pa,) = peers(1)
    a = wire(eng, pa)
    path = str(tmp_path / "rec.wav")
    eng.record_start(a, path, max_seconds=0.1)      # 800 samples = 5 packets
    frames = [bytes([(i * 7 + k) % 256 for k in range(160)]) for i in range(8)]
    for f in frames:
        pa.send(eng.local_port(a), f)
        await asyncio.sleep(0.005)
    (ev,) = await eut.wait_for(RecordingFinished)
    assert (ev.stream, ev.path, ev.seconds) == (a, path, 0.1)
    with wave.open(path, "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    assert np.array_equal(pcm, _media.ulaw_decode(b"".join(frames[:5])))
    eng.close_stream(a)


async def test_close_stream_finishes_its_recording(engines, peers, tmp_path) -> None:
    eut = engines()
    eng = eut.engine
    (pa,) = peers(1)
    a = wire(eng, pa)
    path = str(tmp_path / "cut.wav")
    eng.record_start(a, path, max_seconds=60)
    pa.send(eng.local_port(a), ULAW_FRAME)
    await asyncio.sleep(0.05)
    eng.close_stream(a)
    (ev,) = await eut.wait_for(RecordingFinished)
    assert ev.seconds == 160 / 8000
    with wave.open(path, "rb") as w:
        assert w.getnframes() == 160


def dtmf_pcm(digit: str, ms: int, level: float = 8000.0) -> np.ndarray:
    rows, cols = (697, 770, 852, 941), (1209, 1336, 1477, 1633)
    keys = "123A456B789C*0#D"
    i = keys.index(digit)
    t = np.arange(ms * 8) / 8000
    x = level * (np.sin(2 * np.pi * rows[i // 4] * t) + np.sin(2 * np.pi * cols[i % 4] * t))
    return x.astype(np.int16)


async def test_inband_dtmf_detected(engines, peers) -> None:
    eut = engines()
    eng = eut.engine
    (pa,) = peers(1)
    a = wire(eng, pa)
    eng.set_dtmf(a, mode="inband")
    pcm = np.concatenate([np.zeros(800, np.int16), dtmf_pcm("7", 100), np.zeros(800, np.int16),
                          dtmf_pcm("#", 60), np.zeros(800, np.int16)])
    payload = _media.ulaw_encode(pcm)
    for k in range(0, len(payload), 160):
        pa.send(eng.local_port(a), payload[k:k + 160])
    evs = await eut.wait_for(DtmfReceived, count=2)
    assert [(e.stream, e.digit, e.source) for e in evs] == [(a, "7", "inband"), (a, "#", "inband")]
    assert abs(evs[0].duration_ms - 100) <= 15 and abs(evs[1].duration_ms - 60) <= 15
    eng.close_stream(a)


async def test_dtmf_mode_given_at_open(engines, peers) -> None:
    """open_stream(dtmf=mode) is open_stream() then set_dtmf(mode=mode), in one command."""
    eut = engines()
    eng = eut.engine
    (pa,) = peers(1)
    with pytest.raises(MediaError, match="DTMF mode"):
        eng.open_stream(dtmf="both")
    assert eng.open_stream_count() == 0
    a = eng.open_stream(dtmf="rfc4733")                   # in-band tones are not digits
    eng.set_remote(a, "127.0.0.1", pa.port, codec="PCMU", pt=0, event_pt=101)
    payload = _media.ulaw_encode(np.concatenate([dtmf_pcm("7", 100), np.zeros(800, np.int16)]))
    for k in range(0, len(payload), 160):
        pa.send(eng.local_port(a), payload[k:k + 160])
    send_event(pa, eng.local_port(a), 1, 60)
    (ev,) = await eut.wait_for(DtmfReceived)
    assert (ev.digit, ev.source) == ("1", "rfc4733")
    eng.close_stream(a)
    b = eng.open_stream(dtmf="inband")
    eng.set_remote(b, "127.0.0.1", pa.port, codec="PCMU", pt=0, event_pt=101)
    for k in range(0, len(payload), 160):
        pa.send(eng.local_port(b), payload[k:k + 160])
    evs = await eut.wait_for(DtmfReceived, count=2)
    assert (evs[1].stream, evs[1].digit, evs[1].source) == (b, "7", "inband")
    eng.close_stream(b)


def heard(packets: list, codec: str = "PCMU") -> np.ndarray:
    data = b"".join(p.payload for p in packets)
    return _media.ulaw_decode(data) if codec == "PCMU" else _media.alaw_decode(data)


async def test_tones_per_zone(engines, peers) -> None:
    us, it = engines(zone="us").engine, engines(zone="it").engine
    pa, pb = peers(2)
    a, b = wire(us, pa), wire(it, pb, "PCMA")
    us.play_tone(a, "busy")
    it.play_tone(b, "ringback")
    busy, ring = heard(pa.recv_for(0.4)[:20]), heard(pb.recv_for(0.4)[:20], "PCMA")
    assert goertzel_power(busy, 480) + goertzel_power(busy, 620) > 0.9
    assert min(goertzel_power(busy, 480), goertzel_power(busy, 620)) > 0.3
    assert goertzel_power(ring, 425) > 0.9
    us.play_tone(a, "beep")                   # 250 ms once, then silence
    pa.drain()
    beep = heard(pa.recv_for(0.5))
    on = beep[:1600]
    assert goertzel_power(on, 1000) > 0.9
    assert us.feed(a) == "silence" and np.all(beep[-800:] == 0)
    with pytest.raises(MediaError):
        us.play_tone(a, "howler")
    us.close_stream(a)
    it.close_stream(b)


async def test_send_dtmf_inband_without_telephone_event(engines, peers) -> None:
    eng = engines().engine
    (pa,) = peers(1)
    a = wire(eng, pa, event_pt=None)
    eng.play_silence(a)
    eng.send_dtmf(a, "9", 120)
    eng.send_dtmf(a, "9", 80)
    pkts = pa.recv_for(0.6)
    eng.close_stream(a)
    assert {p.pt for p in pkts} == {0}
    det = _media.DtmfDetector()
    found = det.feed(heard(pkts)) + det.flush()
    assert [d for d, _start, _dur in found] == ["9", "9"]
    durations_ms = [dur / 8 for _d, _s, dur in found]
    assert abs(durations_ms[0] - 120) < 15 and abs(durations_ms[1] - 80) < 15


async def test_conference_mix_minus(engines, peers) -> None:
    eng = engines().engine
    trio = peers(3)
    sids = [wire(eng, p, codec) for p, codec in zip(trio, ("PCMU", "PCMA", "PCMU"), strict=True)]
    eng.conference(sids)
    freqs = (400.0, 1000.0, 1700.0)
    t = np.arange(160 * 30) / 8000
    frames = []
    for f, codec in zip(freqs, ("PCMU", "PCMA", "PCMU"), strict=True):
        pcm = (6000 * np.sin(2 * np.pi * f * t)).astype(np.int16)
        enc = _media.ulaw_encode(pcm) if codec == "PCMU" else _media.alaw_encode(pcm)
        frames.append([enc[k:k + 160] for k in range(0, len(enc), 160)])
    for i in range(30):
        for k, (p, sid) in enumerate(zip(trio, sids, strict=True)):
            p.send(eng.local_port(sid), frames[k][i], pt=0 if k != 1 else 8)
        await asyncio.sleep(0.02)
    got = [p.recv_for(0.1) for p in trio]
    for sid in sids:
        eng.close_stream(sid)
    for k, codec in enumerate(("PCMU", "PCMA", "PCMU")):
        pcm = heard(got[k][5:25], codec)
        power = [goertzel_power(pcm, f) for f in freqs]
        others = [power[j] for j in range(3) if j != k]
        assert power[k] < 0.01, (k, power)
        assert min(others) > 0.3, (k, power)


def send_event(peer: RtpPeer, port: int, event: int, ms: int, *, pt: int = 101,
               ends: int = 3) -> list[bytes]:
    """An RFC 4733 event as a phone sends it: one timestamp, growing duration, E bit x3."""
    sent = []
    ts = peer.ts
    steps = list(range(160, ms * 8, 160))
    for i, d in enumerate(steps):
        sent.append(peer.send_raw_event(port, pt, ts, bytes([event, 10]) + d.to_bytes(2, "big"),
                                        marker=i == 0))
    for _ in range(ends):
        sent.append(peer.send_raw_event(port, pt, ts,
                                        bytes([event, 0x80 | 10]) + (ms * 8).to_bytes(2, "big")))
    peer.ts += ms * 8
    return sent


async def test_rfc4733_received_reported_and_forwarded_with_far_pt(engines, peers) -> None:
    eut = engines()
    eng = eut.engine
    pa, pb = peers(2)
    a, b = wire(eng, pa, event_pt=101), wire(eng, pb, event_pt=96)
    eng.connect(a, b)
    sent = send_event(pa, eng.local_port(a), 1, 100)
    (ev,) = await eut.wait_for(DtmfReceived)
    assert (ev.stream, ev.digit, ev.duration_ms, ev.source) == (a, "1", 100, "rfc4733")
    got = pb.recv_for(0.1)
    assert [p.pt for p in got] == [96] * len(sent)
    assert [p.payload for p in got] == [s[12:] for s in sent]
    assert len({p.ts for p in got}) == 1 and got[0].marker
    eng.set_dtmf(a, mode="auto", forward=False)       # consumed: reported, not forwarded
    send_event(pa, eng.local_port(a), 11, 60)
    evs = await eut.wait_for(DtmfReceived, count=2)
    assert evs[1].digit == "#" and pb.recv(0.1) is None
    for sid in (a, b):
        eng.close_stream(sid)


async def test_rfc4733_lost_end_reported_once_updates_stop(engines, peers) -> None:
    eut = engines()
    eng = eut.engine
    (pa,) = peers(1)
    a = wire(eng, pa)
    send_event(pa, eng.local_port(a), 4, 120, ends=0)
    (ev,) = await eut.wait_for(DtmfReceived)
    assert (ev.digit, ev.source) == ("4", "rfc4733")
    await asyncio.sleep(0.5)
    assert len(eut.of(DtmfReceived)) == 1
    eng.close_stream(a)


async def test_auto_mode_reports_a_digit_once_from_both_detectors(engines, peers) -> None:
    eut = engines()
    eng = eut.engine
    (pa,) = peers(1)
    a = wire(eng, pa)
    port = eng.local_port(a)
    audio = _media.ulaw_encode(np.concatenate([dtmf_pcm("3", 100), np.zeros(640, np.int16)]))
    for k in range(0, len(audio), 160):      # the tone in the audio ...
        pa.send(port, audio[k:k + 160])
    send_event(pa, port, 3, 100)             # ... and the same digit as RFC 4733 events
    await eut.wait_for(DtmfReceived)
    await asyncio.sleep(0.3)
    assert [(e.digit, e.stream) for e in eut.of(DtmfReceived)] == [("3", a)]
    eng.set_dtmf(a, mode="rfc4733")          # in-band alone is ignored in rfc4733 mode
    for k in range(0, len(audio), 160):
        pa.send(port, audio[k:k + 160])
    await asyncio.sleep(0.3)
    assert len(eut.of(DtmfReceived)) == 1
    eng.close_stream(a)


async def test_rfc4733_toward_a_peer_without_telephone_event_becomes_inband(engines,
                                                                           peers) -> None:
    eut = engines()
    eng = eut.engine
    pa, pb = peers(2)
    a, b = wire(eng, pa, event_pt=101), wire(eng, pb, event_pt=None)
    eng.connect(a, b)
    send_event(pa, eng.local_port(a), 6, 100)
    await eut.wait_for(DtmfReceived)
    got = pb.recv_for(0.4)
    assert got and {p.pt for p in got} == {0}
    det = _media.DtmfDetector()
    found = det.feed(heard(got)) + det.flush()
    assert [d for d, _s, _n in found] == ["6"]
    for sid in (a, b):
        eng.close_stream(sid)
