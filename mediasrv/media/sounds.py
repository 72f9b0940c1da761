"""Sound files for prompts and music on hold: decoded once, mono, 8 kHz int16 (and a
16 kHz copy for wideband legs), cached.

How this works: `soundfile` decodes WAV/FLAC/μ-law files (the engine never decodes files per
packet). Channels are averaged to mono, then the signal is resampled to 8 kHz with a
windowed-sinc interpolator (Kaiser window, cut-off at the lower Nyquist frequency, so down-
sampling is anti-aliased) and rounded to int16. Results are cached by absolute path and
modification time. A music-on-hold class is the concatenation of its files (glob patterns,
sorted); files that fail to load are named in one error log line, and a class with no
playable file is an empty array, which the engine plays as silence.
"""

from __future__ import annotations

import glob
import logging
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile

log = logging.getLogger(__name__)

RATE = 8000
_ZEROS = 16                # sinc zero crossings each side of the interpolation point
_ROLLOFF = 0.92            # cut-off as a fraction of the lower Nyquist frequency
_KAISER_BETA = 8.0
_cache: dict[tuple[str, float, int], np.ndarray] = {}


def resample(x: np.ndarray, rate_in: int, rate_out: int = RATE) -> np.ndarray:
    """Band-limited resampling of a float signal (windowed-sinc interpolation).

    Output sample n sits at input position n * rate_in / rate_out = n * p / q (in lowest
    terms), so its fractional part takes only q values: the kernel is built once per phase and
    applied as one matrix product per phase (8 -> 16 kHz: 2 phases, 44.1 -> 8 kHz: 80)."""
    if rate_in == rate_out or len(x) == 0:
        return np.asarray(x, dtype=np.float64)
    ratio = Fraction(rate_in, rate_out)
    p, q = ratio.numerator, ratio.denominator
    cutoff = _ROLLOFF * min(1.0, rate_out / rate_in)    # in cycles per 2 input samples
    half = int(np.ceil(_ZEROS / cutoff))                 # kernel half-width, input samples
    n_out = len(x) * q // p
    padded = np.concatenate([np.zeros(half), np.asarray(x, dtype=np.float64),
                             np.zeros(half + 1)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half)
    taps = np.arange(-half + 1, half + 1)
    out = np.empty(n_out)
    for phase in range(min(q, n_out)):
        n = np.arange(phase, n_out, q)                   # outputs of this phase
        first = n * p // q                               # floor of their positions
        kernel = _kernel(((phase * p) % q) / q - taps, cutoff, half)
        out[n] = windows[first + 1] @ kernel             # padded[first + 1 .. first + 2 half]
    return out


def _kernel(dist: np.ndarray, cutoff: float, half: int) -> np.ndarray:
    """Kaiser-windowed sinc at the distances `dist` (input samples) from the output point."""
    window = np.kaiser(2 * half + 1, _KAISER_BETA)
    w = np.interp(dist, np.arange(-half, half + 1), window)
    return cutoff * np.sinc(cutoff * dist) * w


def to_pcm16(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] to int16, rounded and clipped."""
    return np.clip(np.rint(x * 32767.0), -32768, 32767).astype(np.int16)


def load_sound(path: str | os.PathLike[str], rate: int = RATE) -> np.ndarray:
    """The file as mono int16 at `rate` (8 kHz; 16 kHz for wideband legs), cached; raises
    OSError/soundfile errors on bad files."""
    p = os.path.abspath(path)
    key = (p, os.path.getmtime(p), rate)
    if key not in _cache:
        data, file_rate = soundfile.read(p, dtype="float64", always_2d=True)
        _cache[key] = to_pcm16(resample(data.mean(axis=1), int(file_rate), rate))
    return _cache[key]


def expand(patterns: list[str], base_dir: str | os.PathLike[str] = ".") -> list[str]:
    """Glob patterns (relative to base_dir) to a sorted list of files, pattern by pattern."""
    files: list[str] = []
    for pattern in patterns:
        full = pattern if os.path.isabs(pattern) else str(Path(base_dir) / pattern)
        files.extend(sorted(glob.glob(full)) or [full])
    return files


def load_moh_class(name: str, patterns: list[str],
                   base_dir: str | os.PathLike[str] = ".", rate: int = RATE) -> np.ndarray:
    """The class's files concatenated; empty (= silence) when none loads, with an error log."""
    parts: list[np.ndarray] = []
    failed: list[str] = []
    for f in expand(patterns, base_dir):
        try:
            parts.append(load_sound(f, rate))
        except (OSError, RuntimeError, soundfile.LibsndfileError) as exc:
            failed.append(f"{f} ({exc})")
    if failed:
        log.error("MoH class %r: cannot load %s", name, "; ".join(failed))
    if not parts:
        log.error("MoH class %r has no playable file: it plays silence", name)
        return np.zeros(0, dtype=np.int16)
    return np.concatenate(parts)
