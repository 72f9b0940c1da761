"""In-band DTMF detector: the acceptance limits of the issue, each as its own test.

Each test runs on the kernel and on reference.DtmfReference (the same algorithm in numpy),
so a test that passes on one and fails on the other points at an implementation bug. Every
signal goes through a G.711 round trip (corpus.g711) before detection. The sweeps cover
every alignment of the tone against the detector's 52-sample half-blocks, since that is
where duration limits are won or lost. bench/dtmf_edges.py prints where the edges really are.
"""

from __future__ import annotations

import corpus as C
import numpy as np
import pytest
from reference import DtmfReference, load_media

_media = load_media()
HALF = 52


@pytest.fixture(params=["kernel", "reference"])
def detector(request: pytest.FixtureRequest) -> type:
    return _media.DtmfDetector if request.param == "kernel" else DtmfReference


def detect(detector: type, x: np.ndarray, law: str = "ulaw", chunk: int | None = None) -> list:
    det = detector()
    pcm = C.g711(x, law)
    step = chunk or len(pcm) or 1
    events = []
    for i in range(0, len(pcm), step):
        events += det.feed(pcm[i:i + step])
    return events + det.flush()


def framed(tone: np.ndarray, lead: int) -> np.ndarray:
    return np.concatenate([np.zeros(lead), tone, C.silence(80)])


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_all_sixteen_digits_with_start_and_duration(detector: type, law: str) -> None:
    x, starts = C.digit_train(C.KEYS, 60, 60)
    events = detect(detector, x, law)
    assert "".join(e[0] for e in events) == C.KEYS
    for (_, start, duration), true_start in zip(events, starts, strict=True):
        assert abs(start - true_start) <= 2 * HALF
        assert abs(duration - C.samples(60)) <= 2 * HALF


def test_result_does_not_depend_on_chunking(detector: type) -> None:
    x, _ = C.digit_train("159#0D", 50, 50, level=-20)
    whole = detect(detector, x)
    assert len(whole) == 6
    for chunk in (1, 7, 51, 52, 160, 333):
        assert detect(detector, x, chunk=chunk) == whole


@pytest.mark.parametrize("digit", list("1D*9"))
def test_40ms_tone_detected_at_every_alignment(detector: type, digit: str) -> None:
    for lead in range(400, 400 + HALF, 3):
        events = detect(detector, framed(C.dtmf(digit, 40, phase=lead * 0.37), lead))
        assert [e[0] for e in events] == [digit], lead


@pytest.mark.parametrize("digit", list("1D*9"))
@pytest.mark.parametrize("ms", [10, 20, 23])
def test_tone_of_23ms_or_less_never_detected(detector: type, digit: str, ms: int) -> None:
    for lead in range(400, 400 + HALF):
        assert detect(detector, framed(C.dtmf(digit, ms, phase=lead * 0.37), lead)) == [], lead


@pytest.mark.parametrize("deviation", [-0.015, 0.015])
def test_frequency_deviation_of_1_5_percent_accepted(detector: type, deviation: float) -> None:
    x, _ = C.digit_train(C.KEYS, 60, 60, deviation=deviation)
    assert "".join(e[0] for e in detect(detector, x)) == C.KEYS


@pytest.mark.parametrize("deviation", [-0.035, 0.035, -0.05, 0.05])
def test_frequency_deviation_of_3_5_percent_rejected(detector: type, deviation: float) -> None:
    x, _ = C.digit_train(C.KEYS, 60, 60, deviation=deviation)
    assert detect(detector, x) == []


@pytest.mark.parametrize("level", [0.0, -10.0, -36.0])
def test_levels_from_minus_36_to_0_dbm0_accepted(detector: type, level: float) -> None:
    x, _ = C.digit_train(C.KEYS, 60, 60, level=level)
    assert "".join(e[0] for e in detect(detector, x)) == C.KEYS


def test_level_below_minimum_rejected(detector: type) -> None:
    x, _ = C.digit_train(C.KEYS, 60, 60, level=-45.0)
    assert detect(detector, x) == []


@pytest.mark.parametrize("twist_db", [-8.0, 4.0])
def test_normal_twist_8db_and_reverse_twist_4db_accepted(detector: type, twist_db: float) -> None:
    x, _ = C.digit_train(C.KEYS, 60, 60, twist_db=twist_db)
    assert "".join(e[0] for e in detect(detector, x)) == C.KEYS


@pytest.mark.parametrize("twist_db", [-12.0, 8.0])
def test_excessive_twist_rejected(detector: type, twist_db: float) -> None:
    x, _ = C.digit_train(C.KEYS, 60, 60, twist_db=twist_db)
    assert detect(detector, x) == []


def test_repeated_digit_with_40ms_pauses_reported_each_time(detector: type) -> None:
    x, starts = C.digit_train("5555", 40, 40)
    events = detect(detector, x)
    assert [e[0] for e in events] == list("5555")
    assert all(abs(e[1] - s) <= 2 * HALF for e, s in zip(events, starts, strict=True))


@pytest.mark.parametrize("lead_ms", [50.0, 51.6, 53.2, 54.8])
def test_dropout_of_10ms_inside_a_digit_is_bridged(detector: type, lead_ms: float) -> None:
    for digit in "15#D":
        x = np.concatenate([C.silence(lead_ms), C.dtmf(digit, 60), C.silence(10),
                            C.dtmf(digit, 60), C.silence(60)])
        events = detect(detector, x)
        assert [e[0] for e in events] == [digit]
        assert abs(events[0][2] - C.samples(130)) <= 2 * HALF


def test_digit_change_without_pause_gives_two_events(detector: type) -> None:
    x = np.concatenate([C.silence(50), C.dtmf("1", 80), C.dtmf("2", 80), C.silence(50)])
    assert [e[0] for e in detect(detector, x)] == ["1", "2"]


def test_detects_in_white_noise_at_15db_snr(detector: type) -> None:
    rng = np.random.default_rng(5)
    x, _ = C.digit_train("0123456789*#ABCD", 60, 60, level=-10)
    noise = rng.normal(0, C.amplitude(-10) / np.sqrt(10 ** 1.5), len(x))  # 2 tones: A^2 total
    assert "".join(e[0] for e in detect(detector, x + noise)) == "0123456789*#ABCD"


def test_noise_alone_gives_nothing(detector: type) -> None:
    rng = np.random.default_rng(6)
    assert detect(detector, C.white_noise(10_000, -10, rng)) == []


def test_talk_off_speech_and_music_almost_never_fire(detector: type) -> None:
    rng = np.random.default_rng(11)
    speech = detect(detector, C.speech_like(120, rng, -15.0))
    music = detect(detector, C.music_like(120, rng, -10.0))
    assert len(speech) + len(music) <= 2, (speech, music)


def test_flush_reports_a_digit_still_held(detector: type) -> None:
    det = detector()
    pcm = C.g711(np.concatenate([C.silence(20), C.dtmf("7", 100)]))
    assert det.feed(pcm) == []
    [(digit, start, duration)] = det.flush()
    assert digit == "7" and duration >= C.samples(80)
    assert det.flush() == []
    assert det.position == len(pcm)


def test_16khz_rate_and_bad_rate(detector: type) -> None:
    t = np.arange(1600) / 16000
    tone = C.amplitude(-10) * (np.sin(2 * np.pi * 852 * t) + np.sin(2 * np.pi * 1477 * t))
    det = detector(16000)
    pcm = np.concatenate([np.zeros(800), tone, np.zeros(1600)]).astype(np.int16)
    assert [e[0] for e in det.feed(pcm)] == ["9"]
    with pytest.raises(ValueError):
        detector(44100)


def test_kernel_and_reference_agree_event_for_event() -> None:
    rng = np.random.default_rng(21)
    parts = [C.speech_like(3, rng), C.digit_train("0918*#", 45, 45, level=-30)[0],
             C.digit_train("ABCD", 70, 30, deviation=0.018, twist_db=3)[0],
             C.music_like(3, rng)]
    x = np.concatenate(parts)
    x = x + rng.normal(0, C.amplitude(-45), len(x))
    pcm = C.g711(x, "alaw")
    kernel, ref = _media.DtmfDetector(), DtmfReference()
    got = kernel.feed(pcm) + kernel.flush()
    assert got == ref.feed(pcm) + ref.flush()
    assert "".join(e[0] for e in got) == "0918*#ABCD"


@pytest.mark.parametrize("rate", [11025, 12000])
def test_other_rates_agree_with_reference_in_any_chunking(rate: int) -> None:
    """M = 71 or 78 (odd, or not a multiple of 4); silences between the digits."""
    rng = np.random.default_rng(rate)
    t = np.arange(rate // 10) / rate
    parts = [np.zeros(rate // 20)]
    for d in "1A*D":
        k = C.KEYS.index(d)
        parts += [C.amplitude(-20) * (np.sin(2 * np.pi * C.ROWS[k // 4] * t)
                                      + np.sin(2 * np.pi * C.COLS[k % 4] * t)),
                  np.zeros(rate // 15)]
    x = np.concatenate(parts)
    pcm = np.round(x + rng.normal(0, 3, len(x))).astype(np.int16)
    ref = DtmfReference(rate)
    want = ref.feed(pcm) + ref.flush()
    assert "".join(e[0] for e in want) == "1A*D"
    for chunk in (1, 13, 71, 160, len(pcm)):
        det = _media.DtmfDetector(rate)
        got = [e for i in range(0, len(pcm), chunk) for e in det.feed(pcm[i:i + chunk])]
        assert got + det.flush() == want
