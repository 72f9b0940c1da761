"""Tone generators: cadence, level and phase continuity against numpy sin() references."""

from __future__ import annotations

import numpy as np
import pytest
from reference import load_media, tone_reference

_media = load_media()


def frames(gen, n_frames: int, size: int = 160) -> np.ndarray:
    return np.concatenate([gen.generate(size) for _ in range(n_frames)])


@pytest.mark.parametrize("zone", ["us", "it"])
@pytest.mark.parametrize("name", ["dial", "ringback", "busy", "congestion", "beep", "failed"])
def test_named_tones_match_numpy_reference_frame_by_frame(zone: str, name: str) -> None:
    segments, repeat = _media.TONES[zone][name]
    got = frames(_media.ToneGenerator.named(zone, name), 700)         # 14 s in 20 ms frames
    want = tone_reference(list(segments), repeat, len(got))
    assert np.abs(got.astype(int) - want).max() <= 1


def test_us_ringback_cadence_2s_on_4s_off() -> None:
    x = frames(_media.ToneGenerator.named("us", "ringback"), 600)
    on = np.abs(x.reshape(-1, 160)).max(axis=1) > 0
    assert on[:100].all() and not on[100:300].any() and on[300:400].all()


def test_it_busy_is_425hz_half_second_cadence() -> None:
    x = frames(_media.ToneGenerator.named("it", "busy"), 100)
    spectrum = np.abs(np.fft.rfft(x[:4000].astype(float)))
    assert np.argmax(spectrum) * 8000 / 4000 == pytest.approx(425, abs=2)
    on = np.abs(x.reshape(-1, 160)).max(axis=1) > 0
    assert on[:25].all() and not on[25:50].any() and on[50:75].all()


def test_failed_is_three_special_information_tones() -> None:
    x = _media.ToneGenerator.named("us", "failed").generate(8 * 990)
    for i, f in enumerate((950, 1400, 1800)):
        seg = x[i * 2640:(i + 1) * 2640].astype(float)
        peak = np.argmax(np.abs(np.fft.rfft(seg, 8000)))
        assert peak == pytest.approx(f, abs=3)


def test_beep_plays_once_then_done_and_silent() -> None:
    gen = _media.ToneGenerator.named("us", "beep")
    first = gen.generate(2000)
    assert not gen.done or np.count_nonzero(first)
    assert gen.done
    assert not gen.generate(800).any()


def test_level_in_dbm0() -> None:
    x = _media.ToneGenerator([((1000.0,), -10.0, 1000, 0)], True).generate(8000).astype(float)
    rms_db = 20 * np.log10(np.sqrt(np.mean(x ** 2)) * np.sqrt(2) / 22702)
    assert rms_db == pytest.approx(-10.0, abs=0.05)


def test_continuous_tone_has_no_phase_jump_over_2000_frames() -> None:
    gen = _media.ToneGenerator([((440.0,), -10.0, 20, 0)], True)
    x = frames(gen, 2000)                                   # 40 s; each segment is one frame
    want = tone_reference([((440.0,), -10.0, 20, 0)], True, len(x))
    assert np.abs(x.astype(int) - want).max() <= 1


def test_dtmf_digits_are_detected_by_the_detector() -> None:
    x = np.concatenate([_media.ToneGenerator.dtmf(d, 60, 60).generate(960) for d in "147*2580#"])
    det = _media.DtmfDetector()
    assert "".join(e[0] for e in det.feed(x) + det.flush()) == "147*2580#"


def test_dtmf_level_and_bad_digit() -> None:
    x = _media.ToneGenerator.dtmf("5", 100, level_dbm0=-20.0).generate(800).astype(float)
    assert np.sqrt(np.mean(x ** 2)) == pytest.approx(22702 * 10 ** (-20 / 20), rel=0.02)
    with pytest.raises(ValueError):
        _media.ToneGenerator.dtmf("x")


def test_bad_specs_rejected() -> None:
    with pytest.raises(ValueError):
        _media.ToneGenerator([])
    with pytest.raises(ValueError):
        _media.ToneGenerator([((), -10.0, 100, 0)])
    with pytest.raises(KeyError):
        _media.ToneGenerator.named("fr", "busy")
