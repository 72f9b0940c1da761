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


# --- DTMF detector -----------------------------------------------------------------------------

class DtmfReference:
    """The detector of ext/dtmf.pyx restated with numpy DFTs: same API, same decisions.

    Half-blocks of 52 samples; each window is the last two. Per window: dominance (6 dB),
    2x2 unmixing of the row/column pair, balance (0.7), deviation (2.5 %) from the phase
    advance, off-bin correction, level (-40 dBm0), twist (9/5 dB), purity (0.8), second
    harmonics (0.2), then 3 hits on / 5 misses off.
    """

    FREQS = np.array([697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0])
    KEYS = "123A456B789C*0#D"

    def __init__(self, sample_rate: int = 8000) -> None:
        if not 8000 <= sample_rate <= 16000:
            raise ValueError("sample_rate must be 8000..16000")
        self.rate = sample_rate
        self.M = m = 52 * sample_rate // 8000
        self.w = 2 * np.pi * self.FREQS / sample_rate
        self.basis = np.exp(-1j * np.outer(np.arange(m), self.w))
        dw = self.w[:, None] - self.w[None, :]                  # leak[j][k] = G(w_j - w_k)
        self.leak = np.exp(1j * np.outer(np.arange(m), dw.ravel())).sum(0).reshape(8, 8)
        self.p_min = (22702.0 * 10 ** (-40 / 20) * m) ** 2
        self.buf = np.zeros(0)
        self.prev: tuple[np.ndarray, float, np.ndarray] | None = None
        self.pos = 0
        self.digit = self.cand = ""
        self.hits = self.misses = self.start = self.last_end = 0

    def feed(self, samples: np.ndarray) -> list[tuple[str, int, int]]:
        self.buf = np.concatenate([self.buf, samples.astype(np.float64)])
        events: list[tuple[str, int, int]] = []
        while len(self.buf) >= self.M:
            half, self.buf = self.buf[:self.M], self.buf[self.M:]
            self.pos += self.M
            y = half @ self.basis
            if self.prev is not None:
                window = np.concatenate([self.prev[2], half])
                events += self._track(self._classify(self.prev[0], y, self.prev[1]
                                                     + float(half @ half), window))
            self.prev = (y, float(half @ half), half)
        return events

    @property
    def position(self) -> int:
        return self.pos + len(self.buf)

    def flush(self) -> list[tuple[str, int, int]]:
        out = [(self.digit, self.start, self.last_end - self.start)] if self.digit else []
        self.digit = self.cand = ""
        self.hits = self.misses = 0
        return out

    def _classify(self, y0: np.ndarray, y1: np.ndarray, energy: float, window: np.ndarray) -> str:
        m = self.M
        p = np.abs(y0 + np.exp(-1j * self.w * m) * y1) ** 2
        if energy * m < self.p_min:
            return ""
        r, c = int(np.argmax(p[:4])), 4 + int(np.argmax(p[4:]))
        if any(p[k] * 4.0 > p[best] for best, grp in ((r, range(4)), (c, range(4, 8)))
               for k in grp if k != best):
            return ""
        g = np.array([[self.leak[r, r], self.leak[c, r]], [self.leak[r, c], self.leak[c, c]]])
        a0, a1 = np.linalg.solve(g, y0[[r, c]]), np.linalg.solve(g, y1[[r, c]])
        pr, pc = (self._tone_power(k, a0[i], a1[i]) for i, k in enumerate((r, c)))
        if pr < self.p_min or pc < self.p_min:
            return ""
        if pr > 10 ** 0.9 * pc or pc > 10 ** 0.5 * pr or pr + pc < 0.8 * energy * m:
            return ""
        if not self._harmonics_low(window, r, c, p):
            return ""
        return self.KEYS[r * 4 + c - 4]

    def _tone_power(self, k: int, a0: complex, a1: complex) -> float:
        p0, p1, m = abs(a0) ** 2, abs(a1) ** 2, self.M
        if p0 < 0.7 * p1 or p1 < 0.7 * p0:
            return -1.0
        dw = abs(np.angle(a1 * np.conj(a0) * np.exp(-1j * self.w[k] * m))) / m
        if dw * self.rate / (2 * np.pi) > 0.025 * self.FREQS[k]:
            return -1.0
        gain = (np.sin(dw * m / 2) / (m * np.sin(dw / 2))) ** 2 if dw > 1e-9 else 1.0
        return 2 * m * m * (p0 + p1) / gain

    def _harmonics_low(self, window: np.ndarray, r: int, c: int, p: np.ndarray) -> bool:
        def power(f: float) -> float:
            return goertzel_power(window, f, self.rate)
        f2, n = 2 * self.FREQS[r], len(window)
        if power(2 * self.FREQS[c]) > 0.2 * p[c]:
            return False
        return abs(f2 - self.FREQS[c]) * n / self.rate < 1.5 or power(f2) <= 0.2 * p[r]

    def _track(self, d: str) -> list[tuple[str, int, int]]:
        out = []
        if d and d == self.cand:
            self.hits += 1
        else:
            self.cand, self.hits = d, 1 if d else 0
        if self.digit:
            if d == self.digit:
                self.misses, self.last_end = 0, self.pos
            else:
                self.misses += 1
                if self.misses >= 5:
                    out.append((self.digit, self.start, self.last_end - self.start))
                    self.digit = ""
        if not self.digit and self.cand and self.hits >= 3:
            self.digit, self.last_end, self.misses = self.cand, self.pos, 0
            self.start = self.pos - 2 * self.M - (self.hits - 1) * self.M
        return out


# --- RFC 4733 --------------------------------------------------------------------------------

class Rfc4733Reference:
    """Python restatement of the kernel's receiver (RFC 4733 §2.5.2), keyed on timestamps."""

    def __init__(self, long_limit: int = 16000) -> None:
        self.long_limit = long_limit
        self.ts: int | None = None
        self.event = self.duration = 0
        self.ended = self.reported = True

    def packet(self, timestamp: int, payload: bytes) -> list[tuple[str, int, int]]:
        if len(payload) < 4 or payload[0] > 15:
            return []
        event, end, duration = payload[0], bool(payload[1] & 0x80), payload[2] << 8 | payload[3]
        out: list[tuple[str, int, int]] = []
        delta = None if self.ts is None else (timestamp - self.ts) & 0xFFFFFFFF
        if delta is not None and (delta == 0 and self.ended or delta >= 0x80000000):
            return out                                 # repeat of an ended event, or late
        if delta != 0:
            out += self._report()                      # a newer event ends the previous one
            self.ts, self.event, self.duration, self.reported = timestamp, event, 0, False
        self.duration = max(self.duration, duration)
        self.ended = end
        if end or self.duration >= self.long_limit:
            out += self._report()
        return out

    def flush(self) -> list[tuple[str, int, int]]:
        out = [] if self.ended else self._report()
        self.ended = True
        return out

    def _report(self) -> list[tuple[str, int, int]]:
        if self.reported:
            return []
        self.reported = True
        return [("0123456789*#ABCD"[self.event], self.ts or 0, self.duration)]


def rfc4733_packets_reference(digit: str, duration: int, ptime: int = 160,
                              volume: int = 10) -> list[tuple[bool, bytes]]:
    """RFC 4733 §2.5.1 sender sequence: updates every ptime, then three end packets."""
    event = "0123456789*#ABCD".index(digit)
    duration = min(max(duration, 1), 0xFFFF)
    sent = [d for d in range(ptime, duration, ptime)]
    pkts = [(d, 0) for d in sent] + [(duration, 0x80)] * 3
    return [(i == 0, bytes([event, e | volume, d >> 8, d & 0xFF]))
            for i, (d, e) in enumerate(pkts)]
