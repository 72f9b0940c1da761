"""Opus through libopus: RFC 7587 frames, wideband audio, in-band FEC and concealment.

How this works: libopus is the codec, so these tests check what our wrapper promises the
engine: 20 ms frames at 16 kHz (and 48 kHz) come back as 20 ms of audio with the tone's
frequency and level, a 6 kHz tone (beyond narrowband) survives, a lost packet is recovered
from the next packet's FEC data closer to the original than plain concealment, and bad input
is a clear error.
"""

from __future__ import annotations

import numpy as np
import pytest
from reference import load_media

_media = load_media()


def _tone(freq: float, rate: int, seconds: float, amp: float = 8000) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def _frames(pcm: np.ndarray, rate: int) -> list[np.ndarray]:
    n = rate // 50
    return [pcm[i:i + n] for i in range(0, len(pcm) - n + 1, n)]


def _peak_hz(pcm: np.ndarray, rate: int) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(pcm.astype(float)))) * rate / len(pcm))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(float) ** 2)))


@pytest.mark.parametrize(("rate", "freq"), [(16000, 1000), (16000, 6000), (48000, 6000)])
def test_round_trip_keeps_tone(rate: int, freq: int) -> None:
    enc, dec = _media.OpusEncoder(rate), _media.OpusDecoder(rate)
    packets = [enc.encode(f) for f in _frames(_tone(freq, rate, 1.0), rate)]
    assert all(0 < len(p) < 400 for p in packets)
    out = np.concatenate([dec.decode(p) for p in packets])
    assert len(out) == rate                            # 50 frames of 20 ms
    tail = out[rate // 5:]
    assert abs(_peak_hz(tail, rate) - freq) < 30
    assert 0.5 < _rms(tail) / (8000 / np.sqrt(2)) < 1.5


def _speechlike(rate: int) -> np.ndarray:
    # A voiced, modulated harmonic signal: Opus VOIP codes it in SILK, where FEC lives.
    t = np.arange(rate) / rate
    f0 = 140 + 30 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    return np.round(6000 * voiced * env).astype(np.int16)


def test_fec_recovers_a_lost_frame_better_than_concealment() -> None:
    rate = 16000
    enc = _media.OpusEncoder(rate)
    packets = [enc.encode(f) for f in _frames(_speechlike(rate), rate)]
    reference = _media.OpusDecoder(rate)
    clean = [reference.decode(p) for p in packets]
    fec_err = plc_err = 0.0
    for lost in (20, 30, 40):                       # frames 0..lost-1 arrive, `lost` does not
        fec_dec, plc_dec = _media.OpusDecoder(rate), _media.OpusDecoder(rate)
        for p in packets[:lost]:
            fec_dec.decode(p)
            plc_dec.decode(p)
        fec = fec_dec.decode(packets[lost + 1], fec=True)
        plc = plc_dec.decode(None)
        assert len(fec) == len(plc) == rate // 50
        fec_err += _rms(fec - clean[lost])
        plc_err += _rms(plc - clean[lost])
    assert fec_err < 0.6 * plc_err


def test_concealment_gives_one_frame_of_samples() -> None:
    dec = _media.OpusDecoder(16000)
    dec.decode(_media.OpusEncoder(16000).encode(_tone(500, 16000, 0.02)))
    assert len(dec.decode(None)) == 320
    assert len(dec.decode(None, frame_ms=10)) == 160


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="opus encoder at 12345 Hz"):
        _media.OpusEncoder(12345)
    with pytest.raises(ValueError, match="opus encode of 100 samples"):
        _media.OpusEncoder(16000).encode(np.zeros(100, np.int16))     # not a frame size
    with pytest.raises(ValueError, match="empty packet"):
        _media.OpusDecoder(16000).decode(b"")
    with pytest.raises(ValueError, match="opus decode"):
        _media.OpusDecoder(16000).decode(b"\xff\xff\xff")              # invalid framing
