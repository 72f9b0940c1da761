"""Sound loading for prompts and MoH: mono mix, 8 kHz resampling, caching, failing classes."""

from __future__ import annotations

import logging

import numpy as np
import soundfile
from rtp_peer import goertzel_power

from mediasrv.media import sounds


def tone(freq: float, rate: int, seconds: float = 0.5, amp: float = 0.5) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)


def test_resample_keeps_frequency_and_level() -> None:
    out = sounds.resample(tone(1000, 44100), 44100)
    assert abs(len(out) - 4000) <= 1
    mid = out[400:3600]
    assert goertzel_power(mid, 1000) > 0.95
    assert abs(np.max(np.abs(mid)) - 0.5) < 0.01


def test_resample_removes_what_8k_cannot_carry() -> None:
    out = sounds.resample(tone(6000, 48000), 48000)   # would alias to 2 kHz
    assert np.max(np.abs(out[400:3600])) < 0.01


def test_load_sound_mixes_to_mono_and_caches(tmp_path) -> None:
    path = tmp_path / "st.wav"
    left, right = tone(440, 16000), tone(440, 16000, amp=0.25)
    soundfile.write(path, np.stack([left, right], axis=1), 16000, subtype="PCM_16")
    pcm = sounds.load_sound(path)
    assert pcm.dtype == np.int16 and abs(len(pcm) - 4000) <= 1
    assert abs(int(np.max(np.abs(pcm[400:3600]))) - 0.375 * 32767) < 400
    assert sounds.load_sound(path) is pcm


def test_moh_class_skips_bad_files_and_names_them(tmp_path, caplog) -> None:
    soundfile.write(tmp_path / "a.wav", tone(500, 8000, 0.1), 8000, subtype="PCM_16")
    soundfile.write(tmp_path / "b.wav", tone(700, 8000, 0.2), 8000, subtype="PCM_16")
    (tmp_path / "c.wav").write_bytes(b"not a wav")
    with caplog.at_level(logging.ERROR):
        pcm = sounds.load_moh_class("default", ["*.wav", "missing.flac"], tmp_path)
    assert len(pcm) == 800 + 1600
    assert "c.wav" in caplog.text and "missing.flac" in caplog.text


def test_moh_class_without_files_is_silence(tmp_path, caplog) -> None:
    with caplog.at_level(logging.ERROR):
        pcm = sounds.load_moh_class("jazz", ["nothing/*.wav"], tmp_path)
    assert len(pcm) == 0 and "jazz" in caplog.text and "silence" in caplog.text
