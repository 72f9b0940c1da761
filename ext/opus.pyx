# C API for the engine (all GIL-free; one encoder/decoder per stream, created at open):
#   cdef _OpusEnc* opus_enc_new_c(int rate, int bitrate, int* err) noexcept nogil
#   cdef _OpusDec* opus_dec_new_c(int rate, int* err) noexcept nogil
#   cdef int opus_enc_c(_OpusEnc* e, const int16_t* pcm, int n, uint8_t* out, int cap) noexcept nogil
#   cdef int opus_dec_c(_OpusDec* d, const uint8_t* data, int size, int16_t* out, int n,
#                       bint fec) noexcept nogil    # data NULL: conceal a lost frame (PLC)
#   cdef int opus_samples_c(const uint8_t* data, int size, int rate) noexcept nogil
#       -> samples at `rate` the packet holds, or a negative libopus error
#   cdef void opus_enc_free_c(_OpusEnc* e) / opus_dec_free_c(_OpusDec* d) noexcept nogil
"""Opus (RFC 6716) through libopus, carried as RFC 7587 payload.

How this works: libopus does the coding; this file holds the settings a PBX wants and the
nogil entry points the engine calls per 20 ms frame. RFC 7587 §4.1 fixes the RTP clock at
48000 Hz whatever the audio bandwidth, so a 20 ms frame advances the timestamp by 960; the
payload is one Opus packet (§4.2). The codec itself runs at the engine's wideband rate
(16 kHz; 8 kHz and 48 kHz also work): libopus converts internally, so no resampler is needed
between the engine and the codec. The encoder is set up for speech (OPUS_APPLICATION_VOIP),
mono (RFC 7587 §7 `stereo=0`), in-band FEC on (`useinbandfec=1`, §6.1) with an expected
loss of 10 % so the encoder really spends bits on it. The decoder recovers a lost frame from
the next packet's FEC data (`decode(next, fec=True)`), or conceals it (PLC) when there is none.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int16_t, int32_t, uint8_t

import numpy as np

cdef extern from "opus/opus.h" nogil:
    ctypedef struct _OpusEnc "OpusEncoder":
        pass
    ctypedef struct _OpusDec "OpusDecoder":
        pass
    int OPUS_OK
    int OPUS_APPLICATION_VOIP
    int OPUS_SET_BITRATE_REQUEST
    int OPUS_SET_INBAND_FEC_REQUEST
    int OPUS_SET_PACKET_LOSS_PERC_REQUEST
    int OPUS_SET_COMPLEXITY_REQUEST
    _OpusEnc* opus_encoder_create(int32_t fs, int channels, int application, int* error)
    void opus_encoder_destroy(_OpusEnc* st)
    int opus_encoder_ctl(_OpusEnc* st, int request, ...)
    int32_t opus_encode(_OpusEnc* st, const int16_t* pcm, int frame_size, unsigned char* data,
                        int32_t max_data_bytes)
    _OpusDec* opus_decoder_create(int32_t fs, int channels, int* error)
    void opus_decoder_destroy(_OpusDec* st)
    int opus_decode(_OpusDec* st, const unsigned char* data, int32_t size, int16_t* pcm,
                    int frame_size, int decode_fec)
    int opus_packet_get_nb_samples(const unsigned char* packet, int32_t len, int32_t fs)
    const char* opus_strerror(int error)

cdef enum:
    MS_OPUS_CLOCK = 48000        # RTP clock of RFC 7587, whatever the audio bandwidth
    MS_OPUS_MAX_PACKET = 1275    # RFC 6716 §3.2.1: the largest frame
    MS_OPUS_LOSS_PERC = 10       # expected loss the encoder plans its FEC for
    MS_OPUS_COMPLEXITY = 5       # half of libopus's range: a PBX codes many streams at once
    MS_OPUS_BITRATE = 24000      # wideband speech; libopus's own default (~19 kbit/s at
                                 # 16 kHz) drops to medium band and loses everything > 4 kHz


cdef _OpusEnc* opus_enc_new_c(int rate, int bitrate, int* err) noexcept nogil:
    """A mono VoIP encoder at `rate` Hz with in-band FEC; bitrate 0 = libopus's choice."""
    cdef _OpusEnc* e = opus_encoder_create(rate, 1, OPUS_APPLICATION_VOIP, err)
    if e == NULL:
        return NULL
    opus_encoder_ctl(e, OPUS_SET_INBAND_FEC_REQUEST, <int>1)
    opus_encoder_ctl(e, OPUS_SET_PACKET_LOSS_PERC_REQUEST, <int>MS_OPUS_LOSS_PERC)
    opus_encoder_ctl(e, OPUS_SET_COMPLEXITY_REQUEST, <int>MS_OPUS_COMPLEXITY)
    if bitrate > 0:
        opus_encoder_ctl(e, OPUS_SET_BITRATE_REQUEST, <int32_t>bitrate)
    return e


cdef _OpusDec* opus_dec_new_c(int rate, int* err) noexcept nogil:
    return opus_decoder_create(rate, 1, err)


cdef int opus_enc_c(_OpusEnc* e, const int16_t* pcm, int n, uint8_t* out, int cap) noexcept nogil:
    """Encode one frame of n samples; returns the packet size, or a negative libopus error."""
    return opus_encode(e, pcm, n, out, cap)


cdef int opus_dec_c(_OpusDec* d, const uint8_t* data, int size, int16_t* out, int n,
                    bint fec) noexcept nogil:
    """Decode one packet into at most n samples (returns how many, or a negative error).

    data NULL: conceal one lost frame of n samples. fec: decode the previous (lost) frame from
    the FEC data carried in this packet instead of this packet's own frame.
    """
    return opus_decode(d, data, size, out, n, 1 if fec else 0)


cdef int opus_samples_c(const uint8_t* data, int size, int rate) noexcept nogil:
    """How many samples at `rate` the packet decodes to (its frames' total duration)."""
    return opus_packet_get_nb_samples(data, size, rate)


cdef void opus_enc_free_c(_OpusEnc* e) noexcept nogil:
    if e != NULL:
        opus_encoder_destroy(e)


cdef void opus_dec_free_c(_OpusDec* d) noexcept nogil:
    if d != NULL:
        opus_decoder_destroy(d)


cdef _opus_check(int rc, str what):
    if rc < 0:
        raise ValueError(f"opus {what}: {opus_strerror(rc).decode()}")


cdef class OpusEncoder:
    """Mono Opus encoder for RFC 7587 RTP: `encode(pcm)` takes one frame (2.5-60 ms)."""
    cdef _OpusEnc* enc
    cdef readonly int rate

    def __cinit__(self, int rate=16000, int bitrate=MS_OPUS_BITRATE):
        cdef int err = OPUS_OK
        self.enc = opus_enc_new_c(rate, bitrate, &err)
        _opus_check(err if self.enc == NULL else OPUS_OK, f"encoder at {rate} Hz")
        self.rate = rate

    def __dealloc__(self):
        opus_enc_free_c(self.enc)

    def encode(self, const int16_t[::1] pcm) -> bytes:
        cdef uint8_t buf[MS_OPUS_MAX_PACKET]
        cdef int n = <int>pcm.shape[0]
        cdef int size
        if n == 0:
            raise ValueError("opus encode: an empty frame")
        with nogil:
            size = opus_enc_c(self.enc, &pcm[0], n, buf, MS_OPUS_MAX_PACKET)
        _opus_check(size, f"encode of {n} samples")
        return PyBytes_FromStringAndSize(<char*>buf, size)


cdef class OpusDecoder:
    """Mono Opus decoder: `decode(packet)`, `decode(None)` to conceal a lost frame, and
    `decode(next_packet, fec=True)` to recover the lost frame from the next packet's FEC."""
    cdef _OpusDec* dec
    cdef readonly int rate

    def __cinit__(self, int rate=16000):
        cdef int err = OPUS_OK
        self.dec = opus_dec_new_c(rate, &err)
        _opus_check(err if self.dec == NULL else OPUS_OK, f"decoder at {rate} Hz")
        self.rate = rate

    def __dealloc__(self):
        opus_dec_free_c(self.dec)

    def decode(self, packet, bint fec=False, int frame_ms=20):
        cdef int n = self.rate * frame_ms // 1000
        out = np.empty(self.rate * 120 // 1000, dtype=np.int16)     # room for 120 ms
        cdef int16_t[::1] dst = out
        cdef const uint8_t[::1] src
        cdef int got
        if packet is None:
            with nogil:
                got = opus_dec_c(self.dec, NULL, 0, &dst[0], n, False)
        else:
            src = packet
            if src.shape[0] == 0:
                raise ValueError("opus decode: an empty packet (give None for a lost one)")
            with nogil:
                got = opus_dec_c(self.dec, &src[0], <int>src.shape[0], &dst[0],
                                 n if fec else <int>dst.shape[0], fec)
        _opus_check(got, "decode")
        return out[:got]
