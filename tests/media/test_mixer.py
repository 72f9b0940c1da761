"""Mix-minus: the kernel and the numpy reference run the same test bodies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from reference import load_media, mix_minus_reference

_media = load_media()


@pytest.fixture(params=["kernel", "reference"])
def mix_minus(request: pytest.FixtureRequest):
    return _media.mix_minus if request.param == "kernel" else mix_minus_reference


def test_each_hears_the_others_not_itself(mix_minus) -> None:
    a, b, c = (np.full(160, v, np.int16) for v in (100, 20, 3))
    out = mix_minus([a, b, c])
    assert [int(o[0]) for o in out] == [23, 103, 120]


def test_sum_saturates_both_ways(mix_minus) -> None:
    hi = np.full(4, 30000, np.int16)
    lo = np.full(4, -30000, np.int16)
    out = mix_minus([hi, hi, hi, lo, lo, lo])
    assert out[0].tolist() == [-30000] * 4           # int32 total 0, minus own: no clipping
    out = mix_minus([hi, hi, hi, np.zeros(4, np.int16)])
    assert out[3].tolist() == [32767] * 4 and out[0].tolist() == [32767] * 4
    out = mix_minus([lo, lo, np.zeros(4, np.int16)])
    assert out[2].tolist() == [-32768] * 4


def test_absent_participant_hears_everyone_and_adds_nothing(mix_minus) -> None:
    a = np.arange(160, dtype=np.int16)
    out = mix_minus([a, None, a])
    np.testing.assert_array_equal(out[1], 2 * a)
    np.testing.assert_array_equal(out[0], a)


def test_two_party_is_a_plain_swap(mix_minus) -> None:
    rng = np.random.default_rng(1)
    a, b = (rng.integers(-32768, 32768, 160).astype(np.int16) for _ in range(2))
    out = mix_minus([a, b])
    np.testing.assert_array_equal(out[0], b)
    np.testing.assert_array_equal(out[1], a)


def test_everyone_silent_gives_silence(mix_minus) -> None:
    out = mix_minus([None, None, None], 160)
    assert len(out) == 3 and all(o.shape == (160,) and not o.any() for o in out)


frames_strategy = st.integers(1, 8).flatmap(lambda count: st.integers(0, 64).flatmap(
    lambda n: st.lists(st.one_of(st.none(), hnp.arrays(np.int16, n)),
                       min_size=count, max_size=count)))


@settings(max_examples=200, deadline=None)
@given(frames_strategy)
def test_kernel_equals_reference(frames: list) -> None:
    n = next((len(f) for f in frames if f is not None), 0)
    got = _media.mix_minus(frames, -1 if any(f is not None for f in frames) else n)
    want = mix_minus_reference(frames, n)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_mismatched_lengths_rejected() -> None:
    with pytest.raises(ValueError):
        _media.mix_minus([np.zeros(160, np.int16), np.zeros(80, np.int16)])
