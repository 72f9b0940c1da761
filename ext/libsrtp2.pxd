# Declarations of the parts of libsrtp2 (Debian libsrtp2-dev, <srtp2/srtp.h>) that
# ext/srtp.pyx uses: sessions, the RTP/RTCP protect and unprotect calls and the crypto
# policy setters of the suites we offer. Nothing else of the library is declared.

cdef extern from "srtp2/srtp.h" nogil:
    ctypedef enum srtp_err_status_t:
        srtp_err_status_ok
        srtp_err_status_fail
        srtp_err_status_bad_param
        srtp_err_status_auth_fail
        srtp_err_status_replay_fail
        srtp_err_status_replay_old

    ctypedef enum srtp_ssrc_type_t:
        ssrc_any_inbound
        ssrc_any_outbound

    ctypedef struct srtp_ssrc_t:
        srtp_ssrc_type_t type
        unsigned int value

    ctypedef struct srtp_crypto_policy_t:
        pass

    ctypedef struct srtp_policy_t:
        srtp_ssrc_t ssrc
        srtp_crypto_policy_t rtp
        srtp_crypto_policy_t rtcp
        unsigned char* key
        unsigned long window_size
        int allow_repeat_tx
        srtp_policy_t* next

    ctypedef struct srtp_ctx_t:
        pass
    ctypedef srtp_ctx_t* srtp_t

    enum:
        SRTP_MAX_TRAILER_LEN

    srtp_err_status_t srtp_init()
    srtp_err_status_t srtp_create(srtp_t* session, const srtp_policy_t* policy)
    srtp_err_status_t srtp_dealloc(srtp_t session)
    srtp_err_status_t srtp_protect(srtp_t ctx, void* rtp_hdr, int* len_ptr)
    srtp_err_status_t srtp_unprotect(srtp_t ctx, void* srtp_hdr, int* len_ptr)
    srtp_err_status_t srtp_protect_rtcp(srtp_t ctx, void* rtcp_hdr, int* len_ptr)
    srtp_err_status_t srtp_unprotect_rtcp(srtp_t ctx, void* srtcp_hdr, int* len_ptr)

    void srtp_crypto_policy_set_rtp_default(srtp_crypto_policy_t* p)
    void srtp_crypto_policy_set_rtcp_default(srtp_crypto_policy_t* p)
    void srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(srtp_crypto_policy_t* p)
    void srtp_crypto_policy_set_aes_gcm_128_16_auth(srtp_crypto_policy_t* p)
