"""DTMF test corpus: tones at the Q.24 limits, noise, and synthetic talk-off signals.

How this works: every signal is built in float64 at 8 kHz with numpy, then `g711()` clips it,
encodes and decodes it through G.711 using the committed golden tables (tests/data), so the
detector always sees what a phone call would carry and the corpus does not depend on the
kernel under test. Levels are per tone in dBm0, with 0 dBm0 = a sine of amplitude 22 702
(3.17 dB below full scale, G.711 μ-law). Talk-off material is hermetic: vowel-like harmonic
series shaped by formants (with pitch drift and syllable envelopes), chirps, and chords of
harmonic-rich notes; no recorded speech, no network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

RATE = 8000
DBM0_AMPLITUDE = 22702.0
KEYS = "123A456B789C*0#D"
ROWS = (697.0, 770.0, 852.0, 941.0)
COLS = (1209.0, 1336.0, 1477.0, 1633.0)
_DATA = Path(__file__).parent.parent / "data"
VOWELS = {  # first three formants (Hz), adult speakers
    "a": (730, 1090, 2440), "e": (530, 1840, 2480), "i": (270, 2290, 3010),
    "o": (570, 840, 2410), "u": (300, 870, 2240), "ae": (660, 1720, 2410),
}


def amplitude(level_dbm0: float) -> float:
    """Peak amplitude of a sine at the given level."""
    return DBM0_AMPLITUDE * 10.0 ** (level_dbm0 / 20.0)


def samples(ms: float) -> int:
    return int(round(RATE * ms / 1000.0))


def silence(ms: float) -> np.ndarray:
    return np.zeros(samples(ms))


def tones(freqs: tuple[float, ...], ms: float, levels: tuple[float, ...],
          phase: float = 0.0) -> np.ndarray:
    """Sum of sines, each at its own dBm0 level."""
    t = np.arange(samples(ms)) / RATE
    out = np.zeros_like(t)
    for i, (f, lv) in enumerate(zip(freqs, levels, strict=True)):
        out += amplitude(lv) * np.sin(2 * np.pi * f * t + phase * (i + 1))
    return out


def dtmf(digit: str, ms: float, level: float = -10.0, twist_db: float = 0.0,
         deviation: float = 0.0, phase: float = 0.3) -> np.ndarray:
    """One DTMF digit; twist_db > 0 makes the high group louder; deviation scales both."""
    k = KEYS.index(digit)
    freqs = (ROWS[k // 4] * (1 + deviation), COLS[k % 4] * (1 + deviation))
    return tones(freqs, ms, (level - twist_db / 2, level + twist_db / 2), phase)


def digit_train(digits: str, on_ms: float, off_ms: float, lead_ms: float = 60.0,
                **kw: float) -> tuple[np.ndarray, list[int]]:
    """Digits separated by pauses; returns the signal and each tone's start sample."""
    parts, starts, pos = [silence(lead_ms)], [], samples(lead_ms)
    for d in digits:
        starts.append(pos)
        parts += [dtmf(d, on_ms, **kw), silence(off_ms)]
        pos += samples(on_ms) + samples(off_ms)
    return np.concatenate(parts), starts


def white_noise(ms: float, level_dbm0: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power equals that of a sine at level_dbm0."""
    return rng.normal(0.0, amplitude(level_dbm0) / np.sqrt(2), samples(ms))


def vowel(f0: float, formants: tuple[int, ...], ms: float, level: float,
          rng: np.random.Generator) -> np.ndarray:
    """Glottal-like harmonic series (-12 dB/oct) through formant resonances, drifting pitch."""
    n = samples(ms)
    drift = f0 * (1 + 0.06 * np.sin(2 * np.pi * rng.uniform(2, 5) * np.arange(n) / RATE))
    phase = 2 * np.pi * np.cumsum(drift) / RATE
    out = np.zeros(n)
    for h in range(1, int(3600 // f0) + 1):
        gain = sum(1.0 / (1.0 + ((h * f0 - f) / 80.0) ** 2) for f in formants) / h
        out += gain * np.sin(h * phase + rng.uniform(0, 2 * np.pi))
    envelope = np.sin(np.pi * np.arange(n) / n) ** 0.5      # a syllable rises and falls
    return _scale(out * envelope, level)


def chirp(f_start: float, f_end: float, ms: float, level: float) -> np.ndarray:
    t = np.arange(samples(ms)) / RATE
    sweep = f_start + (f_end - f_start) * t / (2 * t[-1])
    return amplitude(level) * np.sin(2 * np.pi * sweep * t)


def chord(notes_hz: tuple[float, ...], ms: float, level: float,
          n_harmonics: int = 6) -> np.ndarray:
    """Notes with 1/h harmonic amplitudes (string/reed-like timbre) and a decay."""
    t = np.arange(samples(ms)) / RATE
    out = np.zeros_like(t)
    for f in notes_hz:
        for h in range(1, n_harmonics + 1):
            if h * f < RATE / 2:
                out += np.sin(2 * np.pi * h * f * t) / h
    return _scale(out * np.exp(-t * 2.0), level)


def _scale(x: np.ndarray, level: float) -> np.ndarray:
    """Scale x so its power equals that of a sine at `level` dBm0."""
    rms = np.sqrt(np.mean(x ** 2)) or 1.0
    return x * (amplitude(level) / np.sqrt(2) / rms)


def speech_like(seconds: float, rng: np.random.Generator, level: float = -15.0) -> np.ndarray:
    """Syllables of random vowels and pitches (male to child) with short gaps and glides."""
    parts, total = [], 0
    while total < seconds * RATE:
        f0 = rng.uniform(85, 320)
        if rng.random() < 0.15:
            part = chirp(f0 * rng.uniform(2, 4), f0 * rng.uniform(4, 10), rng.uniform(60, 200),
                         level)
        else:
            formants = VOWELS[rng.choice(list(VOWELS))]
            part = vowel(f0, formants, rng.uniform(80, 300), level + rng.uniform(-6, 6), rng)
        parts += [part, silence(rng.uniform(0, 60))]
        total += len(part) + len(parts[-1])
    return np.concatenate(parts)


_CHORDS = ((0, 4, 7), (0, 3, 7), (0, 7), (0, 4, 7, 11), (0, 5, 9))


def music_like(seconds: float, rng: np.random.Generator, level: float = -15.0) -> np.ndarray:
    """Chords of 2-4 equal-tempered notes from A3 to A6, some landing near DTMF tones."""
    parts, total = [], 0
    while total < seconds * RATE:
        root = rng.integers(0, 36)
        steps = _CHORDS[int(rng.integers(len(_CHORDS)))]
        notes = tuple(220.0 * 2 ** ((root + s) / 12) for s in steps)
        parts.append(chord(notes, rng.uniform(150, 500), level, int(rng.integers(2, 8))))
        total += len(parts[-1])
    return np.concatenate(parts)


def g711(x: np.ndarray, law: str = "ulaw") -> np.ndarray:
    """Round-trip through G.711 (golden tables, not the kernel): what a call carries."""
    pcm = np.clip(np.round(x), -32768, 32767).astype(np.int64)
    enc = np.frombuffer((_DATA / f"g711_{law}_encode.bin").read_bytes(), np.uint8)
    dec = np.frombuffer((_DATA / f"g711_{law}_decode.bin").read_bytes(), "<i2")
    return dec[enc[pcm + 32768]].astype(np.int16)
