"""Jitter buffer: ordering, loss, duplicates, lateness, concealment and delay adaptation.

Packets carry a constant μ-law code per packet (decoded value known) so each output frame
says which packet it came from. Time is an argument: the tests drive put/get with numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
from reference import interarrival_jitter, load_media, ulaw_decode1

_media = load_media()
FRAME = 160
CODES = [0x80 + (k % 100) for k in range(1000)]       # distinct, positive, loud μ-law codes


def pkt(k: int) -> bytes:
    return bytes([CODES[k]]) * FRAME


def which(frame: np.ndarray) -> int:
    """Index of the packet a played frame came from (-1: not a real frame)."""
    vals = [ulaw_decode1(c) for c in CODES[:100]]
    return vals.index(int(frame[0])) if (frame == frame[0]).all() and int(frame[0]) in vals else -1


def run(jb, arrivals: list[tuple[int, float]], ticks: int, start: float = 0.0) -> list:
    """Feed (k, arrival) packets by time and tick get() every 20 ms; return the frames."""
    pending = sorted(arrivals, key=lambda a: a[1])
    out = []
    for t in range(ticks):
        now = start + t * 0.02
        while pending and pending[0][1] <= now:
            k, at = pending.pop(0)
            jb.put(k & 0xFFFF, (k * FRAME) & 0xFFFFFFFF, pkt(k), at)
        out.append(jb.get(now))
    return out


def test_in_order_stream_plays_every_frame_once_after_the_delay() -> None:
    jb = _media.JitterBuffer(min_ms=40)
    frames = run(jb, [(k, k * 0.02) for k in range(50)], 55)
    assert frames[0] is None and frames[1] is None
    played = [which(f) for f in frames if f is not None]
    assert played[:50] == list(range(50))
    s = jb.stats()
    assert s["received"] == 50 and s["lost"] == s["late"] == s["duplicates"] == 0


def test_reordering_is_undone_and_duplicates_dropped() -> None:
    arrivals = []
    for k in range(0, 40, 2):
        arrivals += [(k + 1, k * 0.02), (k, k * 0.02 + 0.001), (k, k * 0.02 + 0.002)]
    jb = _media.JitterBuffer(min_ms=40)
    played = [which(f) for f in run(jb, arrivals, 60) if f is not None]
    assert [p for p in played if p >= 0] == list(range(40))    # stretches (-1) in between
    s = jb.stats()
    assert s["duplicates"] == 20 and s["lost"] == 0 and s["late"] == 0
    assert s["stretched"] > 0 and s["target_ms"] > 40            # swaps are 20 ms of jitter


def test_lost_packet_is_concealed_by_faded_repeat_then_silence() -> None:
    jb = _media.JitterBuffer(min_ms=20)
    lost = {5, 10, 11, 12, 13, 14}
    frames = [f for f in run(jb, [(k, k * 0.02) for k in range(20) if k not in lost], 21)
              if f is not None]
    assert which(frames[4]) == 4 and which(frames[6]) == 6
    last = frames[4].astype(float)
    fade = frames[5].astype(float) / last
    assert 0.6 < fade[-1] < fade[0] <= 1.0                  # fading repeat of frame 4
    assert not frames[13].any() and not frames[14].any()    # silence after 3 concealed frames
    assert which(frames[15]) == 15
    s = jb.stats()
    assert s["lost"] == 6 and s["concealed"] == 6


def test_too_late_packet_is_dropped_and_counted() -> None:
    jb = _media.JitterBuffer(min_ms=20)
    arrivals = [(k, k * 0.02) for k in range(10) if k != 3] + [(3, 0.2)]
    frames = run(jb, arrivals + [(k, k * 0.02) for k in range(10, 15)], 16)
    s = jb.stats()
    assert s["late"] == 1 and s["lost"] == 1
    assert 3 not in [which(f) for f in frames if f is not None]


def test_jitter_estimate_matches_rfc3550_reference() -> None:
    rng = np.random.default_rng(3)
    arrivals = [(k, k * 0.02 + rng.uniform(0, 0.03)) for k in range(200)]
    jb = _media.JitterBuffer()
    for k, at in sorted(arrivals, key=lambda a: a[1]):
        jb.put(k, k * FRAME, pkt(k), at)
    want = interarrival_jitter([(k * FRAME, at) for k, at in sorted(arrivals,
                                                                    key=lambda a: a[1])])
    assert jb.stats()["jitter_ms"] == pytest.approx(want / 8, rel=1e-9)


def test_target_delay_follows_jitter_within_bounds() -> None:
    rng = np.random.default_rng(4)
    jb = _media.JitterBuffer(min_ms=20, max_ms=120)
    calm = [(k, k * 0.02) for k in range(50)]
    run(jb, calm, 50)
    assert jb.stats()["target_ms"] == 20
    rough = [(k, k * 0.02 + rng.uniform(0, 0.1)) for k in range(50, 300)]
    frames = run(jb, rough, 260, start=1.0)
    assert 60 <= jb.stats()["target_ms"] <= 120
    assert jb.stats()["lost"] + jb.stats()["late"] < 25          # it adapted instead of dropping
    assert sum(f is not None for f in frames) == 260
    run(jb, [(k, k * 0.02) for k in range(300, 600)], 300, start=6.0)
    assert jb.stats()["target_ms"] == 20 and jb.stats()["skipped"] > 0


def test_underrun_waits_for_a_late_burst_instead_of_losing_it() -> None:
    jb = _media.JitterBuffer(min_ms=20)
    arrivals = [(k, k * 0.02) for k in range(10)] + [(k, 0.26) for k in range(10, 14)]
    arrivals += [(k, k * 0.02) for k in range(14, 30)]
    played = [which(f) for f in run(jb, arrivals, 30) if f is not None]
    assert [p for p in played if p >= 0][:20] == list(range(20))
    assert jb.stats()["lost"] == 0 and jb.stats()["concealed"] >= 2


def test_sequence_wraparound() -> None:
    jb = _media.JitterBuffer(min_ms=20)
    got = []
    for i, k in enumerate(range(65530, 65545)):
        jb.put(k & 0xFFFF, i * FRAME, pkt(i), i * 0.02)
        f = jb.get(i * 0.02 + 0.02)
        if f is not None:
            got.append(which(f))
    assert got == list(range(len(got))) and len(got) >= 13
    assert jb.stats()["lost"] == 0


def test_alaw_and_bad_arguments() -> None:
    jb = _media.JitterBuffer(law="alaw")
    jb.put(1, 0, b"\xd5" * FRAME, 0.0)
    frame = jb.get(1.0)
    assert frame is not None and (frame == 8).all()
    with pytest.raises(ValueError):
        _media.JitterBuffer(min_ms=300, max_ms=200)
    with pytest.raises(ValueError):
        _media.JitterBuffer(law="g722")
