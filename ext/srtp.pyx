# SRTP for the media core (included by engine.pyx; C names start with eng_srtp_/EngCrypto).
#
# How this works: libsrtp2 does the cryptography (RFC 3711 AES-CM + HMAC-SHA1, RFC 7714
# AES-GCM); this file only chooses its policy and counts what it refuses. Keys arrive from
# Python (SDES a=crypto, RFC 4568, or a DTLS-SRTP exporter, RFC 5764 §4.2) as one master
# key || master salt string per direction. Each direction is its own libsrtp session: the
# outbound one protects everything a stream sends (RTP and its RTCP, one key for both,
# RFC 3711 §4.3), the inbound one unprotects everything it receives, with replay
# protection (RFC 3711 §3.3.2, a 1024-packet window) and authentication before anything
# else of the engine sees the packet. A packet that fails is counted (auth_fail or
# replay) and dropped; it is never forwarded.
#
# Suites (RFC 4568 §6.2, RFC 7714 §14.2), with the master key||salt length in bytes:
#   AES_CM_128_HMAC_SHA1_80  30   SRTP and SRTCP tags of 80 bits
#   AES_CM_128_HMAC_SHA1_32  30   SRTP tag of 32 bits; SRTCP keeps 80 (RFC 4568 §6.2.1)
#   AEAD_AES_128_GCM         28   16-byte GCM tag on both
#
# EngCrypto is the stream's crypto slot; NULL sessions mean plain RTP. SrtpSession is
# the same machinery for Python (tests and peers); the engine never calls it per packet.

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from libsrtp2 cimport *

cdef enum:
    ENG_SRTP_SPARE = 160           # room left after a packet for the trailer (tag, MKI, index)
    ENG_SRTP_KEY_MAX = 32
    ENG_SRTP_WINDOW = 1024         # replay window, packets (RFC 3711 §3.3.2: at least 64)
    ENG_SRTP_CM80 = 1
    ENG_SRTP_CM32 = 2
    ENG_SRTP_GCM128 = 3

cdef enum:
    ENG_DTLS_Q = 64                # DTLS datagrams waiting for Python (a handshake is a few)
    ENG_DTLS_MAX = 1500


cdef struct EngDtlsDgram:
    int64_t sid
    int rtcp                       # arrived on the RTCP port (its own DTLS association)
    int n
    uint32_t host
    int port
    uint8_t data[ENG_DTLS_MAX]


cdef struct EngDtlsBox:
    int n
    int64_t lost
    EngDtlsDgram q[ENG_DTLS_Q]


cdef inline int eng_is_dtls(const uint8_t* buf, int n) noexcept nogil:
    """RFC 5764 §5.1.2: a first byte of 20-63 is DTLS on an RTP/RTCP port (RTP is 128-191)."""
    return n > 0 and 20 <= buf[0] <= 63


cdef void eng_dtls_put(EngDtlsBox* box, int64_t sid, int rtcp, const uint8_t* buf, int n,
                       uint32_t host, int port) noexcept nogil:
    cdef EngDtlsDgram* d
    if box.n >= ENG_DTLS_Q or n > ENG_DTLS_MAX:
        box.lost += 1
        return
    d = &box.q[box.n]
    box.n += 1
    d.sid, d.rtcp, d.n, d.host, d.port = sid, rtcp, n, host, port
    memcpy(d.data, buf, n)


SRTP_SUITES = {
    "AES_CM_128_HMAC_SHA1_80": (ENG_SRTP_CM80, 30),
    "AES_CM_128_HMAC_SHA1_32": (ENG_SRTP_CM32, 30),
    "AEAD_AES_128_GCM": (ENG_SRTP_GCM128, 28),
}


cdef struct EngCrypto:
    srtp_t rx                      # unprotects what the stream receives, or NULL
    srtp_t tx                      # protects what it sends, or NULL
    srtp_t rtcp_rx                 # RTCP's own sessions (DTLS-SRTP without rtcp-mux keys
    srtp_t rtcp_tx                 # the RTCP component apart, RFC 5764 §4.1); NULL = rx/tx
    int dtls                       # DTLS-SRTP: hand DTLS datagrams up to Python
    uint64_t auth_fail
    uint64_t replay
    uint64_t protect_fail


class SrtpError(Exception):
    """A libsrtp2 refusal; .status is its srtp_err_status_t value."""

    def __init__(self, int status, str what):
        super().__init__(f"{what}: {_srtp_status_name(status)}")
        self.status = status
        self.reason = _srtp_status_name(status)


def _srtp_status_name(int status) -> str:
    names = {srtp_err_status_auth_fail: "auth_fail", srtp_err_status_replay_fail: "replay",
             srtp_err_status_replay_old: "replay", srtp_err_status_bad_param: "bad_param"}
    return names.get(status, f"error {status}")


include "srtp_primitives.pyx"

if srtp_init() != srtp_err_status_ok:
    raise ImportError("libsrtp2: srtp_init failed")
SRTP_OPENSSL = srtp_ossl_install() == 0     # AES-ICM and HMAC-SHA1 from OpenSSL (see there)


cdef srtp_t eng_srtp_new(int suite, const uint8_t* key, int inbound) noexcept nogil:
    """A libsrtp session for one direction, or NULL (unknown suite, library refusal)."""
    cdef srtp_policy_t p
    cdef srtp_t ctx = NULL
    cdef uint8_t k[ENG_SRTP_KEY_MAX]
    memset(&p, 0, sizeof(p))
    if suite == ENG_SRTP_CM80:
        srtp_crypto_policy_set_rtp_default(&p.rtp)
        srtp_crypto_policy_set_rtcp_default(&p.rtcp)
    elif suite == ENG_SRTP_CM32:
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&p.rtp)
        srtp_crypto_policy_set_rtcp_default(&p.rtcp)
    elif suite == ENG_SRTP_GCM128:
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&p.rtp)
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&p.rtcp)
    else:
        return NULL
    memcpy(k, key, 30 if suite != ENG_SRTP_GCM128 else 28)
    p.ssrc.type = ssrc_any_inbound if inbound else ssrc_any_outbound
    p.key = k
    p.window_size = ENG_SRTP_WINDOW
    p.allow_repeat_tx = 0          # a repeated index with other plaintext would reuse keystream
    if srtp_create(&ctx, &p) != srtp_err_status_ok:
        return NULL
    return ctx


cdef void eng_srtp_free(EngCrypto* k) noexcept nogil:
    cdef srtp_t* ctx[4]
    ctx[0], ctx[1], ctx[2], ctx[3] = &k.rx, &k.tx, &k.rtcp_rx, &k.rtcp_tx
    for i in range(4):
        if ctx[i][0] != NULL:
            srtp_dealloc(ctx[i][0])
    memset(k, 0, sizeof(EngCrypto))


cdef inline srtp_err_status_t eng_srtp_open(EngCrypto* k, uint8_t* buf, int* n,
                                           int rtcp) noexcept nogil:
    """Decrypt and authenticate in place, counting auth and replay refusals."""
    cdef srtp_err_status_t st
    if rtcp:
        st = srtp_unprotect_rtcp(k.rtcp_rx if k.rtcp_rx != NULL else k.rx, buf, n)
    else:
        st = srtp_unprotect(k.rx, buf, n)
    if st == srtp_err_status_auth_fail:
        k.auth_fail += 1
    elif st == srtp_err_status_replay_fail or st == srtp_err_status_replay_old:
        k.replay += 1
    return st


cdef inline int eng_srtp_unprotect(EngCrypto* k, uint8_t* buf, int* n, int rtcp) noexcept nogil:
    """1 = use the packet; 0 = refused and counted (auth, replay); -1 = malformed."""
    cdef srtp_err_status_t st = eng_srtp_open(k, buf, n, rtcp)
    if st == srtp_err_status_ok:
        return 1
    if (st == srtp_err_status_auth_fail or st == srtp_err_status_replay_fail
            or st == srtp_err_status_replay_old):
        return 0
    return -1


cdef int eng_srtp_protect(EngCrypto* k, uint8_t* buf, int* n, int rtcp) noexcept nogil:
    """Encrypt in place (buf must have ENG_SRTP_SPARE bytes free after *n); 0 or -1."""
    cdef srtp_err_status_t st
    if rtcp:
        st = srtp_protect_rtcp(k.rtcp_tx if k.rtcp_tx != NULL else k.tx, buf, n)
    else:
        st = srtp_protect(k.tx, buf, n)
    if st != srtp_err_status_ok:
        k.protect_fail += 1
        return -1
    return 0


cdef int eng_srtp_suite(str suite, bytes key) except -1:
    """Validate a (suite name, master key||salt) pair from Python; the suite's number."""
    try:
        num, length = SRTP_SUITES[suite]
    except KeyError:
        raise ValueError(f"SRTP suite {suite!r} not supported "
                         f"({', '.join(SRTP_SUITES)})") from None
    if len(key) != length:
        raise ValueError(f"{suite} needs a {length}-byte master key||salt, got {len(key)}")
    return num


cdef class SrtpSession:
    """One direction of SRTP for Python callers: SrtpSession(suite, key, inbound)."""

    cdef EngCrypto k
    cdef readonly bint inbound

    def __cinit__(self):
        memset(&self.k, 0, sizeof(EngCrypto))

    def __init__(self, str suite, bytes key, bint inbound):
        cdef int num = eng_srtp_suite(suite, key)
        cdef srtp_t ctx = eng_srtp_new(num, <const uint8_t*>key, inbound)
        if ctx == NULL:
            raise ValueError(f"libsrtp2 refused a {suite} session")
        self.inbound = inbound
        if inbound:
            self.k.rx = ctx
        else:
            self.k.tx = ctx

    def __dealloc__(self):
        eng_srtp_free(&self.k)

    cdef bytes _run(self, bytes pkt, int rtcp):
        cdef int n = len(pkt)
        cdef srtp_err_status_t st
        buf = bytearray(pkt) + bytearray(ENG_SRTP_SPARE)
        cdef uint8_t* p = buf
        if n < (8 if rtcp else 12):
            raise SrtpError(srtp_err_status_bad_param, "packet too short")
        if self.inbound:
            st = eng_srtp_open(&self.k, p, &n, rtcp)
            if st != srtp_err_status_ok:
                raise SrtpError(st, "unprotect")
        elif eng_srtp_protect(&self.k, p, &n, rtcp) < 0:
            raise SrtpError(srtp_err_status_fail, "protect")
        return bytes(buf[:n])

    def protect(self, bytes rtp) -> bytes:
        """An RTP packet (outbound session) -> its SRTP packet."""
        return self._run(rtp, 0)

    def unprotect(self, bytes srtp) -> bytes:
        """An SRTP packet (inbound session) -> the RTP packet; SrtpError if refused."""
        return self._run(srtp, 0)

    def protect_rtcp(self, bytes rtcp) -> bytes:
        return self._run(rtcp, 1)

    def unprotect_rtcp(self, bytes srtcp) -> bytes:
        return self._run(srtcp, 1)

    def counters(self) -> dict:
        return {"auth_fail": self.k.auth_fail, "replay": self.k.replay,
                "protect_fail": self.k.protect_fail}
