"""Benchmarks of the media kernels, each gated by ratios measured in the same run.

For every kernel: the Cython kernel against its numpy or pure-Python reference on the same
fixed input (at least N times faster, N well under what was measured so that a noisy shared
machine still passes), and the cost of one 20 ms frame against the 20 ms budget. The DTMF
detector also reports real-time channels per core = audio seconds / CPU seconds.
Run: `.venv/bin/python -m pytest bench/test_bench_kernels.py -q -s` (a few seconds).
"""

from __future__ import annotations

import struct
import sys
import time
from pathlib import Path

import numpy as np
from conftest import assert_frame_share, assert_ratio, best_time

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "media"))
import corpus as C  # noqa: E402
import reference as R  # noqa: E402

RNG = np.random.default_rng(2026)
ONE_SECOND = np.clip(RNG.normal(0, 6000, 8000), -32768, 32767).astype(np.int16)
FRAME = ONE_SECOND[:160].copy()
DTMF_FREQS = (697, 770, 852, 941, 1209, 1336, 1477, 1633)


def numpy_ulaw_encode(x: np.ndarray) -> bytes:
    """Vectorised G.711 μ-law (Table 2a) in numpy: the fair fast reference."""
    v = x.astype(np.int32) >> 2
    mask = np.where(v < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(v), 8159) + 33
    seg = np.searchsorted(np.array([64 << s for s in range(8)]), mag, side="right")
    code = np.where(seg >= 8, 0x7F,
                    (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0x0F))
    return (code ^ mask).astype(np.uint8).tobytes()


def test_ulaw_encode(benchmark, media) -> None:
    assert media.ulaw_encode(ONE_SECOND) == numpy_ulaw_encode(ONE_SECOND)
    benchmark(media.ulaw_encode, ONE_SECOND)
    kernel = best_time(media.ulaw_encode, ONE_SECOND, number=200)
    assert_ratio("ulaw_encode 1 s vs numpy", kernel, best_time(numpy_ulaw_encode, ONE_SECOND),
                 10)
    assert_frame_share("ulaw_encode", best_time(media.ulaw_encode, FRAME, number=2000), 0.001)


def test_ulaw_decode(benchmark, media) -> None:
    codes = media.ulaw_encode(ONE_SECOND)
    table = np.array([R.ulaw_decode1(c) for c in range(256)], np.int16)
    numpy_decode = lambda b: table[np.frombuffer(b, np.uint8)]     # noqa: E731
    np.testing.assert_array_equal(media.ulaw_decode(codes), numpy_decode(codes))
    benchmark(media.ulaw_decode, codes)
    assert_ratio("ulaw_decode 1 s vs numpy table", best_time(media.ulaw_decode, codes,
                 number=200), best_time(numpy_decode, codes, number=200), 1.5)
    assert_frame_share("ulaw_decode", best_time(media.ulaw_decode, codes[:160], number=2000),
                       0.001)


def python_goertzel_bank(x: np.ndarray) -> list[float]:
    """The 8 DTMF Goertzel powers per 104-sample block, in pure Python."""
    return [R.goertzel_power(x[i:i + 104], f) for i in range(0, len(x) - 103, 104)
            for f in DTMF_FREQS]


def test_dtmf_detector(benchmark, media) -> None:
    rng = np.random.default_rng(1)
    audio = C.g711(np.concatenate([C.speech_like(4, rng), C.digit_train("1234567890", 60, 60)[0],
                                   C.music_like(2, rng)]))
    seconds = len(audio) / 8000

    def detect_all() -> list:
        return media.DtmfDetector().feed(audio)

    assert [e[0] for e in detect_all()] == list("1234567890")
    benchmark.pedantic(detect_all, rounds=5)
    cpu = best_time(detect_all, number=3, clock=time.process_time)
    channels = seconds / cpu
    print(f"\nDTMF in-band: {channels:,.0f} real-time channels per core (goal 20,000)")
    benchmark.extra_info["channels_per_core"] = channels
    assert channels >= 10_000
    one_second = audio[:8000]
    assert_ratio("DTMF detect vs pure-Python Goertzel bank (1 s)",
                 best_time(lambda: media.DtmfDetector().feed(one_second), number=20),
                 best_time(python_goertzel_bank, one_second, number=1, repeat=2), 100)
    det = media.DtmfDetector()
    frame = audio[:160].copy()
    assert_frame_share("DtmfDetector.feed", best_time(det.feed, frame, number=2000), 0.002)


def test_tone_generator(benchmark, media) -> None:
    spec = [((440.0, 480.0), -19.0, 2000, 0)]
    gen = media.ToneGenerator(spec, True)
    t = np.arange(8000) / 8000
    amp = 22702 * 10 ** (-19 / 20)
    numpy_tone = lambda: np.round(amp * np.sin(2 * np.pi * 440 * t)          # noqa: E731
                                  + amp * np.sin(2 * np.pi * 480 * t)).astype(np.int16)
    assert np.abs(media.ToneGenerator(spec, True).generate(8000) - numpy_tone()).max() <= 1
    benchmark(gen.generate, 160)
    assert_ratio("tone 1 s vs numpy sin", best_time(gen.generate, 8000, number=50),
                 best_time(numpy_tone, number=50), 1.5)
    assert_frame_share("ToneGenerator.generate", best_time(gen.generate, 160, number=2000),
                       0.001)


def test_mix_minus(benchmark, media) -> None:
    frames = [RNG.integers(-8000, 8000, 160).astype(np.int16) for _ in range(8)]
    frames[3] = None
    for got, want in zip(media.mix_minus(frames), R.mix_minus_reference(frames), strict=True):
        np.testing.assert_array_equal(got, want)
    benchmark(media.mix_minus, frames)
    assert_ratio("mix_minus 8 x 20 ms vs numpy", best_time(media.mix_minus, frames, number=500),
                 best_time(R.mix_minus_reference, frames, number=500), 1.5)
    assert_frame_share("mix_minus of 8", best_time(media.mix_minus, frames, number=2000), 0.002)


def test_rfc4733(benchmark, media) -> None:
    pkts = [p for _, p in media.rfc4733_packets("5", 1600)]

    def receive_all() -> list:
        rx = media.Rfc4733Receiver()
        return [d for i, p in enumerate(pkts) for d in rx.packet(1000, p)]

    assert receive_all() == [("5", 1000, 1600)]
    benchmark(receive_all)
    ref = lambda: struct.pack("!BBH", 5, 0x8A, 1600)                    # noqa: E731
    assert_ratio("pack_event vs struct.pack (call included)",
                 best_time(media.pack_event, 5, True, 10, 1600, number=5000),
                 best_time(ref, number=5000), 1.0)
    per_packet = best_time(receive_all, number=500) / len(pkts)
    assert_frame_share("Rfc4733Receiver.packet", per_packet, 0.001)


def test_jitter_buffer(benchmark, media) -> None:
    payloads = [media.ulaw_encode(ONE_SECOND[i:i + 160]) for i in range(0, 8000, 160)]

    def one_second() -> int:
        jb = media.JitterBuffer()
        played = 0
        for k, p in enumerate(payloads):
            jb.put(k, k * 160, p, k * 0.02)
            played += jb.get(k * 0.02 + 0.02) is not None
        return played

    assert one_second() == 50
    benchmark(one_second)
    per_frame = best_time(one_second, number=20) / 50
    assert_frame_share("JitterBuffer put+get", per_frame, 0.002)
    decode_only = best_time(media.ulaw_decode, payloads[0], number=2000)
    print(f"\njitter put+get = {per_frame / decode_only:.1f}x a bare ulaw_decode call")
