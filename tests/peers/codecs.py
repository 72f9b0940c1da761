"""Codecs for the test phone: G.711 (audio.py's tables), G.722 and Opus through ctypes.

How this works
--------------
The test phone must not share code with ``mediasrv``, so its wideband codecs come from two
independent C libraries loaded with ctypes: G.722 from spandsp (Debian ``libspandsp2``, 64
kbit/s, plain 8-bit codes) and Opus from libopus (Debian ``libopus0``). Each ``Codec``
encodes one packet of PCM at its own input rate (``rate``: 8 kHz for G.711, 16 kHz for
G.722 and Opus) and decodes a packet to 8 kHz PCM for the phone's ``Hearing`` (which judges
narrowband tones): spandsp's decoder has an 8 kHz output mode (the lower sub-band only) and
libopus decodes at any of its rates, so no resampler is needed here.
RTP clocks (RFC 3551 §4.5.2, RFC 7587 §4.1): G.711 and G.722 8000, Opus 48000.
A missing library skips the test on a developer machine and fails it under ``CI=true``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

import numpy as np

from tests.peers import audio
from tests.peers.require import missing

NAMES = ("PCMU", "PCMA", "G722", "OPUS")
STATIC_PT = {"PCMU": 0, "PCMA": 8, "G722": 9, "OPUS": 111}  # OPUS: a dynamic PT of ours
RTPMAP = {"PCMU": "PCMU/8000", "PCMA": "PCMA/8000", "G722": "G722/8000",
          "OPUS": "opus/48000/2"}
FMTP = {"OPUS": "useinbandfec=1;stereo=0"}
CLOCK = {"PCMU": 8000, "PCMA": 8000, "G722": 8000, "OPUS": 48000}
RATE = {"PCMU": 8000, "PCMA": 8000, "G722": 16000, "OPUS": 16000}
_G722_RATE_8000 = 1                 # spandsp's G722_SAMPLE_RATE_8000 option
_OPUS_APPLICATION_VOIP = 2048
_OPUS_MAX_PACKET = 1500


def name_of(rtpmap: str) -> str | None:
    """Our codec name for an rtpmap value (``opus/48000/2`` -> ``OPUS``), or None."""
    parts = rtpmap.split("/")
    name = parts[0].upper()
    if name in CLOCK and len(parts) > 1 and parts[1] == str(CLOCK[name]):
        return name
    return None


@cache
def spandsp_library() -> ctypes.CDLL:
    """spandsp's G.722 (the reference of tests/media/test_g722.py), fails under CI when absent."""
    path = ctypes.util.find_library("spandsp")
    if path is None:
        missing("libspandsp (Debian libspandsp2) is not installed (see scripts/setup.sh)")
    lib = ctypes.CDLL(path)
    for fn in ("g722_encode_init", "g722_decode_init"):
        getattr(lib, fn).restype = ctypes.c_void_p
        getattr(lib, fn).argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    lib.g722_encode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
    lib.g722_decode.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    for fn in ("g722_encode_free", "g722_decode_free"):
        getattr(lib, fn).argtypes = [ctypes.c_void_p]
    return lib


@cache
def _libopus() -> ctypes.CDLL:
    path = ctypes.util.find_library("opus")
    if path is None:
        missing("libopus (Debian libopus0) is not installed (see scripts/setup.sh)")
    lib = ctypes.CDLL(path)
    err = ctypes.POINTER(ctypes.c_int)
    for fn in ("opus_encoder_create", "opus_decoder_create"):
        getattr(lib, fn).restype = ctypes.c_void_p
        getattr(lib, fn).argtypes = [ctypes.c_int32, ctypes.c_int, *(
            [ctypes.c_int] if fn == "opus_encoder_create" else []), err]
    lib.opus_encode.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                                ctypes.c_char_p, ctypes.c_int32]
    lib.opus_decode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32,
                                ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    for fn in ("opus_encoder_destroy", "opus_decoder_destroy"):
        getattr(lib, fn).argtypes = [ctypes.c_void_p]
    return lib


class Codec:
    """One direction pair of one codec for one call (wideband codecs keep state)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.clock = CLOCK[name]
        self.rate = RATE[name]
        self._pt = STATIC_PT.get(name, 0)

    def encode(self, pcm: np.ndarray) -> bytes:
        """One packet from int16 PCM at ``rate``."""
        return audio.encode(pcm, self._pt)

    def decode(self, payload: bytes) -> np.ndarray:
        """One packet to int16 PCM at 8 kHz."""
        return audio.decode(payload, self._pt)

    def close(self) -> None:
        """Free the library state, if any."""


class G722(Codec):
    """G.722 at 64 kbit/s through spandsp."""

    def __init__(self) -> None:
        super().__init__("G722")
        self._lib = spandsp_library()
        self._enc = self._lib.g722_encode_init(None, 64000, 0)
        self._dec = self._lib.g722_decode_init(None, 64000, _G722_RATE_8000)

    def encode(self, pcm: np.ndarray) -> bytes:
        x = np.ascontiguousarray(pcm, np.int16)
        out = ctypes.create_string_buffer(len(x) // 2)
        n = self._lib.g722_encode(self._enc, out, x.ctypes.data, len(x))
        return out.raw[:n]

    def decode(self, payload: bytes) -> np.ndarray:
        out = np.zeros(len(payload), np.int16)        # 8 kHz mode: one sample per code
        n = self._lib.g722_decode(self._dec, out.ctypes.data, payload, len(payload))
        return out[:n]

    def close(self) -> None:
        if self._enc:
            self._lib.g722_encode_free(self._enc)
            self._lib.g722_decode_free(self._dec)
        self._enc = self._dec = None


class Opus(Codec):
    """Opus (mono, VoIP mode) through libopus: encodes at 16 kHz, decodes at 8 kHz."""

    def __init__(self) -> None:
        super().__init__("OPUS")
        self._lib = _libopus()
        err = ctypes.c_int(0)
        self._enc = self._lib.opus_encoder_create(16000, 1, _OPUS_APPLICATION_VOIP,
                                                  ctypes.byref(err))
        self._dec = self._lib.opus_decoder_create(8000, 1, ctypes.byref(err))
        if not self._enc or not self._dec:
            raise RuntimeError(f"libopus refused to create a codec (error {err.value})")

    def encode(self, pcm: np.ndarray) -> bytes:
        x = np.ascontiguousarray(pcm, np.int16)
        out = ctypes.create_string_buffer(_OPUS_MAX_PACKET)
        n = self._lib.opus_encode(self._enc, x.ctypes.data, len(x), out, _OPUS_MAX_PACKET)
        if n < 0:
            raise ValueError(f"opus_encode: error {n} for {len(x)} samples")
        return out.raw[:n]

    def decode(self, payload: bytes) -> np.ndarray:
        out = np.zeros(960, np.int16)                  # 120 ms at 8 kHz, Opus's longest
        n = self._lib.opus_decode(self._dec, payload, len(payload), out.ctypes.data, 960, 0)
        return out[:max(n, 0)]

    def close(self) -> None:
        if self._enc:
            self._lib.opus_encoder_destroy(self._enc)
            self._lib.opus_decoder_destroy(self._dec)
        self._enc = self._dec = None


def make(name: str) -> Codec:
    """A fresh codec of ``name`` (one of ``NAMES``)."""
    if name == "G722":
        return G722()
    if name == "OPUS":
        return Opus()
    return Codec(name)
