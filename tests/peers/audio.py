"""Audio for test peers: G.711 codecs, identity tones and a "who do I hear" analyser.

How this works
--------------
* G.711 (ITU-T G.711, the segment/quantisation rules; RFC 3551 §4.5.14 for PCMU/PCMA
  in RTP) is done with two lookup tables built once with numpy: a 256-entry decode table
  per law, and a 65536-entry encode table indexed by the 16-bit sample. This is written
  independently of the server's Cython kernels so that each checks the other.
* Every test phone sends its own *identity tone*, a sine at ``TONE_HZ[name]``. The
  frequencies sit in 2.3-3.1 kHz, a band nothing else in the system uses: the DTMF rows
  and columns are 697-941 Hz and 1209-1633 Hz (ITU-T Q.23), the server's own tones use
  350-1800 Hz (dial 350/425/440, ringback 440+480, busy 480+620, SIT 950/1400/1800,
  beep 1000). At least 200 Hz between any two of them keeps them apart with a 300 ms
  window (3.3 Hz resolution) and means an identity tone can never be taken for a DTMF
  digit by the server's in-band detector. All are below 3.4 kHz, so G.711 passes them.
* ``Hearing`` keeps the PCM received in the last ``window`` seconds (by arrival time) and
  measures the amplitude at any frequency with a Hann-windowed single-bin DFT (the
  Goertzel quantity). A tone is *present* when its amplitude is at least ``rel`` of the
  window's peak amplitude (so several mixed talkers are all heard, and codec noise is not)
  and above an absolute floor (so a silent stream hears nothing).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable

import numpy as np

RATE = 8000
FRAME = 160  # samples in 20 ms
TONE_HZ: dict[str, int] = {"A": 2300, "B": 2500, "C": 2700, "D": 2900, "E": 3100}
RINGBACK_HZ = (440, 480)
DTMF_ROWS = (697, 770, 852, 941)
DTMF_COLS = (1209, 1336, 1477, 1633)
DTMF_KEYS = "123A456B789C*0#D"

_SIGN = 0x80
_QUANT = 0x0F
_SEG = 0x70
_ULAW_BIAS = 0x84
_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def _ulaw_decode_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & _QUANT) << 3) + _ULAW_BIAS) << ((u & _SEG) >> 4)
    return np.where(u & _SIGN, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


def _alaw_decode_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & _SEG) >> 4
    t = (a & _QUANT) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & _SIGN, t, -t).astype(np.int16)


def _ulaw_encode_table() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2  # 14-bit magnitude domain
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), 8159) + (_ULAW_BIAS >> 2)
    seg = np.searchsorted(_ULAW_SEG_END, mag)  # first segment whose end >= mag
    code = (seg << 4) | ((mag >> (seg + 1)) & _QUANT)
    code = np.where(seg >= 8, 0x7F, code)
    return np.roll((code ^ mask).astype(np.uint8), -32768)  # index by uint16 view


def _alaw_encode_table() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3  # 13-bit domain
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(_ALAW_SEG_END, mag)
    shift = np.where(seg < 2, 1, seg)
    code = (seg << 4) | ((mag >> shift) & _QUANT)
    code = np.where(seg >= 8, 0x7F, code)
    return np.roll((code ^ mask).astype(np.uint8), -32768)


_DECODE = {0: _ulaw_decode_table(), 8: _alaw_decode_table()}
_ENCODE = {0: _ulaw_encode_table(), 8: _alaw_encode_table()}


def encode(pcm: np.ndarray, pt: int = 0) -> bytes:
    """Encode int16 PCM to G.711 bytes; ``pt`` is 0 (PCMU, μ-law) or 8 (PCMA, A-law)."""
    return _ENCODE[pt][np.asarray(pcm, dtype=np.int16).view(np.uint16)].tobytes()


def decode(payload: bytes, pt: int = 0) -> np.ndarray:
    """Decode G.711 bytes (PT 0 μ-law or 8 A-law) to int16 PCM."""
    return _DECODE[pt][np.frombuffer(payload, dtype=np.uint8)]


def sine(freqs: Iterable[float], n: int, start: int = 0, amplitude: float = 8000.0,
         rate: int = RATE) -> np.ndarray:
    """``n`` samples at ``rate`` of the sum of sines at ``freqs`` (each ``amplitude``) from
    sample ``start``."""
    t = (np.arange(n) + start) / rate
    out = np.zeros(n)
    for f in freqs:
        out += amplitude * np.sin(2 * np.pi * f * t)
    return np.clip(out, -32768, 32767).astype(np.int16)


def dtmf_freqs(key: str) -> tuple[int, int]:
    """The (row, column) frequencies of a DTMF key (ITU-T Q.23)."""
    i = DTMF_KEYS.index(key.upper())
    return DTMF_ROWS[i // 4], DTMF_COLS[i % 4]


class ToneSource:
    """Endless source of 20 ms frames of a fixed set of sines, phase-continuous."""

    def __init__(self, freqs: Iterable[float], amplitude: float = 8000.0) -> None:
        self.freqs = tuple(freqs)
        self.amplitude = amplitude
        self._pos = 0           # samples sent, counted at 8 kHz
        self._rate = RATE

    def frame(self, n: int = FRAME, rate: int = RATE) -> np.ndarray:
        """The next ``n`` samples at ``rate`` (a multiple of 8 kHz; a change keeps the phase)."""
        if rate != self._rate:
            self._pos = self._pos * rate // self._rate
            self._rate = rate
        out = sine(self.freqs, n, self._pos, self.amplitude, rate)
        self._pos += n
        return out


def amplitude_at(pcm: np.ndarray, freqs: Iterable[float]) -> np.ndarray:
    """Estimated sine amplitude at each frequency (Hann-windowed single-bin DFT)."""
    x = np.asarray(pcm, dtype=np.float64)
    n = len(x)
    f = np.asarray(list(freqs), dtype=np.float64)
    if n == 0 or len(f) == 0:
        return np.zeros(len(f))
    w = np.hanning(n)
    basis = np.exp(-2j * np.pi * np.outer(f, np.arange(n)) / RATE)
    return 2 * np.abs(basis @ (x * w)) / w.sum()


def threshold(x: np.ndarray, rel: float = 0.25, floor: float = 150.0) -> float:
    """Amplitude a component of ``x`` needs to count: ``rel`` of the peak, at least ``floor``."""
    w = np.hanning(len(x))
    peak = 2 * np.abs(np.fft.rfft(x * w)).max() / w.sum()
    return max(floor, rel * peak)


def tones_in(pcm: np.ndarray, rel: float = 0.25, floor: float = 150.0) -> set[str]:
    """Names of the identity tones present in ``pcm`` (see ``threshold``)."""
    x = np.asarray(pcm, dtype=np.float64)
    if len(x) == 0:
        return set()
    amps = amplitude_at(x, TONE_HZ.values())
    limit = threshold(x, rel, floor)
    return {name for name, a in zip(TONE_HZ, amps, strict=True) if a >= limit}


class Hearing:
    """What a peer hears: received PCM over a sliding window of arrival time.

    ``feed()`` is called for every decoded frame; the queries look at the frames that arrived
    in the last ``window`` seconds only, so a talker who stops is no longer heard after one
    window. ``rel`` is the fraction of the strongest component a tone needs to count as heard;
    ``floor`` the absolute amplitude (of 32768) below which nothing counts.
    """

    def __init__(self, window: float = 0.3, rel: float = 0.25, floor: float = 150.0,
                 min_frames: int = 3) -> None:
        self.window = window
        self.min_samples = min_frames * FRAME  # fewer is too little to judge a tone
        self.rel = rel
        self.floor = floor
        self._frames: deque[tuple[float, np.ndarray]] = deque()
        self.packets = 0

    def feed(self, pcm: np.ndarray, now: float | None = None) -> None:
        """Add one received frame of int16 PCM."""
        now = time.monotonic() if now is None else now
        self._frames.append((now, pcm))
        self.packets += 1
        self._expire(now)

    def _expire(self, now: float) -> None:
        while self._frames and self._frames[0][0] < now - self.window:
            self._frames.popleft()

    def samples(self, now: float | None = None) -> np.ndarray:
        """The PCM that arrived in the last window."""
        self._expire(time.monotonic() if now is None else now)
        if not self._frames:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate([f for _, f in self._frames])

    def receiving(self, now: float | None = None) -> bool:
        """True if any RTP audio arrived in the last window (even silence)."""
        return len(self.samples(now)) > 0

    def rms(self, now: float | None = None) -> float:
        """RMS level of the window (0 when nothing arrived)."""
        x = self.samples(now).astype(np.float64)
        return float(np.sqrt(np.mean(x * x))) if len(x) else 0.0

    def has_audio(self, now: float | None = None) -> bool:
        """True if something audible (above the floor) arrived in the last window."""
        return self.rms(now) >= self.floor / np.sqrt(2)

    def is_silent(self, now: float | None = None) -> bool:
        """True if nothing audible arrived in the last window (no RTP, or RTP of silence)."""
        return not self.has_audio(now)

    def present(self, freqs: Iterable[float], now: float | None = None) -> bool:
        """True if every frequency in ``freqs`` is heard now (e.g. ringback ``(440, 480)``)."""
        freqs = list(freqs)
        x = self.samples(now)
        if len(x) < self.min_samples:
            return False
        amps = amplitude_at(x, freqs)
        return bool(np.all(amps >= self._threshold(x)))

    def _threshold(self, x: np.ndarray) -> float:
        return threshold(x, self.rel, self.floor)

    def tones(self, now: float | None = None) -> set[str]:
        """Names of the identity tones (``TONE_HZ``) heard now."""
        x = self.samples(now)
        if len(x) < self.min_samples:
            return set()
        return tones_in(x, self.rel, self.floor)
