# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""An RTP load generator for the engine benchmarks: sendmmsg/recvmmsg on a few UDP sockets.

How this works: a flow is one RTP stream of 172-byte packets (12-byte header + 160 bytes,
RFC 3550 §5.1 / RFC 3551 PCMU 20 ms) sent at `pps` from one of our sockets to one engine
port. The payload carries the flow index and the send time (CLOCK_MONOTONIC ns), which the
engine's bridge forwards untouched, so the receiving side measures one-way forwarding delay
into a 10 µs histogram. The stamp (16 bytes) sits at the payload's start, or at `stamp_at`
(set_payload) where a codec needs its first bytes intact (an Opus TOC byte, RFC 6716 §3.1). Flows are spread over `slots` sub-ticks of each packet period so the
engine sees a steady stream rather than one burst per period. run() holds no GIL: the whole
send/receive loop is C, one sendmmsg per socket per sub-tick and recvmmsg batches of 64.
Many engine streams share one remote address (ours), which is how 2,000 calls fit in two
sockets.
"""

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcmp, memcpy, memset
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from posix.unistd cimport close


cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    cdef struct sockaddr:
        unsigned short sa_family
    cdef struct iovec:
        void* iov_base
        size_t iov_len
    cdef struct msghdr:
        void* msg_name
        socklen_t msg_namelen
        iovec* msg_iov
        size_t msg_iovlen
        void* msg_control
        size_t msg_controllen
        int msg_flags
    cdef struct mmsghdr:
        msghdr msg_hdr
        unsigned int msg_len
    int socket(int, int, int)
    int bind(int, const sockaddr*, socklen_t)
    int getsockname(int, sockaddr*, socklen_t*)
    int setsockopt(int, int, int, const void*, socklen_t)
    int sendmmsg(int, mmsghdr*, unsigned int, int)
    int recvmmsg(int, mmsghdr*, unsigned int, int, timespec*)
    enum:
        AF_INET
        SOCK_DGRAM
        SOCK_NONBLOCK
        SOL_SOCKET
        SO_RCVBUFFORCE
        SO_SNDBUFFORCE
        MSG_DONTWAIT


cdef extern from "<netinet/in.h>" nogil:
    cdef struct in_addr:
        uint32_t s_addr
    cdef struct sockaddr_in:
        unsigned short sin_family
        uint16_t sin_port
        in_addr sin_addr
    uint16_t htons(uint16_t)
    uint16_t ntohs(uint16_t)
    uint32_t htonl(uint32_t)


cdef extern from "<poll.h>" nogil:
    cdef struct pollfd:
        int fd
        short events
        short revents
    int poll(pollfd*, unsigned long, int)
    enum:
        POLLIN


cdef extern from "<time.h>" nogil:
    int clock_nanosleep(int, int, const timespec*, timespec*)


cdef enum:
    MAX_SOCKS = 8
    BATCH = 64
    PKT = 172
    HIST_US = 10                 # histogram bucket width, µs
    HIST_N = 50000               # up to 500 ms


cdef const char* MAGIC = b"LGEN"     # marks payloads that carry a send time


cdef struct Flow:
    sockaddr_in dst
    int sock
    uint16_t seq
    uint32_t ts


cdef inline int64_t now_ns() noexcept nogil:
    cdef timespec t
    clock_gettime(CLOCK_MONOTONIC, &t)
    return <int64_t>t.tv_sec * 1000000000 + t.tv_nsec


cdef class LoadGen:
    """Flows of RTP toward the engine and counters of what comes back."""

    cdef int socks[MAX_SOCKS]
    cdef int nsocks
    cdef Flow* flows
    cdef int nflows
    cdef int cap
    cdef uint64_t* hist
    cdef public int64_t sent
    cdef public int64_t received
    cdef public int64_t timed
    cdef uint8_t bufs[BATCH][256]
    cdef uint8_t template[PKT]
    cdef int stamp                # offset of the stamp in the packet (12 + stamp_at)
    cdef mmsghdr mm[BATCH]
    cdef iovec iov[BATCH]

    def __cinit__(self, int nsocks, int max_flows):
        self.nsocks = 0
        self.flows = <Flow*>calloc(max_flows, sizeof(Flow))
        self.hist = <uint64_t*>calloc(HIST_N, sizeof(uint64_t))
        self.cap = max_flows
        if self.flows == NULL or self.hist == NULL:
            raise MemoryError()
        memset(self.template, 0xFF, PKT)          # μ-law silence until set_payload()
        self.stamp = 12
        for _ in range(min(nsocks, MAX_SOCKS)):
            self._open_socket()

    def set_payload(self, bytes frame, int stamp_at=0) -> None:
        """The 160 payload bytes every packet carries (bytes stamp_at..+16 then hold our
        stamps: flow index, send time, magic)."""
        if len(frame) != PKT - 12:
            raise ValueError("a payload is 160 bytes")
        if not 0 <= stamp_at <= PKT - 12 - 16:
            raise ValueError("the stamp needs 16 bytes inside the payload")
        memcpy(self.template + 12, <const char*>frame, PKT - 12)
        self.stamp = 12 + stamp_at

    cdef _open_socket(self):
        cdef sockaddr_in sa
        cdef int size = 16 * 1024 * 1024
        cdef int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0)
        memset(&sa, 0, sizeof(sa))
        sa.sin_family = AF_INET
        sa.sin_addr.s_addr = htonl(0x7F000001)
        if fd < 0 or bind(fd, <sockaddr*>&sa, sizeof(sa)) != 0:
            raise OSError("loadgen: cannot bind a UDP socket")
        setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(int))
        setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(int))
        self.socks[self.nsocks] = fd
        self.nsocks += 1

    def __dealloc__(self):
        for i in range(self.nsocks):
            close(self.socks[i])
        free(self.flows)
        free(self.hist)

    def port(self, int sock) -> int:
        """The local port of socket `sock` (engine streams use it as their remote)."""
        cdef sockaddr_in sa
        cdef socklen_t n = sizeof(sa)
        getsockname(self.socks[sock], <sockaddr*>&sa, &n)
        return ntohs(sa.sin_port)

    def add_flow(self, int sock, int dst_port) -> int:
        """A flow from socket `sock` to 127.0.0.1:dst_port; returns its index."""
        cdef Flow* f
        if self.nflows >= self.cap:
            raise OverflowError("too many flows")
        f = &self.flows[self.nflows]
        f.dst.sin_family = AF_INET
        f.dst.sin_port = htons(<uint16_t>dst_port)
        f.dst.sin_addr.s_addr = htonl(0x7F000001)
        f.sock = sock
        self.nflows += 1
        return self.nflows - 1

    def run(self, double seconds, int pps=50, int slots=4, double drain=0.2,
            bint spin=False) -> None:
        """Send every flow at pps for `seconds`, receiving all the while, then drain.

        spin=True polls without ever sleeping: on a CPU of its own the generator is then
        always awake, so the engine's sends never pay for waking it up (a remote peer
        behind a NIC costs the sender no wake-up either).
        """
        cdef int64_t period = 1000000000 // pps
        cdef int64_t dur = <int64_t>(seconds * 1e9), tail = <int64_t>(drain * 1e9)
        with nogil:
            self._run(period, slots, dur, tail, spin)

    cdef void _run(self, int64_t period, int slots, int64_t dur, int64_t tail,
                   bint spin) noexcept nogil:
        cdef int64_t start = now_ns(), t = start, nxt = start
        cdef int slot = 0
        cdef int wait_ms
        while True:
            t = now_ns()
            if t >= nxt and t < start + dur:
                self._send_slot(slot, slots)
                slot = (slot + 1) % slots
                nxt += period // slots
                self._receive(0)            # never let receiving starve when behind
                continue
            if t >= start + dur + tail:
                return
            wait_ms = <int>((nxt - t) // 1000000) if t < start + dur else 5
            self._receive(wait_ms if wait_ms > 0 and not spin else 0)

    cdef void _send_slot(self, int slot, int slots) noexcept nogil:
        cdef int s, i, n
        for s in range(self.nsocks):
            n = 0
            i = slot
            while i < self.nflows:
                if self.flows[i].sock == s:
                    self._build(i, n)
                    n += 1
                    if n == BATCH:
                        self.sent += self._flush(s, n)
                        n = 0
                i += slots
            if n:
                self.sent += self._flush(s, n)

    cdef void _build(self, int i, int k) noexcept nogil:
        cdef Flow* f = &self.flows[i]
        cdef uint8_t* p = self.bufs[k]
        cdef int64_t t = now_ns()
        memcpy(p, self.template, PKT)
        p[0] = 0x80
        p[1] = 0
        p[2] = <uint8_t>(f.seq >> 8)
        p[3] = <uint8_t>f.seq
        p[4] = <uint8_t>(f.ts >> 24)
        p[5] = <uint8_t>(f.ts >> 16)
        p[6] = <uint8_t>(f.ts >> 8)
        p[7] = <uint8_t>f.ts
        memcpy(p + 8, &i, 4)                 # SSRC = flow index
        memcpy(p + self.stamp, &i, 4)
        memcpy(p + self.stamp + 4, &t, 8)
        memcpy(p + self.stamp + 12, MAGIC, 4)
        f.seq += 1
        f.ts += 160
        self.iov[k].iov_base = p
        self.iov[k].iov_len = PKT
        self.mm[k].msg_hdr.msg_name = &f.dst
        self.mm[k].msg_hdr.msg_namelen = sizeof(sockaddr_in)
        self.mm[k].msg_hdr.msg_iov = &self.iov[k]
        self.mm[k].msg_hdr.msg_iovlen = 1
        self.mm[k].msg_hdr.msg_control = NULL
        self.mm[k].msg_hdr.msg_controllen = 0

    cdef int _flush(self, int s, int n) noexcept nogil:
        cdef int done = 0, r
        while done < n:
            r = sendmmsg(self.socks[s], self.mm + done, n - done, 0)
            if r <= 0:
                break
            done += r
        return done

    cdef void _receive(self, int wait_ms) noexcept nogil:
        cdef pollfd pf[MAX_SOCKS]
        cdef int s
        for s in range(self.nsocks):
            pf[s].fd = self.socks[s]
            pf[s].events = POLLIN
        if poll(pf, self.nsocks, wait_ms) <= 0:
            return
        for s in range(self.nsocks):
            if pf[s].revents:
                self._drain(s)

    cdef void _drain(self, int s) noexcept nogil:
        cdef int i, n
        cdef int64_t t, sent_at, us
        while True:
            for i in range(BATCH):
                self.iov[i].iov_base = self.bufs[i]
                self.iov[i].iov_len = 256
                self.mm[i].msg_hdr.msg_name = NULL
                self.mm[i].msg_hdr.msg_namelen = 0
                self.mm[i].msg_hdr.msg_iov = &self.iov[i]
                self.mm[i].msg_hdr.msg_iovlen = 1
                self.mm[i].msg_hdr.msg_control = NULL
                self.mm[i].msg_hdr.msg_controllen = 0
            n = recvmmsg(self.socks[s], self.mm, BATCH, MSG_DONTWAIT, NULL)
            if n <= 0:
                return
            t = now_ns()
            for i in range(n):
                self.received += 1
                if (self.mm[i].msg_len == PKT
                        and memcmp(self.bufs[i] + self.stamp + 12, MAGIC, 4) == 0):
                    memcpy(&sent_at, self.bufs[i] + self.stamp + 4, 8)
                    us = (t - sent_at) // 1000
                    if 0 <= us < HIST_US * HIST_N:
                        self.hist[us // HIST_US] += 1
                        self.timed += 1

    def reset_delays(self) -> None:
        """Forget the delays measured so far: the next run's percentiles are its own."""
        memset(self.hist, 0, HIST_N * sizeof(uint64_t))
        self.timed = 0

    def delay_percentile_us(self, double q) -> float:
        """The q-quantile (0..1) of the forwarding delay of packets that carried a send time."""
        cdef uint64_t acc = 0
        cdef uint64_t goal = <uint64_t>(q * self.timed)
        for i in range(HIST_N):
            acc += self.hist[i]
            if acc > goal:
                return (i + 0.5) * HIST_US
        return float("nan")
