# C API for the engine (all GIL-free):
#   cdef void g722_init_c(G722State* st) noexcept nogil          # encoder or decoder state
#   cdef Py_ssize_t g722_encode_c(G722State* st, const int16_t* pcm, Py_ssize_t n,
#                                 uint8_t* out) noexcept nogil   # n samples at 16 kHz -> n//2 bytes
#   cdef Py_ssize_t g722_decode_c(G722State* st, const uint8_t* codes, Py_ssize_t n,
#                                 int16_t* out) noexcept nogil   # n bytes -> 2n samples at 16 kHz
"""ITU-T G.722 (09/2012) 7 kHz audio coding at 64 kbit/s: sub-band ADPCM.

How this works (G.722 §§3-4 and the block diagrams of Figures 4 and 5):
- Transmit QMF (§3.2): a 24-tap quadrature mirror filter splits each pair of 16 kHz input
  samples into one lower-band (0-4 kHz) and one upper-band (4-8 kHz) sample at 8 kHz:
  xA = sum h[2i] x(j-2i), xB = sum h[2i+1] x(j-2i-1), xL = xA + xB, xH = xA - xB.
- Lower band (§3.3-3.6): the difference eL between xL and the predicted value sL is
  quantised by QUANTL into 6 bits (60 levels plus four unused codes) against decision levels
  scaled by the adaptive step DETL. The adaptation and prediction use only the top 4 bits
  (INVQAL with QM4), so a decoder that dropped bits stays in step.
- Upper band (§3.3-3.6): eH is quantised into 2 bits by QUANTH (one decision level, 564).
- Scale factor adaptation (LOGSCL/LOGSCH, SCALEL/SCALEH): the log step NB leaks by 127/128
  and moves by W(I); DET = 2^(NB) read from the ILB table of 2^(k/32).
- Adaptive predictor (Block 4, same for both bands): a pole section of order 2 (A1, A2,
  UPPOL1/UPPOL2 with their stability limits) and a zero section of order 6 (B1..B6, UPZERO),
  all updated with sign-sign algorithms from the reconstructed signal and the difference.
- Receive QMF (§4.4): the inverse filter makes two 16 kHz samples from rL + rH and rL - rH.
The 64 kbit/s code word is IH (2 bits) above IL (6 bits). All arithmetic is the integer
arithmetic of the recommendation, with 16-bit saturation where it says "limit"; the tests
prove the encoder bytes and decoder samples identical to an independent implementation.
The RTP clock is 8000 Hz though audio is 16 kHz (RFC 3551 §4.5.2), so 20 ms = 160 bytes.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int16_t, int32_t, uint8_t
from libc.string cimport memset

import numpy as np

cdef struct G722Band:
    int32_t s           # predicted signal sL / sH
    int32_t sp          # pole-section prediction
    int32_t sz          # zero-section prediction
    int32_t nb          # log scale factor NBL / NBH
    int32_t det         # quantiser step DETL / DETH
    int32_t r[3]        # reconstructed signal r(n), r(n-1), r(n-2)
    int32_t p[3]        # partially reconstructed signal
    int32_t a[3]        # pole coefficients A1, A2 (index 0 unused)
    int32_t d[7]        # quantised difference d(n) .. d(n-6)
    int32_t b[7]        # zero coefficients B1..B6 (index 0 unused)

cdef struct G722State:
    G722Band band[2]    # 0: lower, 1: upper
    int32_t x[24]       # QMF delay line, newest at the end

# QMF coefficients h0..h23 (Table 4/G.722, symmetric: h23-i = hi).
cdef int32_t _QMF[24]
_QMF[:] = [3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876,
           3876, 951, -805, -210, 362, 32, -156, 12, 53, -11, -11, 3]
# QUANTL decision levels (Table 6), scaled by DETL >> 12; levels 1..29.
cdef int32_t _Q6[30]
_Q6[:] = [0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786,
          858, 940, 1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919]
# Interval number -> 6-bit code, negative and positive eL (Table 6).
cdef uint8_t _ILN[31]
cdef uint8_t _ILP[31]
_ILN[:] = [0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15,
           14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4]
_ILP[:] = [0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43,
           42, 41, 40, 39, 38, 37, 36, 35, 34, 33, 32]
# INVQAL: 4-bit inverse quantiser outputs QM4 (Table 7), indexed by IL >> 2.
cdef int32_t _QM4[16]
_QM4[:] = [0, -20456, -12896, -8968, -6288, -4240, -2584, -1200,
           20456, 12896, 8968, 6288, 4240, 2584, 1200, 0]
# INVQBL at 64 kbit/s: 6-bit inverse quantiser outputs QM6 (Table 8), indexed by IL.
cdef int32_t _QM6[64]
_QM6[:] = [-136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280,
           -11192, -10232, -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464,
           -4008, -3576, -3168, -2776, -2400, -2032, -1688, -1360, -1040, -728, 24808,
           21904, 19008, 16704, 14984, 13512, 12280, 11192, 10232, 9360, 8576, 7856, 7192,
           6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776, 2400, 2032, 1688, 1360,
           1040, 728, 432, 136, -432, -136]
# LOGSCL: IL >> 2 -> magnitude class RIL, and its log step multiplier WL (Table 9).
cdef int32_t _RIL4[16]
_RIL4[:] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0]
cdef int32_t _WL[8]
_WL[:] = [-60, -30, 58, 172, 334, 538, 1198, 3042]
# SCALEL/SCALEH: ILB(k) = 2048 * 2^(k/32) (Table 10).
cdef int32_t _ILB[32]
_ILB[:] = [2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656,
           2714, 2774, 2834, 2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520,
           3597, 3676, 3756, 3838, 3922, 4008]
# Upper band: QUANTH codes for (negative, positive) x (inner, outer) interval, INVQAH
# outputs QM2 indexed by IH, and LOGSCH's WH via IH -> class (Tables 11-13).
cdef uint8_t _IHN[3]
cdef uint8_t _IHP[3]
_IHN[:] = [0, 1, 0]
_IHP[:] = [0, 3, 2]
cdef int32_t _QM2[4]
_QM2[:] = [-7408, -1616, 7408, 1616]
cdef int32_t _RIH2[4]
_RIH2[:] = [2, 1, 2, 1]
cdef int32_t _WH[3]
_WH[:] = [0, -214, 798]

cdef enum:
    _NB_MAX_LOW = 18432
    _NB_MAX_HIGH = 22528


cdef inline int32_t _g722_sat16(int32_t v) noexcept nogil:
    if v > 32767:
        return 32767
    if v < -32768:
        return -32768
    return v


cdef inline int32_t _g722_clamp(int32_t v, int32_t lo, int32_t hi) noexcept nogil:
    return lo if v < lo else (hi if v > hi else v)


cdef void g722_init_c(G722State* st) noexcept nogil:
    """Reset state: all zero except the initial steps DETL = 32, DETH = 8 (§6.2)."""
    memset(st, 0, sizeof(G722State))
    st.band[0].det = 32
    st.band[1].det = 8


cdef inline void _g722_scale(G722Band* bd, int32_t wd, int32_t nb_max, int32_t shift) noexcept nogil:
    """LOGSCL/LOGSCH then SCALEL/SCALEH: leak NB by 127/128, add W, limit, DET = 2^NB."""
    cdef int32_t nb = ((bd.nb * 127) >> 7) + wd
    nb = _g722_clamp(nb, 0, nb_max)
    bd.nb = nb
    cdef int32_t e = shift - (nb >> 11)
    cdef int32_t m = _ILB[(nb >> 6) & 31]
    bd.det = (m << -e if e < 0 else m >> e) << 2


cdef inline int32_t _g722_sgn(int32_t v) noexcept nogil:
    # The recommendation's sign: 0 for v >= 0, -1 for v < 0 (16-bit values).
    return v >> 15


cdef void _g722_adapt(G722Band* bd, int32_t d) noexcept nogil:
    """Block 4: RECONS, PARREC, UPPOL2, UPPOL1, UPZERO, DELAYA, FILTEP, FILTEZ, PREDIC."""
    cdef int32_t i, wd1, wd2, a1, a2, bi
    cdef int32_t r0 = _g722_sat16(bd.s + d)
    cdef int32_t p0 = _g722_sat16(bd.sz + d)
    cdef int32_t s0 = _g722_sgn(p0)
    cdef int32_t s1 = _g722_sgn(bd.p[1])
    cdef int32_t s2 = _g722_sgn(bd.p[2])
    # UPPOL2: A2 += 2^-7 sgn(p0 p2) - 2^-7 f(A1) sgn(p0 p1), leak 2^-7, |A2| <= 0.75.
    wd1 = _g722_sat16(bd.a[1] << 2)
    wd2 = -wd1 if s0 == s1 else wd1
    if wd2 > 32767:
        wd2 = 32767
    a2 = (128 if s0 == s2 else -128) + (wd2 >> 7) + ((bd.a[2] * 32512) >> 15)
    a2 = _g722_clamp(a2, -12288, 12288)
    # UPPOL1: A1 += 3 * 2^-8 sgn(p0 p1), leak 2^-8, |A1| <= 1 - 2^-4 - A2.
    a1 = _g722_sat16((192 if s0 == s1 else -192) + ((bd.a[1] * 32640) >> 15))
    wd1 = _g722_sat16(15360 - a2)
    a1 = _g722_clamp(a1, -wd1, wd1)
    # UPZERO: Bi += 2^-7 sgn(d) sgn(d(n-i)) (nothing when d = 0), leak 2^-8; then DELAYA.
    wd1 = 0 if d == 0 else 128
    s0 = _g722_sgn(d)
    for i in range(6, 0, -1):
        bi = (bd.b[i] * 32640) >> 15
        bd.b[i] = _g722_sat16(bi + (wd1 if _g722_sgn(bd.d[i]) == s0 else -wd1))
    for i in range(6, 0, -1):
        bd.d[i] = bd.d[i - 1]
    bd.d[1] = d
    bd.r[2] = bd.r[1]
    bd.r[1] = r0
    bd.p[2] = bd.p[1]
    bd.p[1] = p0
    bd.a[1] = a1
    bd.a[2] = a2
    # FILTEP and FILTEZ, then PREDIC.
    bd.sp = _g722_sat16(((a1 * _g722_sat16(r0 + r0)) >> 15) + ((a2 * _g722_sat16(bd.r[2] + bd.r[2])) >> 15))
    cdef int32_t sz = 0
    for i in range(6, 0, -1):
        sz += (bd.b[i] * _g722_sat16(bd.d[i] + bd.d[i])) >> 15
    bd.sz = _g722_sat16(sz)
    bd.s = _g722_sat16(bd.sp + bd.sz)


cdef inline int _g722_quantl(int32_t el, int32_t det) noexcept nogil:
    """QUANTL: the 6-bit code of the lower-band difference."""
    cdef int32_t m = el if el >= 0 else -(el + 1)
    cdef int i = 1
    while i < 30 and m >= (_Q6[i] * det) >> 12:
        i += 1
    return _ILN[i] if el < 0 else _ILP[i]


cdef inline int _g722_quanth(int32_t eh, int32_t det) noexcept nogil:
    """QUANTH: the 2-bit code of the upper-band difference."""
    cdef int32_t m = eh if eh >= 0 else -(eh + 1)
    cdef int k = 2 if m >= (564 * det) >> 12 else 1
    return _IHN[k] if eh < 0 else _IHP[k]


cdef inline int32_t _g722_lower(G722Band* bd, int il) noexcept nogil:
    """INVQAL + LOGSCL/SCALEL + Block 4 for a 6-bit code; returns nothing useful to callers."""
    cdef int32_t dl = (bd.det * _QM4[il >> 2]) >> 15
    _g722_scale(bd, _WL[_RIL4[il >> 2]], _NB_MAX_LOW, 8)
    _g722_adapt(bd, dl)
    return dl


cdef inline int32_t _g722_upper(G722Band* bd, int ih) noexcept nogil:
    """INVQAH + LOGSCH/SCALEH + Block 4 for a 2-bit code; returns dH."""
    cdef int32_t dh = (bd.det * _QM2[ih]) >> 15
    _g722_scale(bd, _WH[_RIH2[ih]], _NB_MAX_HIGH, 10)
    _g722_adapt(bd, dh)
    return dh


cdef inline void _g722_qmf_push(int32_t* x, int32_t a, int32_t b) noexcept nogil:
    cdef int i
    for i in range(22):
        x[i] = x[i + 2]
    x[22] = a
    x[23] = b


cdef Py_ssize_t g722_encode_c(G722State* st, const int16_t* pcm, Py_ssize_t n,
                              uint8_t* out) noexcept nogil:
    """Encode n 16 kHz samples (n even; an odd last sample is ignored) into n // 2 codes."""
    cdef Py_ssize_t j
    cdef int i, il, ih
    cdef int32_t xa, xb, xl, xh
    cdef int32_t* x = st.x
    for j in range(n // 2):
        _g722_qmf_push(x, pcm[2 * j], pcm[2 * j + 1])
        # x[23] is x(j), the newest sample: xA sums the even-delay taps, xB the odd ones.
        xa = 0
        xb = 0
        for i in range(12):
            xa += x[23 - 2 * i] * _QMF[2 * i]
            xb += x[22 - 2 * i] * _QMF[2 * i + 1]
        xl = (xa + xb) >> 14
        xh = (xa - xb) >> 14
        il = _g722_quantl(_g722_sat16(xl - st.band[0].s), st.band[0].det)
        _g722_lower(&st.band[0], il)
        ih = _g722_quanth(_g722_sat16(xh - st.band[1].s), st.band[1].det)
        _g722_upper(&st.band[1], ih)
        out[j] = <uint8_t>((ih << 6) | il)
    return n // 2


cdef Py_ssize_t g722_decode_c(G722State* st, const uint8_t* codes, Py_ssize_t n,
                              int16_t* out) noexcept nogil:
    """Decode n codes into 2n samples at 16 kHz."""
    cdef Py_ssize_t j
    cdef int i, il, ih
    cdef int32_t rl, rh, y0, y1
    cdef int32_t* x = st.x
    cdef G722Band* lo = &st.band[0]
    cdef G722Band* hi = &st.band[1]
    for j in range(n):
        il = codes[j] & 0x3F
        ih = codes[j] >> 6
        # INVQBL with the full 6 bits makes the output; the state follows the 4-bit path.
        rl = _g722_clamp(lo.s + ((lo.det * _QM6[il]) >> 15), -16384, 16383)
        _g722_lower(lo, il)
        rh = _g722_clamp(hi.s + ((hi.det * _QM2[ih]) >> 15), -16384, 16383)
        _g722_upper(hi, ih)
        _g722_qmf_push(x, rl + rh, rl - rh)
        y0 = 0
        y1 = 0
        for i in range(12):
            y0 += x[23 - 2 * i] * _QMF[2 * i]
            y1 += x[22 - 2 * i] * _QMF[2 * i + 1]
        out[2 * j] = <int16_t>_g722_sat16(y0 >> 11)
        out[2 * j + 1] = <int16_t>_g722_sat16(y1 >> 11)
    return 2 * n


cdef class G722Encoder:
    """G.722 encoder at 64 kbit/s: `encode(pcm16k)` -> bytes, one per two samples."""
    cdef G722State st

    def __cinit__(self):
        g722_init_c(&self.st)

    def encode(self, const int16_t[::1] pcm) -> bytes:
        cdef Py_ssize_t n = pcm.shape[0]
        if n % 2:
            raise ValueError("G.722 encodes sample pairs: give an even number of samples")
        cdef bytes out = PyBytes_FromStringAndSize(NULL, n // 2)
        cdef uint8_t* dst = <uint8_t*>PyBytes_AS_STRING(out)
        if n:
            with nogil:
                g722_encode_c(&self.st, &pcm[0], n, dst)
        return out


cdef class G722Decoder:
    """G.722 decoder at 64 kbit/s: `decode(codes)` -> int16 array at 16 kHz, two per byte."""
    cdef G722State st

    def __cinit__(self):
        g722_init_c(&self.st)

    def decode(self, const uint8_t[::1] codes):
        cdef Py_ssize_t n = codes.shape[0]
        out = np.empty(2 * n, dtype=np.int16)
        cdef int16_t[::1] dst = out
        if n:
            with nogil:
                g722_decode_c(&self.st, &codes[0], n, &dst[0])
        return out
