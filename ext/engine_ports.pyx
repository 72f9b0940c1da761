# RTP ports of the engine: a stream's socket pair, bound, and parked for the next stream.
#
# How this works: stream slot k owns ports port_base + 2k (RTP) and + 1 (RTCP). Creating,
# binding and watching a socket pair, and at the stream's end unwatching and closing it, is
# eight system calls and most of what opening and closing a stream costs the signalling
# thread (the kernel allocates and tears down two sockets each time). So a closed stream's
# pair is parked instead (eng_park): its slot keeps the two bound sockets, still in the
# epoll set under the slot's tag (eng_tag), and a later stream takes the pair parked
# longest (eng_unpark, first in first out) once it has rested ENG_PARK_REST_NS, so a port
# is not handed to a new call while the old call's phone may still be sending to it. Until
# then new streams bind never-parked slots as before; only when the range has no such slot
# left does a stream take a younger pair. While a pair is parked the media thread reads and
# drops what arrives on it (eng_dispatch), and the stream that takes it drops whatever is
# still queued before it is installed, under the lock (eng_take_parked): nothing the socket
# received before the new stream existed reaches that stream. At most ENG_PARK_MAX pairs
# (and no more than the range holds) are parked at once; beyond that closed pairs are
# closed, and so is a stream moved in from another engine (its port is of the other
# engine's range). stop() closes every parked pair.

from libc.errno cimport EAGAIN, errno
from libc.stdint cimport INT64_MAX
from libc.stdlib cimport calloc, free

cdef int64_t ENG_PARK_REST_NS = 500 * 1000000   # half a second: an old phone's stragglers
cdef int ENG_PARK_DRAIN_MAX = 100000             # no receive buffer holds as many datagrams


cdef int eng_bind_udp(uint32_t addr, int port) noexcept nogil:
    """A non-blocking UDP socket bound to addr:port, or -1."""
    cdef sockaddr_in sa
    cdef int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)
    if fd < 0:
        return -1
    memset(&sa, 0, sizeof(sa))
    sa.sin_family = AF_INET
    sa.sin_port = htons(<uint16_t>port)
    sa.sin_addr.s_addr = addr
    if bind(fd, <sockaddr*>&sa, sizeof(sa)) != 0:
        close(fd)
        return -1
    return fd


cdef int eng_park_alloc(EngPark* p, int cap) noexcept nogil:
    p.slot = <int*>calloc(cap, sizeof(int))
    p.since_ns = <int64_t*>calloc(cap, sizeof(int64_t))
    p.cap = cap
    return -1 if p.slot == NULL or p.since_ns == NULL else 0


cdef void eng_park_free(EngPark* p) noexcept nogil:
    free(p.slot)
    free(p.since_ns)
    p.slot, p.since_ns, p.cap = NULL, NULL, 0


cdef void eng_close_sockets(EngCore* c, EngStream* s) noexcept nogil:
    epoll_ctl(c.epfd, EPOLL_CTL_DEL, s.fd, NULL)
    epoll_ctl(c.epfd, EPOLL_CTL_DEL, s.fd_rtcp, NULL)
    close(s.fd)
    close(s.fd_rtcp)


cdef int eng_park(EngCore* c, int slot, int64_t now) noexcept nogil:
    """End slot's stream (eng_release_slot) keeping its sockets for a next stream; 0 (and
    nothing done) when the park is full."""
    cdef EngStream* s = &c.st[slot]
    cdef EngPark* p = &c.park
    cdef int fd = s.fd, fd2 = s.fd_rtcp, port = s.port
    if p.n == p.cap:
        return 0
    eng_release_slot(c, slot)
    eng_unsettle(s)            # connected, the socket would hear only the old call's phone
    eng_stream_clear(s)
    s.parked = 1
    s.fd, s.fd_rtcp, s.port = fd, fd2, port
    p.slot[(p.head + p.n) % p.cap] = slot
    p.since_ns[(p.head + p.n) % p.cap] = now
    p.n += 1
    return 1


cdef int eng_unpark(EngCore* c, int64_t parked_before) noexcept nogil:
    """The slot parked longest if it was parked before `parked_before` (ns), out of the
    park; else -1. It stays marked parked (what arrives is dropped) until it is taken."""
    cdef EngPark* p = &c.park
    cdef int slot
    if p.n == 0 or p.since_ns[p.head] >= parked_before:
        return -1
    slot = p.slot[p.head]
    p.head = (p.head + 1) % p.cap
    p.n -= 1
    return slot


cdef void eng_discard(int fd, int most) noexcept nogil:
    """Read and drop what fd holds, `most` datagrams at most. An error is read and passed
    over: the ICMP refusal a socket connected to a phone that went away may still hold."""
    cdef uint8_t byte
    cdef int i
    for i in range(most):
        if recvfrom(fd, &byte, 1, MSG_DONTWAIT, NULL, NULL) < 0 and errno == EAGAIN:
            return


cdef void eng_take_parked(EngStream* s) noexcept nogil:
    """Under the lock, as s's new stream is installed: drop all the pair holds (the most a
    receive buffer holds is a few hundred datagrams)."""
    eng_discard(s.fd, ENG_PARK_DRAIN_MAX)
    eng_discard(s.fd_rtcp, ENG_PARK_DRAIN_MAX)
    s.parked = 0


cdef void eng_close_parked(EngCore* c) noexcept nogil:
    cdef int slot = eng_unpark(c, INT64_MAX)
    while slot >= 0:
        eng_close_sockets(c, &c.st[slot])
        eng_stream_clear(&c.st[slot])
        slot = eng_unpark(c, INT64_MAX)
