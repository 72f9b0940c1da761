# RTP packet helpers for the engine (included by engine.pyx; all names start with eng_).
#
# How this works:
# - eng_rtp_parse() applies the RFC 3550 §5.1 header layout and the validity checks of
#   RFC 3550 Appendix A.1: version 2, CSRC list (CC) inside the datagram, the header
#   extension (§5.3.1) inside the datagram, padding count (§5.1 P bit) non-zero and not
#   larger than what follows the header. Anything else is "malformed" and the caller
#   counts and drops it. Payload types 72-76 on the RTP port are RTCP (RFC 5761 §4) and
#   are refused too.
# - EngRxStats is the receiver state of RFC 3550 A.1 (sequence tracking with 16-bit
#   wrap-around -> extended highest sequence), A.3 (expected - received = cumulative lost)
#   and A.8 (interarrival jitter, kept as 16 * J in timestamp units so it stays integer).
# - eng_rtp_write() builds the fixed 12-byte header we send (no CSRC, no extension).

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t

cdef enum:
    ENG_RTP_HDR = 12
    ENG_MAX_DROPOUT = 3000      # RFC 3550 A.1 MAX_DROPOUT
    ENG_MAX_MISORDER = 100      # RFC 3550 A.1 MAX_MISORDER


cdef struct EngRtpView:
    int marker
    int pt
    uint16_t seq
    uint32_t ts
    uint32_t ssrc
    int payload_off
    int payload_len


cdef struct EngRxStats:
    int started
    uint16_t max_seq
    uint32_t cycles
    uint16_t base_seq
    uint64_t received
    uint64_t received_base     # received since base_seq was set
    int64_t lost_before        # lost before the last source restart
    uint64_t late
    int64_t last_transit
    int64_t jitter_q4          # 16 * J (RFC 3550 A.8), timestamp units


cdef inline uint16_t eng_be16(const uint8_t* p) noexcept nogil:
    return <uint16_t>((<uint16_t>p[0] << 8) | p[1])


cdef inline uint32_t eng_be32(const uint8_t* p) noexcept nogil:
    return ((<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16)
            | (<uint32_t>p[2] << 8) | <uint32_t>p[3])


cdef inline void eng_put16(uint8_t* p, uint16_t v) noexcept nogil:
    p[0] = <uint8_t>(v >> 8)
    p[1] = <uint8_t>v


cdef inline void eng_put32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = <uint8_t>(v >> 24)
    p[1] = <uint8_t>(v >> 16)
    p[2] = <uint8_t>(v >> 8)
    p[3] = <uint8_t>v


cdef int eng_rtp_parse(const uint8_t* buf, int n, EngRtpView* v) noexcept nogil:
    """Fill v from an RTP datagram; 0 when valid, -1 when malformed (RFC 3550 A.1)."""
    cdef int off, end, pad
    if n < ENG_RTP_HDR or (buf[0] >> 6) != 2:
        return -1
    off = ENG_RTP_HDR + 4 * (buf[0] & 0x0F)
    if off > n:
        return -1
    if buf[0] & 0x10:
        if off + 4 > n:
            return -1
        off += 4 + 4 * eng_be16(buf + off + 2)
        if off > n:
            return -1
    end = n
    if buf[0] & 0x20:
        pad = buf[n - 1]
        if pad == 0 or off + pad > n:
            return -1
        end = n - pad
    v.pt = buf[1] & 0x7F
    if 72 <= v.pt <= 76:
        return -1
    v.marker = buf[1] >> 7
    v.seq = eng_be16(buf + 2)
    v.ts = eng_be32(buf + 4)
    v.ssrc = eng_be32(buf + 8)
    v.payload_off = off
    v.payload_len = end - off
    return 0


cdef inline void eng_rtp_write(uint8_t* p, int marker, int pt, uint16_t seq, uint32_t ts,
                               uint32_t ssrc) noexcept nogil:
    p[0] = 0x80
    p[1] = <uint8_t>((0x80 if marker else 0) | (pt & 0x7F))
    eng_put16(p + 2, seq)
    eng_put32(p + 4, ts)
    eng_put32(p + 8, ssrc)


cdef void eng_rx_reset(EngRxStats* s) noexcept nogil:
    s.started = 0
    s.max_seq = 0
    s.cycles = 0
    s.base_seq = 0
    s.received = 0
    s.received_base = 0
    s.lost_before = 0
    s.late = 0
    s.last_transit = 0
    s.jitter_q4 = 0


cdef void eng_rx_update(EngRxStats* s, uint16_t seq, uint32_t ts, int64_t arrival) noexcept nogil:
    """Account one accepted packet; arrival is in timestamp units (RFC 3550 A.1, A.8)."""
    cdef uint16_t udelta
    cdef int64_t transit, d
    if not s.started:
        s.started = 1
        s.max_seq = seq
        s.base_seq = seq
        s.last_transit = arrival - <int64_t>ts
    else:
        udelta = <uint16_t>(seq - s.max_seq)
        if udelta == 0 or udelta > 65536 - ENG_MAX_MISORDER:
            s.late += 1                       # duplicate or reordered
        elif udelta < ENG_MAX_DROPOUT:
            if seq < s.max_seq:
                s.cycles += 65536
            s.max_seq = seq
        else:                                 # a big jump: the source restarted
            s.lost_before = eng_rx_lost(s)
            s.base_seq = seq
            s.max_seq = seq
            s.cycles = 0
            s.received_base = 0
        transit = arrival - <int64_t>ts
        d = transit - s.last_transit
        s.last_transit = transit
        if d < 0:
            d = -d
        if d < 8000 * 60:                     # ignore timestamp jumps (new talkspurt base)
            s.jitter_q4 += d - ((s.jitter_q4 + 8) >> 4)
    s.received += 1
    s.received_base += 1


cdef int64_t eng_rx_lost(const EngRxStats* s) noexcept nogil:
    """Cumulative packets lost (RFC 3550 A.3), never negative."""
    cdef int64_t expected, lost
    if not s.started:
        return 0
    expected = <int64_t>s.cycles + s.max_seq - <int64_t>s.base_seq + 1
    lost = expected - <int64_t>s.received_base
    return s.lost_before + (lost if lost > 0 else 0)
