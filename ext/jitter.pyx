# C API for the engine (one JitterState per stream, ~63 KB: malloc it; no GIL):
#   cdef int jb_init(JitterState* jb, int min_ms, int max_ms, int ptime_ms, bint alaw)
#       noexcept nogil -> 0, or -1 for bad sizes (ptime 10..60 ms, max <= 1000 ms, frame <= 480)
#   cdef void jb_put(JitterState* jb, uint16_t seq, uint32_t ts, const uint8_t* payload,
#       Py_ssize_t n, double arrival) noexcept nogil          (arrival in seconds)
#   cdef int jb_get(JitterState* jb, double now, int16_t* out) noexcept nogil
#       -> 1 with jb.frame samples in out (real or concealed), 0 before playout starts
# Counters: JitterState fields received/late/lost/duplicates/concealed/skipped/stretched;
# jitter_ms and target_ms give the estimate and the playout delay it drives.
"""Adaptive jitter buffer for one G.711 stream, on the 20 ms media clock.

How this works. `put` decodes each packet with G.711 (or, `linear`, copies int16 PCM) at once and files the PCM frame in a
ring slot chosen by its extended sequence number (RFC 3550 A.1 style: the 16-bit number is
extended against the highest seen). `get`, called once per ptime, plays the next sequence
number. Playout starts when the first packet has waited the target delay. Each arrival also
updates the interarrival jitter estimate of RFC 3550 §6.4.1 / A.8
(J += (|D(i-1,i)| - J) / 16), and the target delay is 3 J + one ptime, rounded up to whole
frames and clamped to [min_ms, max_ms]. What the buffer really holds is measured at arrival:
the lead of a packet is how many frames before its turn it came; the smallest lead over
each window of 16 arrivals is the margin.
  * margin below target - 1 frames: stretch, i.e. play one concealed frame without
    advancing (the delay grows by a frame); margin above target: skip the frame due
    (the delay shrinks by a frame); at most one of either per 4 ticks.
  * next frame present: play it.
  * next frame absent but later ones queued: it is lost; conceal and move on.
  * nothing queued (underrun): conceal and wait for it; if it then arrives it plays, the
    delay having grown by the wait. If a later one arrives instead,
    the frames waited for are counted lost and skipped, so the delay does not creep up.
  * packets older than the playout point are late, repeats are duplicates: both dropped.
  * a jump beyond the ring ahead, or more than 100 back, is a restarted sender: start over.
Concealment repeats the last good frame with a linear fade to zero over 3 frames (60 ms),
then plays silence.
"""

from libc.math cimport ceil
from libc.stdint cimport int16_t, int64_t, uint8_t, uint16_t, uint32_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

cdef enum:
    JB_SLOTS = 64                  # ring size, a power of two
    JB_MAX_FRAME = 480             # 60 ms at 8 kHz
    JB_FADE_FRAMES = 3
    JB_ADJUST_EVERY = 4            # ticks between two stretches or skips
    JB_WINDOW = 16                 # arrivals per lead measurement
    JB_NO_MARGIN = -1000           # no full window measured yet
    JB_MAX_MISORDER = 100          # further back than this is a restart (RFC 3550 A.1)

ctypedef struct JitterState:
    int frame                      # samples per frame
    int ptime_ms
    int min_ms
    int max_ms
    bint alaw
    bint started
    bint have_any
    int64_t next                   # extended seq to play next
    int64_t highest                # highest extended seq received
    int count                      # valid slots
    int stalled                    # underrun ticks spent waiting for `next`
    int conceal_run                # consecutive concealed frames
    int since_adjust               # ticks since the last stretch or skip
    int win_min                    # smallest lead (frames) of arrivals in this window
    int win_count
    int margin                     # smallest lead over the last full window
    double first_arrival
    double transit                 # RFC 3550 A.8 state, in timestamp units
    double jitter                  # in timestamp units
    double target_ms
    int64_t received, late, lost, duplicates, concealed, skipped, stretched
    bint slot_valid[64]
    int64_t slot_seq[64]
    int16_t slot[64][480]
    int16_t last[480]
    bint linear                    # payloads are int16 PCM (a 16 kHz conference member)


cdef int jb_init(JitterState* jb, int min_ms, int max_ms, int ptime_ms, bint alaw) noexcept nogil:
    if not (10 <= ptime_ms <= 60 and ptime_ms <= min_ms <= max_ms <= 1000):
        return -1
    memset(jb, 0, sizeof(JitterState))
    jb.frame = ptime_ms * 8
    jb.ptime_ms = ptime_ms
    jb.min_ms = min_ms
    jb.max_ms = max_ms
    jb.alaw = alaw
    jb.target_ms = min_ms
    jb.since_adjust = JB_ADJUST_EVERY
    jb.margin = JB_NO_MARGIN
    jb.win_min = JB_SLOTS
    return 0


cdef inline int64_t _jb_extend(JitterState* jb, uint16_t seq) noexcept nogil:
    return jb.highest + <int16_t>(seq - <uint16_t>(jb.highest & 0xFFFF))


cdef void _jb_update_jitter(JitterState* jb, uint32_t ts, double arrival) noexcept nogil:
    cdef double transit = arrival * 8000.0 - ts
    cdef double d
    if jb.received > 1:
        d = transit - jb.transit
        if d < 0:
            d = -d
        jb.jitter += (d - jb.jitter) / 16.0
    jb.transit = transit
    cdef int frames = <int>ceil(3.0 * jb.jitter / 8.0 / jb.ptime_ms - 1e-6) + 1
    jb.target_ms = min(max(<double>frames * jb.ptime_ms, <double>jb.min_ms), <double>jb.max_ms)


cdef void _jb_clear(JitterState* jb) noexcept nogil:
    cdef int i
    for i in range(JB_SLOTS):
        jb.slot_valid[i] = False
    jb.count = 0
    jb.stalled = 0


cdef void jb_put(JitterState* jb, uint16_t seq, uint32_t ts, const uint8_t* payload,
                 Py_ssize_t n, double arrival) noexcept nogil:
    cdef int64_t ext
    jb.received += 1
    if not jb.have_any:
        jb.have_any = True
        jb.highest = jb.next = seq
        jb.first_arrival = arrival
    ext = _jb_extend(jb, seq)
    _jb_update_jitter(jb, ts, arrival)
    if ext >= jb.next + JB_SLOTS or ext < jb.next - JB_MAX_MISORDER:
        _jb_clear(jb)                              # a jump: the sender restarted its stream
        jb.highest = jb.next = ext
    if ext > jb.highest:
        jb.highest = ext
    if jb.started:
        _jb_measure_lead(jb, ext - jb.next)
    if ext < jb.next:
        if jb.started:
            jb.late += 1
            return
        jb.next = ext                              # reordered before playout began
    if jb.stalled and ext > jb.next:
        _jb_skip_stalled(jb, ext)
    jb.stalled = 0
    _jb_store(jb, ext, payload, n)


cdef void _jb_measure_lead(JitterState* jb, int64_t lead) noexcept nogil:
    """Track how early packets arrive (frames before their turn): the real safety margin."""
    jb.win_min = <int>min(<int64_t>jb.win_min, lead)
    jb.win_count += 1
    if jb.win_count == JB_WINDOW:
        jb.margin = jb.win_min
        jb.win_min = JB_SLOTS
        jb.win_count = 0


cdef void _jb_skip_stalled(JitterState* jb, int64_t ext) noexcept nogil:
    """Frames concealed while waiting were lost: skip them, so the delay does not grow."""
    cdef int64_t gap = min(ext - jb.next, <int64_t>jb.stalled)
    jb.lost += gap
    jb.next += gap


cdef void _jb_store(JitterState* jb, int64_t ext, const uint8_t* payload, Py_ssize_t n) noexcept nogil:
    cdef int i = ext & (JB_SLOTS - 1)
    if jb.slot_valid[i] and jb.slot_seq[i] == ext:
        jb.duplicates += 1
        return
    if jb.linear:                                  # n bytes of native int16 samples
        n = min(n // 2, <Py_ssize_t>jb.frame)
        memcpy(jb.slot[i], payload, n * sizeof(int16_t))
    elif jb.alaw:
        n = min(n, <Py_ssize_t>jb.frame)
        alaw_decode_c(payload, jb.slot[i], n)
    else:
        n = min(n, <Py_ssize_t>jb.frame)
        ulaw_decode_c(payload, jb.slot[i], n)
    if n < jb.frame:
        memset(&jb.slot[i][n], 0, (jb.frame - n) * sizeof(int16_t))
    jb.slot_valid[i] = True
    jb.slot_seq[i] = ext
    jb.count += 1


cdef void _jb_conceal(JitterState* jb, int16_t* out) noexcept nogil:
    """The last good frame faded linearly to zero over JB_FADE_FRAMES frames, then silence."""
    cdef int k, n = jb.frame, run = jb.conceal_run
    cdef double span = JB_FADE_FRAMES * n
    jb.concealed += 1
    jb.conceal_run += 1
    if run >= JB_FADE_FRAMES:
        memset(out, 0, n * sizeof(int16_t))
        return
    for k in range(n):
        out[k] = <int16_t>(jb.last[k] * (1.0 - (run * n + k + 1) / span))


cdef bint _jb_take(JitterState* jb, int16_t* out) noexcept nogil:
    """Move frame `next` to out if it is here; always advances past it when present."""
    cdef int i = jb.next & (JB_SLOTS - 1)
    if not (jb.slot_valid[i] and jb.slot_seq[i] == jb.next):
        return False
    if out != NULL:
        memcpy(out, jb.slot[i], jb.frame * sizeof(int16_t))
    jb.slot_valid[i] = False
    jb.count -= 1
    jb.next += 1
    return True


cdef int _jb_adjust(JitterState* jb) noexcept nogil:
    """+1 to stretch (packets arrive with too little lead), -1 to skip (too much), else 0.

    A packet arriving `lead` frames before its turn waited about lead * ptime; the target
    wants the earliest of them to wait at least target - 1 frames, and skips only when even
    the least early one had more than one frame to spare.
    """
    cdef int target = <int>(jb.target_ms / jb.ptime_ms)
    jb.since_adjust += 1
    if jb.margin == JB_NO_MARGIN or jb.since_adjust < JB_ADJUST_EVERY:
        return 0
    if jb.margin < target - 1:
        jb.margin += 1
        jb.since_adjust = 0
        return 1
    if jb.margin > target and jb.highest > jb.next:
        jb.margin -= 1
        jb.since_adjust = 0
        return -1
    return 0


cdef int jb_get(JitterState* jb, double now, int16_t* out) noexcept nogil:
    if not jb.started:
        if not jb.have_any or now < jb.first_arrival + jb.target_ms / 1000.0:
            return 0
        jb.started = True
    cdef int adjust = _jb_adjust(jb)
    if adjust > 0:                                 # stretch: play a concealed frame, wait
        jb.stretched += 1
        _jb_conceal(jb, out)
        return 1
    if adjust < 0:                                 # skip: drop the frame due now
        jb.skipped += 1
        if not _jb_take(jb, NULL):
            jb.next += 1
    if _jb_take(jb, out):
        memcpy(jb.last, out, jb.frame * sizeof(int16_t))
        jb.conceal_run = 0
        return 1
    if jb.count > 0:
        jb.lost += 1                               # a later frame is here: this one is lost
        jb.next += 1
    else:
        jb.stalled += 1                            # underrun: wait, it may just be late
    _jb_conceal(jb, out)
    return 1


cdef class JitterBuffer:
    """Reorders, de-duplicates and paces one G.711 stream; get() yields PCM frames.

    put(seq, ts, payload, arrival_time) files a packet (times in seconds, any clock shared
    with get); get(now), once per ptime, returns an int16 frame (ptime_ms * 8 samples,
    concealed if the packet is missing) or None before playout has started.
    """

    cdef JitterState* jb

    def __cinit__(self, int min_ms=20, int max_ms=200, int ptime=20, str law="ulaw"):
        if law not in ("ulaw", "alaw"):
            raise ValueError(f"law must be 'ulaw' or 'alaw', not {law!r}")
        self.jb = <JitterState*>malloc(sizeof(JitterState))
        if self.jb == NULL:
            raise MemoryError()
        if jb_init(self.jb, min_ms, max_ms, ptime, law == "alaw") < 0:
            raise ValueError("need 10 <= ptime <= 60 and ptime <= min_ms <= max_ms <= 1000")

    def __dealloc__(self):
        free(self.jb)

    def put(self, uint16_t seq, uint32_t ts, const uint8_t[::1] payload, double arrival_time):
        """File one packet's payload (G.711 bytes) by its sequence number."""
        cdef Py_ssize_t n = payload.shape[0]
        with nogil:
            jb_put(self.jb, seq, ts, &payload[0] if n else NULL, n, arrival_time)

    def get(self, double now):
        """The frame to play now (numpy int16), or None before playout starts."""
        out = np.empty(self.jb.frame, dtype=np.int16)
        cdef int16_t[::1] view = out
        cdef int got
        with nogil:
            got = jb_get(self.jb, now, &view[0])
        return out if got else None

    def stats(self) -> dict:
        """Counters, the jitter estimate and the current target playout delay (ms)."""
        j = self.jb
        return {"received": j.received, "late": j.late, "lost": j.lost,
                "duplicates": j.duplicates, "concealed": j.concealed, "skipped": j.skipped,
                "stretched": j.stretched,
                "jitter_ms": j.jitter / 8.0, "target_ms": j.target_ms}
