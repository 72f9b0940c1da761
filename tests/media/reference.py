"""Tiny pure-Python references for the media kernels (written from the standards).

How this works: each function here is the plain, slow statement of what a Cython kernel in
`mediasrv._media` computes, so the same test body can run on both (DESIGN.md: "each Cython
kernel has a tiny pure-Python reference"). G.711 follows ITU-T G.711 Tables 1a/2a (segment,
step, sign); Goertzel follows the textbook recurrence s[n] = x[n] + 2cos(w)s[n-1] - s[n-2].
`load_media()` is the one place that imports the extension: skip when it is not built,
but fail under CI=true (common rules: never skip a missing extension in CI).
"""

from __future__ import annotations

import math
import os
from types import ModuleType

import numpy as np
import pytest


def load_media() -> ModuleType:
    """Import mediasrv._media; skip the caller's tests if absent (fail when CI=true)."""
    try:
        from mediasrv import _media
    except ImportError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"mediasrv._media is not built: {exc}", allow_module_level=True)
    return _media


# --- G.711 (ITU-T G.711 §2-3, Tables 1a/2a) -------------------------------------------------

def _segment(mag: int, first_size: int) -> int:
    """Segment (chord) 0..8: segment s covers magnitudes below first_size * 2**s."""
    seg = 0
    while seg < 8 and mag >= first_size << seg:
        seg += 1
    return seg


def ulaw_encode1(x: int) -> int:
    """One 16-bit sample to a μ-law code (14-bit input, bias 33, clip 8159, bits inverted)."""
    v = x >> 2
    sign = 0 if v >= 0 else 0x80  # set before the inversion, so positive codes end up >= 0x80
    mag = min(abs(v), 8159) + 33
    seg = _segment(mag, 64)
    if seg == 8:
        return (0x7F | sign) ^ 0xFF
    return ((seg << 4) | ((mag >> (seg + 1)) & 0x0F) | sign) ^ 0xFF


def alaw_encode1(x: int) -> int:
    """One 16-bit sample to an A-law code (13-bit input, even bits inverted)."""
    v = x >> 3
    sign = 0x80 if v >= 0 else 0
    mag = v if v >= 0 else -v - 1
    seg = _segment(mag, 32)
    if seg == 8:
        return (0x7F | sign) ^ 0x55
    step = (mag >> (1 if seg < 2 else seg)) & 0x0F
    return ((seg << 4) | step | sign) ^ 0x55


def ulaw_decode1(code: int) -> int:
    """μ-law code to the middle of its interval, as a 16-bit value."""
    c = ~code & 0xFF
    t = (((c & 0x0F) << 3) + 0x84) << ((c >> 4) & 0x07)
    return 0x84 - t if c & 0x80 else t - 0x84


def alaw_decode1(code: int) -> int:
    """A-law code to the middle of its interval, as a 16-bit value."""
    c = code ^ 0x55
    seg = (c >> 4) & 0x07
    t = ((c & 0x0F) << 4) + 8
    if seg:
        t = (t + 0x100) << (seg - 1)
    return t if c & 0x80 else -t


class G711Reference:
    """The kernel's Python API (`ulaw_encode`, ...), implemented one sample at a time."""

    @staticmethod
    def ulaw_encode(pcm: np.ndarray) -> bytes:
        return bytes(ulaw_encode1(int(x)) for x in pcm)

    @staticmethod
    def alaw_encode(pcm: np.ndarray) -> bytes:
        return bytes(alaw_encode1(int(x)) for x in pcm)

    @staticmethod
    def ulaw_decode(codes: bytes) -> np.ndarray:
        return np.array([ulaw_decode1(c) for c in codes], dtype=np.int16)

    @staticmethod
    def alaw_decode(codes: bytes) -> np.ndarray:
        return np.array([alaw_decode1(c) for c in codes], dtype=np.int16)

    @staticmethod
    def ulaw_to_alaw(codes: bytes) -> bytes:
        return bytes(alaw_encode1(ulaw_decode1(c)) for c in codes)

    @staticmethod
    def alaw_to_ulaw(codes: bytes) -> bytes:
        return bytes(ulaw_encode1(alaw_decode1(c)) for c in codes)


# --- Goertzel ------------------------------------------------------------------------------

def goertzel_power(x: np.ndarray, freq: float, rate: int = 8000) -> float:
    """Squared magnitude of the DFT of x at freq, by the Goertzel recurrence."""
    coeff = 2.0 * math.cos(2.0 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for v in x:
        s1, s2 = float(v) + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


# --- tones -----------------------------------------------------------------------------------

def tone_reference(segments: list, repeat: bool, n: int, rate: int = 8000) -> np.ndarray:
    """numpy sin() rendering of a tone spec: each on-period starts at phase 0."""
    out: list[np.ndarray] = []
    total = 0
    continuous = repeat and len(segments) == 1 and segments[0][3] == 0
    while total < n:
        for freqs, level, on_ms, off_ms in segments:
            on = on_ms * rate // 1000
            t = np.arange(n if continuous else on) / rate
            amp = 22702.0 * 10 ** (level / 20)
            out.append(np.round(sum(amp * np.sin(2 * np.pi * f * t) for f in freqs)))
            out.append(np.zeros(off_ms * rate // 1000))
            total += len(out[-1]) + len(out[-2])
        if not repeat:
            break
    full = np.concatenate(out + [np.zeros(n)])[:n]
    return np.clip(full, -32768, 32767).astype(np.int16)


# --- mixer -----------------------------------------------------------------------------------

def mix_minus_reference(frames: list[np.ndarray | None], length: int = -1) -> list[np.ndarray]:
    """numpy int32 sum of the others, clipped to int16."""
    n = length if length >= 0 else next((len(f) for f in frames if f is not None), 0)
    present = [f.astype(np.int32) for f in frames if f is not None]
    total = np.sum(present, axis=0, dtype=np.int32) if present else np.zeros(n, np.int32)
    return [np.clip(total - (0 if f is None else f.astype(np.int32)), -32768, 32767)
            .astype(np.int16) for f in frames]


# --- jitter ----------------------------------------------------------------------------------

def interarrival_jitter(packets: list[tuple[int, float]], rate: int = 8000) -> float:
    """RFC 3550 A.8 estimate, in timestamp units, over (rtp_ts, arrival_seconds) pairs."""
    jitter, last = 0.0, None
    for ts, arrival in packets:
        transit = arrival * rate - ts
        if last is not None:
            jitter += (abs(transit - last) - jitter) / 16
        last = transit
    return jitter
