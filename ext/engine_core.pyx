# The engine's C core (included by engine.pyx; all names start with eng_/Eng).
#
# How this works: EngCore holds everything the media thread touches: the stream table (one
# slot per even port of the range), music-on-hold classes, conferences, recorders and the
# event queue. eng_run() is the media thread: epoll over the stream sockets, a timerfd
# ticking every ptime, an eventfd to wake it for stop. It takes the core mutex for each
# batch of readiness events; Python commands take the same mutex for the few microseconds
# a command needs (see engine.pyx for why a mutex and not a command queue).
#
# Per packet (eng_rx_packet): RFC 3550 validity checks, source check against the negotiated
# remote with symmetric-RTP latching (RFC 4961 §4 leaves latching to us: we allow it only
# before any packet came from the negotiated address, within the first ENG_LATCH_WINDOW
# packets, and only after ENG_LATCH_STABLE consecutive packets from one address with one
# SSRC), receive statistics (RFC 3550 A.1/A.3/A.8), DTMF detection, recording, then the
# subscriber: a peer stream gets the packet forwarded at once with its header rewritten
# (seq/ts offsets fixed at each anchor, so each output stream stays continuous; marker bit
# on every anchor, RFC 3551 §4.1), a conference member's audio goes to its jitter buffer.
# Per tick (eng_tick): conferences mix, then each stream whose feed is produced locally
# (silence, moh, prompt, tone) or which is sending DTMF gets one frame.

from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset
from posix.unistd cimport close, read, write

# ---------------------------------------------------------------- codecs (H3's g711.pyx)

cdef inline void eng_decode(int codec, const uint8_t* src, int16_t* dst, int n) noexcept nogil:
    if codec == ENG_PCMU:
        ulaw_decode_c(src, dst, n)
    elif codec == ENG_PCMA:
        alaw_decode_c(src, dst, n)


cdef inline void eng_encode(int codec, const int16_t* src, uint8_t* dst, int n) noexcept nogil:
    if codec == ENG_PCMU:
        ulaw_encode_c(src, dst, n)
    elif codec == ENG_PCMA:               # wideband codecs: engine_codec.pyx
        alaw_encode_c(src, dst, n)


# ---------------------------------------------------------------- events

cdef void eng_event(EngCore* c, int kind, int64_t sid, int64_t a, int64_t b, int64_t cc,
                    uint32_t host, int port) noexcept nogil:
    """Queue an event for Python; the eventfd is written once per loop iteration."""
    cdef EngEvent* e
    if c.ev_len >= ENG_EVQ:
        c.ev_lost += 1
        return
    e = &c.evq[(c.ev_head + c.ev_len) % ENG_EVQ]
    c.ev_len += 1
    e.kind = kind
    e.sid = sid
    e.a = a
    e.b = b
    e.c = cc
    e.t_ns = c.now
    e.host = host
    e.port = port


cdef void eng_signal_events(EngCore* c) noexcept nogil:
    cdef uint64_t one = 1
    if c.ev_len > 0 and not c.ev_signalled:
        c.ev_signalled = 1
        write(c.evfd, &one, 8)


# ---------------------------------------------------------------- sending

cdef uint32_t eng_next_ts(EngCore* c, EngStream* s) noexcept nogil:
    """Timestamp for a re-anchored stream: last ts + the wall-clock time since, in frames."""
    cdef int64_t k
    if not s.out_started:
        return s.ts
    k = ((c.now - s.last_out_ns) * 8 // 1000000 + c.frame // 2) // c.frame
    if k < 1:
        k = 1
    return s.ts + <uint32_t>(k * c.frame * s.tsmul)


cdef void eng_sendto(EngCore* c, EngStream* s, uint8_t* pkt, int n) noexcept nogil:
    """Send one RTP packet (SRTP-protected in place on an SRTP stream; pkt has room)."""
    cdef ssize_t r
    cdef int plain = n
    if s.crypto.dtls and s.crypto.tx == NULL:      # DTLS-SRTP not keyed yet: send nothing
        return
    if s.crypto.tx != NULL and eng_srtp_protect(&s.crypto, pkt, &n, 0) < 0:
        s.send_errors += 1
        return
    if s.connected:                 # the route is cached in the socket: ~0.3 us less a packet
        r = send(s.fd, pkt, n, MSG_DONTWAIT)
    else:
        r = sendto(s.fd, pkt, n, MSG_DONTWAIT, <sockaddr*>&s.remote, sizeof(sockaddr_in))
    if r == n:
        s.pkts_out += 1
        s.bytes_out += plain
    else:
        s.send_errors += 1
    s.last_out_ns = c.now
    s.out_started = 1


cdef uint32_t eng_stamp(EngCore* c, EngStream* s, int* marker) noexcept nogil:
    """Advance s's clock by one frame (or re-anchor it) and return the frame's timestamp."""
    if s.anchor:
        s.ts = eng_next_ts(c, s)
        marker[0] = 1
        s.anchor = 0
    elif s.out_started:
        s.ts += <uint32_t>(c.frame * s.tsmul)
    return s.ts


cdef void eng_send_raw(EngCore* c, EngStream* s, int pt, int marker, uint32_t ts,
                       const uint8_t* payload, int n) noexcept nogil:
    """Send one locally produced packet with the next sequence number."""
    s.seq += 1
    if not s.send_on or not s.has_remote:
        s.last_out_ns = c.now
        s.out_started = 1
        return
    eng_rtp_write(c.tx, marker, pt, s.seq, ts, s.ssrc)
    memcpy(c.tx + ENG_RTP_HDR, payload, n)
    eng_sendto(c, s, c.tx, ENG_RTP_HDR + n)


cdef void eng_send_frame(EngCore* c, EngStream* s, const uint8_t* payload) noexcept nogil:
    """Send one frame of a local feed, continuing s's sequence and timestamp."""
    cdef int marker = 0
    cdef uint32_t ts = eng_stamp(c, s, &marker)
    eng_send_raw(c, s, s.pt, marker, ts, payload, c.frame)


cdef void eng_forward(EngCore* c, EngStream* src, EngStream* x, EngRtpView* v,
                      uint8_t* buf, int is_event) noexcept nogil:
    """Send src's packet out of x: header rewritten in place, payload transcoded if needed."""
    cdef uint8_t* pkt = buf + v.payload_off - ENG_RTP_HDR
    cdef uint8_t* pay = buf + v.payload_off
    cdef uint16_t seq
    cdef uint32_t ts
    cdef int marker = v.marker
    if not x.send_on or not x.has_remote or eng_dtmf_busy(x):
        return
    if not is_event and (not eng_relays(src, x) or (src.muted and x.cx != NULL)):
        eng_transcode(c, src, x, v, pay)
        return
    if x.anchor or v.ssrc != x.fwd_ssrc:
        x.seq_off = <uint16_t>(x.seq + 1 - v.seq)
        x.ts_off = eng_next_ts(c, x) - v.ts
        x.fwd_ssrc = v.ssrc
        x.anchor = 0
        marker = 1
    seq = <uint16_t>(v.seq + x.seq_off)
    ts = v.ts + x.ts_off
    if not is_event:
        if src.muted:
            memset(pay, c.silence[x.codec][0], v.payload_len)
        elif src.codec != x.codec:
            if src.codec == ENG_PCMU:
                ulaw_to_alaw_c(pay, pay, v.payload_len)
            else:
                alaw_to_ulaw_c(pay, pay, v.payload_len)
    eng_rtp_write(pkt, marker, x.event_pt if is_event else x.pt, seq, ts, x.ssrc)
    if <int16_t>(seq - x.seq) > 0:
        x.seq = seq
        x.ts = ts
    eng_sendto(c, x, pkt, ENG_RTP_HDR + v.payload_len)


# ---------------------------------------------------------------- receiving

cdef inline int eng_same_addr(const sockaddr_in* a, const sockaddr_in* b) noexcept nogil:
    return a.sin_port == b.sin_port and a.sin_addr.s_addr == b.sin_addr.s_addr


cdef int eng_source_ok(EngCore* c, EngStream* s, const sockaddr_in* a,
                       uint32_t ssrc) noexcept nogil:
    """Is a packet from a acceptable? Latches to a new source under the rules above."""
    if eng_same_addr(a, &s.remote):
        return 1
    if s.accepted > 0 or s.seen > ENG_LATCH_WINDOW:
        return 0
    if eng_same_addr(a, &s.cand) and s.cand_ssrc == ssrc and s.cand_count > 0:
        s.cand_count += 1
    else:
        s.cand = a[0]
        s.cand_ssrc = ssrc
        s.cand_count = 1
    if s.cand_count < ENG_LATCH_STABLE:
        return 0
    s.remote = a[0]
    return 1


cdef void eng_settle(EngStream* s) noexcept nogil:
    """The stream's first accepted packet settles its source: connect the socket to it.

    From here on eng_source_ok refuses every other source anyway; connected, the kernel
    drops them before they reach us (so they no longer count as `dropped`, and it answers
    them with ICMP port unreachable, rate-limited), and sends use the socket's cached
    route instead of a route lookup per packet. set_remote to a new address disconnects.
    """
    s.connected = sock_connect(s.fd, <sockaddr*>&s.remote, sizeof(sockaddr_in)) == 0


cdef void eng_unsettle(EngStream* s) noexcept nogil:
    cdef sockaddr none
    if s.connected:
        memset(&none, 0, sizeof(none))
        none.sa_family = AF_UNSPEC
        sock_connect(s.fd, &none, sizeof(none))
        s.connected = 0


cdef EngStream* eng_subscriber(EngCore* c, int slot) noexcept nogil:
    """The stream whose feed is a peer bridge from slot, or NULL."""
    cdef EngStream* s = &c.st[slot]
    cdef EngStream* x
    if s.fwd_to < 0:
        return NULL
    x = &c.st[s.fwd_to]
    if x.used and x.feed == ENG_FEED_PEER and x.peer == slot and x.peer_sid == s.sid:
        return x
    return NULL


cdef void eng_rx_packet(EngCore* c, int slot, uint8_t* buf, int n,
                        const sockaddr_in* a) noexcept nogil:
    cdef EngStream* s = &c.st[slot]
    cdef EngStream* x
    cdef EngRtpView v
    cdef int is_event, ok
    c.dec_slot = -1
    if s.crypto.dtls and eng_is_dtls(buf, n):     # DTLS-SRTP handshake: Python's (RFC 5764)
        eng_dtls_up(c, s, 0, buf, n, a)
        return
    if s.crypto.dtls and s.crypto.rx == NULL:      # not keyed yet: nothing in clear
        s.dropped += 1
        return
    if s.crypto.rx != NULL:                       # SRTP first: nothing sees it unauthenticated
        ok = eng_srtp_unprotect(&s.crypto, buf, &n, 0)
        if ok <= 0:                               # auth/replay counted; never forwarded
            s.malformed += ok < 0
            return
    if eng_rtp_parse(buf, n, &v) < 0:
        s.malformed += 1
        return
    s.seen += 1
    if not s.has_remote or not s.recv_on or not eng_source_ok(c, s, a, v.ssrc):
        s.dropped += 1
        return
    is_event = s.event_pt >= 0 and v.pt == s.event_pt
    if not is_event and v.pt != s.pt:
        s.dropped += 1                            # comfort noise, unknown payload types
        return
    if s.accepted == 0:
        eng_event(c, ENG_EV_FIRST_PACKET, s.sid, 0, 0, 0, ntohl(a.sin_addr.s_addr),
                  ntohs(a.sin_port))
        eng_settle(s)
    s.accepted += 1
    s.rx_ssrc = v.ssrc
    s.pkts_in += 1
    s.bytes_in += n
    s.last_rx_ns = c.now
    s.timed_out = 0
    eng_rx_update(&s.rx, v.seq, v.ts, c.now * 8 * s.tsmul // 1000000)
    x = eng_subscriber(c, slot)
    if is_event:
        if not eng_dtmf_rx_event(c, s, x, &v, buf + v.payload_off):
            return
    else:
        eng_rx_audio(c, s, &v, buf + v.payload_off)
    if x != NULL:
        eng_forward(c, s, x, &v, buf, is_event)


cdef void eng_rx_audio(EngCore* c, EngStream* s, EngRtpView* v,
                       const uint8_t* pay) noexcept nogil:
    """Hand the audio to whoever needs it: conference jitter buffer, DTMF detector, recorder."""
    cdef int n
    if s.feed == ENG_FEED_CONF:
        if s.cx != NULL:
            eng_conf_put_wide(c, s, v, pay)
        else:
            eng_conf_put(c, s, v, pay)
    if not (eng_dtmf_inband_on(s) or (s.rec >= 0 and s.feed != ENG_FEED_CONF)):
        return
    if c.dec_slot != s.port:
        eng_rx_decode(c, s, v, pay)
        c.dec_slot = s.port
    n = c.npcm
    eng_dtmf_inband(c, s, c.pcm, n)
    if s.rec >= 0 and s.feed != ENG_FEED_CONF:
        eng_rec_put(c, s, c.pcm, n, 1)


cdef void eng_rx_socket(EngCore* c, int slot, int behind) noexcept nogil:
    """Read a ready RTP socket: one datagram, or all it holds when the thread is behind.

    A stream gets one packet per ptime, so a ready socket nearly always holds exactly one,
    and recvmmsg pays for a second, failing attempt inside the kernel on each call (1.4 us
    against recvfrom's 1.0 us per datagram on loopback): recvfrom reads it, and a socket
    holding more stays ready (level-triggered epoll) for the next round. When a round
    comes back full the thread is behind and sockets hold several: recvmmsg drains each
    in one call, which is what lets a saturated thread catch up.
    """
    cdef sockaddr_in a
    cdef socklen_t alen = sizeof(sockaddr_in)
    cdef ssize_t n
    if behind:
        eng_rx_drain(c, slot)
        return
    n = recvfrom(c.st[slot].fd, c.rxbuf[0], ENG_RX_MAX, MSG_DONTWAIT, <sockaddr*>&a, &alen)
    if n >= 0:
        eng_rx_packet(c, slot, c.rxbuf[0], <int>n, &a)


cdef void eng_rx_drain(EngCore* c, int slot) noexcept nogil:
    """Drain one RTP socket with recvmmsg, ENG_BATCH datagrams per call."""
    cdef int i, n
    cdef EngStream* s = &c.st[slot]
    while True:
        for i in range(ENG_BATCH):
            c.iov[i].iov_base = c.rxbuf[i]
            c.iov[i].iov_len = ENG_RX_MAX
            c.mm[i].msg_hdr.msg_name = &c.from_[i]
            c.mm[i].msg_hdr.msg_namelen = sizeof(sockaddr_in)
            c.mm[i].msg_hdr.msg_iov = &c.iov[i]
            c.mm[i].msg_hdr.msg_iovlen = 1
            c.mm[i].msg_hdr.msg_control = NULL
            c.mm[i].msg_hdr.msg_controllen = 0
            c.mm[i].msg_hdr.msg_flags = 0
        n = recvmmsg(s.fd, c.mm, ENG_BATCH, MSG_DONTWAIT, NULL)
        if n <= 0:
            return
        for i in range(n):
            if s.used:
                eng_rx_packet(c, slot, c.rxbuf[i], c.mm[i].msg_len, &c.from_[i])
        if n < ENG_BATCH:
            return


cdef void eng_drain_rtcp(EngCore* c, int slot) noexcept nogil:
    """Read the RTCP socket: reports are counted and an SR's time noted (rtcp.pyx)."""
    cdef sockaddr_in a
    cdef socklen_t alen = sizeof(sockaddr_in)
    cdef ssize_t n
    while True:
        n = recvfrom(c.st[slot].fd_rtcp, c.rxbuf[0], ENG_RX_MAX, MSG_DONTWAIT, <sockaddr*>&a, &alen)
        if n < 0:
            return
        eng_rtcp_receive(c, &c.st[slot], c.rxbuf[0], <int>n, &a)


cdef void eng_dtls_up(EngCore* c, EngStream* s, int rtcp, const uint8_t* buf, int n,
                      const sockaddr_in* a) noexcept nogil:
    """A DTLS datagram goes to Python only from the phone's host (its SDP address): anyone
    else's would cost a handshake attempt in Python each."""
    if not s.has_remote or a.sin_addr.s_addr != s.remote.sin_addr.s_addr:
        s.dropped += 1
        return
    eng_dtls_put(c.dtls, s.sid, rtcp, buf, n, ntohl(a.sin_addr.s_addr), ntohs(a.sin_port))
    eng_event(c, ENG_EV_DTLS, s.sid, 0, 0, 0, 0, 0)


# ---------------------------------------------------------------- the clock

cdef void eng_check_timeout(EngCore* c, EngStream* s) noexcept nogil:
    # RTP timeout counts only while we expect media: remote known, receiving, not yet fired.
    if c.timeout_ns <= 0 or not s.has_remote or not s.recv_on or s.timed_out:
        return
    if c.now - s.last_rx_ns > c.timeout_ns:
        s.timed_out = 1
        eng_event(c, ENG_EV_TIMEOUT, s.sid, 0, 0, 0, 0, 0)


cdef void eng_end_prompt(EngCore* c, EngStream* s, int completed) noexcept nogil:
    if s.feed == ENG_FEED_PROMPT:
        eng_event(c, ENG_EV_PLAY_FINISHED, s.sid, s.play_id, completed, 0, 0, 0)


cdef const uint8_t* eng_moh_frame(EngCore* c, EngStream* s) noexcept nogil:
    cdef EngMoh* m = &c.moh[s.moh]
    if m.tick != c.tick:
        m.tick = c.tick
        m.pos = eng_sound_frame(&m.snd, m.pos, m.pcm, c.frame, True)
        eng_encode(ENG_PCMU, m.pcm, m.enc[ENG_PCMU], c.frame)
        eng_encode(ENG_PCMA, m.pcm, m.enc[ENG_PCMA], c.frame)
    return m.enc[s.codec]


cdef const uint8_t* eng_prompt_frame(EngCore* c, EngStream* s) noexcept nogil:
    cdef uint8_t* out = c.enc
    s.pos = eng_sound_frame(&s.snd, s.pos, c.pcm, c.frame, False)
    eng_encode(s.codec, c.pcm, out, c.frame)
    if s.pos >= s.snd.n:
        eng_end_prompt(c, s, 1)
        s.feed = ENG_FEED_SILENCE
    return out


cdef void eng_feed_tick(EngCore* c, EngStream* s) noexcept nogil:
    """One frame of a locally produced feed (or of a DTMF being sent)."""
    cdef const uint8_t* pay
    cdef const int16_t* pcm
    if eng_dtmf_send_tick(c, s):
        return
    if s.cx != NULL:                        # wideband: engine_codec.pyx
        eng_feed_tick_wide(c, s)
        return
    if s.feed == ENG_FEED_SILENCE:
        pay = c.silence[s.codec]
    elif s.feed == ENG_FEED_MOH:
        pay = eng_moh_frame(c, s)
    elif s.feed == ENG_FEED_PROMPT:
        pay = eng_prompt_frame(c, s)
    elif s.feed == ENG_FEED_TONE:
        pay = eng_tone_frame(c, s)
    else:
        return
    eng_send_frame(c, s, pay)


cdef void eng_tick(EngCore* c) noexcept nogil:
    cdef int i
    cdef EngStream* s
    c.tick += 1
    eng_conf_tick(c)
    for i in range(c.nst):
        s = &c.st[i]
        if not s.used:
            continue
        if c.tick % 10 == 0:
            eng_check_timeout(c, s)
            eng_dtmf_rx_idle(c, s)
        if c.rtcp_ns > 0 and s.has_remote:
            eng_rtcp_tick(c, s)
        if s.feed == ENG_FEED_CONF:
            continue                        # the conference mix sends its frames
        if s.feed != ENG_FEED_PEER or eng_dtmf_busy(s):
            eng_feed_tick(c, s)


# ---------------------------------------------------------------- the thread

cdef void eng_reanchor_all(EngCore* c) noexcept nogil:
    # Skipped ticks: every stream's next timestamp follows the wall clock (with a marker).
    cdef int i
    for i in range(c.nst):
        if c.st[i].used:
            c.st[i].anchor = 1


cdef void eng_dispatch(EngCore* c, uint64_t tag, int behind) noexcept nogil:
    cdef uint64_t count = 0
    cdef int slot
    if tag == ENG_TAG_TIMER:
        if read(c.tfd, &count, 8) == 8:
            if count > ENG_MAX_CATCHUP:     # starved: skip ticks rather than burst them all
                eng_reanchor_all(c)
                count = ENG_MAX_CATCHUP
            while count > 0:
                eng_tick(c)
                count -= 1
        return
    if tag == ENG_TAG_WAKE:
        read(c.wakefd, &count, 8)
        return
    slot = <int>(tag >> 1) - ENG_TAG_SLOT0
    if slot >= c.nst:
        return
    if c.st[slot].parked:                   # an old call's stragglers: nobody's
        eng_discard(c.st[slot].fd_rtcp if tag & 1 else c.st[slot].fd, ENG_BATCH)
        return
    if not c.st[slot].used:
        return                              # closed while the event was in flight
    if tag & 1:
        eng_drain_rtcp(c, slot)
    else:
        eng_rx_socket(c, slot, behind)


cdef void eng_run(EngCore* c) noexcept nogil:
    """The media thread: wait, then handle a batch of readiness events under the mutex."""
    cdef epoll_event evs[ENG_EVENTS]
    cdef int i, n
    while True:
        n = epoll_wait(c.epfd, evs, ENG_EVENTS, 1000)
        pthread_mutex_lock(&c.mu)
        if c.stopping:
            pthread_mutex_unlock(&c.mu)
            return
        c.now = eng_now_ns()
        for i in range(n):
            eng_dispatch(c, evs[i].data.u64, n == ENG_EVENTS)
        eng_signal_events(c)
        c.rounds += 1
        c.rounds_behind += n == ENG_EVENTS
        c.busy_ns += eng_now_ns() - c.now
        pthread_mutex_unlock(&c.mu)


cdef inline uint64_t eng_tag(int slot, int rtcp) noexcept nogil:
    # The slot's, not the stream's: a parked socket pair keeps its epoll registration
    # (and tag) from one stream to the next, which saves two epoll_ctl calls per stream.
    return (<uint64_t>(slot + ENG_TAG_SLOT0) << 1) | <uint64_t>rtcp


cdef int eng_watch(EngCore* c, int fd, uint64_t tag) noexcept nogil:
    cdef epoll_event ev
    ev.events = EPOLLIN
    ev.data.u64 = tag
    return epoll_ctl(c.epfd, EPOLL_CTL_ADD, fd, &ev)
