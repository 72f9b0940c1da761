# Per-stream codecs for the engine (included by engine.pyx after the core).
#
# How this works: a stream speaks PCMU, PCMA, G.722 or Opus. G.711 needs no state; a
# wideband stream (G.722, Opus) gets an EngCodec at set_remote: its G.722 or libopus encoder
# and decoder, and two 2x resamplers (a 47-tap Kaiser-windowed half-band FIR, cut at 4 kHz):
# `down` takes what the stream receives (16 kHz) to the engine's 8 kHz service rate,
# `up` takes 8 kHz audio (local feeds, narrowband peers) to 16 kHz for the encoder.
# - Relay: two bridged streams with the same codec forward packets unchanged (engine_core's
#   eng_forward rewrites the header only); PCMU <-> PCMA stays a byte map.
# - Transcode: otherwise eng_forward calls eng_transcode: the packet is decoded once
#   (eng_rx_decode, shared with the services of that packet: in-band DTMF, recording,
#   conference), taken to the far stream's rate (wide -> wide stays 16 kHz, so G.722 <-> Opus
#   keeps 7 kHz audio) and encoded for it, stamped on the far stream's own clock. When
#   1 to ENG_OPUS_CONCEAL Opus packets were lost, their frames are first filled in (the
#   last from the next packet's in-band FEC, the others by libopus's PLC: eng_opus_fec)
#   and sent too (relayed Opus leaves that to the far phone's decoder).
# - Re-framing: the engine sends one frame per ptime (rtp.ptime, 20 ms); a phone may send
#   10, 30 or 40 ms packets. Relayed, its packets go out as they came (timestamps stay
#   right, the far phone copes with any packet size). Decoded (transcoding, conference
#   input), audio that is not one frame goes through the stream's re-framer (EngReframe,
#   allocated on first use): held until it makes whole frames, so each encoded packet and
#   each jitter-buffer slot is one frame (30 ms in -> 20 ms out: 3 frames per 2 packets;
#   an Opus encoder takes no 30 ms frame at all).
# - Recordings are at the leg's rate: a wideband leg's at 16 kHz (its decoded audio, or a
#   conference mix up-sampled). A conference with a wideband member mixes at 16 kHz
#   (eng_conf_mix_wide): narrow members are up-sampled into it and get their mix-minus
#   down-sampled. Prompts and MoH play from 16 kHz copies (resampled once from their files at
#   load) to wideband streams. DTMF detection runs on the down-sampled audio, and tones
#   (all below 2 kHz) are made at 8 kHz and up-sampled.
#   DTMF (697-1633 Hz) on purpose: fed the 16 kHz signal, the detector (tuned at 8 kHz,
#   tone power against total power) lost 40 % of a 120 ms digit to G.722's 4-8 kHz noise.
# Clocks: G.711 and G.722 use an 8000 Hz RTP clock (RFC 3551 §4.5.2, G.722 too); Opus 48000
# (RFC 7587 §4.1): `tsmul` scales the engine's 8 kHz frame counts to the stream's clock.

from libc.stdlib cimport calloc, free
from libc.string cimport memmove

cdef int32_t ENG_RS_H[ENG_RS_TAPS]


def _eng_rs_design():
    # Windowed sinc at a quarter of 16 kHz, Kaiser beta 6 (~60 dB stop band from 4.6 kHz),
    # in Q15 with a DC gain of exactly 1 per phase pair.
    n = np.arange(ENG_RS_TAPS) - (ENG_RS_TAPS - 1) / 2
    h = 0.5 * np.sinc(n / 2) * np.kaiser(ENG_RS_TAPS, 6.0)
    h = np.round(h / h.sum() * 32768).astype(np.int64)
    h[(ENG_RS_TAPS - 1) // 2] += 32768 - h.sum()
    for i in range(ENG_RS_TAPS):
        ENG_RS_H[i] = h[i]


_eng_rs_design()


cdef inline int16_t eng_rs_sat(int64_t v) noexcept nogil:
    return <int16_t>(32767 if v > 32767 else (-32768 if v < -32768 else v))


cdef int eng_rs_down(EngRs* r, const int16_t* x, int n, int16_t* y) noexcept nogil:
    """n samples at 16 kHz (n even, <= ENG_WIDE_FRAME) -> n/2 at 8 kHz; returns n/2."""
    cdef int16_t w[ENG_RS_TAPS - 1 + ENG_WIDE_FRAME]
    cdef int k, i
    cdef int64_t acc
    memcpy(w, r.hist, (ENG_RS_TAPS - 1) * sizeof(int16_t))
    memcpy(w + ENG_RS_TAPS - 1, x, n * sizeof(int16_t))
    for k in range(n // 2):
        acc = 0
        for i in range(ENG_RS_TAPS):
            acc += ENG_RS_H[i] * w[2 * k + 1 + i]
        y[k] = eng_rs_sat((acc + 16384) >> 15)
    memcpy(r.hist, w + n, (ENG_RS_TAPS - 1) * sizeof(int16_t))
    return n // 2


cdef int eng_rs_up(EngRs* r, const int16_t* x, int n, int16_t* y) noexcept nogil:
    """n samples at 8 kHz (n <= ENG_MAX_FRAME) -> 2n at 16 kHz (zero-stuffed, filtered)."""
    cdef int16_t w[ENG_RS_TAPS - 1 + ENG_WIDE_FRAME]
    cdef int m, i, j
    cdef int64_t acc
    memcpy(w, r.hist, (ENG_RS_TAPS - 1) * sizeof(int16_t))
    for j in range(n):
        w[ENG_RS_TAPS - 1 + 2 * j] = x[j]
        w[ENG_RS_TAPS + 2 * j] = 0
    for m in range(2 * n):
        acc = 0
        i = m & 1                       # only the taps that meet a real (even) sample
        while i < ENG_RS_TAPS:
            acc += ENG_RS_H[i] * w[m + ENG_RS_TAPS - 1 - i]
            i += 2
        y[m] = eng_rs_sat((acc + 8192) >> 14)
    memcpy(r.hist, w + 2 * n, (ENG_RS_TAPS - 1) * sizeof(int16_t))
    return 2 * n


# ---------------------------------------------------------------- the codec slot

cdef inline int eng_is_wide(int codec) noexcept nogil:
    return codec == ENG_G722 or codec == ENG_OPUS


cdef inline int eng_relays(EngStream* a, EngStream* b) noexcept nogil:
    """Packets from a go to b unchanged (or byte-mapped): same codec, or both G.711."""
    return a.codec == b.codec or not (eng_is_wide(a.codec) or eng_is_wide(b.codec))


cdef void eng_codec_free(EngStream* s) noexcept nogil:
    free(s.rf)                          # audio held for re-framing: of the old codec
    s.rf = NULL
    if s.cx != NULL:
        opus_enc_free_c(s.cx.opus_enc)
        opus_dec_free_c(s.cx.opus_dec)
        free(s.cx)
        s.cx = NULL


cdef int eng_codec_set(EngStream* s, int codec) noexcept nogil:
    """Give s the state `codec` needs (kept when the codec is unchanged); -1: no memory."""
    cdef int err = 0
    s.tsmul = ENG_OPUS_TSMUL if codec == ENG_OPUS else 1
    if s.cx != NULL and s.cx.codec == codec:
        return 0
    eng_codec_free(s)
    if not eng_is_wide(codec):
        return 0
    s.cx = <EngCodec*>calloc(1, sizeof(EngCodec))
    if s.cx == NULL:
        return -1
    s.cx.codec = codec
    s.cx.last_seq = -1
    g722_init_c(&s.cx.g722_enc)
    g722_init_c(&s.cx.g722_dec)
    if codec == ENG_OPUS:
        s.cx.opus_enc = opus_enc_new_c(ENG_WIDE_RATE, MS_OPUS_BITRATE, &err)
        s.cx.opus_dec = opus_dec_new_c(ENG_WIDE_RATE, &err)
        if s.cx.opus_enc == NULL or s.cx.opus_dec == NULL:
            eng_codec_free(s)
            return -1
    return 0


# ---------------------------------------------------------------- decoding

cdef int eng_rx_decode(EngCore* c, EngStream* s, EngRtpView* v,
                       const uint8_t* pay) noexcept nogil:
    """Decode one received payload: c.pcm gets it at 8 kHz, c.wpcm at 16 kHz (wideband only).

    Returns the 8 kHz sample count (0: undecodable); the result stays valid for the rest of
    this packet (c.dec_slot), so services and the transcoder decode it only once.
    """
    cdef int n
    cdef int len = v.payload_len
    c.nwpcm = 0
    if not eng_is_wide(s.codec):
        c.npcm = len if len < ENG_MAX_FRAME else ENG_MAX_FRAME
        eng_decode(s.codec, pay, c.pcm, c.npcm)
        return c.npcm
    if s.codec == ENG_G722:
        n = len if len < ENG_WIDE_FRAME // 2 else ENG_WIDE_FRAME // 2
        n = <int>g722_decode_c(&s.cx.g722_dec, pay, n, c.wpcm)
    else:
        eng_opus_fec(c, s, v, pay)
        n = opus_dec_c(s.cx.opus_dec, pay, len, c.wpcm, ENG_WIDE_FRAME, False)
        if n < 0:
            s.malformed += 1
            n = 0
    c.nwpcm = n & ~1
    c.npcm = eng_rs_down(&s.cx.down, c.wpcm, c.nwpcm, c.pcm)
    return c.npcm


cdef void eng_opus_fec(EngCore* c, EngStream* s, EngRtpView* v,
                       const uint8_t* pay) noexcept nogil:
    """Packets lost just before this one are filled in before the decoder moves on to this
    packet's frame: the last lost one from this packet's in-band FEC (RFC 7587 §3.3,
    `useinbandfec`; libopus conceals it when the packet carries none), the ones before it
    by libopus's concealment (PLC: the decoder extrapolates its last pitch and spectrum,
    fading out). Each lost packet is taken to last as long as this one. Up to
    ENG_OPUS_CONCEAL packets (60 ms at 20 ms) are filled; a longer gap is left to the far
    end (the decoder then starts again from this packet)."""
    cdef int i, k, lost, frame
    cdef int16_t* w
    s.cx.nfec = 0
    s.cx.nwfec = 0
    lost = <uint16_t>(v.seq - <uint16_t>s.cx.last_seq) - 1 if s.cx.last_seq >= 0 else 0
    if 1 <= lost <= ENG_OPUS_CONCEAL:
        frame = opus_samples_c(pay, v.payload_len, ENG_WIDE_RATE)
        if 0 < frame <= ENG_WIDE_FRAME:
            for i in range(lost):
                w = s.cx.fec_wpcm + s.cx.nwfec
                if i < lost - 1:
                    k = opus_dec_c(s.cx.opus_dec, NULL, 0, w, frame, False)
                else:
                    k = opus_dec_c(s.cx.opus_dec, pay, v.payload_len, w, frame, True)
                if k <= 0:
                    break
                k &= ~1
                s.cx.nfec += eng_rs_down(&s.cx.down, w, k, s.cx.fec_pcm + s.cx.nfec)
                s.cx.nwfec += k
    if s.cx.last_seq < 0 or <int16_t>(v.seq - <uint16_t>s.cx.last_seq) > 0:
        s.cx.last_seq = v.seq


# ---------------------------------------------------------------- encoding and sending

cdef int eng_encode_wide(EngStream* s, const int16_t* wpcm, int n, uint8_t* out) noexcept nogil:
    """Encode n samples at 16 kHz for a wideband stream; returns the payload size (or <= 0)."""
    if s.codec == ENG_G722:
        return <int>g722_encode_c(&s.cx.g722_enc, wpcm, n, out)
    return opus_enc_c(s.cx.opus_enc, wpcm, n, out, MS_OPUS_MAX_PACKET)   # room for SRTP


cdef int eng_encode_for(EngCore* c, EngStream* x, const int16_t* pcm, int n,
                        const int16_t* wpcm, int nw, uint8_t* out) noexcept nogil:
    """Encode one frame for x from 8 kHz audio (pcm, n) or, when given, 16 kHz (wpcm, nw)."""
    cdef int16_t up[ENG_WIDE_FRAME]
    if not eng_is_wide(x.codec):
        eng_encode(x.codec, pcm, out, n)
        return n
    if wpcm == NULL or nw == 0:
        nw = eng_rs_up(&x.cx.up, pcm, n, up)
        wpcm = up
    return eng_encode_wide(x, wpcm, nw, out)


cdef void eng_send_pcm(EngCore* c, EngStream* s, const int16_t* pcm) noexcept nogil:
    """Send one frame of 8 kHz audio out of s, encoded in s's codec, on s's own clock."""
    cdef int marker = 0
    cdef uint32_t ts
    cdef int n = eng_encode_for(c, s, pcm, c.frame, NULL, 0, c.wenc)
    if n <= 0:
        s.send_errors += 1
        return
    ts = eng_stamp(c, s, &marker)
    eng_send_raw(c, s, s.pt, marker, ts, c.wenc, n)


cdef void eng_transcode(EngCore* c, EngStream* src, EngStream* x, EngRtpView* v,
                        const uint8_t* pay) noexcept nogil:
    """Forward src's audio packet to x in x's codec (see the header)."""
    if c.dec_slot != src.port:
        eng_rx_decode(c, src, v, pay)
        c.dec_slot = src.port
    if src.cx != NULL and src.cx.nfec > 0:        # the lost frames first, on x's clock
        eng_transcode_pcm(c, src, x, src.cx.fec_pcm, src.cx.nfec, src.cx.fec_wpcm,
                          src.cx.nwfec, 0)
        src.cx.nfec = 0
    if c.npcm == 0:
        return
    if src.muted:
        memset(c.pcm, 0, c.npcm * sizeof(int16_t))
        memset(c.wpcm, 0, c.nwpcm * sizeof(int16_t))
    eng_transcode_pcm(c, src, x, c.pcm, c.npcm, c.wpcm, c.nwpcm, v.marker)


cdef void eng_transcode_pcm(EngCore* c, EngStream* src, EngStream* x, const int16_t* pcm,
                            int n, const int16_t* wpcm, int nw, int marker) noexcept nogil:
    """Send src's decoded audio out of x as engine frames: one packet per frame, on x's
    clock. Audio that is not one frame (a peer at another ptime, recovered Opus frames) goes
    through src's re-framer, so x gets whole frames whose timestamps follow the audio."""
    cdef int16_t fp[ENG_MAX_FRAME]
    cdef int16_t fw[ENG_WIDE_FRAME]
    cdef int off = 0, k, wide = nw == 2 * n
    if n == c.frame and (src.rf == NULL or src.rf.n == 0):
        eng_send_coded(c, x, pcm, n, wpcm if wide else NULL, nw if wide else 0, marker)
        return
    while off < n:
        k = eng_rf_push(c, src, pcm + off, n - off, wpcm + 2 * off if wide else NULL)
        if k <= 0:
            x.send_errors += 1
            return
        off += k
        while eng_rf_pop(c, src.rf, fp, fw):
            eng_send_coded(c, x, fp, c.frame, fw if src.rf.wide else NULL,
                           2 * c.frame if src.rf.wide else 0, marker)
            marker = 0


cdef void eng_send_coded(EngCore* c, EngStream* x, const int16_t* pcm, int n,
                         const int16_t* wpcm, int nw, int marker) noexcept nogil:
    """Encode one frame for x (eng_encode_for) and send it on x's clock."""
    cdef int m = 0
    cdef uint32_t ts
    cdef int size = eng_encode_for(c, x, pcm, n, wpcm, nw, c.wenc)
    if size <= 0:
        x.send_errors += 1
        return
    ts = eng_stamp(c, x, &m)
    eng_send_raw(c, x, x.pt, m or marker, ts, c.wenc, size)


# ---------------------------------------------------------------- re-framing

cdef int eng_rf_push(EngCore* c, EngStream* s, const int16_t* pcm, int n,
                     const int16_t* wpcm) noexcept nogil:
    """Add up to one frame of s's decoded audio (8 kHz, and 16 kHz when wpcm is given) to
    its re-framer; returns the samples taken (take the frames out before the next push),
    or -1 without memory. A change between narrow and wide drops what was held."""
    cdef EngReframe* rf = s.rf
    cdef int k = n if n < c.frame else c.frame
    cdef int wide = wpcm != NULL
    if rf == NULL:
        rf = s.rf = <EngReframe*>calloc(1, sizeof(EngReframe))
        if rf == NULL:
            return -1
        rf.wide = wide
    if rf.wide != wide:
        rf.n = 0
        rf.wide = wide
    memcpy(rf.pcm + rf.n, pcm, k * sizeof(int16_t))
    if wide:
        memcpy(rf.wpcm + 2 * rf.n, wpcm, 2 * k * sizeof(int16_t))
    rf.n += k
    return k


cdef int eng_rf_pop(EngCore* c, EngReframe* rf, int16_t* pcm, int16_t* wpcm) noexcept nogil:
    """Take the oldest whole frame out of the re-framer (1), or nothing (0)."""
    if rf.n < c.frame:
        return 0
    memcpy(pcm, rf.pcm, c.frame * sizeof(int16_t))
    rf.n -= c.frame
    memmove(rf.pcm, rf.pcm + c.frame, rf.n * sizeof(int16_t))
    if rf.wide:
        memcpy(wpcm, rf.wpcm, 2 * c.frame * sizeof(int16_t))
        memmove(rf.wpcm, rf.wpcm + 2 * c.frame, 2 * rf.n * sizeof(int16_t))
    return 1


cdef void eng_feed_tick_wide(EngCore* c, EngStream* s) noexcept nogil:
    """One frame of a local feed for a wideband stream: prompts and MoH from their 16 kHz
    copies when loaded, everything else (tones, silence) up-sampled from 8 kHz."""
    cdef const int16_t* w = eng_feed_16k(c, s)
    cdef const int16_t* pcm
    if w != NULL:
        eng_send_wide(c, s, w, 2 * c.frame)
        return
    pcm = eng_feed_pcm(c, s)
    if pcm != NULL:
        eng_send_pcm(c, s, pcm)


cdef const int16_t* eng_feed_16k(EngCore* c, EngStream* s) noexcept nogil:
    """This tick's 16 kHz frame of MoH or a prompt that has a 16 kHz copy, else NULL."""
    cdef EngMoh* m
    cdef int64_t pos
    if s.feed == ENG_FEED_MOH and c.moh[s.moh].snd16.n > 0:
        m = &c.moh[s.moh]
        if m.tick16 != c.tick:          # one cursor per class, shared by its listeners
            m.tick16 = c.tick
            m.pos16 = eng_sound_frame(&m.snd16, m.pos16, m.pcm16, 2 * c.frame, True)
        return m.pcm16
    if s.feed == ENG_FEED_PROMPT and s.snd16.n > 0:
        pos = s.pos
        eng_prompt_frame(c, s)          # the 8 kHz cursor ends the prompt and reports it
        eng_sound_frame(&s.snd16, 2 * pos, c.wpcm, 2 * c.frame, False)
        return c.wpcm
    return NULL


cdef void eng_send_wide(EngCore* c, EngStream* s, const int16_t* w, int n) noexcept nogil:
    """Send n samples of 16 kHz audio out of a wideband stream, on its own clock."""
    cdef int marker = 0
    cdef uint32_t ts
    cdef int size = eng_encode_wide(s, w, n, c.wenc)
    if size <= 0:
        s.send_errors += 1
        return
    ts = eng_stamp(c, s, &marker)
    eng_send_raw(c, s, s.pt, marker, ts, c.wenc, size)


cdef const int16_t* eng_feed_pcm(EngCore* c, EngStream* s) noexcept nogil:
    """This tick's 8 kHz audio of a local feed, for a wideband stream (NULL: none)."""
    if s.feed == ENG_FEED_SILENCE:
        memset(c.pcm, 0, c.frame * sizeof(int16_t))
        return c.pcm
    if s.feed == ENG_FEED_MOH:
        eng_moh_frame(c, s)
        return c.moh[s.moh].pcm
    if s.feed == ENG_FEED_PROMPT:
        eng_prompt_frame(c, s)
        return c.pcm
    if s.feed == ENG_FEED_TONE:
        eng_tone_frame(c, s)
        return c.pcm
    return NULL


cdef void eng_conf_put_wide(EngCore* c, EngStream* s, EngRtpView* v,
                            const uint8_t* pay) noexcept nogil:
    """A wideband member's packet enters the (8 kHz, mu-law) conference jitter buffer."""
    cdef uint8_t codes[ENG_MAX_FRAME]
    if s.jb == NULL:
        return
    if c.dec_slot != s.port:
        eng_rx_decode(c, s, v, pay)
        c.dec_slot = s.port
    if c.npcm == 0:
        return
    if c.npcm != c.frame or (s.rf != NULL and s.rf.n > 0):
        eng_conf_put_reframed(c, s)
        return
    if s.jb.linear:                     # a 16 kHz conference: the wideband frame itself
        if s.muted:
            memset(c.wpcm, 0, c.nwpcm * sizeof(int16_t))
        jb_put(s.jb, v.seq, v.ts // <uint32_t>s.tsmul, <const uint8_t*>c.wpcm,
               c.nwpcm * sizeof(int16_t), c.now / 1e9)
        return
    if s.muted:
        memset(codes, 0xFF, c.npcm)
    else:
        ulaw_encode_c(c.pcm, codes, c.npcm)
    jb_put(s.jb, v.seq, v.ts // <uint32_t>s.tsmul, codes, c.npcm, c.now / 1e9)


cdef void eng_conf_put_reframed(EngCore* c, EngStream* s) noexcept nogil:
    """A member's packet that is not one engine frame (decoded in c.pcm/c.wpcm): its audio
    goes through the re-framer, and each whole frame is filed in the jitter buffer under a
    sequence number and timestamp of the re-framer's own, one frame apart."""
    cdef int16_t fp[ENG_MAX_FRAME]
    cdef int16_t fw[ENG_WIDE_FRAME]
    cdef uint8_t codes[ENG_MAX_FRAME]
    cdef int off = 0, k, wide = s.jb.linear and c.nwpcm == 2 * c.npcm
    cdef uint16_t seq
    if s.muted:
        memset(c.pcm, 0, c.npcm * sizeof(int16_t))
        memset(c.wpcm, 0, c.nwpcm * sizeof(int16_t))
    while off < c.npcm:
        k = eng_rf_push(c, s, c.pcm + off, c.npcm - off, c.wpcm + 2 * off if wide else NULL)
        if k <= 0:
            return
        off += k
        while eng_rf_pop(c, s.rf, fp, fw):
            seq = s.rf.seq
            s.rf.seq += 1
            if wide:
                jb_put(s.jb, seq, <uint32_t>seq * c.frame, <const uint8_t*>fw,
                       2 * c.frame * sizeof(int16_t), c.now / 1e9)
            else:
                eng_encode(ENG_PCMA if s.jb.alaw else ENG_PCMU, fp, codes, c.frame)
                jb_put(s.jb, seq, <uint32_t>seq * c.frame, codes, c.frame, c.now / 1e9)


cdef void eng_rec_put(EngCore* c, EngStream* s, const int16_t* pcm, int n,
                      int rx) noexcept nogil:
    """Record n samples of 8 kHz audio for s; a 16 kHz recording takes this packet's
    16 kHz decode when rx (it is s's own received audio), else pcm up-sampled."""
    cdef int16_t up[ENG_WIDE_FRAME]
    cdef EngRec* r = &c.rec[s.rec]
    if r.rate != ENG_WIDE_RATE or s.cx == NULL:
        eng_rec_write(r, pcm, n)
    elif rx and c.nwpcm > 0 and c.dec_slot == s.port:
        eng_rec_write(r, c.wpcm, c.nwpcm)
    else:
        eng_rec_write(r, up, eng_rs_up(&s.cx.rec_up, pcm, n, up))


# ---------------------------------------------------------------- 16 kHz conferences

cdef int eng_conf_is_wide(EngCore* c, EngConf* f) noexcept nogil:
    cdef int i
    cdef EngStream* s
    for i in range(f.n):
        s = &c.st[f.slot[i]]
        if s.jb != NULL and s.jb.linear:
            return 1
    return 0


cdef void eng_conf_mix_wide(EngCore* c, EngConf* f) noexcept nogil:
    """One tick of a conference with a wideband member: mix-minus at 16 kHz."""
    cdef const int16_t* own[ENG_CONF_MAX]
    cdef int16_t up[ENG_CONF_MAX][ENG_WIDE_FRAME]
    cdef int32_t total[ENG_WIDE_FRAME]
    cdef int16_t out[ENG_WIDE_FRAME]
    cdef int i, w = 2 * c.frame
    cdef const int16_t* p
    cdef EngStream* s
    for i in range(f.n):
        s = &c.st[f.slot[i]]
        p = eng_conf_take(c, s, i)
        if p != NULL and not s.jb.linear:
            eng_rs_up(&s.crs.up, p, c.frame, up[i])
            p = up[i]
        own[i] = p
    mix_sum_c(own, f.n, w, total)
    for i in range(f.n):
        s = &c.st[f.slot[i]]
        if s.rec >= 0:                  # a member's recording is the whole conference
            mix_minus_one_c(total, NULL, out, w)
            eng_conf_record_wide(c, s, out, w)
        if eng_dtmf_send_tick(c, s):
            continue
        mix_minus_one_c(total, own[i], out, w)
        eng_conf_send_wide(c, s, out, w)


cdef void eng_conf_record_wide(EngCore* c, EngStream* s, const int16_t* mix,
                               int w) noexcept nogil:
    cdef int16_t pcm[ENG_MAX_FRAME]
    cdef EngRec* r = &c.rec[s.rec]
    if r.rate == ENG_WIDE_RATE:
        eng_rec_write(r, mix, w)
    else:
        eng_rec_write(r, pcm, eng_rs_down(&s.crs.rdown, mix, w, pcm))


cdef void eng_conf_send_wide(EngCore* c, EngStream* s, const int16_t* mix,
                             int w) noexcept nogil:
    """A member's 16 kHz mix-minus: encoded as is for a wideband member, down-sampled
    for a narrow one."""
    cdef int16_t pcm[ENG_MAX_FRAME]
    if s.cx == NULL:
        eng_rs_down(&s.crs.down, mix, w, pcm)
        eng_send_pcm(c, s, pcm)
    else:
        eng_send_wide(c, s, mix, w)
