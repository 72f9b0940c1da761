# C API for the engine (one ToneState per playing stream, embedded by value, no GIL):
#   ctypedef struct ToneSegment: int nfreq; double freq[4]; double amp[4]; int on; int off
#       (on/off in samples; amp is the peak of each sine, see tone_amplitude)
#   cdef int tone_init(ToneState* st, const ToneSegment* segs, int nseg, bint repeat,
#                      int sample_rate) noexcept nogil          -> 0, or -1 if nseg is 0 or > 4
#   cdef int tone_init_dtmf(ToneState* st, char digit, double level_dbm0, int on_ms,
#                           int off_ms, int sample_rate) noexcept nogil  -> 0, -1 if no digit
#   cdef Py_ssize_t tone_generate(ToneState* st, int16_t* out, Py_ssize_t n) noexcept nogil
#       -> samples produced before the tone ended (n while it goes on); the rest is zeroed
#   cdef inline double tone_amplitude(double level_dbm0) noexcept nogil
"""Tone generators: call-progress tones per indication zone, and DTMF digits for in-band sending.

How this works: a tone is a list of segments, each a sum of up to 4 sines played for `on`
samples then silent for `off` samples; the list plays once or repeats. Each sine is a
complex oscillator z *= e^(jw) per sample (two multiplies instead of a sin()), renormalised
after every call so rounding cannot make it grow; the state lives between calls, so 20 ms
frames join without a phase jump. A segment's oscillators restart at phase 0 when its
on-period starts after silence or after another segment; a single segment without an off
period is one continuous tone. Levels are per sine in dBm0 (0 dBm0 = amplitude 22 702,
G.711 μ-law, as in dtmf.pyx). Cadences follow ITU-T E.180 and its national supplements:
US (ANSI T1.401 precise tone plan) and Italy (425 Hz).
"""

from libc.math cimport cos, sin, sqrt

cdef enum:
    TONE_MAX_SEGMENTS = 4
    TONE_MAX_FREQS = 4

ctypedef struct ToneSegment:
    int nfreq
    double freq[4]
    double amp[4]
    int on
    int off

ctypedef struct ToneState:
    ToneSegment seg[4]
    int nseg
    bint repeat
    bint done
    int rate
    int cur                        # segment playing
    int pos                        # sample position inside it (on + off)
    double z_re[4]                 # oscillator phasors of the current segment
    double z_im[4]
    double w_re[4]                 # per-sample rotation e^(jw)
    double w_im[4]


cdef inline double tone_amplitude(double level_dbm0) noexcept nogil:
    return DBM0_AMPLITUDE * 10.0 ** (level_dbm0 / 20.0)


cdef void _tone_start_segment(ToneState* st) noexcept nogil:
    cdef ToneSegment* s = &st.seg[st.cur]
    cdef double w
    cdef int f
    for f in range(s.nfreq):
        w = 2.0 * 3.141592653589793 * s.freq[f] / st.rate
        st.w_re[f] = cos(w)
        st.w_im[f] = sin(w)
        st.z_re[f] = 1.0
        st.z_im[f] = 0.0


cdef int tone_init(ToneState* st, const ToneSegment* segs, int nseg, bint repeat,
                   int sample_rate) noexcept nogil:
    if nseg < 1 or nseg > TONE_MAX_SEGMENTS:
        return -1
    cdef int i
    for i in range(nseg):
        st.seg[i] = segs[i]
    st.nseg = nseg
    st.repeat = repeat
    st.done = False
    st.rate = sample_rate
    st.cur = 0
    st.pos = 0
    _tone_start_segment(st)
    return 0


cdef int tone_init_dtmf(ToneState* st, char digit, double level_dbm0, int on_ms, int off_ms,
                        int sample_rate) noexcept nogil:
    cdef int k = 0
    while k < 16 and _DTMF_KEYS[k] != digit:
        k += 1
    if k == 16:
        return -1
    cdef ToneSegment s
    s.nfreq = 2
    s.freq[0] = _DTMF_FREQS[k // 4]
    s.freq[1] = _DTMF_FREQS[4 + k % 4]
    s.amp[0] = s.amp[1] = tone_amplitude(level_dbm0)
    s.on = on_ms * sample_rate // 1000
    s.off = off_ms * sample_rate // 1000
    return tone_init(st, &s, 1, False, sample_rate)


cdef void _tone_synth(ToneState* st, int16_t* out, Py_ssize_t n) noexcept nogil:
    cdef ToneSegment* s = &st.seg[st.cur]
    cdef double acc, re, norm
    cdef Py_ssize_t i
    cdef int f
    for i in range(n):
        acc = 0.0
        for f in range(s.nfreq):
            acc += s.amp[f] * st.z_im[f]
            re = st.z_re[f] * st.w_re[f] - st.z_im[f] * st.w_im[f]
            st.z_im[f] = st.z_re[f] * st.w_im[f] + st.z_im[f] * st.w_re[f]
            st.z_re[f] = re
        acc = acc + 0.5 if acc >= 0 else acc - 0.5      # round half away from zero
        out[i] = <int16_t>(32767 if acc > 32767 else (-32768 if acc < -32768 else acc))
    for f in range(s.nfreq):
        norm = sqrt(st.z_re[f] * st.z_re[f] + st.z_im[f] * st.z_im[f])
        st.z_re[f] /= norm
        st.z_im[f] /= norm


cdef void _tone_next_segment(ToneState* st) noexcept nogil:
    cdef bint continuous = st.nseg == 1 and st.seg[0].off == 0
    st.pos = 0
    st.cur += 1
    if st.cur == st.nseg:
        st.cur = 0
        if not st.repeat:
            st.done = True
            return
    if not continuous:
        _tone_start_segment(st)


cdef Py_ssize_t tone_generate(ToneState* st, int16_t* out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i = 0, k
    cdef ToneSegment* s
    while i < n and not st.done:
        s = &st.seg[st.cur]
        if st.pos < s.on:
            k = min(n - i, s.on - st.pos)
            _tone_synth(st, out + i, k)
        else:
            k = min(n - i, s.on + s.off - st.pos)
            memset(out + i, 0, k * sizeof(int16_t))
        st.pos += k
        i += k
        if st.pos == s.on + s.off:
            _tone_next_segment(st)
    if i < n:
        memset(out + i, 0, (n - i) * sizeof(int16_t))
    return i


cdef tuple _tone_segments(tuple freqs, double level, int on_ms, int off_ms):
    return ((freqs, level, on_ms, off_ms),)


_SIT = ((950.0,), -24.0, 330, 0), ((1400.0,), -24.0, 330, 0), ((1800.0,), -24.0, 330, 1000)

TONES = {
    "us": {
        "dial": (_tone_segments((350.0, 440.0), -13.0, 1000, 0), True),
        "ringback": (_tone_segments((440.0, 480.0), -19.0, 2000, 4000), True),
        "busy": (_tone_segments((480.0, 620.0), -24.0, 500, 500), True),
        "congestion": (_tone_segments((480.0, 620.0), -24.0, 250, 250), True),
        "beep": (_tone_segments((1000.0,), -13.0, 250, 0), False),
        "failed": (_SIT, True),
    },
    "it": {
        "dial": ((((425.0,), -13.0, 200, 200), ((425.0,), -13.0, 600, 1000)), True),
        "ringback": (_tone_segments((425.0,), -13.0, 1000, 4000), True),
        "busy": (_tone_segments((425.0,), -13.0, 500, 500), True),
        "congestion": (_tone_segments((425.0,), -13.0, 200, 200), True),
        "beep": (_tone_segments((1000.0,), -13.0, 250, 0), False),
        "failed": (_SIT, True),
    },
}
"""TONES[zone][name] = (segments, repeat); a segment is (freqs, level_dbm0, on_ms, off_ms)."""


cdef class ToneGenerator:
    """Plays a tone spec as int16 frames, phase-continuous from one call to the next.

    `segments` is a sequence of (freqs, level_dbm0, on_ms, off_ms); up to 4 segments of up
    to 4 frequencies each. With `repeat` the cadence loops forever, otherwise the generator
    is `done` after the last segment's off period and then yields silence.
    """

    cdef ToneState st

    def __init__(self, segments, bint repeat=False, int sample_rate=8000):
        cdef ToneSegment segs[4]
        cdef int i = 0
        if not 1 <= len(segments) <= TONE_MAX_SEGMENTS:
            raise ValueError(f"a tone has 1..{TONE_MAX_SEGMENTS} segments")
        for freqs, level, on_ms, off_ms in segments:
            if not 1 <= len(freqs) <= TONE_MAX_FREQS or on_ms <= 0 or off_ms < 0:
                raise ValueError(f"bad tone segment {(freqs, level, on_ms, off_ms)!r}")
            segs[i].nfreq = len(freqs)
            for f, freq in enumerate(freqs):
                segs[i].freq[f] = freq
                segs[i].amp[f] = tone_amplitude(level)
            segs[i].on = on_ms * sample_rate // 1000
            segs[i].off = off_ms * sample_rate // 1000
            i += 1
        tone_init(&self.st, segs, i, repeat, sample_rate)

    @classmethod
    def named(cls, str zone, str name, int sample_rate=8000):
        """The generator for TONES[zone][name] (KeyError names the unknown zone or tone)."""
        segments, repeat = TONES[zone][name]
        return cls(segments, repeat, sample_rate)

    @classmethod
    def dtmf(cls, str digit, int on_ms=100, int off_ms=0, double level_dbm0=-10.0,
             int sample_rate=8000):
        """One DTMF digit ("0"-"9", "*", "#", "A"-"D") for in-band sending."""
        self = cls.__new__(cls)
        if len(digit) != 1 or tone_init_dtmf(&(<ToneGenerator>self).st, ord(digit[0]),
                                             level_dbm0, on_ms, off_ms, sample_rate) < 0:
            raise ValueError(f"not a DTMF digit: {digit!r}")
        return self

    def generate(self, Py_ssize_t n):
        """The next n samples as a numpy int16 array (silence once the tone is done)."""
        out = np.empty(n, dtype=np.int16)
        cdef int16_t[::1] view = out
        if n > 0:
            with nogil:
                tone_generate(&self.st, &view[0], n)
        return out

    @property
    def done(self) -> bool:
        """True once a non-repeating tone has played all its segments."""
        return self.st.done
