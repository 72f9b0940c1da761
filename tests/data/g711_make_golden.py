"""Regenerates the G.711 golden vectors in this folder from CPython's audioop (Python <= 3.12).

Run once: `.venv/bin/python tests/data/g711_make_golden.py`. The files are committed so the
G.711 tests keep an independent oracle after audioop is removed (Python 3.13).
  g711_ulaw_encode.bin / g711_alaw_encode.bin: one code per int16 input, -32768..32767 in order
  g711_ulaw_decode.bin / g711_alaw_decode.bin: 256 little-endian int16, for codes 0..255
"""

import audioop
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
ALL_PCM = np.arange(-32768, 32768, dtype="<i2").tobytes()
ALL_CODES = bytes(range(256))

(HERE / "g711_ulaw_encode.bin").write_bytes(audioop.lin2ulaw(ALL_PCM, 2))
(HERE / "g711_alaw_encode.bin").write_bytes(audioop.lin2alaw(ALL_PCM, 2))
(HERE / "g711_ulaw_decode.bin").write_bytes(audioop.ulaw2lin(ALL_CODES, 2))
(HERE / "g711_alaw_decode.bin").write_bytes(audioop.alaw2lin(ALL_CODES, 2))
