# RTCP reports for the engine (included by engine.pyx after engine_core.pyx; names eng_rtcp_*).
#
# How this works: each stream sends one compound RTCP packet (RFC 3550 §6.1: a report
# first, then SDES with a CNAME) from its RTCP socket to the remote's port + 1, at a
# randomised interval of 0.5-1.5 x c.rtcp_ns (§6.2: 5 s minimum, randomised so that
# reports from many streams do not synchronise; the first after half of one).
# - SR (§6.4.1) when the stream sent RTP since its previous report: wall-clock NTP time,
#   the RTP timestamp of that instant on the stream's own clock, packets and payload octets
#   sent. RR (§6.4.2) otherwise.
# - One report block once RTP was received: fraction lost over the interval and cumulative
#   lost (A.3), extended highest sequence (A.1), interarrival jitter (A.8), and LSR/DLSR from
#   the last SR the remote sent us (§6.4.1), which eng_rtcp_receive notes.
# A stream that neither sent nor received RTP since its previous report sends nothing, so
# an idle or directly bridged stream stays silent.

from libc.string cimport memcpy, memset
from posix.time cimport CLOCK_REALTIME

cdef enum:
    ENG_RTCP_SR = 200
    ENG_RTCP_RR = 201
    ENG_RTCP_SDES = 202
    ENG_RTCP_BLOCK = 24        # bytes of one report block

cdef int64_t ENG_NTP_UNIX = 2208988800      # seconds from 1900 (NTP) to 1970 (Unix)


cdef inline uint64_t eng_ntp_now() noexcept nogil:
    """Wall-clock time as a 64-bit NTP timestamp (RFC 3550 §4)."""
    cdef timespec t
    clock_gettime(CLOCK_REALTIME, &t)
    return ((<uint64_t>(t.tv_sec + ENG_NTP_UNIX) << 32)
            | ((<uint64_t>t.tv_nsec << 32) // 1000000000))


cdef int64_t eng_rtcp_interval(EngCore* c) noexcept nogil:
    """c.rtcp_ns x a uniform factor in [0.5, 1.5) (xorshift64: no lock, no libc state)."""
    c.rng ^= c.rng << 13
    c.rng ^= c.rng >> 7
    c.rng ^= c.rng << 17
    return c.rtcp_ns // 2 + <int64_t>((c.rng >> 11) % <uint64_t>c.rtcp_ns)


cdef int eng_rtcp_block(EngCore* c, EngStream* s, uint8_t* p) noexcept nogil:
    """Write the report block on what s received (RFC 3550 §6.4.1, A.3); its length."""
    cdef EngRxStats* r = &s.rx
    cdef uint32_t ext_max = r.cycles + r.max_seq
    cdef int64_t expected = <int64_t>r.cycles + r.max_seq - <int64_t>r.base_seq + 1
    cdef int64_t exp_int = expected - s.rtcp_expected_prior
    cdef int64_t rcv_int = <int64_t>r.received_base - s.rtcp_received_prior
    cdef int64_t lost = eng_rx_lost(r)
    cdef int fraction = 0
    s.rtcp_expected_prior = expected
    s.rtcp_received_prior = r.received_base
    if exp_int > 0 and exp_int > rcv_int:
        fraction = <int>(((exp_int - rcv_int) << 8) // exp_int)
    eng_put32(p, s.rx_ssrc)
    eng_put32(p + 4, (<uint32_t>min(fraction, 255) << 24) | <uint32_t>min(lost, 0x7FFFFF))
    eng_put32(p + 8, ext_max)
    eng_put32(p + 12, <uint32_t>(r.jitter_q4 >> 4))
    eng_put32(p + 16, s.lsr)
    eng_put32(p + 20, <uint32_t>((c.now - s.lsr_ns) * 65536 // 1000000000) if s.lsr else 0)
    return ENG_RTCP_BLOCK


cdef int eng_rtcp_report(EngCore* c, EngStream* s, uint8_t* p) noexcept nogil:
    """Write the SR or RR that starts the compound packet; its length."""
    cdef int rc = 1 if s.rx.started else 0
    cdef int n = 8
    cdef uint64_t ntp
    cdef int sender = s.pkts_out != s.rtcp_pkts_out
    p[0] = <uint8_t>(0x80 | rc)
    p[1] = ENG_RTCP_SR if sender else ENG_RTCP_RR
    eng_put32(p + 4, s.ssrc)
    if sender:
        ntp = eng_ntp_now()
        eng_put32(p + 8, <uint32_t>(ntp >> 32))
        eng_put32(p + 12, <uint32_t>ntp)
        eng_put32(p + 16, s.ts + <uint32_t>((c.now - s.last_out_ns) * 8 * s.tsmul // 1000000))
        eng_put32(p + 20, <uint32_t>s.pkts_out)
        eng_put32(p + 24, <uint32_t>(s.bytes_out - ENG_RTP_HDR * s.pkts_out))
        n = 28
    if rc:
        n += eng_rtcp_block(c, s, p + n)
    eng_put16(p + 2, <uint16_t>(n // 4 - 1))
    return n


cdef int eng_rtcp_sdes(EngCore* c, EngStream* s, uint8_t* p) noexcept nogil:
    """SDES with one chunk: our SSRC and CNAME (RFC 3550 §6.5), padded to 32 bits."""
    cdef int n = 8 + 2 + c.cname_len + 1          # header, SSRC, CNAME item, END item
    n = (n + 3) & ~3
    memset(p, 0, n)
    p[0] = 0x81
    p[1] = ENG_RTCP_SDES
    eng_put16(p + 2, <uint16_t>(n // 4 - 1))
    eng_put32(p + 4, s.ssrc)
    p[8] = 1                                      # CNAME
    p[9] = <uint8_t>c.cname_len
    memcpy(p + 10, c.cname, c.cname_len)
    return n


cdef void eng_rtcp_tick(EngCore* c, EngStream* s) noexcept nogil:
    """Send s's report when it is due (called every tick for every stream with a remote)."""
    cdef sockaddr_in to
    cdef int n
    if s.rtcp_due_ns == 0:
        s.rtcp_due_ns = c.now + eng_rtcp_interval(c) // 2
        return
    if c.now < s.rtcp_due_ns:
        return
    s.rtcp_due_ns = c.now + eng_rtcp_interval(c)
    if s.pkts_out == s.rtcp_pkts_out and s.pkts_in == s.rtcp_pkts_in:
        return
    n = eng_rtcp_report(c, s, c.tx)
    n += eng_rtcp_sdes(c, s, c.tx + n)
    s.rtcp_pkts_out = s.pkts_out
    s.rtcp_pkts_in = s.pkts_in
    to = s.remote
    to.sin_port = htons(<uint16_t>(ntohs(s.remote.sin_port) + 1))
    if s.crypto.dtls and s.crypto.rtcp_tx == NULL:
        return                                    # DTLS-SRTP: RTCP keys not agreed yet
    if s.crypto.tx != NULL and eng_srtp_protect(&s.crypto, c.tx, &n, 1) < 0:
        return                                    # SRTCP (RFC 3711 §3.4) or nothing
    if sendto(s.fd_rtcp, c.tx, n, MSG_DONTWAIT, <sockaddr*>&to, sizeof(sockaddr_in)) == n:
        s.rtcp_out += 1


cdef void eng_rtcp_receive(EngCore* c, EngStream* s, uint8_t* p, int n,
                           const sockaddr_in* a) noexcept nogil:
    """Count an RTCP packet from the remote's host; note the time of an SR for LSR/DLSR."""
    if not s.has_remote or a.sin_addr.s_addr != s.remote.sin_addr.s_addr:
        return
    if s.crypto.dtls and eng_is_dtls(p, n):
        eng_dtls_up(c, s, 1, p, n, a)
        return
    if s.crypto.dtls and s.crypto.rtcp_rx == NULL:     # its own association not keyed yet
        return
    if s.crypto.rx != NULL and eng_srtp_unprotect(&s.crypto, p, &n, 1) <= 0:
        return                                    # SRTCP refused: counted with the RTP ones
    if n < 8 or (p[0] >> 6) != 2 or not (ENG_RTCP_SR <= p[1] <= 204):
        return
    s.rtcp_in += 1
    if p[1] == ENG_RTCP_SR and n >= 28:
        s.lsr = eng_be32(p + 10)                  # middle 32 bits of its NTP timestamp
        s.lsr_ns = c.now
