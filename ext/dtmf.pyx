# C API for the engine (one DtmfState per stream, embedded by value: no allocation, no GIL):
#   ctypedef struct DtmfEvent: char digit; int64_t start; int64_t duration  (in samples)
#   cdef int dtmf_init(DtmfState* st, int sample_rate) noexcept nogil
#       -> 0, or -1 for a rate outside 8000..16000
#   cdef int dtmf_process(DtmfState* st, const int16_t* pcm, Py_ssize_t n, DtmfEvent* out)
#       noexcept nogil -> number of events written to out; out must hold dtmf_events_for(n)
#   cdef int dtmf_flush(DtmfState* st, DtmfEvent* out) noexcept nogil -> 0 or 1 event
#   cdef inline Py_ssize_t dtmf_events_for(Py_ssize_t n) noexcept nogil
# Offsets count samples from the first sample ever fed to this state.
"""In-band DTMF detector (Goertzel), ITU-T Q.23 frequencies, Q.24 acceptance limits.

How this works. Samples are cut into half-blocks of M = 52 samples (6.5 ms at 8 kHz). For each
half-block one Goertzel pass gives the complex DFT value y at each of the 8 DTMF frequencies.
Every half-block the detector judges the window made of the last two halves (N = 104
samples, 13 ms, bins 77 Hz wide), so windows overlap by half:
  * power P = |y0 + e^(-jwM) y1|^2 is the N-point DFT at the nominal frequency; it picks the
    strongest row and column, each of which must dominate its group by 6 dB;
  * the two candidate tones are separated in each half (a 2x2 solve removes each one's
    leak into the other's bin); the phase advance of a tone from one half to the next
    measures its true frequency, which is how a 2.5 % deviation limit sits between the
    1.5 % that must pass and the 3.5 % that must not; its power is then corrected for the
    off-bin loss so that levels and purity do not depend on the deviation;
  * then: level of each tone >= -40 dBm0; twist (low group up to 8 dB above the high group,
    "normal"; high group up to 4 dB above, "reverse"; 1 dB margin); purity (the two tones hold most of
    the window energy); balance (both halves carry each tone, which rejects a window only
    partly covered by a short burst); second harmonics well below the fundamentals
    (talk-off: voices and instruments have them, DTMF does not).
A digit starts after 3 consecutive hit windows (2 full blocks) and ends after 5 consecutive
misses; it is reported once, at its end, with start and duration (in samples). A window
(13 ms) that overlaps a gap in the tone misses, so a gap of g ms costs about (g + 13) / 6.5
windows: a dropout of 10 ms inside a digit (Q.24 asks receivers to bridge it) costs at
most 4 and is bridged, a 40 ms pause between two digits costs 7 or more and separates them. A 40 ms tone
always spans 4 full windows; a 23 ms one spans at most 2 and its partly covered neighbours
fail the balance check, so it never makes 3 in a row.
Levels: 0 dBm0 is a sine of amplitude 22 702 (3.17 dB below 16-bit full scale, G.711 μ-law).
"""

from libc.math cimport atan2, cos, fabs, pi, sin, sqrt
from libc.stdint cimport int16_t, int64_t
from libc.string cimport memcpy, memset

cdef enum:
    DTMF_NTONES = 8
    DTMF_HITS_ON = 3               # 3 overlapping windows = 4 half-blocks = 2 full blocks
    DTMF_MISSES_OFF = 5            # a 10 ms dropout spoils <= 4 windows, a 40 ms pause >= 7
    DTMF_MAX_HALF = 104

ctypedef struct DtmfEvent:
    char digit
    int64_t start
    int64_t duration

ctypedef struct DtmfState:
    int rate
    int half                       # M, samples per half-block
    int fill                       # samples already in the current half-block
    int have_prev                  # y_prev is valid
    int64_t pos                    # absolute index of the next sample
    float coef[8]                  # 2 cos(w) of the Goertzel recurrence
    float coef2[8]                 # 2 cos(2w): the same taken 2 samples at a time
    double energy                  # sum of x^2 over the current half-block (exact)
    double prev_energy
    double quiet                   # below this energy a half-block cannot be in a hit window
    double complex to_dft[8]       # e^(-jw) and e^(-jw(M-1)): recurrence state -> DFT value
    double complex rot1[8]
    double complex shift_m[8]      # e^(-jwM), to join two halves into one window
    double complex adv_m[8]        # e^(+jwM), expected advance of a tone over one half
    double complex leak[8][8]      # G(w_j - w_k) = sum_{n<M} e^(j(w_j - w_k)n): j leaks into k
    double complex y_prev[8]       # DFT values of the previous half-block
    float win[2 * DTMF_MAX_HALF]   # samples of the previous and current half-blocks
    double p_min                   # tone power at the minimum level, over one window
    char digit                     # digit being held, or 0
    char cand                      # digit of the current run of hit windows, or 0
    int hits
    int misses
    int64_t start
    int64_t last_end

cdef const char* _DTMF_KEYS = b"123A456B789C*0#D"
cdef double _DTMF_FREQS[8]
_DTMF_FREQS[:] = [697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0]

cdef double DBM0_AMPLITUDE = 22702.0
cdef double _DOMINANCE = 4.0                   # 6 dB over any other tone of its group
cdef double _MAX_DEVIATION = 0.025
# Twist limits sit 1 dB beyond the 8 dB / 4 dB that must pass: the estimate wobbles ~0.5 dB.
cdef double _NORMAL_TWIST = 7.943282           # 9 dB
cdef double _REVERSE_TWIST = 3.162278          # 5 dB
cdef double _MIN_LEVEL_DBM0 = -40.0
cdef double _PURITY = 0.8                      # the two tones hold 80 % of the energy
cdef double _BALANCE = 0.7                      # power of one half vs the other
cdef double _HARMONIC = 0.2                    # 2nd harmonics 7 dB under the tones


cdef inline Py_ssize_t dtmf_events_for(Py_ssize_t n) noexcept nogil:
    # Each event needs at least 3 hit windows, i.e. 156+ samples.
    return n // 128 + 2


cdef double complex _leak_gain(double dw, int m) noexcept nogil:
    """G(dw) = sum_{n<m} e^(j dw n) = e^(j dw (m-1)/2) sin(dw m / 2) / sin(dw / 2)."""
    if fabs(dw) < 1e-12:
        return m
    cdef double mag = sin(dw * m / 2.0) / sin(dw / 2.0)
    cdef double ph = dw * (m - 1) / 2.0
    return mag * cos(ph) + 1j * mag * sin(ph)


cdef double _quiet_energy(DtmfState* st) noexcept nogil:
    """Half-block energy below which no window holding that half can be a hit.

    Let a half-block have energy E = sum x^2. Each of its DFT values obeys |y_k|^2 <= M E
    (Cauchy-Schwarz: |e^(-jwn)| = 1). _unmix gives a_r = (M y_r - G y_c) / (M^2 - |G|^2) with
    |G| = |G(w_c - w_r)| <= G_max, so p = |a|^2 <= M E / (M - G_max)^2 for either tone. A hit
    needs for each tone, in _tone_power, balance (the other half's p <= p / _BALANCE) and a
    level 2 M^2 (p0 + p1) / gain >= p_min, where gain >= g_min, the off-bin loss at the largest
    deviation that passes (2.5 % of 1633 Hz). So a hit needs
        p_min <= 2 M^3 E (1 + 1 / _BALANCE) / ((M - G_max)^2 g_min),
    and below the bound returned here (that limit / 4: 6 dB of margin over float rounding,
    ~1e-6) every window holding the half is rejected. With y = 0 in its place they are still
    rejected (balance, or a level of 0), so skipping its Goertzel changes no decision.
    """
    cdef int r, c, m = st.half
    cdef double g, g_max = 0.0
    for r in range(4):
        for c in range(4, 8):
            g = sqrt(_abs2(st.leak[r][c]))
            if g > g_max:
                g_max = g
    cdef double dw = 2.0 * pi * _MAX_DEVIATION * _DTMF_FREQS[7] / st.rate
    cdef double g_min = (sin(dw * m / 2.0) / (m * sin(dw / 2.0))) ** 2
    return 0.25 * st.p_min * (m - g_max) ** 2 * g_min / (2.0 * m * m * m * (1.0 + 1.0 / _BALANCE))


cdef int dtmf_init(DtmfState* st, int sample_rate) noexcept nogil:
    if sample_rate < 8000 or sample_rate > 16000:
        return -1
    cdef int j, k, m = (52 * sample_rate) // 8000
    cdef double w[8]
    cdef double a_min = DBM0_AMPLITUDE * 10.0 ** (_MIN_LEVEL_DBM0 / 20.0)
    st.rate = sample_rate
    st.half = m
    for k in range(DTMF_NTONES):
        w[k] = 2.0 * pi * _DTMF_FREQS[k] / sample_rate
        st.coef[k] = <float>(2.0 * cos(w[k]))
        st.coef2[k] = <float>(2.0 * cos(2.0 * w[k]))
        st.to_dft[k] = cos(w[k]) - 1j * sin(w[k])
        st.rot1[k] = cos(w[k] * (m - 1)) - 1j * sin(w[k] * (m - 1))
        st.shift_m[k] = cos(w[k] * m) - 1j * sin(w[k] * m)
        st.adv_m[k] = cos(w[k] * m) + 1j * sin(w[k] * m)
    for j in range(DTMF_NTONES):
        for k in range(DTMF_NTONES):
            st.leak[j][k] = _leak_gain(w[j] - w[k], m)
    st.p_min = (a_min * m) ** 2                  # (A N / 2)^2 with N = 2M
    st.quiet = _quiet_energy(st)
    st.pos = 0
    st.have_prev = 0
    _dtmf_reset_half(st)
    _dtmf_reset_tracking(st)
    return 0


cdef inline void _dtmf_reset_half(DtmfState* st) noexcept nogil:
    st.fill = 0


cdef inline void _dtmf_reset_tracking(DtmfState* st) noexcept nogil:
    st.digit = 0
    st.cand = 0
    st.hits = 0
    st.misses = 0


cdef inline void _dtmf_run(DtmfState* st, const int16_t* pcm, Py_ssize_t n) noexcept nogil:
    # Only store the samples: the Goertzel runs over the whole half-block once it is complete
    # (_dtmf_goertzel), where its dependency chain can be broken.
    cdef float* w = &st.win[st.half + st.fill]
    cdef Py_ssize_t i
    for i in range(n):
        w[i] = pcm[i]


cdef int dtmf_process(DtmfState* st, const int16_t* pcm, Py_ssize_t n,
                      DtmfEvent* out) noexcept nogil:
    cdef Py_ssize_t i = 0, take
    cdef int nev = 0
    while i < n:
        take = min(n - i, st.half - st.fill)
        _dtmf_run(st, pcm + i, take)
        st.fill += take
        st.pos += take
        i += take
        if st.fill == st.half:
            nev += _dtmf_half_done(st, out + nev)
    return nev


cdef void _goertzel2(const float* x, int m, const float* coef2, float* u) noexcept nogil:
    """The two-step recurrence u[n] = c2 u[n-2] - u[n-4] + x[n] for 8 tones over x[0..m), m even;
    u gets u[m-1], u[m-2], u[m-3], u[m-4] (8 each). Two chains (a: odd n, b: even n), each
    in the one-step shape the compiler keeps in vector registers."""
    cdef float a1[8]
    cdef float a2[8]
    cdef float b1[8]
    cdef float b2[8]
    cdef float c2[8]
    cdef float xa, xb, t
    cdef int n, k
    for k in range(8):
        c2[k] = coef2[k]
        a1[k] = 0.0
        a2[k] = 0.0
        b1[k] = 0.0
        b2[k] = 0.0
    for n in range(0, m, 2):
        xb = x[n]
        xa = x[n + 1]
        for k in range(8):
            t = c2[k] * b1[k] + (xb - b2[k])
            b2[k] = b1[k]
            b1[k] = t
        for k in range(8):
            t = c2[k] * a1[k] + (xa - a2[k])
            a2[k] = a1[k]
            a1[k] = t
    for k in range(8):
        u[k] = a1[k]
        u[8 + k] = b1[k]
        u[16 + k] = a2[k]
        u[24 + k] = b2[k]


# Called through a pointer: GCC 12 does not vectorise _goertzel2 once inlined into
# dtmf_process (measured: scalar code, 2x slower), and Cython cannot mark it noinline.
cdef void (*_goertzel2_call)(const float*, int, const float*, float*) noexcept nogil
_goertzel2_call = _goertzel2


cdef void _dtmf_goertzel(DtmfState* st, double complex* y) noexcept nogil:
    """DFT values y[k] = sum_n x[n] e^(-jw_k n) of the current half-block, and its energy.

    The Goertzel s[n] = c s[n-1] - s[n-2] + x[n] (c = 2cos(w)) is one mul+add chain per tone,
    a whole latency per sample. Run it two steps at a time instead: 1/(1 - c z^-1 + z^-2) =
    (1 + c z^-1 + z^-2) / (1 - c2 z^-2 + z^-4) with c2 = 2cos(2w) = c^2 - 2, so
        u[n] = c2 u[n-2] - u[n-4] + x[n],   s[n] = u[n] + c u[n-1] + u[n-2]:
    even and odd samples make two independent chains that overlap, each step the same
    mul+add as before, and the numerator is applied once, to the last 4 u. A leading zero
    pads an odd M (it leaves s at 0). Same s1 = s[M-1], s2 = s[M-2] as the one-step form to
    float rounding (against an exact DFT its error is 2-4x smaller).
    """
    cdef float buf[DTMF_MAX_HALF + 1]
    cdef float u[4][8]                  # u[M-1] .. u[M-4]
    cdef double e[4]
    cdef const float* x = &st.win[st.half]
    cdef float s1, s2
    cdef int m = st.half, n, k
    # Energy in double: every partial sum is an integer < 2^53, so exact in any order.
    memset(e, 0, sizeof(e))
    for n in range(0, m & ~3, 4):
        for k in range(4):
            e[k] += <double>x[n + k] * x[n + k]
    for n in range(m & ~3, m):
        e[0] += <double>x[n] * x[n]
    st.energy = (e[0] + e[1]) + (e[2] + e[3])
    if st.energy < st.quiet:
        memset(y, 0, DTMF_NTONES * sizeof(double complex))      # see _quiet_energy
        return
    if m & 1:
        buf[0] = 0.0
        memcpy(&buf[1], x, m * sizeof(float))
        x = buf
        m += 1
    _goertzel2_call(x, m, st.coef2, &u[0][0])
    for k in range(DTMF_NTONES):
        s1 = (u[0][k] + st.coef[k] * u[1][k]) + u[2][k]
        s2 = (u[1][k] + st.coef[k] * u[2][k]) + u[3][k]
        # Goertzel: sum_n x[n] e^(-jwn) = e^(-jw(M-1)) (s1 - e^(-jw) s2)
        y[k] = st.rot1[k] * (s1 - st.to_dft[k] * s2)


cdef int _dtmf_half_done(DtmfState* st, DtmfEvent* out) noexcept nogil:
    """Judge the window ending here, then make the current half-block the previous one."""
    cdef double complex y[8]
    cdef int nev = 0
    cdef char d
    _dtmf_goertzel(st, y)
    if st.have_prev:
        d = _dtmf_classify(st, y)
        nev = _dtmf_track(st, d, out)
    memcpy(st.y_prev, y, sizeof(y))
    memcpy(st.win, &st.win[st.half], st.half * sizeof(float))
    st.prev_energy = st.energy
    st.have_prev = 1
    _dtmf_reset_half(st)
    return nev


cdef inline double _abs2(double complex z) noexcept nogil:
    return z.real * z.real + z.imag * z.imag


cdef inline int _best(const double* p, int first) noexcept nogil:
    """Index of the strongest of the 4 tones from `first`, or -1 if it is not dominant."""
    cdef int k, best = first
    for k in range(first, first + 4):
        if p[k] > p[best]:
            best = k
    for k in range(first, first + 4):
        if k != best and p[best] < _DOMINANCE * p[k]:
            return -1
    return best


cdef void _unmix(DtmfState* st, int r, int c, const double complex* y,
                 double complex* ar, double complex* ac) noexcept nogil:
    """Complex amplitudes of tones r and c in one half-block, each freed of the other's leak.

    y_r = a_r G(0) + a_c G(w_c - w_r) and y_c = a_r G(w_r - w_c) + a_c G(0): a 2x2 solve.
    Without it the rectangular half-block lets up to 13 % of the other group's tone into a
    bin, which skews the phase, balance and twist measures.
    """
    cdef double complex g = st.leak[r][r], grc = st.leak[c][r], gcr = st.leak[r][c]
    cdef double complex det = g * g - grc * gcr
    ar[0] = (g * y[r] - grc * y[c]) / det
    ac[0] = (g * y[c] - gcr * y[r]) / det


cdef double _tone_power(DtmfState* st, int k, double complex a0, double complex a1) noexcept nogil:
    """Window power (A N / 2)^2 of tone k from its two half amplitudes, or -1 if rejected.

    Rejected when its frequency is off by more than the tolerance (measured by the phase
    advance from one half to the next, (w' - w) M), or when one half holds much less of it
    than the other (a window only partly covered by the tone).
    """
    cdef double p0 = _abs2(a0), p1 = _abs2(a1)
    if p0 < _BALANCE * p1 or p1 < _BALANCE * p0:
        return -1.0
    cdef double complex z = a1 * a0.conjugate() * st.adv_m[k].conjugate()
    cdef double dw = atan2(z.imag, z.real) / st.half
    if dw < 0:
        dw = -dw
    if dw * st.rate / (2.0 * pi) > _MAX_DEVIATION * _DTMF_FREQS[k]:
        return -1.0
    cdef double gain = 1.0
    if dw > 1e-9:
        gain = (sin(dw * st.half / 2.0) / (st.half * sin(dw / 2.0))) ** 2
    return 2.0 * st.half * st.half * (p0 + p1) / gain   # a = A/2 per half, P = (A M)^2


cdef double _goertzel_power(const float* x, int n, double freq, int rate) noexcept nogil:
    cdef double c = 2.0 * cos(2.0 * pi * freq / rate)
    cdef double s0, s1 = 0.0, s2 = 0.0
    cdef int i
    for i in range(n):
        s0 = x[i] + c * s1 - s2
        s2 = s1
        s1 = s0
    return s1 * s1 + s2 * s2 - c * s1 * s2


cdef bint _harmonics_low(DtmfState* st, int r, int c, const double* p) noexcept nogil:
    """Second harmonics of both tones well below them (voices and instruments have them).

    A row's harmonic can sit within 60 Hz of the adjacent column (2 x 697 = 1394 vs 1336),
    where that column's own tone leaks into it, so a row is only checked when its harmonic
    is at least 1.5 bins from the column actually present.
    """
    cdef int n = 2 * st.half
    cdef double f2 = 2 * _DTMF_FREQS[r]
    if _goertzel_power(st.win, n, 2 * _DTMF_FREQS[c], st.rate) > _HARMONIC * p[c]:
        return False
    if fabs(f2 - _DTMF_FREQS[c]) * n / st.rate < 1.5:
        return True
    return _goertzel_power(st.win, n, f2, st.rate) <= _HARMONIC * p[r]


cdef char _dtmf_classify(DtmfState* st, const double complex* y) noexcept nogil:
    """The digit whose two tones pass every check over the last window, or 0."""
    cdef double p[8]
    cdef double complex a0r, a0c, a1r, a1c
    cdef double pr, pc
    cdef double e_half_n = (st.energy + st.prev_energy) * st.half   # E N / 2
    cdef int k, r, c
    if e_half_n < st.p_min:
        return 0
    for k in range(DTMF_NTONES):
        p[k] = _abs2(st.y_prev[k] + st.shift_m[k] * y[k])
    r = _best(p, 0)
    c = _best(p, 4)
    if r < 0 or c < 0:
        return 0
    _unmix(st, r, c, st.y_prev, &a0r, &a0c)
    _unmix(st, r, c, y, &a1r, &a1c)
    pr = _tone_power(st, r, a0r, a1r)
    pc = _tone_power(st, c, a0c, a1c)
    if pr < st.p_min or pc < st.p_min:          # also catches -1: rejected tone
        return 0
    if pr > _NORMAL_TWIST * pc or pc > _REVERSE_TWIST * pr:
        return 0
    if pr + pc < _PURITY * e_half_n:
        return 0
    if not _harmonics_low(st, r, c, p):
        return 0
    return _DTMF_KEYS[r * 4 + (c - 4)]


cdef inline int _dtmf_emit(DtmfState* st, DtmfEvent* out) noexcept nogil:
    out.digit = st.digit
    out.start = st.start
    out.duration = st.last_end - st.start
    st.digit = 0
    return 1


cdef int _dtmf_track(DtmfState* st, char d, DtmfEvent* out) noexcept nogil:
    """Hit/miss bookkeeping for the window that ends at st.pos; returns events written."""
    cdef int nev = 0
    if d != 0 and d == st.cand:
        st.hits += 1
    else:
        st.cand = d
        st.hits = 1 if d != 0 else 0
    if st.digit != 0:
        if d == st.digit:
            st.misses = 0
            st.last_end = st.pos
        else:
            st.misses += 1
            if st.misses >= DTMF_MISSES_OFF:
                nev = _dtmf_emit(st, out)
    if st.digit == 0 and st.cand != 0 and st.hits >= DTMF_HITS_ON:
        st.digit = st.cand
        st.start = st.pos - 2 * st.half - (st.hits - 1) * st.half
        st.last_end = st.pos
        st.misses = 0
    return nev


cdef int dtmf_flush(DtmfState* st, DtmfEvent* out) noexcept nogil:
    cdef int nev = 0
    if st.digit != 0:
        nev = _dtmf_emit(st, out)
    _dtmf_reset_tracking(st)
    return nev


cdef class DtmfDetector:
    """Goertzel DTMF detector for one stream of int16 samples.

    `feed()` takes chunks of any size and returns the digits that ended inside them as
    (digit, start, duration): start counts samples from the first sample fed, duration is
    in samples. `flush()` ends a digit still being held.
    """

    cdef DtmfState st

    def __init__(self, int sample_rate=8000):
        if dtmf_init(&self.st, sample_rate) < 0:
            raise ValueError(f"sample_rate must be 8000..16000, not {sample_rate}")

    def feed(self, const int16_t[::1] samples) -> list:
        """Process samples; return the digits that ended, in order."""
        cdef DtmfEvent ev[34]                   # dtmf_events_for(4096)
        cdef Py_ssize_t i = 0, n = samples.shape[0], take
        cdef int nev
        result = []
        while i < n:
            take = min(n - i, 4096)
            with nogil:
                nev = dtmf_process(&self.st, &samples[i], take, ev)
            result.extend(_dtmf_tuples(ev, nev))
            i += take
        return result

    def flush(self) -> list:
        """End a digit still held (e.g. at the end of a stream); return it."""
        cdef DtmfEvent ev[1]
        return _dtmf_tuples(ev, dtmf_flush(&self.st, ev))

    @property
    def position(self) -> int:
        """Number of samples fed so far."""
        return self.st.pos


cdef list _dtmf_tuples(DtmfEvent* ev, int n):
    return [(chr(ev[j].digit), ev[j].start, ev[j].duration) for j in range(n)]

