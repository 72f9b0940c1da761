# Sound players for the engine (included by engine.pyx; all names start with eng_).
#
# How this works: sounds are 8 kHz int16 arrays decoded once in Python (mediasrv.media.sounds)
# (plus a 16 kHz copy for wideband legs, resampled once from the file at load)
# and kept alive by the Engine object; the C side only holds pointers. A prompt is a cursor
# into one sound, per stream. A music-on-hold class is one shared cursor: the first listener
# served in a tick advances it by one frame and encodes that frame once per codec; every other
# listener of the class reuses those bytes with its own RTP header (fan-out). A class with
# no samples plays silence, so a held party always keeps receiving RTP.

from libc.stdint cimport int16_t, int64_t, uint8_t
from libc.string cimport memcpy, memset

cdef enum:
    ENG_MAX_FRAME = 320        # samples per frame at ptime 40 ms


cdef struct EngSound:
    const int16_t* data
    int64_t n


cdef struct EngMoh:
    int used
    EngSound snd
    int64_t pos
    int64_t tick               # the tick whose frame is in pcm/enc
    int16_t pcm[ENG_MAX_FRAME]
    uint8_t enc[2][ENG_MAX_FRAME]
    EngSound snd16             # the class at 16 kHz, for wideband listeners (engine_codec)
    int64_t pos16
    int64_t tick16
    int16_t pcm16[2 * ENG_MAX_FRAME]


cdef int64_t eng_sound_frame(const EngSound* snd, int64_t pos, int16_t* out,
                             int n, bint loop) noexcept nogil:
    """Copy n samples from pos into out (zero fill or wrap at the end); returns the new pos."""
    cdef int done = 0
    cdef int64_t take
    while done < n:
        if snd.n <= 0 or (pos >= snd.n and not loop):
            memset(out + done, 0, (n - done) * sizeof(int16_t))
            return pos + (n - done)
        if pos >= snd.n:
            pos = 0
        take = snd.n - pos
        if take > n - done:
            take = n - done
        memcpy(out + done, snd.data + pos, take * sizeof(int16_t))
        done += <int>take
        pos += take
    return pos
