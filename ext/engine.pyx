# The media engine: its thread, its stream table and the commands Python sends it.
#
# How this works: `Engine` owns an EngCore (engine_core.pyx) and one media thread that runs
# eng_run() with the GIL released. Python commands and the media thread share the core under
# one pthread mutex rather than a command queue: every command is a few field writes, so a
# caller waits at most for one batch of packets (well under a millisecond), commands take
# effect before the call returns (open_stream can return its port, stats are exact), and there
# is no second copy of the stream state to keep in sync. Sockets are created and bound with
# plain C calls (no Python socket objects) and added to the thread's epoll set; a closed
# stream's pair is parked, still bound, for a later stream (engine_ports.pyx).
# Events travel the other way through a queue in the core plus an eventfd that Python adds to
# its asyncio loop; pop_events() drains the queue. Recordings are drained by drain_recordings()
# from a writer thread in Python (mediasrv.media.engine), so file I/O stays off the media thread.
# Nothing here raises into the media thread: errors are raised to the Python caller only.
#
# RFCs: RTP and its statistics RFC 3550 (§5.1, §6 reports, A.1, A.3, A.8), audio profile RFC 3551
# (§4.1 marker bit, §4.5.14 PCMU/PCMA), telephone-events RFC 4733, symmetric RTP RFC 4961.

include "engine_sys.pxi"
include "rtp.pyx"
include "srtp.pyx"
include "player.pyx"
include "recorder.pyx"
include "engine_codec.pxi"
include "engine_types.pxi"
include "rtcp.pyx"
include "engine_core.pyx"
include "engine_ports.pyx"
include "engine_media.pyx"
include "engine_codec.pyx"

import secrets
import threading

import numpy as np

from libc.stdlib cimport calloc, free
from libc.string cimport memcpy
from posix.unistd cimport close, write

_ENG_DIGITS = "0123456789*#ABCD"
cdef uint32_t ENG_RFC4733_LONG = 8000 * 2       # a press longer than 2 s is reported then
_ENG_DTMF_MODES = {"rfc4733": ENG_DTMF_RFC4733, "inband": ENG_DTMF_INBAND,
                   "auto": ENG_DTMF_AUTO}
_ENG_FEEDS = ("none", "silence", "peer", "conference", "moh", "prompt", "tone")


cdef int eng_dtmf_mode(str mode) except -1:
    try:
        return _ENG_DTMF_MODES[mode]
    except KeyError:
        raise ValueError(f"DTMF mode {mode!r} is not rfc4733, inband or auto") from None


cdef uint32_t eng_parse_ipv4(str host) except? 0:
    """An IPv4 literal in network byte order (SDP gives addresses, not names)."""
    cdef uint32_t out = 0
    b = host.encode()
    if inet_pton(AF_INET, b, &out) != 1:
        raise ValueError(f"not an IPv4 address: {host!r}")
    return out


cdef void eng_stream_clear(EngStream* s) noexcept nogil:
    memset(s, 0, sizeof(EngStream))
    s.fd = -1
    s.fd_rtcp = -1
    s.event_pt = -1
    s.peer = -1
    s.fwd_to = -1
    s.conf = -1
    s.moh = -1
    s.rec = -1
    s.tsmul = 1


cdef void eng_set_feed(EngCore* c, int slot, int feed) noexcept nogil:
    """Replace what slot sends: ends a prompt (not completed) and leaves a conference."""
    cdef EngStream* s = &c.st[slot]
    eng_end_prompt(c, s, 0)
    eng_conf_leave(c, slot)
    s.feed = feed
    s.peer = -1
    s.anchor = 1


cdef void eng_peer(EngCore* c, int x, int y) noexcept nogil:
    """x sends what y receives (one direction of a two-party bridge)."""
    eng_set_feed(c, x, ENG_FEED_PEER)
    c.st[x].peer = y
    c.st[x].peer_sid = c.st[y].sid
    c.st[y].fwd_to = x


cdef void eng_release_slot(EngCore* c, int slot) noexcept nogil:
    """End slot's stream but for its sockets: its feed, recording, SRTP and codec state."""
    cdef EngStream* s = &c.st[slot]
    eng_set_feed(c, slot, ENG_FEED_NONE)
    if s.rec >= 0 and c.rec[s.rec].state == ENG_REC_ACTIVE:
        c.rec[s.rec].state = ENG_REC_FINISHING
    eng_srtp_free(&s.crypto)
    eng_codec_free(s)


cdef void eng_close_slot(EngCore* c, int slot) noexcept nogil:
    eng_release_slot(c, slot)
    eng_close_sockets(c, &c.st[slot])
    eng_stream_clear(&c.st[slot])


cdef class Engine:
    """The media engine core; mediasrv.media.engine.MediaEngine is its public face."""

    cdef EngCore* c
    cdef int port_base
    cdef int cursor
    cdef uint32_t bind_addr
    cdef int64_t next_sid
    cdef object _thread
    cdef dict _slots
    cdef dict _sounds
    cdef dict _sounds16
    cdef dict _moh
    cdef dict _moh_samples
    cdef list _keep
    cdef int64_t _next_play

    def __cinit__(self):
        self.c = NULL

    def __init__(self, str address, int port_min, int port_max, int ptime_ms=20,
                 double rtp_timeout=30.0, double rtcp_interval=5.0):
        if ptime_ms not in (10, 20, 30, 40):
            raise ValueError(f"ptime {ptime_ms} ms not supported (10, 20, 30 or 40)")
        self.bind_addr = eng_parse_ipv4(address)
        self.port_base = port_min + (port_min & 1)
        if port_min < 1 or port_max > 65535 or port_max < self.port_base + 1:
            raise ValueError(f"RTP port range {port_min}-{port_max} holds no even/odd pair")
        nst = (port_max - 1 - self.port_base) // 2 + 1
        if nst >= (1 << ENG_SLOT_BITS):
            nst = (1 << ENG_SLOT_BITS) - 1
        self._slots, self._sounds, self._moh, self._moh_samples = {}, {}, {}, {}
        self._sounds16 = {}
        self._keep = []
        self.next_sid = 1
        self._next_play = 1
        self._thread = None
        self._alloc(nst, ptime_ms * 8, <int64_t>(rtp_timeout * 1e9))
        self._rtcp_setup(rtcp_interval)

    cdef _rtcp_setup(self, double interval):
        # CNAME: random and fixed for the engine's life (RFC 7022 §4.2: 96+ random bits).
        cname = ("mediasrv-" + secrets.token_hex(12)).encode()
        self.c.rtcp_ns = <int64_t>(interval * 1e9)
        self.c.rng = secrets.randbits(64) | 1
        self.c.cname_len = len(cname)
        memcpy(self.c.cname, <const char*>cname, len(cname))

    cdef _alloc(self, int nst, int frame, int64_t timeout_ns):
        cdef EngCore* c = <EngCore*>calloc(1, sizeof(EngCore))
        if c == NULL:
            raise MemoryError()
        self.c = c
        pthread_mutex_init(&c.mu, NULL)
        c.epfd = c.tfd = c.wakefd = c.evfd = -1
        c.nst = nst
        c.nconf = nst // 2 + 1
        c.frame = frame
        c.timeout_ns = timeout_ns
        c.st = <EngStream*>calloc(nst, sizeof(EngStream))
        c.conf = <EngConf*>calloc(c.nconf, sizeof(EngConf))
        c.moh = <EngMoh*>calloc(ENG_MAX_MOH, sizeof(EngMoh))
        c.rec = <EngRec*>calloc(ENG_MAX_REC, sizeof(EngRec))
        c.evq = <EngEvent*>calloc(ENG_EVQ, sizeof(EngEvent))
        c.dtls = <EngDtlsBox*>calloc(1, sizeof(EngDtlsBox))
        if not (c.st and c.conf and c.moh and c.rec and c.evq and c.dtls):
            raise MemoryError()
        for i in range(nst):
            eng_stream_clear(&c.st[i])
        dtmf_init(&c.dtmf8, 8000)
        if eng_park_alloc(&c.park, min(nst, ENG_PARK_MAX)) < 0:
            raise MemoryError()
        memset(c.silence[ENG_PCMU], 0xFF, ENG_MAX_FRAME)     # G.711 codes of 0
        memset(c.silence[ENG_PCMA], 0xD5, ENG_MAX_FRAME)
        c.epfd = epoll_create1(EPOLL_CLOEXEC)
        c.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        c.wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)
        c.evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)
        if c.epfd < 0 or c.tfd < 0 or c.wakefd < 0 or c.evfd < 0:
            raise OSError("cannot create the engine's epoll/timerfd/eventfd")
        eng_watch(c, c.tfd, ENG_TAG_TIMER)
        eng_watch(c, c.wakefd, ENG_TAG_WAKE)

    def __dealloc__(self):
        cdef EngCore* c = self.c
        if c == NULL:
            return
        eng_close_parked(c)
        for i in range(c.nst):
            if c.st[i].used:
                eng_close_slot(c, i)
            free(c.st[i].jb)
            free(c.st[i].crs)
        for i in range(ENG_MAX_REC):
            free(c.rec[i].ring)
        for fd in (c.epfd, c.tfd, c.wakefd, c.evfd):
            if fd >= 0:
                close(fd)
        pthread_mutex_destroy(&c.mu)
        free(c.st)
        free(c.conf)
        free(c.moh)
        free(c.rec)
        free(c.evq)
        free(c.dtls)
        eng_park_free(&c.park)
        free(c)
        self.c = NULL

    # ------------------------------------------------------------ locking and lookup

    cdef inline void _lock(self) noexcept:
        # Uncontended (the media thread is between rounds) the lock is taken without
        # releasing and retaking the GIL; only a wait for the media thread lets it go.
        if pthread_mutex_trylock(&self.c.mu) == 0:
            return
        with nogil:
            pthread_mutex_lock(&self.c.mu)

    cdef inline void _unlock(self) noexcept:
        pthread_mutex_unlock(&self.c.mu)

    cdef int _slot(self, int64_t sid) except -1:
        try:
            return self._slots[sid]
        except KeyError:
            raise LookupError(f"no stream {sid}") from None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Arm the ptime clock and start the media thread."""
        cdef itimerspec its
        if self._thread is not None:
            raise RuntimeError("engine already started")
        its.it_interval.tv_sec = 0
        its.it_interval.tv_nsec = self.c.frame * 125000
        its.it_value = its.it_interval
        timerfd_settime(self.c.tfd, 0, &its, NULL)
        self._thread = threading.Thread(target=self._thread_main, name="mediasrv-engine",
                                        daemon=True)
        self._thread.start()

    def _thread_main(self) -> None:
        with nogil:
            eng_run(self.c)

    def stop(self) -> None:
        """Stop and join the media thread, then close every stream; idempotent."""
        cdef uint64_t one = 1
        self._lock()
        self.c.stopping = 1
        self._unlock()
        write(self.c.wakefd, &one, 8)
        if self._thread is not None:
            self._thread.join()
        for sid in list(self._slots):
            self.close_stream(sid)
        eng_close_parked(self.c)

    def thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def thread_ids(self) -> tuple | None:
        """(pthread ident, kernel TID) of the media thread while it runs."""
        if self._thread is None or not self._thread.is_alive():
            return None
        return self._thread.ident, self._thread.native_id

    def event_fd(self) -> int:
        return self.c.evfd

    def pop_events(self) -> list:
        """Drain queued events: (kind, sid, a, b, c, time_s, host, port) tuples."""
        cdef EngEvent* e
        cdef uint64_t count
        out = []
        self._lock()
        try:
            with nogil:
                read(self.c.evfd, &count, 8)
            self.c.ev_signalled = 0
            while self.c.ev_len > 0:
                e = &self.c.evq[self.c.ev_head]
                host = "" if e.host == 0 else ".".join(
                    str((e.host >> k) & 0xFF) for k in (24, 16, 8, 0))
                out.append((e.kind, e.sid, e.a, e.b, e.c, e.t_ns / 1e9, host, e.port))
                self.c.ev_head = (self.c.ev_head + 1) % ENG_EVQ
                self.c.ev_len -= 1
        finally:
            self._unlock()
        return out

    # ------------------------------------------------------------ sounds

    def load_sound(self, str name, samples, samples16=None) -> None:
        """Register an 8 kHz int16 sound for play_prompt (and its 16 kHz copy, if given,
        which wideband streams play).

        Every array ever loaded stays alive with the engine: a prompt may still be playing
        from the array a reload replaced.
        """
        self._keep.append((samples, samples16))
        self._sounds[name] = samples
        self._sounds16[name] = samples16

    def define_moh(self, str name, samples, samples16=None) -> None:
        """Create or replace a music-on-hold class playing samples (8 kHz) in a loop;
        samples16, its 16 kHz copy, is what wideband listeners hear when given."""
        cdef const int16_t[::1] mv = samples
        cdef const int16_t[::1] mv16 = samples16 if samples16 is not None else samples[:0]
        cdef EngMoh* m
        idx = self._moh.get(name, len(self._moh))
        if idx >= ENG_MAX_MOH:
            raise ValueError(f"too many MoH classes (max {ENG_MAX_MOH})")
        self._lock()
        m = &self.c.moh[idx]
        m.used = 1
        m.snd.data = &mv[0] if mv.shape[0] > 0 else NULL
        m.snd.n = mv.shape[0]
        m.pos = 0
        m.snd16.data = &mv16[0] if mv16.shape[0] > 0 else NULL
        m.snd16.n = mv16.shape[0]
        m.pos16 = 0
        self._unlock()
        self._moh[name] = idx
        self._moh_samples[name] = (samples, samples16)   # the previous arrays: unused now

    # ------------------------------------------------------------ streams

    def open_stream(self, uint32_t ssrc, uint16_t seq, uint32_t ts, str dtmf="auto") -> tuple:
        """A free even port (and port+1 for RTCP), parked or newly bound (engine_ports.pyx),
        detecting DTMF in mode `dtmf` (set_dtmf's) and forwarding RFC 4733; returns
        (sid, port)."""
        cdef int mode = eng_dtmf_mode(dtmf)
        cdef int slot = eng_unpark(self.c, eng_now_ns() - ENG_PARK_REST_NS)
        if slot < 0:
            slot = self._bind_free()
        if slot < 0:
            slot = eng_unpark(self.c, INT64_MAX)    # the range is full: a younger pair
        if slot < 0:
            raise OSError("no free RTP port")
        return self._install(slot, ssrc, seq, ts, mode)

    cdef int _bind_free(self) noexcept:
        """Bind the pair of the next slot neither in use nor parked; its slot, or -1."""
        cdef int slot, fd, fd2, k
        for k in range(self.c.nst):
            slot = (self.cursor + k) % self.c.nst
            if self.c.st[slot].used or self.c.st[slot].parked:
                continue
            fd = eng_bind_udp(self.bind_addr, self.port_base + 2 * slot)
            if fd < 0:
                continue
            fd2 = eng_bind_udp(self.bind_addr, self.port_base + 2 * slot + 1)
            if fd2 < 0:
                close(fd)
                continue
            self.cursor = (slot + 1) % self.c.nst
            self.c.st[slot].fd, self.c.st[slot].fd_rtcp = fd, fd2  # unused: the thread skips it
            return slot
        return -1

    cdef tuple _install(self, int slot, uint32_t ssrc, uint16_t seq, uint32_t ts, int mode):
        cdef EngStream* s = &self.c.st[slot]
        cdef int fd = s.fd, fd2 = s.fd_rtcp, parked = s.parked
        sid = self.next_sid
        self.next_sid += 1
        self._lock()
        if parked:
            eng_take_parked(s)
        else:
            eng_watch(self.c, fd, eng_tag(slot, 0))
            eng_watch(self.c, fd2, eng_tag(slot, 1))
        eng_stream_clear(s)
        s.used = 1
        s.sid = sid
        s.fd, s.fd_rtcp = fd, fd2
        s.port = self.port_base + 2 * slot
        s.ssrc, s.seq, s.ts = ssrc, seq, ts
        s.send_on = s.recv_on = 1
        s.anchor = 1
        s.forward_dtmf = 1
        s.dtmf_mode = mode
        s.inband = self.c.dtmf8         # a copy: dtmf_init's ~300 sin/cos once per engine
        rfc4733_rx_init(&s.rfc_rx, ENG_RFC4733_LONG)
        eng_rx_reset(&s.rx)
        self._unlock()
        self._slots[sid] = slot
        return sid, s.port

    def close_stream(self, int64_t sid) -> dict:
        """End a stream and free its port (its sockets closed, or parked for a next stream:
        engine_ports.pyx); an active recording is finished. Returns its final stats(),
        read under the same lock (no packet is counted between the two)."""
        cdef int slot = self._slot(sid)
        cdef int own = self.c.st[slot].port == self.port_base + 2 * slot   # not moved in
        self._lock()
        out = eng_stats(&self.c.st[slot])
        if self.c.stopping or not own or not eng_park(self.c, slot, eng_now_ns()):
            eng_close_slot(self.c, slot)
        self._unlock()
        del self._slots[sid]
        return out

    def detach_stream(self, int64_t sid) -> bytes:
        """Take a stream out of this engine with its sockets open, for `attach_stream` on
        another engine (a call's streams meet on one media thread): its port, addresses,
        sequence/timestamp continuity, counters and DTMF state travel as bytes; what it sent
        does not (feed none, out of any conference, a recording finished), and streams of
        this engine stop forwarding to it."""
        cdef int slot = self._slot(sid)
        cdef int i
        cdef EngStream* s = &self.c.st[slot]
        self._lock()
        eng_set_feed(self.c, slot, ENG_FEED_NONE)
        for i in range(self.c.nst):
            if self.c.st[i].used and i != slot:
                if self.c.st[i].fwd_to == slot:
                    self.c.st[i].fwd_to = -1
                if self.c.st[i].peer == slot:
                    eng_set_feed(self.c, i, ENG_FEED_NONE)
        if s.rec >= 0 and self.c.rec[s.rec].state == ENG_REC_ACTIVE:
            self.c.rec[s.rec].state = ENG_REC_FINISHING
        s.rec = s.moh = s.fwd_to = -1
        epoll_ctl(self.c.epfd, EPOLL_CTL_DEL, s.fd, NULL)
        epoll_ctl(self.c.epfd, EPOLL_CTL_DEL, s.fd_rtcp, NULL)
        blob = (<char*>s)[:sizeof(EngStream)]
        eng_stream_clear(s)
        self._unlock()
        del self._slots[sid]
        return blob

    def attach_stream(self, bytes blob) -> int:
        """Install a stream `detach_stream` took from another engine; returns its new id
        here (its port is unchanged, so the phone notices nothing)."""
        cdef int slot = -1, k
        cdef EngStream* s
        if len(blob) != sizeof(EngStream):
            raise ValueError("not a detached stream of this engine build")
        for k in range(self.c.nst):
            slot = (self.cursor + k) % self.c.nst
            if not (self.c.st[slot].used or self.c.st[slot].parked):
                break
        else:
            slot = eng_unpark(self.c, INT64_MAX)         # the table is full: unpark one
        if slot < 0:
            raise OSError("no free stream slot")
        sid = self.next_sid
        self.next_sid += 1
        self._lock()
        s = &self.c.st[slot]
        if s.parked:
            eng_close_sockets(self.c, s)
        memcpy(s, <const char*>blob, sizeof(EngStream))
        s.sid = sid
        eng_watch(self.c, s.fd, eng_tag(slot, 0))
        eng_watch(self.c, s.fd_rtcp, eng_tag(slot, 1))
        self._unlock()
        self._slots[sid] = slot
        return sid

    def open_stream_count(self) -> int:
        return len(self._slots)

    def local_port(self, int64_t sid) -> int:
        return self.c.st[self._slot(sid)].port

    def set_remote(self, int64_t sid, str host, int port, int codec, int pt, int event_pt) -> None:
        """Where to send, and the negotiated payload types; event_pt -1 = no telephone-event.

        codec: 0 PCMU, 1 PCMA, 2 G.722, 3 Opus (engine_codec.pyx)."""
        cdef sockaddr_in sa
        cdef EngStream* s
        cdef int rc
        if not 0 <= codec <= ENG_OPUS:
            raise ValueError(f"unknown codec number {codec}")
        slot = self._slot(sid)
        memset(&sa, 0, sizeof(sa))
        sa.sin_family = AF_INET
        sa.sin_port = htons(<uint16_t>port)
        sa.sin_addr.s_addr = eng_parse_ipv4(host)
        self._lock()
        s = &self.c.st[slot]
        if not s.has_remote or not eng_same_addr(&sa, &s.remote):
            eng_unsettle(s)
            s.remote = sa
            s.seen = s.accepted = 0
            s.cand_count = 0
            s.last_rx_ns = eng_now_ns()
            s.timed_out = 0
        s.has_remote = 1
        s.codec, s.pt, s.event_pt = codec, pt, event_pt
        rc = eng_codec_set(s, codec)
        self._unlock()
        if rc < 0:
            raise MemoryError("no memory for the stream's codec")

    def set_direction(self, int64_t sid, bint send, bint recv) -> None:
        cdef EngStream* s = &self.c.st[self._slot(sid)]
        self._lock()
        if send and not s.send_on:
            s.anchor = 1
        if recv and not s.recv_on:
            s.last_rx_ns = eng_now_ns()
            s.timed_out = 0
        s.send_on, s.recv_on = send, recv
        self._unlock()

    def set_srtp(self, int64_t sid, suite, bytes rx_key, bytes tx_key, bint rtcp=False) -> None:
        """Protect what sid sends with tx_key and unprotect what it receives with rx_key
        (master key||salt of suite, srtp.pyx); suite None = plain RTP again. Replaces any
        sessions it had (a re-INVITE's new keys), the counters stay. rtcp=True: keys for
        its RTCP alone (DTLS-SRTP's RTCP component); otherwise RTCP uses the RTP keys."""
        cdef EngStream* s = &self.c.st[self._slot(sid)]
        cdef srtp_t rx = NULL
        cdef srtp_t tx = NULL
        cdef srtp_t* old_rx = &s.crypto.rtcp_rx if rtcp else &s.crypto.rx
        cdef srtp_t* old_tx = &s.crypto.rtcp_tx if rtcp else &s.crypto.tx
        cdef int num
        if suite is not None:
            num = eng_srtp_suite(suite, rx_key)
            eng_srtp_suite(suite, tx_key)
            rx = eng_srtp_new(num, <const uint8_t*>rx_key, 1)
            tx = eng_srtp_new(num, <const uint8_t*>tx_key, 0)
            if rx == NULL or tx == NULL:
                if rx != NULL:
                    srtp_dealloc(rx)
                if tx != NULL:
                    srtp_dealloc(tx)
                raise ValueError(f"libsrtp2 refused a {suite} session")
        self._lock()
        if old_rx[0] != NULL:
            srtp_dealloc(old_rx[0])
        if old_tx[0] != NULL:
            srtp_dealloc(old_tx[0])
        old_rx[0], old_tx[0] = rx, tx
        self._unlock()

    def set_dtls(self, int64_t sid, bint on) -> None:
        """DTLS-SRTP on sid: DTLS datagrams on its RTP and RTCP ports go to pop_dtls()
        (RFC 5764 §5.1.2 demultiplexing) instead of being dropped as malformed RTP."""
        cdef EngStream* s = &self.c.st[self._slot(sid)]
        self._lock()
        s.crypto.dtls = on
        self._unlock()

    def pop_dtls(self) -> list:
        """(sid, rtcp, datagram, host, port) for each DTLS datagram received since."""
        cdef EngDtlsDgram* d
        cdef int i
        out = []
        self._lock()
        try:
            for i in range(self.c.dtls.n):
                d = &self.c.dtls.q[i]
                host = ".".join(str((d.host >> k) & 0xFF) for k in (24, 16, 8, 0))
                out.append((d.sid, d.rtcp, d.data[:d.n], host, d.port))
            self.c.dtls.n = 0
        finally:
            self._unlock()
        return out

    def send_dtls(self, int64_t sid, bint rtcp, bytes data, str host, int port) -> None:
        """Send one DTLS datagram from sid's RTP (or RTCP) port."""
        cdef EngStream* s = &self.c.st[self._slot(sid)]
        cdef sockaddr_in sa
        cdef const uint8_t* p = data
        memset(&sa, 0, sizeof(sa))
        sa.sin_family = AF_INET
        sa.sin_port = htons(<uint16_t>port)
        sa.sin_addr.s_addr = eng_parse_ipv4(host)
        self._lock()
        sendto(s.fd_rtcp if rtcp else s.fd, p, len(data), MSG_DONTWAIT, <sockaddr*>&sa,
               sizeof(sockaddr_in))
        self._unlock()

    # ------------------------------------------------------------ feeds

    def set_feed(self, int64_t sid, str feed) -> None:
        """Local feeds without arguments: "none" or "silence"."""
        slot = self._slot(sid)
        self._lock()
        eng_set_feed(self.c, slot, ENG_FEED_SILENCE if feed == "silence" else ENG_FEED_NONE)
        self._unlock()

    def feed(self, int64_t sid) -> str:
        return _ENG_FEEDS[self.c.st[self._slot(sid)].feed]

    def connect(self, int64_t a, int64_t b) -> None:
        """Two-party bridge: each stream sends what the other receives."""
        cdef int sa = self._slot(a), sb = self._slot(b)
        cdef int x, y                   # typed: Cython's inference once made x a bint here
        if sa == sb:
            raise ValueError("cannot connect a stream to itself")
        self._lock()
        eng_peer(self.c, sa, sb)
        eng_peer(self.c, sb, sa)
        self._unlock()

    def conference(self, list sids) -> None:
        """Mix-minus among these streams, replacing their feeds."""
        slots = [self._slot(sid) for sid in sids]
        if len(set(slots)) != len(slots) or not 1 <= len(slots) <= ENG_CONF_MAX:
            raise ValueError(f"a conference needs 1..{ENG_CONF_MAX} distinct streams")
        self._lock()
        try:
            for slot in slots:
                eng_set_feed(self.c, slot, ENG_FEED_NONE)
            conf = eng_conf_new(self.c)
            for slot in slots:
                if conf < 0 or eng_conf_join(self.c, conf, slot) < 0:
                    raise MemoryError("no conference slot left")
        finally:
            self._unlock()

    def play_moh(self, int64_t sid, str moh_class) -> None:
        slot = self._slot(sid)
        try:
            idx = self._moh[moh_class]
        except KeyError:
            raise LookupError(f"no MoH class {moh_class!r}") from None
        self._lock()
        eng_set_feed(self.c, slot, ENG_FEED_MOH)
        self.c.st[slot].moh = idx
        self._unlock()

    def play_tone(self, int64_t sid, str zone, str name) -> None:
        """Play TONES[zone][name] (tone.pyx): ringback, busy, beep, failed, ..."""
        cdef ToneSegment segs[TONE_MAX_SEGMENTS]
        cdef int i, f
        slot = self._slot(sid)
        segments, repeat = TONES[zone][name]
        for i, (freqs, level, on_ms, off_ms) in enumerate(segments):
            segs[i].nfreq = len(freqs)
            for f, freq in enumerate(freqs):
                segs[i].freq[f] = freq
                segs[i].amp[f] = tone_amplitude(level)
            segs[i].on, segs[i].off = on_ms * 8, off_ms * 8
        self._lock()
        eng_set_feed(self.c, slot, ENG_FEED_TONE)
        tone_init(&self.c.st[slot].tone, segs, len(segments), repeat, 8000)
        self._unlock()

    def play_prompt(self, int64_t sid, str name) -> int:
        """Play a loaded sound once; returns the play id of its PLAY_FINISHED event."""
        cdef const int16_t[::1] mv
        cdef const int16_t[::1] mv16
        cdef EngStream* s
        slot = self._slot(sid)
        try:
            mv = self._sounds[name]
        except KeyError:
            raise LookupError(f"no sound {name!r}") from None
        wide = self._sounds16.get(name)
        mv16 = wide if wide is not None else self._sounds[name][:0]
        play_id = self._next_play
        self._next_play += 1
        self._lock()
        s = &self.c.st[slot]
        eng_set_feed(self.c, slot, ENG_FEED_PROMPT)
        s.snd.data = &mv[0] if mv.shape[0] > 0 else NULL
        s.snd.n = mv.shape[0]
        s.snd16.data = &mv16[0] if mv16.shape[0] > 0 else NULL
        s.snd16.n = mv16.shape[0]
        s.pos = 0
        s.play_id = play_id
        self._unlock()
        return play_id

    # ------------------------------------------------------------ DTMF, mute, recording

    def set_dtmf(self, int64_t sid, str mode, bint forward) -> None:
        cdef EngStream* s = &self.c.st[self._slot(sid)]
        cdef int m = eng_dtmf_mode(mode)
        self._lock()
        s.dtmf_mode = m
        s.forward_dtmf = forward
        self._unlock()

    def set_mute(self, int64_t sid, bint muted) -> None:
        cdef EngStream* s = &self.c.st[self._slot(sid)]
        self._lock()
        s.muted = muted
        self._unlock()

    def send_dtmf(self, int64_t sid, str digit, int duration_ms) -> None:
        """Queue one digit: RFC 4733 on the event PT, or in-band without one."""
        cdef EngStream* s = &self.c.st[self._slot(sid)]
        cdef int rc
        if len(digit) != 1 or digit.upper() not in _ENG_DIGITS:
            raise ValueError(f"not a DTMF digit: {digit!r}")
        if not 40 <= duration_ms <= 8000:
            raise ValueError(f"DTMF duration {duration_ms} ms out of 40..8000")
        self._lock()
        rc = eng_dtmf_queue(self.c, s, _ENG_DIGITS.index(digit.upper()), duration_ms)
        self._unlock()
        if rc < 0:
            raise OverflowError("too many DTMF digits queued")

    def stream_rate(self, int64_t sid) -> int:
        """The audio rate of the stream's codec: 16000 for G.722 and Opus, else 8000."""
        return ENG_WIDE_RATE if self.c.st[self._slot(sid)].cx != NULL else 8000

    def record_start(self, int64_t sid, double max_seconds) -> int:
        """Start recording a stream's inbound audio; returns the recorder id."""
        cdef EngStream* s = &self.c.st[self._slot(sid)]
        cdef int i, rc = -1
        cdef int rate = self.stream_rate(sid)
        self._lock()
        if s.rec < 0:
            for i in range(ENG_MAX_REC):
                if self.c.rec[i].state == ENG_REC_FREE:
                    rc = eng_rec_open(&self.c.rec[i], sid, <int64_t>(max_seconds * rate))
                    if rc == 0:
                        s.rec = i
                        self.c.rec[i].rate = rate
                    break
        self._unlock()
        if s.rec < 0 or rc < 0:
            raise RuntimeError("stream already recording, or no recorder free")
        return s.rec

    def record_stop(self, int64_t sid) -> None:
        cdef EngStream* s = &self.c.st[self._slot(sid)]
        self._lock()
        if s.rec >= 0 and self.c.rec[s.rec].state == ENG_REC_ACTIVE:
            self.c.rec[s.rec].state = ENG_REC_FINISHING
        s.rec = -1
        self._unlock()

    def drain_recordings(self) -> list:
        """(rec_id, sid, pcm bytes, finished, overflow) for each recorder with news."""
        cdef int i
        cdef EngRec* r
        cdef int16_t[::1] buf
        out = []
        self._lock()
        try:
            for i in range(ENG_MAX_REC):
                r = &self.c.rec[i]
                if r.state == ENG_REC_FREE:
                    continue
                arr = np.empty(r.written - r.read, dtype=np.int16)
                buf = arr
                if buf.shape[0]:
                    eng_rec_drain(r, &buf[0], buf.shape[0])
                finished = r.state == ENG_REC_FINISHING
                out.append((i, r.sid, arr.tobytes(), finished, r.overflow))
                if finished:
                    self._detach_rec(i)
                    eng_rec_free(r)
        finally:
            self._unlock()
        return out

    cdef void _detach_rec(self, int rec) noexcept:
        for slot in self._slots.values():
            if self.c.st[slot].rec == rec:
                self.c.st[slot].rec = -1

    # ------------------------------------------------------------ statistics

    def load(self) -> dict:
        """The media thread's own account: rounds handled, rounds that came back full (it
        was behind: a sign of saturation), and seconds spent handling them; and the socket
        pairs parked for next streams (bound, but no stream's: engine_ports.pyx)."""
        self._lock()
        out = {"rounds": self.c.rounds, "rounds_behind": self.c.rounds_behind,
               "busy_seconds": self.c.busy_ns / 1e9, "parked_pairs": self.c.park.n}
        self._unlock()
        return out

    def stats(self, int64_t sid) -> dict:
        cdef EngStream* s = &self.c.st[self._slot(sid)]
        self._lock()
        out = eng_stats(s)
        self._unlock()
        return out


cdef dict eng_stats(EngStream* s):
    """The stream's counters (the caller holds the lock)."""
    return {
        "packets_in": s.pkts_in, "bytes_in": s.bytes_in,
        "packets_out": s.pkts_out, "bytes_out": s.bytes_out,
        "dropped": s.dropped, "malformed": s.malformed, "send_errors": s.send_errors,
        "lost": eng_rx_lost(&s.rx), "late": s.rx.late,
        "jitter": (s.rx.jitter_q4 + 8) >> 4,
        "rtcp_out": s.rtcp_out, "rtcp_in": s.rtcp_in,
        "srtp_auth_fail": s.crypto.auth_fail, "srtp_replay": s.crypto.replay,
    }
