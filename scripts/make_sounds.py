"""Regenerates the shipped prompts and hold music under mediasrv/data/sounds/ (run
by hand, output committed).

Prompts are spoken by espeak-ng (Debian package `espeak-ng`) in English and Italian and
resampled to 8 kHz 16-bit mono; tones (beep, failed) and the default hold music are
synthesised here with numpy. All of it is generated, so it is ours to redistribute under the
project's licence. Usage: .venv/bin/python scripts/make_sounds.py
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 8000
SOUNDS = Path(__file__).resolve().parent.parent / "mediasrv" / "data" / "sounds"

PROMPTS = {
    "en": {
        "transfer": "Please dial the extension.",
        "invalid": "That extension is not valid. Please try again.",
        "unavailable": "The person you are calling is not available.",
        "busy": "The person you are calling is busy.",
        "vm-greeting": "Please leave a message after the tone.",
    },
    "it": {
        "transfer": "Digitare l'interno, prego.",
        "invalid": "L'interno non è valido. Riprovare, prego.",
        "unavailable": "La persona chiamata non è disponibile.",
        "busy": "La persona chiamata è occupata.",
        "vm-greeting": "Lasciate un messaggio dopo il segnale acustico.",
    },
}


def speak(text: str, voice: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out),
                        "norm", "-6"], check=True)


def tone(freqs: list[float], seconds: float, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    wave = sum(np.sin(2 * np.pi * f * t) for f in freqs) / len(freqs)
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005)
    return (wave * fade * level * 32767).astype(np.int16)


def hold_music(seconds: float = 32.0) -> np.ndarray:
    """A slow four-chord progression with soft attacks: pleasant enough, and never silent."""
    chords = [[261.63, 329.63, 392.00], [220.00, 261.63, 329.63],
              [174.61, 220.00, 261.63], [196.00, 246.94, 293.66]]
    beat = 2.0
    parts = []
    for i in range(int(seconds / beat)):
        t = np.arange(int(beat * RATE)) / RATE
        env = np.minimum(1.0, t / 0.15) * np.exp(-t * 0.6)
        notes = chords[i % len(chords)]
        wave = sum(np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t) for f in notes)
        parts.append(wave * env / (1.3 * len(notes)))
    music = np.concatenate(parts)
    return (music * 0.35 * 32767).astype(np.int16)


def main() -> None:
    for lang, prompts in PROMPTS.items():
        (SOUNDS / lang).mkdir(parents=True, exist_ok=True)
        for name, text in prompts.items():
            speak(text, lang, SOUNDS / lang / f"{name}.wav")
        sf.write(SOUNDS / lang / "beep.wav", tone([1000], 0.25), RATE, subtype="PCM_16")
        sit = np.concatenate([tone([f], 0.33) for f in (950, 1400, 1800)])
        sf.write(SOUNDS / lang / "failed.wav", sit, RATE, subtype="PCM_16")
    (SOUNDS / "moh").mkdir(parents=True, exist_ok=True)
    sf.write(SOUNDS / "moh" / "default.wav", hold_music(), RATE, subtype="PCM_16")


if __name__ == "__main__":
    main()
