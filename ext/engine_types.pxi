# Types of the engine core (included by engine.pyx before the functions that use them).

from libc.stdint cimport int16_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t

cdef enum:
    ENG_CONF_MAX = 16          # members of one conference
    ENG_DJ_QUEUE = 32          # digits waiting to be sent, per stream (event << 16 | ms)


cdef struct EngConf:
    int used
    int n
    int slot[ENG_CONF_MAX]


cdef enum EngFeed:
    ENG_FEED_NONE = 0
    ENG_FEED_SILENCE = 1
    ENG_FEED_PEER = 2
    ENG_FEED_CONF = 3
    ENG_FEED_MOH = 4
    ENG_FEED_PROMPT = 5
    ENG_FEED_TONE = 6

cdef enum EngEventKind:
    ENG_EV_FIRST_PACKET = 1
    ENG_EV_TIMEOUT = 2
    ENG_EV_PLAY_FINISHED = 3
    ENG_EV_DTMF = 4
    ENG_EV_DTLS = 5            # DTLS datagrams wait in c.dtls (srtp.pyx)

cdef enum:
    ENG_PCMU = 0
    ENG_PCMA = 1
    ENG_BATCH = 16             # datagrams per recvmmsg when draining
    ENG_EVENTS = 256           # readiness events per epoll_wait; a full round = behind
    ENG_BUF = 2048
    ENG_RX_MAX = ENG_BUF - ENG_SRTP_SPARE    # read at most this: SRTP needs room to grow
    ENG_MAX_SOUNDS = 1024
    ENG_MAX_MOH = 64
    ENG_MAX_REC = 256
    ENG_EVQ = 8192
    ENG_LATCH_WINDOW = 50
    ENG_LATCH_STABLE = 3
    ENG_TAG_TIMER = 1
    ENG_TAG_WAKE = 2
    ENG_TAG_SLOT0 = 2          # stream tags: (slot + this) << 1 | rtcp, above the two above
    ENG_SLOT_BITS = 16
    ENG_PARK_MAX = 1024        # closed streams' socket pairs kept bound (engine_ports.pyx)
    ENG_MAX_CATCHUP = 3        # ticks run back to back after a stall; the rest are skipped
    ENG_CNAME_MAX = 48         # bytes of the RTCP CNAME (rtcp.pyx)


cdef struct EngEvent:
    int kind
    int64_t sid
    int64_t a
    int64_t b
    int64_t c
    int64_t t_ns
    uint32_t host
    int port


cdef struct EngStream:
    int used
    int parked                 # unused, its sockets kept bound and watched for a next stream
    int64_t sid
    int fd
    int fd_rtcp
    int port
    sockaddr_in remote
    int has_remote
    int connected              # fd is connected to remote (see eng_settle)
    int codec
    int pt
    EngCodec* cx               # wideband codec state (engine_codec.pyx), NULL for G.711
    int tsmul                  # RTP clock / 8000: 1, or 6 for Opus
    int event_pt
    int send_on
    int recv_on
    # outbound continuity (RFC 3550 §5.1): last sent seq/ts, anchor = next packet re-bases
    uint32_t ssrc
    uint16_t seq
    uint32_t ts
    int out_started
    int anchor
    int64_t last_out_ns
    uint16_t seq_off
    uint32_t ts_off
    uint32_t fwd_ssrc
    # inbound
    int64_t seen
    int64_t accepted
    sockaddr_in cand
    uint32_t cand_ssrc
    int cand_count
    int64_t last_rx_ns
    int timed_out
    EngRxStats rx
    uint32_t rx_ssrc           # SSRC of the last accepted packet
    # RTCP (rtcp.pyx): next report, state at the previous one, last SR received
    int64_t rtcp_due_ns
    int64_t rtcp_expected_prior
    uint64_t rtcp_received_prior
    uint64_t rtcp_pkts_out
    uint64_t rtcp_pkts_in
    uint32_t lsr
    int64_t lsr_ns
    uint64_t rtcp_out
    uint64_t rtcp_in
    # what this stream sends
    int feed
    int peer
    int64_t peer_sid
    int fwd_to
    int conf
    int moh
    int64_t pos
    EngSound snd
    EngSound snd16             # the prompt at 16 kHz, if loaded (wideband streams)
    int64_t play_id
    # DTMF and audio flags
    int dtmf_mode
    int forward_dtmf
    int muted
    int rec
    # a DTMF digit being sent (RFC 4733 §2.5 or in-band)
    int dj_active
    int dj_inband
    uint32_t dj_ts
    Rfc4733Sender_ dj_tx
    ToneState dj_tone
    int dj_q[ENG_DJ_QUEUE]
    int dj_qlen
    ToneState tone             # the tone feed (H3's tone.pyx)
    Rfc4733Receiver_ rfc_rx    # RFC 4733 receive state (H3's rfc4733.pyx)
    int64_t rfc_last_ns
    # DTMF detection: H3's Goertzel detector state, and the last report (auto de-duplication)
    DtmfState inband
    char last_digit
    int last_src
    int64_t last_digit_ns
    # conference input: H3's adaptive jitter buffer, allocated while in a conference
    JitterState* jb
    EngConfRs* crs             # its resamplers while in a 16 kHz conference (engine_codec)
    EngReframe* rf             # received audio being cut into engine frames (engine_codec)
    EngCrypto crypto           # SRTP sessions (srtp.pyx); NULL = plain RTP
    # counters
    uint64_t pkts_in
    uint64_t bytes_in
    uint64_t pkts_out
    uint64_t bytes_out
    uint64_t dropped
    uint64_t malformed
    uint64_t send_errors


cdef struct EngPark:           # parked socket pairs (engine_ports.pyx)
    int* slot                  # their slots, a ring, the one parked longest at head
    int64_t* since_ns          # when each was parked
    int head
    int n
    int cap


cdef struct EngCore:
    pthread_mutex_t mu
    EngDtlsBox* dtls           # DTLS datagrams for Python (DTLS-SRTP, srtp.pyx)
    int epfd
    int tfd
    int wakefd
    int evfd
    int stopping
    EngStream* st
    int nst
    DtmfState dtmf8            # a detector fresh from dtmf_init at 8 kHz: new streams copy it
    EngPark park
    int frame
    int64_t tick
    int64_t timeout_ns
    int64_t rtcp_ns            # mean RTCP report interval; 0 = no reports
    uint64_t rounds            # epoll rounds handled, and those that came back full
    uint64_t rounds_behind
    int64_t busy_ns            # time spent handling them (the thread's busy time)
    uint64_t rng
    char cname[ENG_CNAME_MAX]
    int cname_len
    int64_t now
    EngEvent* evq
    int ev_head
    int ev_len
    int64_t ev_lost
    int ev_signalled
    EngMoh* moh
    EngRec* rec
    uint8_t silence[2][ENG_MAX_FRAME]
    int16_t pcm[ENG_MAX_FRAME]
    int16_t member_pcm[ENG_CONF_MAX][ENG_MAX_FRAME]
    uint8_t enc[ENG_MAX_FRAME]
    int16_t wpcm[ENG_WIDE_FRAME]   # this packet decoded at 16 kHz (engine_codec.pyx)
    int nwpcm
    int npcm                   # samples of it in pcm at 8 kHz
    int dec_slot               # port of the stream whose packet pcm/wpcm hold, or -1
    uint8_t wenc[ENG_BUF]      # a frame encoded for a wideband stream
    uint8_t tx[ENG_BUF]
    EngConf* conf
    int nconf
    mmsghdr mm[ENG_BATCH]
    iovec iov[ENG_BATCH]
    sockaddr_in from_[ENG_BATCH]
    uint8_t rxbuf[ENG_BATCH][ENG_BUF]


