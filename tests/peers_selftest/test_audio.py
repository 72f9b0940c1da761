"""The G.711 tables and the Hearing analyser, checked against known values and audioop."""

import warnings

import numpy as np
import pytest

from tests.peers import audio
from tests.peers.audio import TONE_HZ, Hearing, ToneSource, decode, encode, sine

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # stdlib until 3.13; an independent G.711 reference


ALL16 = np.arange(-32768, 32768, dtype=np.int16)


def test_ulaw_known_values():
    assert encode(np.array([0]), 0) == b"\xff"
    assert decode(b"\x00\x80\xff\x7f", 0).tolist() == [-32124, 32124, 0, 0]


def test_alaw_known_values():
    assert encode(np.array([0]), 8) == b"\xd5"
    assert decode(b"\xd5\x55\xaa\x2a", 8).tolist() == [8, -8, 32256, -32256]


@pytest.mark.parametrize("pt, lin2, two_lin", [(0, audioop.lin2ulaw, audioop.ulaw2lin),
                                               (8, audioop.lin2alaw, audioop.alaw2lin)])
def test_matches_audioop_on_every_sample(pt, lin2, two_lin):
    pcm = ALL16.tobytes()
    assert encode(ALL16, pt) == lin2(pcm, 2)
    codes = bytes(range(256))
    assert decode(codes, pt).tobytes() == two_lin(codes, 2)


@pytest.mark.parametrize("pt", [0, 8])
def test_decode_encode_round_trip(pt):
    codes = bytes(c for c in range(256) if not (pt == 0 and c == 0x7F))  # -0 in μ-law
    assert encode(decode(codes, pt), pt) == codes


def test_identity_tones_avoid_dtmf_and_server_tones():
    used = [*audio.DTMF_ROWS, *audio.DTMF_COLS, 350, 425, 440, 480, 620, 950, 1000, 1400, 1800]
    tones = sorted(TONE_HZ.values())
    assert min(abs(t - u) for t in tones for u in used) >= 200
    assert min(b - a for a, b in zip(tones, tones[1:], strict=False)) >= 200


def feed(hearing, pcm, t0=0.0):
    for i in range(0, len(pcm), audio.FRAME):
        hearing.feed(pcm[i : i + audio.FRAME], t0 + i / audio.RATE)
    return t0 + len(pcm) / audio.RATE


def test_hearing_names_every_mixed_talker_through_g711():
    mix = sine([TONE_HZ["A"], TONE_HZ["C"], TONE_HZ["E"]], 4000, amplitude=5000)
    h = Hearing()
    now = feed(h, decode(encode(mix, 0), 0))
    assert h.tones(now) == {"A", "C", "E"}
    assert h.has_audio(now) and not h.is_silent(now)


def test_hearing_forgets_after_window_and_tracks_changes():
    h = Hearing(window=0.3)
    now = feed(h, sine([TONE_HZ["B"]], 4000))
    assert h.tones(now) == {"B"}
    now = feed(h, sine([TONE_HZ["D"]], 4000), now)
    assert h.tones(now) == {"D"}
    assert h.tones(now + 0.5) == set()
    assert not h.receiving(now + 0.5)


def test_hearing_silence_quiet_noise_and_ringback():
    h = Hearing()
    now = feed(h, np.zeros(2400, dtype=np.int16))
    assert h.receiving(now) and h.is_silent(now) and h.tones(now) == set()
    rng = np.random.default_rng(1)
    now = feed(h, rng.normal(0, 40, 2400).astype(np.int16), now)
    assert h.tones(now) == set()
    now = feed(h, sine(audio.RINGBACK_HZ, 2400, amplitude=3000), now)
    assert h.present(audio.RINGBACK_HZ, now)
    assert not h.present([TONE_HZ["A"]], now)


def test_dtmf_is_not_an_identity_tone():
    h = Hearing()
    now = feed(h, sine(audio.dtmf_freqs("D"), 2400))
    assert h.tones(now) == set() and h.present([941, 1633], now)


def test_tone_source_is_phase_continuous():
    src = ToneSource([TONE_HZ["A"]])
    joined = np.concatenate([src.frame() for _ in range(10)])
    assert np.array_equal(joined, sine([TONE_HZ["A"]], 1600))
