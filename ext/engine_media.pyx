# DTMF, tones and conferences for the engine (included by engine.pyx).
#
# How this works:
# - Sending a digit (RFC 4733 §2.5): one event packet per tick, all with the timestamp of the
#   event start, the first with the marker bit, the duration growing by one frame each time,
#   then three packets with the E bit and the final duration. Meanwhile the stream's audio
#   clock keeps running (s.ts advances a frame per tick) so audio resumes continuously. A far
#   end without telephone-event gets the digit as in-band tones instead.
# - Conferences are mix-minus (each member hears the sum of the others): each member's packets
#   go through its own adaptive jitter buffer (jitter.pyx, which decodes them); on each tick
#   one frame per member is taken, and mixer.pyx sums them in int32 once, subtracts each
#   member's own frame and saturates to int16. With a wideband member (G.722/Opus, ptime up
#   to 20 ms) the conference mixes at 16 kHz (engine_codec.pyx: eng_conf_mix_wide).

from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memmove, memset

cdef const char* ENG_DIGITS = b"0123456789*#ABCD"    # RFC 4733 §3.2 event codes 0-15

cdef enum:
    ENG_DTMF_RFC4733 = 0       # detection modes, as set_dtmf names them
    ENG_DTMF_INBAND = 1
    ENG_DTMF_AUTO = 2
    ENG_SRC_RFC4733 = 0        # DtmfReceived.source
    ENG_SRC_INBAND = 1
    ENG_DTMF_VOLUME = 10       # -10 dBm0, the usual level (RFC 4733 §2.3.4)
    ENG_DTMF_ENDS = 3          # E-bit packets sent (RFC 4733 §2.5.1.4)

cdef double ENG_INBAND_DBM0 = -7.0           # per tone, within Q.24's sending levels
cdef int ENG_INBAND_PAUSE_MS = 60            # silence after an in-band digit
cdef int ENG_JB_MIN_MS = 20                  # conference jitter buffers: playout delay range
cdef int ENG_JB_MAX_MS = 200
cdef int64_t ENG_RFC4733_IDLE_NS = 400000000  # no update for 0.4 s: the event is over
cdef int64_t ENG_DTMF_DEDUP_NS = 500000000   # same digit from both detectors within 0.5 s


# ---------------------------------------------------------------- DTMF sending

cdef inline int eng_dtmf_busy(EngStream* s) noexcept nogil:
    return s.dj_active


cdef void eng_dtmf_start(EngCore* c, EngStream* s, int event, int ms) noexcept nogil:
    s.dj_inband = s.event_pt < 0
    if s.dj_inband:
        tone_init_dtmf(&s.dj_tone, ENG_DIGITS[event], ENG_INBAND_DBM0, ms,
                       ENG_INBAND_PAUSE_MS, 8000)
    else:
        rfc4733_tx_init(&s.dj_tx, event, ms * 8, c.frame, ENG_DTMF_VOLUME)
    s.dj_active = 1


cdef int eng_dtmf_queue(EngCore* c, EngStream* s, int event, int ms) noexcept nogil:
    """Send a digit now, or after the digits already queued; -1 when the queue is full."""
    if not s.dj_active:
        eng_dtmf_start(c, s, event, ms)
        return 0
    if s.dj_qlen >= ENG_DJ_QUEUE:
        return -1
    s.dj_q[s.dj_qlen] = (event << 16) | ms
    s.dj_qlen += 1
    return 0


cdef void eng_dtmf_finish(EngCore* c, EngStream* s) noexcept nogil:
    cdef int nxt
    s.dj_active = 0
    if s.feed == ENG_FEED_PEER:
        s.anchor = 1                  # forwarded audio re-bases on our clock
    if s.dj_qlen > 0:
        nxt = s.dj_q[0]
        memmove(s.dj_q, s.dj_q + 1, (s.dj_qlen - 1) * sizeof(int))
        s.dj_qlen -= 1
        eng_dtmf_start(c, s, nxt >> 16, nxt & 0xFFFF)


cdef int eng_dtmf_send_tick(EngCore* c, EngStream* s) noexcept nogil:
    """Send this tick's DTMF packet (rfc4733.pyx sender), if a digit is being sent."""
    cdef uint8_t pay[4]
    cdef bint first = 0
    cdef int marker = 0
    if not s.dj_active:
        return 0
    if s.dj_inband:
        return eng_dtmf_inband_tick(c, s)
    if not rfc4733_tx_next(&s.dj_tx, pay, &first):
        eng_dtmf_finish(c, s)
        return 0
    if first:
        s.dj_ts = eng_stamp(c, s, &marker)
    else:
        s.ts += <uint32_t>(c.frame * s.tsmul)   # the audio clock runs on under the event
    eng_send_raw(c, s, s.event_pt, first, s.dj_ts, pay, 4)
    if s.dj_tx.ends >= ENG_DTMF_ENDS:
        eng_dtmf_finish(c, s)
    return 1


cdef int eng_dtmf_inband_tick(EngCore* c, EngStream* s) noexcept nogil:
    """One frame of an in-band digit (tone.pyx), then its trailing pause."""
    cdef Py_ssize_t n = tone_generate(&s.dj_tone, c.pcm, c.frame)
    eng_send_pcm(c, s, c.pcm)
    if n < c.frame:
        eng_dtmf_finish(c, s)
    return 1


# ---------------------------------------------------------------- DTMF receiving

cdef int eng_dtmf_rx_event(EngCore* c, EngStream* s, EngStream* x, EngRtpView* v,
                           const uint8_t* pay) noexcept nogil:
    """Feed an RFC 4733 packet to the receiver (rfc4733.pyx); 1 when it is to be forwarded.

    x is the bridged far side (or NULL). A far side without telephone-event gets each digit
    as in-band tones once the digit has ended, instead of the event packets; a far side in
    another codec (its own clock) gets it re-sent as its own event once it has ended.
    """
    cdef Rfc4733Digit out[2]
    cdef int i, k = rfc4733_rx_packet(&s.rfc_rx, v.ts, pay, v.payload_len, out)
    cdef int inband = x != NULL and s.forward_dtmf and (x.event_pt < 0 or not eng_relays(s, x))
    s.rfc_last_ns = c.now
    for i in range(k):
        if s.dtmf_mode != ENG_DTMF_INBAND:
            eng_dtmf_report(c, s, out[i].digit, out[i].duration // 8, ENG_SRC_RFC4733)
        if inband:
            eng_dtmf_queue(c, x, eng_digit_index(out[i].digit),
                           min(max(out[i].duration // 8, 40), 8000))
    return s.forward_dtmf and not inband


cdef void eng_dtmf_rx_idle(EngCore* c, EngStream* s) noexcept nogil:
    """An event whose end packets were all lost is reported once its updates stop."""
    cdef Rfc4733Digit out[1]
    if s.rfc_last_ns and c.now - s.rfc_last_ns > ENG_RFC4733_IDLE_NS:
        s.rfc_last_ns = 0
        if rfc4733_rx_flush(&s.rfc_rx, out) and s.dtmf_mode != ENG_DTMF_INBAND:
            eng_dtmf_report(c, s, out[0].digit, out[0].duration // 8, ENG_SRC_RFC4733)


cdef inline int eng_dtmf_inband_on(EngStream* s) noexcept nogil:
    # Auto mode on a wideband stream with telephone-event trusts the events: its packets are
    # relayed without decoding (decoding G.722/Opus costs 100-1000x G.711).
    if s.dtmf_mode == ENG_DTMF_AUTO and s.cx != NULL and s.event_pt >= 0:
        return 0
    return s.dtmf_mode != ENG_DTMF_RFC4733


cdef void eng_dtmf_inband(EngCore* c, EngStream* s, const int16_t* pcm, int n) noexcept nogil:
    """Run the Goertzel detector (dtmf.pyx) over one decoded frame; report what ended."""
    cdef DtmfEvent evs[8]
    cdef int i, k
    if not eng_dtmf_inband_on(s):
        return
    k = dtmf_process(&s.inband, pcm, n, evs)
    for i in range(k):
        eng_dtmf_report(c, s, evs[i].digit, <int>(evs[i].duration // 8), ENG_SRC_INBAND)


cdef int eng_digit_index(char digit) noexcept nogil:
    """RFC 4733 event code of a digit character, or -1."""
    cdef int idx
    for idx in range(16):
        if ENG_DIGITS[idx] == digit:
            return idx
    return -1


cdef void eng_dtmf_report(EngCore* c, EngStream* s, char digit, int ms, int src) noexcept nogil:
    """Queue a DtmfReceived; in auto mode the other detector's copy of a digit is dropped."""
    cdef int idx = eng_digit_index(digit)
    if idx < 0:
        return
    if (s.dtmf_mode == ENG_DTMF_AUTO and s.last_digit == digit and s.last_src != src
            and c.now - s.last_digit_ns < ENG_DTMF_DEDUP_NS):
        return
    s.last_digit = digit
    s.last_src = src
    s.last_digit_ns = c.now
    eng_event(c, ENG_EV_DTMF, s.sid, idx, ms, src, 0, 0)


# ---------------------------------------------------------------- tones

cdef const uint8_t* eng_tone_frame(EngCore* c, EngStream* s) noexcept nogil:
    """One frame of the stream's tone; a tone that ends (beep) leaves the stream on silence."""
    if tone_generate(&s.tone, c.pcm, c.frame) < c.frame:
        s.feed = ENG_FEED_SILENCE
    eng_encode(s.codec, c.pcm, c.enc, c.frame)
    return c.enc


# ---------------------------------------------------------------- conferences

cdef void eng_conf_put(EngCore* c, EngStream* s, EngRtpView* v,
                       const uint8_t* pay) noexcept nogil:
    """File a member's packet in its jitter buffer (a muted member files silence)."""
    cdef const uint8_t* data = pay
    if s.jb == NULL:
        return
    if v.payload_len != c.frame or (s.rf != NULL and s.rf.n > 0):    # another ptime
        if c.dec_slot != s.port:
            eng_rx_decode(c, s, v, pay)
            c.dec_slot = s.port
        eng_conf_put_reframed(c, s)
        return
    if s.muted:
        data = &c.silence[s.codec][0]
    jb_put(s.jb, v.seq, v.ts, data, v.payload_len, c.now / 1e9)


cdef const int16_t* eng_conf_take(EngCore* c, EngStream* s, int i) noexcept nogil:
    """The member's frame for this tick, or NULL before its playout starts."""
    if s.jb == NULL or not jb_get(s.jb, c.now / 1e9, c.member_pcm[i]):
        return NULL
    return c.member_pcm[i]


cdef void eng_conf_mix(EngCore* c, EngConf* f) noexcept nogil:
    """One tick of one conference: mix-minus (mixer.pyx) to every member."""
    cdef const int16_t* own[ENG_CONF_MAX]
    cdef int32_t total[ENG_MAX_FRAME]
    cdef int i
    cdef EngStream* s
    if eng_conf_is_wide(c, f):
        eng_conf_mix_wide(c, f)
        return
    for i in range(f.n):
        own[i] = eng_conf_take(c, &c.st[f.slot[i]], i)
    mix_sum_c(own, f.n, c.frame, total)
    for i in range(f.n):
        s = &c.st[f.slot[i]]
        if s.rec >= 0:                  # a member's recording is the whole conference
            mix_minus_one_c(total, NULL, c.pcm, c.frame)
            eng_rec_put(c, s, c.pcm, c.frame, 0)
        if eng_dtmf_send_tick(c, s):
            continue
        mix_minus_one_c(total, own[i], c.pcm, c.frame)
        eng_send_pcm(c, s, c.pcm)


cdef void eng_conf_tick(EngCore* c) noexcept nogil:
    cdef int i
    for i in range(c.nconf):
        if c.conf[i].used:
            eng_conf_mix(c, &c.conf[i])


cdef void eng_conf_leave(EngCore* c, int slot) noexcept nogil:
    """Remove a stream from its conference; a conference left with no member is freed."""
    cdef EngStream* s = &c.st[slot]
    cdef EngConf* f
    cdef int i, j
    if s.conf < 0:
        return
    f = &c.conf[s.conf]
    j = 0
    for i in range(f.n):
        if f.slot[i] != slot:
            f.slot[j] = f.slot[i]
            j += 1
    f.n = j
    if f.n == 0:
        f.used = 0
    s.conf = -1
    free(s.jb)
    s.jb = NULL
    free(s.crs)
    s.crs = NULL


cdef int eng_conf_new(EngCore* c) noexcept nogil:
    cdef int i
    for i in range(c.nconf):
        if not c.conf[i].used:
            c.conf[i].used = 1
            c.conf[i].n = 0
            return i
    return -1


cdef int eng_conf_join(EngCore* c, int conf, int slot) noexcept nogil:
    """Add a stream (feed already cleared) to a conference; -1 when out of memory."""
    cdef EngStream* s = &c.st[slot]
    cdef EngConf* f = &c.conf[conf]
    s.jb = <JitterState*>calloc(1, sizeof(JitterState))
    s.crs = <EngConfRs*>calloc(1, sizeof(EngConfRs))
    if s.jb == NULL or s.crs == NULL or jb_init(s.jb, ENG_JB_MIN_MS, ENG_JB_MAX_MS,
                                                c.frame // 8, s.codec == ENG_PCMA) < 0:
        free(s.jb)
        free(s.crs)
        s.jb = NULL
        s.crs = NULL
        return -1
    if s.cx != NULL and 2 * c.frame <= ENG_MAX_FRAME:   # a wideband member: 16 kHz frames
        s.jb.linear = 1
        s.jb.frame = 2 * c.frame
    s.conf = conf
    s.feed = ENG_FEED_CONF
    f.slot[f.n] = slot
    f.n += 1
    return 0
