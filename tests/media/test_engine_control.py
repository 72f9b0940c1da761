"""Media engine controls over real UDP: mute, hold directions, statistics, RTCP, lifecycle."""

from __future__ import annotations

import asyncio
import os
import wave

import numpy as np
import pytest
from rtp_peer import (
    assert_ports_free,
    build,
    goertzel_power,
    rtp_valid,
    wire,
)

from mediasrv import _media
from mediasrv.media.engine import MediaEngine, MediaError
from mediasrv.media.events import RecordingFinished, RtpTimedOut


async def test_mute_replaces_audio_toward_the_peer(engines, peers) -> None:
    eng = engines().engine
    pa, pb = peers(2)
    a, b = wire(eng, pa), wire(eng, pb, "PCMA")
    eng.connect(a, b)
    eng.set_mute(a, True)
    pa.send(eng.local_port(a), bytes(range(160)))
    got = pb.recv()
    assert got is not None and got.payload == b"\xd5" * 160     # A-law silence
    eng.set_mute(a, False)
    pa.send(eng.local_port(a), bytes(range(160)))
    got = pb.recv()
    assert got is not None and got.payload == _media.ulaw_to_alaw(bytes(range(160)))
    for sid in (a, b):
        eng.close_stream(sid)


async def test_hold_directions(engines, peers) -> None:
    eut = engines(rtp_timeout=0.3)
    eng = eut.engine
    pa, pb = peers(2)
    a, b = wire(eng, pa), wire(eng, pb)
    eng.play_silence(a)
    eng.set_direction(a, send=False, recv=False)   # inactive: nothing out, no timeout
    eng.set_direction(b, send=True, recv=False)
    eng.play_silence(b)
    assert pa.recv_for(0.2) == []
    pa.send(eng.local_port(a), bytes(160))
    await asyncio.sleep(0.7)
    assert eut.of(RtpTimedOut) == [] and eng.stats(a)["dropped"] == 1
    eng.set_direction(a, send=True, recv=True)     # resumed: marker, timeout armed again
    resumed = pa.recv_for(0.1)
    assert resumed and resumed[0].marker
    (ev,) = await eut.wait_for(RtpTimedOut)
    assert ev.stream == a
    for sid in (a, b):
        eng.close_stream(sid)


async def test_stats_count_loss_reordering_and_jitter(engines, peers) -> None:
    eng = engines().engine
    (pa,) = peers(1)
    a = wire(eng, pa)
    port = eng.local_port(a)
    for seq in (1, 2, 3, 5, 4, 6, 9, 10):            # 7 and 8 lost, 4 late
        pa.send_raw(port, build(bytes(160), seq=seq, ts=seq * 160, ssrc=9))
    await asyncio.sleep(0.05)
    st = eng.stats(a)
    assert (st["packets_in"], st["bytes_in"]) == (8, 8 * 172)
    assert st["lost"] == 2 and st["late"] == 1
    assert st["jitter"] > 0                          # sent in a burst: all 20 ms early or late
    eng.close_stream(a)


async def test_rtcp_port_is_bound_and_drained(engines, peers) -> None:
    eng = engines().engine
    (pa,) = peers(1)
    a = wire(eng, pa)
    sr = bytes([0x80, 200, 0, 6]) + bytes(24)
    for _ in range(50):
        pa.send_raw(eng.local_port(a) + 1, sr)
    await asyncio.sleep(0.05)
    assert eng.stats(a)["packets_in"] == 0 and eng.stats(a)["malformed"] == 0
    eng.close_stream(a)


async def test_conference_member_recording_is_the_mix(engines, peers, tmp_path) -> None:
    eut = engines()
    eng = eut.engine
    trio = peers(3)
    sids = [wire(eng, p) for p in trio]
    eng.conference(sids)
    path = str(tmp_path / "conf.wav")
    eng.record_start(sids[0], path, max_seconds=0.4)
    t = np.arange(160) / 8000
    for i in range(30):
        for k, (p, sid) in enumerate(zip(trio, sids, strict=True)):
            f = (500, 1300, 2100)[k]
            pcm = (5000 * np.sin(2 * np.pi * f * (t + i * 0.02))).astype(np.int16)
            p.send(eng.local_port(sid), _media.ulaw_encode(pcm))
        await asyncio.sleep(0.02)
    (ev,) = await eut.wait_for(RecordingFinished)
    assert ev.seconds == 0.4
    with wave.open(path, "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    body = pcm[1600:3200]
    assert all(goertzel_power(body, f) > 0.2 for f in (500, 1300, 2100))
    for sid in sids:
        eng.close_stream(sid)


async def test_conference_replaces_and_restores_feeds(engines, peers) -> None:
    eng = engines().engine
    pa, pb, pc = peers(3)
    a, b, c = wire(eng, pa), wire(eng, pb), wire(eng, pc)
    eng.connect(a, b)
    eng.conference([a, b, c])
    assert {eng.feed(s) for s in (a, b, c)} == {"conference"}
    eng.connect(a, b)                  # back to a call; c left alone in the conference
    assert (eng.feed(a), eng.feed(b), eng.feed(c)) == ("peer", "peer", "conference")
    with pytest.raises(MediaError):
        eng.conference([a, a])
    pa.send(eng.local_port(a), bytes(range(160)))
    got = pb.recv()
    assert got is not None and got.payload == bytes(range(160))
    for sid in (a, b, c):
        eng.close_stream(sid)


async def test_stop_closes_everything_and_is_idempotent(peers) -> None:
    eng = MediaEngine("127.0.0.1", 19700, 19709)
    eng.start(asyncio.get_running_loop(), lambda ev: None)
    (pa,) = peers(1)
    sids = [wire(eng, pa) for _ in range(5)]
    eng.play_silence(sids[0])
    with pytest.raises(MediaError, match="no free RTP port"):
        eng.open_stream()
    eng.stop()
    eng.stop()
    assert eng.open_stream_count() == 0 and not eng.thread_alive()
    assert_ports_free(19700, 19709)


async def test_a_failing_event_handler_loses_no_other_event(peers, caplog) -> None:
    seen = []

    def handler(ev) -> None:
        seen.append(ev)
        if len(seen) == 1:
            raise RuntimeError("handler bug")

    eng = MediaEngine("127.0.0.1", 19720, 19729, rtp_timeout=0.2)
    eng.start(asyncio.get_running_loop(), handler)
    (pa,) = peers(1)
    sids = [wire(eng, pa) for _ in range(2)]
    await asyncio.sleep(0.8)
    for sid in sids:
        eng.close_stream(sid)
    eng.stop()
    assert sorted(e.stream for e in seen) == sorted(sids)
    assert "handler bug" in caplog.text


def random_datagrams(n: int, seed: int = 4733) -> list[bytes]:
    """Datagrams near the RTP header format: random flags, CC, extension and padding."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        body = rng.integers(0, 256, int(rng.integers(4, 60)), dtype=np.uint8).tobytes()
        b0 = int(rng.choice([0x80, 0x80, 0xA0, 0x90, 0x80 | int(rng.integers(1, 4)), 0x40]))
        b1 = int(rng.choice([0, 0, 0, 101, 72, 200]) & 0x7F)
        out.append(bytes([b0, b1]) + body)
    return out


async def test_random_datagrams_are_each_accounted_like_the_reference(engines, peers) -> None:
    eng = engines().engine
    (pa,) = peers(1)
    a = eng.open_stream()
    eng.set_remote(a, "127.0.0.1", pa.port, codec="PCMU", pt=0, event_pt=None)
    grams = random_datagrams(400)
    for i, g in enumerate(grams):
        pa.send_raw(eng.local_port(a), g)
        if i % 20 == 19:
            await asyncio.sleep(0.002)     # stay within the socket's receive buffer
    await asyncio.sleep(0.2)
    st = eng.stats(a)
    invalid = sum(not rtp_valid(g) for g in grams)
    assert 50 < invalid < len(grams) - 50
    assert st["malformed"] == invalid
    assert st["packets_in"] + st["dropped"] == len(grams) - invalid
    assert eng.thread_alive()
    eng.close_stream(a)


async def test_open_close_churn_leaks_no_descriptor(engines) -> None:
    eng = engines(ports=8).engine

    def churn(rounds: int) -> None:
        for _ in range(rounds):
            sids = [eng.open_stream() for _ in range(4)]
            eng.conference(sids[:3])
            eng.connect(sids[2], sids[3])
            for sid in sids:
                eng.close_stream(sid)

    churn(1)              # the range's four socket pairs are parked now (engine_ports.pyx)
    before = len(os.listdir("/proc/self/fd"))
    churn(300)
    assert len(os.listdir("/proc/self/fd")) == before


async def test_ptime_30_frames_and_clock(engines, peers) -> None:
    eng = engines(ptime_ms=30).engine
    (pa,) = peers(1)
    a = wire(eng, pa, "PCMA")
    eng.play_silence(a)
    got = pa.recv_for(0.25)
    eng.close_stream(a)
    assert 6 <= len(got) <= 10
    assert {len(p.payload) for p in got} == {240}
    assert {(q.ts - p.ts) % 2**32 for p, q in zip(got, got[1:], strict=False)} == {240}


async def test_the_media_thread_accounts_for_its_rounds(engines, peers) -> None:
    eng = engines().engine
    pa, pb = peers(2)
    a, b = wire(eng, pa), wire(eng, pb)
    eng.connect(a, b)
    before = eng.load()
    for _ in range(20):
        pa.send(eng.local_port(a), bytes(160))
    assert len(pb.recv_for(0.2)) == 20
    after = eng.load()
    assert after["rounds"] - before["rounds"] >= 10        # 10 ticks in 0.2 s, plus packets
    assert 0 < after["busy_seconds"] - before["busy_seconds"] < 0.2
    assert after["rounds_behind"] == 0                      # a handful of sockets never fill it
    for sid in (a, b):
        eng.close_stream(sid)
