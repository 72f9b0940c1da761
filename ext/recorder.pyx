# Recorders for the engine (included by engine.pyx; all names start with eng_).
#
# How this works: a recorder is a ring of int16 samples written by the engine thread
# (under the engine mutex) and drained by a writer thread in Python, which copies the
# samples out under the same mutex and writes the WAV file outside it, so file I/O never
# blocks the media loop. The engine marks a recorder FINISHING when it is stopped or
# reaches its maximum length; the writer then drains the rest, finalises the WAV header
# and frees the slot (state FREE). A ring overflow (writer too slow) is counted.

from libc.stdint cimport int16_t, int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

cdef enum EngRecState:
    ENG_REC_FREE = 0
    ENG_REC_ACTIVE = 1
    ENG_REC_FINISHING = 2

cdef enum:
    ENG_REC_RING = 8000 * 4    # 4 s of audio between two drains (drains run every 100 ms)


cdef struct EngRec:
    int state
    int64_t sid
    int16_t* ring
    int64_t written             # samples ever written
    int64_t read                # samples ever drained
    int64_t max_samples
    int64_t overflow
    int rate                    # 8000, or 16000 for a wideband leg (engine_codec.pyx)


cdef int eng_rec_open(EngRec* r, int64_t sid, int64_t max_samples) noexcept nogil:
    """Start a recorder; -1 when out of memory."""
    r.ring = <int16_t*>malloc(ENG_REC_RING * sizeof(int16_t))
    if r.ring == NULL:
        return -1
    r.state = ENG_REC_ACTIVE
    r.sid = sid
    r.written = 0
    r.read = 0
    r.max_samples = max_samples
    r.overflow = 0
    return 0


cdef void eng_rec_write(EngRec* r, const int16_t* pcm, int n) noexcept nogil:
    """Append up to n samples; marks the recorder FINISHING at its maximum length."""
    cdef int i
    if r.state != ENG_REC_ACTIVE:
        return
    if r.written + n > r.max_samples:
        n = <int>(r.max_samples - r.written)
    for i in range(n):
        if r.written - r.read >= ENG_REC_RING:
            r.overflow += n - i
            break
        r.ring[r.written % ENG_REC_RING] = pcm[i]
        r.written += 1
    if r.written >= r.max_samples:
        r.state = ENG_REC_FINISHING


cdef int64_t eng_rec_drain(EngRec* r, int16_t* out, int64_t cap) noexcept nogil:
    """Copy pending samples to out (at most cap); returns how many were copied."""
    cdef int64_t n = r.written - r.read
    cdef int64_t first
    if n > cap:
        n = cap
    first = ENG_REC_RING - r.read % ENG_REC_RING
    if first > n:
        first = n
    memcpy(out, r.ring + r.read % ENG_REC_RING, first * sizeof(int16_t))
    memcpy(out + first, r.ring, (n - first) * sizeof(int16_t))
    r.read += n
    return n


cdef void eng_rec_free(EngRec* r) noexcept nogil:
    free(r.ring)
    r.ring = NULL
    r.state = ENG_REC_FREE
    r.sid = 0
