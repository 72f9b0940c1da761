# C API for the engine (all GIL-free; n = number of samples = number of codes):
#   cdef void ulaw_encode_c(const int16_t* pcm, uint8_t* out, Py_ssize_t n) noexcept nogil
#   cdef void ulaw_decode_c(const uint8_t* codes, int16_t* out, Py_ssize_t n) noexcept nogil
#   cdef void alaw_encode_c(const int16_t* pcm, uint8_t* out, Py_ssize_t n) noexcept nogil
#   cdef void alaw_decode_c(const uint8_t* codes, int16_t* out, Py_ssize_t n) noexcept nogil
#   cdef void ulaw_to_alaw_c(const uint8_t* src, uint8_t* dst, Py_ssize_t n) noexcept nogil
#   cdef void alaw_to_ulaw_c(const uint8_t* src, uint8_t* dst, Py_ssize_t n) noexcept nogil
#   cdef inline uint8_t ulaw_encode1(int16_t x) / alaw_encode1(int16_t x) noexcept nogil
#   cdef inline int16_t ulaw_decode1(uint8_t c) / alaw_decode1(uint8_t c) noexcept nogil
# In-place use is safe for the transcoders (dst may equal src).
"""G.711 μ-law and A-law codecs and the μ-law <-> A-law transcoder.

How this works (ITU-T G.711 (11/88), Tables 1a/1b and 2a/2b): a sample is companded into a
sign bit, a 3-bit segment (chord) and a 4-bit step. μ-law works on the 14-bit value
(x >> 2): magnitude + 33 bias, segment = position of its leading one, then all bits inverted.
A-law works on the 13-bit value (x >> 3): segment from the magnitude's leading one, with
segments 0 and 1 sharing one step size, then even bits inverted (xor 0x55).
The decoders return the middle of each quantisation interval, scaled back to 16 bits; this
is bit-exact with the classic Sun reference and CPython's audioop.

All six conversions are table look-ups built once at import: a 16 Ki-entry μ-law encoder
table indexed by the 14-bit value, an 8 Ki-entry A-law encoder table indexed by the 13-bit
value, two 256-entry decoders and two 256-entry transcoders (a transcode goes through the
linear value, as G.711 Appendix / Table 3 does implicitly).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int16_t, int32_t, uint8_t, uint16_t

import numpy as np

cdef uint8_t _ULAW_ENC[16384]
cdef uint8_t _ALAW_ENC[8192]
cdef int16_t _ULAW_DEC[256]
cdef int16_t _ALAW_DEC[256]
cdef uint8_t _U2A[256]
cdef uint8_t _A2U[256]


cdef inline int _segment(int32_t mag, int32_t first_size) noexcept nogil:
    """Segment number 0..8 of a magnitude; segment s ends below first_size * 2**s."""
    cdef int seg = 0
    while seg < 8 and mag >= (first_size << seg):
        seg += 1
    return seg


cdef uint8_t _ulaw_from14(int32_t v) noexcept nogil:
    # G.711 Table 2a: clip at 8159 (the top of the last interval), bias 33.
    cdef uint8_t mask = 0xFF
    if v < 0:
        v = -v
        mask = 0x7F
    if v > 8159:
        v = 8159
    v += 33
    cdef int seg = _segment(v, 64)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((v >> (seg + 1)) & 0x0F)) ^ mask


cdef uint8_t _alaw_from13(int32_t v) noexcept nogil:
    # G.711 Table 1a: negative values use one's complement magnitude; xor 0x55 (even bits).
    cdef uint8_t mask = 0xD5
    if v < 0:
        v = -v - 1
        mask = 0x55
    cdef int seg = _segment(v, 32)
    if seg >= 8:
        return 0x7F ^ mask
    cdef int shift = 1 if seg < 2 else seg
    return ((seg << 4) | ((v >> shift) & 0x0F)) ^ mask


cdef int16_t _ulaw_to_linear(uint8_t code) noexcept nogil:
    cdef int c = (~code) & 0xFF
    cdef int32_t t = (((c & 0x0F) << 3) + 0x84) << ((c >> 4) & 0x07)
    return <int16_t>(0x84 - t if c & 0x80 else t - 0x84)


cdef int16_t _alaw_to_linear(uint8_t code) noexcept nogil:
    cdef int c = code ^ 0x55
    cdef int seg = (c >> 4) & 0x07
    cdef int32_t t = ((c & 0x0F) << 4) + 8
    if seg >= 1:
        t = (t + 0x100) << (seg - 1)
    return <int16_t>(t if c & 0x80 else -t)


cdef void _build_g711_tables() noexcept nogil:
    cdef int i
    for i in range(16384):
        # index i is the 14-bit two's-complement pattern of (x >> 2)
        _ULAW_ENC[i] = _ulaw_from14(i - 16384 if i >= 8192 else i)
    for i in range(8192):
        _ALAW_ENC[i] = _alaw_from13(i - 8192 if i >= 4096 else i)
    for i in range(256):
        _ULAW_DEC[i] = _ulaw_to_linear(<uint8_t>i)
        _ALAW_DEC[i] = _alaw_to_linear(<uint8_t>i)
    for i in range(256):
        _U2A[i] = _ALAW_ENC[(<uint16_t>_ULAW_DEC[i]) >> 3]
        _A2U[i] = _ULAW_ENC[(<uint16_t>_ALAW_DEC[i]) >> 2]


_build_g711_tables()


cdef inline uint8_t ulaw_encode1(int16_t x) noexcept nogil:
    return _ULAW_ENC[(<uint16_t>x) >> 2]


cdef inline uint8_t alaw_encode1(int16_t x) noexcept nogil:
    return _ALAW_ENC[(<uint16_t>x) >> 3]


cdef inline int16_t ulaw_decode1(uint8_t c) noexcept nogil:
    return _ULAW_DEC[c]


cdef inline int16_t alaw_decode1(uint8_t c) noexcept nogil:
    return _ALAW_DEC[c]


cdef void ulaw_encode_c(const int16_t* pcm, uint8_t* out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = _ULAW_ENC[(<uint16_t>pcm[i]) >> 2]


cdef void alaw_encode_c(const int16_t* pcm, uint8_t* out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = _ALAW_ENC[(<uint16_t>pcm[i]) >> 3]


cdef void ulaw_decode_c(const uint8_t* codes, int16_t* out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = _ULAW_DEC[codes[i]]


cdef void alaw_decode_c(const uint8_t* codes, int16_t* out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = _ALAW_DEC[codes[i]]


cdef void ulaw_to_alaw_c(const uint8_t* src, uint8_t* dst, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        dst[i] = _U2A[src[i]]


cdef void alaw_to_ulaw_c(const uint8_t* src, uint8_t* dst, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        dst[i] = _A2U[src[i]]


ctypedef void (*_encode_fn)(const int16_t*, uint8_t*, Py_ssize_t) noexcept nogil
ctypedef void (*_decode_fn)(const uint8_t*, int16_t*, Py_ssize_t) noexcept nogil
ctypedef void (*_bytemap_fn)(const uint8_t*, uint8_t*, Py_ssize_t) noexcept nogil


cdef bytes _encode(_encode_fn fn, const int16_t[::1] pcm):
    cdef Py_ssize_t n = pcm.shape[0]
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n)
    cdef uint8_t* dst = <uint8_t*>PyBytes_AS_STRING(out)
    if n:
        with nogil:
            fn(&pcm[0], dst, n)
    return out


cdef object _decode(_decode_fn fn, const uint8_t[::1] codes):
    cdef Py_ssize_t n = codes.shape[0]
    out = np.empty(n, dtype=np.int16)
    cdef int16_t[::1] dst = out
    if n:
        with nogil:
            fn(&codes[0], &dst[0], n)
    return out


cdef bytes _bytemap(_bytemap_fn fn, const uint8_t[::1] codes):
    cdef Py_ssize_t n = codes.shape[0]
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n)
    cdef uint8_t* dst = <uint8_t*>PyBytes_AS_STRING(out)
    if n:
        with nogil:
            fn(&codes[0], dst, n)
    return out


def ulaw_encode(const int16_t[::1] pcm):
    """Encode contiguous int16 PCM to G.711 μ-law; returns one byte per sample."""
    return _encode(ulaw_encode_c, pcm)


def alaw_encode(const int16_t[::1] pcm):
    """Encode contiguous int16 PCM to G.711 A-law; returns one byte per sample."""
    return _encode(alaw_encode_c, pcm)


def ulaw_decode(const uint8_t[::1] codes):
    """Decode G.711 μ-law bytes (or a uint8 array) to a new numpy int16 array."""
    return _decode(ulaw_decode_c, codes)


def alaw_decode(const uint8_t[::1] codes):
    """Decode G.711 A-law bytes (or a uint8 array) to a new numpy int16 array."""
    return _decode(alaw_decode_c, codes)


def ulaw_to_alaw(const uint8_t[::1] codes):
    """Transcode μ-law bytes to A-law bytes (via the decoded linear value)."""
    return _bytemap(ulaw_to_alaw_c, codes)


def alaw_to_ulaw(const uint8_t[::1] codes):
    """Transcode A-law bytes to μ-law bytes (via the decoded linear value)."""
    return _bytemap(alaw_to_ulaw_c, codes)
