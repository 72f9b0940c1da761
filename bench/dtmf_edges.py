"""Measures where the in-band DTMF detector's acceptance edges actually are.

Run: `.venv/bin/python bench/dtmf_edges.py` (about 20 s). For each Q.24-style limit it sweeps
the parameter and prints the fraction of trials detected (each trial: one digit of a random
key at a random alignment, 8 kHz, through a G.711 μ-law round trip), then talk-off counts on
the synthetic speech and music corpus. The tests in tests/media/test_dtmf_detector.py assert
the limits the issue requires; this script shows how much margin there is around them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "media"))
import corpus as C  # noqa: E402

from mediasrv._media import DtmfDetector  # noqa: E402

TRIALS = 40


def detect_rate(make: Callable[[np.random.Generator, str], np.ndarray], trials: int = TRIALS,
                seed: int = 7) -> float:
    """Fraction of trials in which exactly the one digit sent is reported."""
    rng = np.random.default_rng(seed)
    ok = 0
    for _ in range(trials):
        digit = C.KEYS[int(rng.integers(16))]
        sig = np.concatenate([C.silence(rng.uniform(40, 60)), make(rng, digit), C.silence(80)])
        det = DtmfDetector()
        events = det.feed(C.g711(sig)) + det.flush()
        ok += [e[0] for e in events] == [digit]
    return ok / trials


def sweep(name: str, values: list[float], make: Callable[[float], Callable]) -> None:
    print(f"{name}:")
    print("  " + "  ".join(f"{v:g}:{detect_rate(make(v)):.2f}" for v in values))


def tone(**kw: float) -> Callable[[np.random.Generator, str], np.ndarray]:
    return lambda rng, d: C.dtmf(d, phase=rng.uniform(0, 6.28), **kw)


def noisy(snr_db: float) -> Callable[[np.random.Generator, str], np.ndarray]:
    def make(rng: np.random.Generator, d: str) -> np.ndarray:
        x = C.dtmf(d, 60, level=-10, phase=rng.uniform(0, 6.28))
        power = C.amplitude(-10) ** 2            # two tones of A^2/2 each
        return x + rng.normal(0, np.sqrt(power / 10 ** (snr_db / 10)), len(x))
    return make


def pause_split(pause_ms: float) -> float:
    """Fraction of trials where two equal 50 ms digits, pause_ms apart, give two events."""
    rng = np.random.default_rng(3)
    ok = 0
    for _ in range(TRIALS):
        d = C.KEYS[int(rng.integers(16))]
        x, _ = C.digit_train(d + d, 50, pause_ms, lead_ms=rng.uniform(40, 60))
        det = DtmfDetector()
        ok += len(det.feed(C.g711(x)) + det.flush()) == 2
    return ok / TRIALS


def dropout_bridged(gap_ms: float) -> float:
    """Fraction of trials where a 60 ms digit, a gap_ms dropout and 60 ms more give one event."""
    rng = np.random.default_rng(4)
    ok = 0
    for _ in range(TRIALS):
        d = C.KEYS[int(rng.integers(16))]
        x = np.concatenate([C.silence(rng.uniform(40, 60)), C.dtmf(d, 60), C.silence(gap_ms),
                            C.dtmf(d, 60), C.silence(60)])
        det = DtmfDetector()
        ok += len(det.feed(C.g711(x)) + det.flush()) == 1
    return ok / TRIALS


def talk_off(seconds: float = 120.0) -> None:
    rng = np.random.default_rng(11)
    for name, gen in (("speech", C.speech_like), ("music", C.music_like)):
        for level in (-25.0, -15.0, -5.0):
            det = DtmfDetector()
            events = det.feed(C.g711(gen(seconds, rng, level))) + det.flush()
            print(f"  {name} at {level:g} dBm0, {seconds:g} s: {len(events)} false digits")


def main() -> None:
    sweep("duration ms (level -10 dBm0)", [20, 23, 26, 28, 30, 32, 34, 36, 38, 40, 45],
          lambda v: tone(ms=v))
    sweep("frequency deviation % (both tones, 100 ms)", [-4, -3.5, -3, -2.5, -2, -1.5, 0, 1.5,
          2, 2.5, 3, 3.5, 4], lambda v: tone(ms=100, deviation=v / 100))
    sweep("level dBm0 per tone (100 ms)", [3, 0, -10, -30, -36, -38, -40, -42, -45],
          lambda v: tone(ms=100, level=v))
    sweep("twist dB (high minus low group, -10 dBm0 mean)", [-12, -10, -8, -6, 0, 3, 4, 5, 6],
          lambda v: tone(ms=100, twist_db=v))
    sweep("SNR dB (60 ms at -10 dBm0, white noise)", [0, 3, 6, 9, 12, 15, 20],
          noisy)
    print("pause between two equal 50 ms digits, ms -> both reported:")
    print("  " + "  ".join(f"{p}:{pause_split(p):.2f}" for p in (10, 15, 20, 25, 30, 35, 40)))
    print("dropout inside one digit, ms -> one digit reported:")
    print("  " + "  ".join(f"{g}:{dropout_bridged(g):.2f}" for g in (5, 10, 12, 15, 20, 25)))
    print("talk-off:")
    talk_off()


if __name__ == "__main__":
    main()
