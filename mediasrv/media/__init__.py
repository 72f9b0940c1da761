"""The Python side of the media engine: `engine.MediaEngine` (commands), `events` (what the
media thread reports) and `sounds` (files decoded once, resampled to 8 kHz, cached)."""
