# C API for the engine (per stream, embedded by value, no GIL):
#   ctypedef struct Rfc4733Event: int event; bint end; int volume; int duration
#   cdef int rfc4733_unpack(const uint8_t* p, Py_ssize_t n, Rfc4733Event* ev) noexcept nogil
#       -> 0, or -1 if shorter than 4 bytes
#   cdef void rfc4733_pack(uint8_t* out, int event, bint end, int volume, int duration)
#       noexcept nogil                                         (writes 4 bytes)
#   cdef void rfc4733_rx_init(Rfc4733Receiver_* rx, uint32_t long_limit) noexcept nogil
#   cdef int rfc4733_rx_packet(Rfc4733Receiver_* rx, uint32_t ts, const uint8_t* p,
#       Py_ssize_t n, Rfc4733Digit* out) noexcept nogil -> digits written (0..2)
#   cdef int rfc4733_rx_flush(Rfc4733Receiver_* rx, Rfc4733Digit* out) noexcept nogil -> 0..1
#   cdef void rfc4733_tx_init(Rfc4733Sender_* tx, int event, int duration, int ptime,
#       int volume) noexcept nogil
#   cdef int rfc4733_tx_next(Rfc4733Sender_* tx, uint8_t* payload, bint* marker) noexcept nogil
#       -> 1 with the next 4-byte payload (one per ptime), 0 when the event is fully sent
# Digits are ASCII from "0123456789*#ABCD" (events 0-15); durations in timestamp units.
"""RFC 4733 telephone-event payloads: pack/unpack, a de-duplicating receiver, a sender.

How this works. The payload (RFC 4733 §2.3) is event(8) | E(1) R(1) volume(6) | duration(16).
All packets of one event share its RTP timestamp (§2.5.1: the timestamp is the event's
start; updates only grow the duration), so the receiver (§2.5.2) keys events on the
timestamp: the repeated end packets and late packets of an event already over are dropped;
a digit is reported exactly once, at its end, or as soon as it outlasts `long_limit` (then
not again at its end: a long press is one digit). A lost end is tolerated: a packet with a
newer timestamp ends the event before it. The receiver's transitions are the table
_RX_TABLE below. Timestamps compare in 32-bit serial arithmetic (RFC 3550 §5.1), so
wrap-around works. Events above 15 (flash, tones) are not digits and are ignored. The
sender (§2.5.1) emits one packet per ptime with the duration so far, the marker bit on the
first, and the end packet three times with the final duration.
"""

from libc.stdint cimport int32_t, uint8_t, uint32_t

cdef const char* _RFC4733_DIGITS = b"0123456789*#ABCD"

ctypedef struct Rfc4733Event:
    int event
    bint end
    int volume
    int duration

ctypedef struct Rfc4733Digit:
    char digit
    uint32_t timestamp
    int duration

cdef enum:   # receiver states
    RX_IDLE = 0        # no event seen yet
    RX_ACTIVE = 1      # an event is in progress (updates arriving)
    RX_ENDED = 2       # the current timestamp's end packet was seen; repeats are dropped

cdef enum:   # inputs: how a packet's timestamp relates to the current event
    IN_SAME = 0
    IN_SAME_END = 1
    IN_NEW = 2
    IN_NEW_END = 3
    IN_OLD = 4         # older than the current event: a late packet

cdef enum:   # actions, applied in this order
    ACT_CLOSE_OLD = 1  # report the current event unless already reported, before switching
    ACT_START = 2      # take the packet's timestamp and event as the current event
    ACT_UPDATE = 4     # take its duration (and report a long press once)
    ACT_CLOSE = 8      # report the current event unless already reported

ctypedef struct _RxRule:
    int action
    int next_state

# _RX_TABLE[state][input] = (actions, next state)
cdef _RxRule _RX_TABLE[3][5]
_RX_TABLE[RX_IDLE][:] = [
    _RxRule(ACT_START | ACT_UPDATE, RX_ACTIVE),                      # IN_SAME (never: IDLE)
    _RxRule(ACT_START | ACT_UPDATE | ACT_CLOSE, RX_ENDED),           # IN_SAME_END (never)
    _RxRule(ACT_START | ACT_UPDATE, RX_ACTIVE),                      # IN_NEW
    _RxRule(ACT_START | ACT_UPDATE | ACT_CLOSE, RX_ENDED),           # IN_NEW_END
    _RxRule(0, RX_IDLE),                                             # IN_OLD (never)
]
_RX_TABLE[RX_ACTIVE][:] = [
    _RxRule(ACT_UPDATE, RX_ACTIVE),
    _RxRule(ACT_UPDATE | ACT_CLOSE, RX_ENDED),
    _RxRule(ACT_CLOSE_OLD | ACT_START | ACT_UPDATE, RX_ACTIVE),      # end packets were lost
    _RxRule(ACT_CLOSE_OLD | ACT_START | ACT_UPDATE | ACT_CLOSE, RX_ENDED),
    _RxRule(0, RX_ACTIVE),
]
_RX_TABLE[RX_ENDED][:] = [
    _RxRule(0, RX_ENDED),                                            # late update: drop
    _RxRule(0, RX_ENDED),                                            # repeated end: drop
    _RxRule(ACT_START | ACT_UPDATE, RX_ACTIVE),
    _RxRule(ACT_START | ACT_UPDATE | ACT_CLOSE, RX_ENDED),
    _RxRule(0, RX_ENDED),
]

ctypedef struct Rfc4733Receiver_:
    int state
    uint32_t timestamp
    int event
    int duration
    bint reported
    uint32_t long_limit

ctypedef struct Rfc4733Sender_:
    int event
    int volume
    int duration
    int ptime
    int sent                       # duration already announced
    int ends                       # end packets already sent (3 in all)


cdef int rfc4733_unpack(const uint8_t* p, Py_ssize_t n, Rfc4733Event* ev) noexcept nogil:
    if n < 4:
        return -1
    ev.event = p[0]
    ev.end = (p[1] & 0x80) != 0
    ev.volume = p[1] & 0x3F
    ev.duration = (p[2] << 8) | p[3]
    return 0


cdef void rfc4733_pack(uint8_t* out, int event, bint end, int volume, int duration) noexcept nogil:
    out[0] = <uint8_t>event
    out[1] = <uint8_t>((0x80 if end else 0) | (volume & 0x3F))
    out[2] = <uint8_t>((duration >> 8) & 0xFF)
    out[3] = <uint8_t>(duration & 0xFF)


cdef void rfc4733_rx_init(Rfc4733Receiver_* rx, uint32_t long_limit) noexcept nogil:
    rx.state = RX_IDLE
    rx.timestamp = 0
    rx.event = 0
    rx.duration = 0
    rx.reported = True
    rx.long_limit = long_limit


cdef inline int _rx_input(Rfc4733Receiver_* rx, uint32_t ts, bint end) noexcept nogil:
    if rx.state == RX_IDLE or <int32_t>(ts - rx.timestamp) > 0:
        return IN_NEW_END if end else IN_NEW
    if ts == rx.timestamp:
        return IN_SAME_END if end else IN_SAME
    return IN_OLD


cdef inline int _rx_report(Rfc4733Receiver_* rx, Rfc4733Digit* out) noexcept nogil:
    if rx.reported:
        return 0
    rx.reported = True
    out.digit = _RFC4733_DIGITS[rx.event]
    out.timestamp = rx.timestamp
    out.duration = rx.duration
    return 1


cdef int rfc4733_rx_packet(Rfc4733Receiver_* rx, uint32_t ts, const uint8_t* p, Py_ssize_t n,
                           Rfc4733Digit* out) noexcept nogil:
    cdef Rfc4733Event ev
    if rfc4733_unpack(p, n, &ev) < 0 or ev.event > 15:
        return 0
    cdef _RxRule rule = _RX_TABLE[rx.state][_rx_input(rx, ts, ev.end)]
    cdef int nout = 0
    if rule.action & ACT_CLOSE_OLD:
        nout += _rx_report(rx, out + nout)
    if rule.action & ACT_START:
        rx.timestamp = ts
        rx.event = ev.event
        rx.duration = 0
        rx.reported = False
    if rule.action & ACT_UPDATE:
        if ev.duration > rx.duration:          # durations only grow; reordering can't shrink
            rx.duration = ev.duration
        if <uint32_t>rx.duration >= rx.long_limit:
            nout += _rx_report(rx, out + nout)
    if rule.action & ACT_CLOSE:
        nout += _rx_report(rx, out + nout)
    rx.state = rule.next_state
    return nout


cdef int rfc4733_rx_flush(Rfc4733Receiver_* rx, Rfc4733Digit* out) noexcept nogil:
    cdef int n = _rx_report(rx, out) if rx.state == RX_ACTIVE else 0
    if rx.state == RX_ACTIVE:
        rx.state = RX_ENDED
    return n


cdef void rfc4733_tx_init(Rfc4733Sender_* tx, int event, int duration, int ptime,
                          int volume) noexcept nogil:
    tx.event = event
    tx.duration = min(max(duration, 1), 0xFFFF)     # 16 bits: no long-event split (§2.5.1.3)
    tx.ptime = ptime
    tx.volume = volume
    tx.sent = 0
    tx.ends = 0


cdef int rfc4733_tx_next(Rfc4733Sender_* tx, uint8_t* payload, bint* marker) noexcept nogil:
    marker[0] = tx.sent == 0 and tx.ends == 0
    if tx.sent + tx.ptime < tx.duration:
        tx.sent += tx.ptime
        rfc4733_pack(payload, tx.event, False, tx.volume, tx.sent)
        return 1
    if tx.ends < 3:
        tx.sent = tx.duration
        tx.ends += 1
        rfc4733_pack(payload, tx.event, True, tx.volume, tx.duration)
        return 1
    return 0


cdef int _event_of(str digit) except -1:
    cdef int k = b"0123456789*#ABCD".find(digit.upper().encode()) if len(digit) == 1 else -1
    if k < 0:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return k


def pack_event(int event, bint end, int volume, int duration) -> bytes:
    """A 4-byte telephone-event payload (RFC 4733 §2.3)."""
    if not (0 <= event <= 255 and 0 <= volume <= 63 and 0 <= duration <= 0xFFFF):
        raise ValueError("event 0..255, volume 0..63, duration 0..65535")
    cdef uint8_t out[4]
    rfc4733_pack(out, event, end, volume, duration)
    return out[:4]


def unpack_event(const uint8_t[::1] payload):
    """(event, end, volume, duration) from a telephone-event payload (extra bytes ignored)."""
    cdef Rfc4733Event ev
    if rfc4733_unpack(&payload[0] if payload.shape[0] else NULL, payload.shape[0], &ev) < 0:
        raise ValueError("telephone-event payload shorter than 4 bytes")
    return ev.event, bool(ev.end), ev.volume, ev.duration


cdef class Rfc4733Receiver:
    """De-duplicates telephone-events of one stream and reports each digit once.

    `packet(timestamp, payload)` returns the digits completed by that packet, as
    (digit, timestamp, duration) with duration in timestamp units. A digit longer than
    `long_limit` (default 2 s at 8 kHz) is reported when it reaches it. `flush()` reports an
    event whose end never came (call it on an RTP timeout or at close).
    """

    cdef Rfc4733Receiver_ rx

    def __init__(self, uint32_t long_limit=16000):
        rfc4733_rx_init(&self.rx, long_limit)

    def packet(self, uint32_t timestamp, const uint8_t[::1] payload) -> list:
        """Feed one telephone-event packet's RTP timestamp and payload."""
        cdef Rfc4733Digit out[2]
        cdef int n = rfc4733_rx_packet(&self.rx, timestamp,
                                       &payload[0] if payload.shape[0] else NULL,
                                       payload.shape[0], out)
        return [(chr(out[i].digit), out[i].timestamp, out[i].duration) for i in range(n)]

    def flush(self) -> list:
        """Report the event in progress, if any, as ended."""
        cdef Rfc4733Digit out[1]
        cdef int n = rfc4733_rx_flush(&self.rx, out)
        return [(chr(out[i].digit), out[i].timestamp, out[i].duration) for i in range(n)]


def rfc4733_packets(str digit, int duration, int ptime=160, int volume=10) -> list:
    """The payloads of one event, in send order, one per ptime: [(marker, payload), ...].

    duration and ptime are in timestamp units (160 = 20 ms at 8 kHz). All packets carry the
    same RTP timestamp, the event's start (RFC 4733 §2.5.1.1); the caller stamps them.
    """
    if ptime <= 0 or not 0 <= volume <= 63:
        raise ValueError("ptime > 0 and volume 0..63")
    cdef Rfc4733Sender_ tx
    cdef uint8_t payload[4]
    cdef bint marker
    rfc4733_tx_init(&tx, _event_of(digit), duration, ptime, volume)
    packets = []
    while rfc4733_tx_next(&tx, payload, &marker):
        packets.append((bool(marker), payload[:4]))
    return packets
