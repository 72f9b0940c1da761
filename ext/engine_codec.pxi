# Types of the per-stream codec slot (engine_codec.pyx); included before engine_types.pxi.

cdef enum:
    ENG_G722 = 2
    ENG_OPUS = 3
    ENG_WIDE_RATE = 16000
    ENG_WIDE_FRAME = 2 * ENG_MAX_FRAME     # 16 kHz samples in the longest frame (40 ms)
    ENG_RS_TAPS = 47
    ENG_OPUS_TSMUL = 6                     # 48000 / 8000
    ENG_OPUS_CONCEAL = 3                   # lost Opus packets filled in before the next one


cdef struct EngRs:
    int16_t hist[ENG_RS_TAPS - 1]


cdef struct EngConfRs:
    EngRs up                    # a narrow member's 8 kHz frame into the 16 kHz mix
    EngRs down                  # its 16 kHz mix-minus back to 8 kHz
    EngRs rdown                 # the whole 16 kHz mix into an 8 kHz recording


cdef struct EngCodec:
    int codec
    G722State g722_enc
    G722State g722_dec
    _OpusEnc* opus_enc
    _OpusDec* opus_dec
    EngRs down
    EngRs up
    EngRs rec_up                # 8 kHz audio (a conference mix) into a 16 kHz recording
    int last_seq                # Opus: sequence number of the last packet decoded, or -1
    int nfec                    # Opus: lost frames recovered (PLC, then FEC), 8 kHz ...
    int16_t fec_pcm[ENG_OPUS_CONCEAL * ENG_MAX_FRAME]
    int nwfec                   # ... and 16 kHz samples (sent before this packet's own)
    int16_t fec_wpcm[ENG_OPUS_CONCEAL * ENG_WIDE_FRAME]


cdef struct EngReframe:
    # Decoded audio a stream received in packets that are not one engine frame long
    # (ptime 10/30/40 against the engine's 20): held until it makes whole frames.
    int n                       # 8 kHz samples held (< one frame between packets)
    int wide                    # wpcm holds the same audio at 16 kHz
    uint16_t seq                # sequence number of the next frame filed in a jitter buffer
    int16_t pcm[2 * ENG_MAX_FRAME]
    int16_t wpcm[2 * ENG_WIDE_FRAME]
