"""In-band DTMF on wideband legs: detect after decimation to 8 kHz, or at 16 kHz?

Run: `.venv/bin/python bench/dtmf_wideband.py` (about a minute). Each signal of the DTMF
corpus (tests/media/corpus.py, built here at 16 kHz) goes through a wideband codec (our
G.722, or libopus at 24 kbit/s as the engine runs it) and is decoded at 16 kHz; then the
detector runs (a) the way the engine does it, after the engine's 16 -> 8 kHz decimator
(47-tap Kaiser-windowed half-band FIR, beta 6, cut at 4 kHz: engine_codec.pyx, rebuilt here
in float) at its 8 kHz tuning, and (b) directly at 16 kHz (DtmfDetector(16000), the same
thresholds at the 16 kHz block size). Printed: the fraction of trials that give exactly the
digit sent, per level / duration / SNR, and false digits on synthetic speech and music.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "media"))
import corpus as C  # noqa: E402

from mediasrv._media import (  # noqa: E402
    DtmfDetector,
    G722Decoder,
    G722Encoder,
    OpusDecoder,
    OpusEncoder,
)

TRIALS = 32
C.RATE = 16000                                   # build the corpus at 16 kHz


def decimator() -> np.ndarray:
    n = np.arange(47) - 23
    h = 0.5 * np.sinc(n / 2) * np.kaiser(47, 6.0)
    return h / h.sum()


H = decimator()


def g722(x: np.ndarray) -> np.ndarray:
    return G722Decoder().decode(G722Encoder().encode(x))


def opus(x: np.ndarray) -> np.ndarray:
    enc, dec = OpusEncoder(16000), OpusDecoder(16000)
    return np.concatenate([dec.decode(enc.encode(x[i:i + 320]))
                           for i in range(0, len(x) - 319, 320)])


CODECS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"G.722": g722, "Opus": opus}


def digits(x16: np.ndarray, codec: Callable, rate: int) -> list[str]:
    x16 = np.concatenate([x16, np.zeros(320 - len(x16) % 320)])      # whole 20 ms frames
    pcm = codec(np.clip(np.round(x16), -32768, 32767).astype(np.int16))
    if rate == 8000:
        y = np.convolve(pcm.astype(float), H)[1::2]
        pcm = np.clip(np.round(y), -32768, 32767).astype(np.int16)     # saturating, as ours
    det = DtmfDetector(rate)
    return [e[0] for e in det.feed(np.ascontiguousarray(pcm)) + det.flush()]


def rate_of(make: Callable, codec: Callable, rate: int, seed: int = 7) -> float:
    rng = np.random.default_rng(seed)
    ok = 0
    for _ in range(TRIALS):
        d = C.KEYS[int(rng.integers(16))]
        x = np.concatenate([C.silence(rng.uniform(40, 60)), make(rng, d), C.silence(80)])
        ok += digits(x, codec, rate) == [d]
    return ok / TRIALS


def noisy(snr_db: float) -> Callable:
    def make(rng: np.random.Generator, d: str) -> np.ndarray:
        x = C.dtmf(d, 60, level=-10, phase=rng.uniform(0, 6.28))
        power = C.amplitude(-10) ** 2
        return x + rng.normal(0, np.sqrt(power / 10 ** (snr_db / 10)), len(x))
    return make


def main() -> None:
    sweeps = [
        ("level dBm0 (100 ms)", [0, -10, -20, -30, -36, -40],
         lambda v: lambda rng, d: C.dtmf(d, 100, level=v, phase=rng.uniform(0, 6.28))),
        ("duration ms (-10 dBm0)", [23, 32, 40, 60],
         lambda v: lambda rng, d: C.dtmf(d, v, phase=rng.uniform(0, 6.28))),
        ("SNR dB (60 ms, white noise to 8 kHz)", [9, 12, 15, 20], noisy),
    ]
    for name, codec in CODECS.items():
        print(f"== {name}")
        for title, values, make in sweeps:
            print(f"  {title}:")
            for rate in (8000, 16000):
                cells = "  ".join(f"{v:g}:{rate_of(make(v), codec, rate):.2f}" for v in values)
                print(f"    {'decimated 8k' if rate == 8000 else 'direct 16k  '} {cells}")
        rng = np.random.default_rng(11)
        for kind, gen in (("speech", C.speech_like), ("music", C.music_like)):
            x = gen(60.0, rng, -10.0)
            false = {r: len(digits(x, codec, r)) for r in (8000, 16000)}
            print(f"  talk-off, {kind} at -10 dBm0, 60 s: decimated 8k {false[8000]}, "
                  f"direct 16k {false[16000]} false digits")


if __name__ == "__main__":
    main()
