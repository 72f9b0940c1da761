# C API for the engine (no allocation inside, no GIL):
#   cdef void mix_sum_c(const int16_t* const* inputs, int count, Py_ssize_t n,
#                       int32_t* total) noexcept nogil
#       total[0:n] = sum of the non-NULL inputs (NULL = absent or silent: skipped, costs nothing)
#   cdef void mix_minus_one_c(const int32_t* total, const int16_t* own, int16_t* out,
#                             Py_ssize_t n) noexcept nogil
#       out = saturate16(total - own); own may be NULL (a listener who sends nothing)
#   cdef void mix_minus_c(const int16_t* const* inputs, int16_t* const* outputs, int count,
#                         Py_ssize_t n, int32_t* scratch) noexcept nogil
#       both steps for a whole conference; outputs[i] NULL = nobody listens on i;
#       scratch holds n int32
"""Mix-minus for conferences: each participant hears the saturating sum of all the others.

How this works: the frames of everyone who sent audio are summed once into int32 (no
overflow: 65 536 full-scale int16 would be needed to overflow), then each listener's own
frame is subtracted and the result saturated to int16. That is N additions plus N
subtractions per sample instead of N*(N-1), and a participant who sent nothing is skipped in
the sum. Saturating the sum (rather than scaling it) keeps the level of a two-party talk
unchanged, as rtpengine's mix buffer and Asterisk's softmix do.
"""

from libc.stdlib cimport free, malloc
from libc.string cimport memset


cdef inline int16_t _sat16(int32_t v) noexcept nogil:
    return <int16_t>(32767 if v > 32767 else (-32768 if v < -32768 else v))


cdef void mix_sum_c(const int16_t* const* inputs, int count, Py_ssize_t n,
                    int32_t* total) noexcept nogil:
    cdef Py_ssize_t i
    cdef int p
    cdef const int16_t* x
    memset(total, 0, n * sizeof(int32_t))
    for p in range(count):
        x = inputs[p]
        if x != NULL:
            for i in range(n):
                total[i] += x[i]


cdef void mix_minus_one_c(const int32_t* total, const int16_t* own, int16_t* out,
                          Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    if own == NULL:
        for i in range(n):
            out[i] = _sat16(total[i])
    else:
        for i in range(n):
            out[i] = _sat16(total[i] - own[i])


cdef void mix_minus_c(const int16_t* const* inputs, int16_t* const* outputs, int count,
                      Py_ssize_t n, int32_t* scratch) noexcept nogil:
    cdef int p
    mix_sum_c(inputs, count, n, scratch)
    for p in range(count):
        if outputs[p] != NULL:
            mix_minus_one_c(scratch, inputs[p], outputs[p], n)


cdef Py_ssize_t _frame_length(frames) except -1:
    cdef Py_ssize_t n = -1
    for f in frames:
        if f is not None:
            if n >= 0 and len(f) != n:
                raise ValueError("all frames must have the same length")
            n = len(f)
    return max(n, 0)


def mix_minus(frames, Py_ssize_t length=-1):
    """For each participant, the saturating int16 sum of everyone else's frame.

    `frames` holds one contiguous int16 array per participant, or None for a participant
    who sent nothing this tick. `length` is needed only when every frame is None.
    Returns a list of new int16 arrays, one per participant.
    """
    cdef Py_ssize_t n = _frame_length(frames) if length < 0 else length
    cdef int count = len(frames), p
    cdef const int16_t[::1] view
    cdef int16_t[::1] oview
    keep = [None if f is None else np.ascontiguousarray(f, dtype=np.int16) for f in frames]
    outs = [np.empty(n, dtype=np.int16) for _ in range(count)]
    cdef const int16_t** ins = <const int16_t**>malloc(max(count, 1) * sizeof(void*))
    cdef int16_t** outp = <int16_t**>malloc(max(count, 1) * sizeof(void*))
    cdef int32_t* scratch = <int32_t*>malloc(max(n, 1) * sizeof(int32_t))
    try:
        if ins == NULL or outp == NULL or scratch == NULL:
            raise MemoryError()
        for p in range(count):
            ins[p] = NULL
            if keep[p] is not None:
                view = keep[p]
                ins[p] = &view[0] if n else NULL
            oview = outs[p]
            outp[p] = &oview[0] if n else NULL
        with nogil:
            mix_minus_c(ins, outp, count, n, scratch)
    finally:
        free(ins)
        free(outp)
        free(scratch)
    return outs
