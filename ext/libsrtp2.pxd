# Declarations of the parts of libsrtp2 (Debian libsrtp2-dev, <srtp2/srtp.h>) that
# ext/srtp.pyx uses: sessions, the RTP/RTCP protect and unprotect calls and the crypto
# policy setters of the suites we offer. Nothing else of the library is declared.

from libc.stdint cimport uint8_t, uint32_t


cdef extern from "srtp2/srtp.h" nogil:
    ctypedef enum srtp_err_status_t:
        srtp_err_status_ok
        srtp_err_status_fail
        srtp_err_status_bad_param
        srtp_err_status_alloc_fail
        srtp_err_status_init_fail
        srtp_err_status_cipher_fail
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


# The cipher and authentication function plug-in points (srtp2/cipher.h, srtp2/auth.h), used
# by ext/srtp_primitives.pyx to give libsrtp2 AES-ICM and HMAC-SHA1 from OpenSSL.
cdef extern from "srtp2/cipher.h" nogil:
    ctypedef uint32_t srtp_cipher_type_id_t
    ctypedef enum srtp_cipher_direction_t:
        srtp_direction_encrypt
        srtp_direction_decrypt
        srtp_direction_any

    ctypedef struct srtp_cipher_test_case_t:
        pass

    ctypedef struct srtp_cipher_type_t:
        srtp_err_status_t (*alloc)(srtp_cipher_t** cp, int key_len, int tag_len)
        srtp_err_status_t (*dealloc)(srtp_cipher_t* cp)
        srtp_err_status_t (*init)(void* state, const uint8_t* key)
        srtp_err_status_t (*set_aad)(void* state, const uint8_t* aad, uint32_t aad_len)
        srtp_err_status_t (*encrypt)(void* state, uint8_t* buf, unsigned int* n)
        srtp_err_status_t (*decrypt)(void* state, uint8_t* buf, unsigned int* n)
        srtp_err_status_t (*set_iv)(void* state, uint8_t* iv, srtp_cipher_direction_t d)
        srtp_err_status_t (*get_tag)(void* state, uint8_t* tag, uint32_t* n)
        const char* description
        const srtp_cipher_test_case_t* test_data
        srtp_cipher_type_id_t id

    ctypedef struct srtp_cipher_t:
        const srtp_cipher_type_t* type
        void* state
        int key_len
        int algorithm

    srtp_err_status_t srtp_replace_cipher_type(const srtp_cipher_type_t* ct,
                                               srtp_cipher_type_id_t id)

cdef extern from "srtp2/auth.h" nogil:
    ctypedef uint32_t srtp_auth_type_id_t
    ctypedef struct srtp_auth_test_case_t:
        pass

    ctypedef struct srtp_auth_type_t:
        srtp_err_status_t (*alloc)(srtp_auth_t** ap, int key_len, int out_len)
        srtp_err_status_t (*dealloc)(srtp_auth_t* ap)
        srtp_err_status_t (*init)(void* state, const uint8_t* key, int key_len)
        srtp_err_status_t (*compute)(void* state, const uint8_t* buf, int n, int tag_len,
                                     uint8_t* tag)
        srtp_err_status_t (*update)(void* state, const uint8_t* buf, int n)
        srtp_err_status_t (*start)(void* state)
        const char* description
        const srtp_auth_test_case_t* test_data
        srtp_auth_type_id_t id

    ctypedef struct srtp_auth_t:
        const srtp_auth_type_t* type
        void* state
        int out_len
        int key_len
        int prefix_len

    srtp_err_status_t srtp_replace_auth_type(const srtp_auth_type_t* ct, srtp_auth_type_id_t id)

cdef extern from "srtp2/crypto_types.h":
    enum:
        SRTP_AES_ICM_128
        SRTP_HMAC_SHA1

# Exported by libsrtp2 but declared only in headers it does not install (aes_icm_ext.h,
# crypto_kernel.h): the known-answer tests of the types we replace are read from these.
cdef extern from *:
    """
    extern const srtp_cipher_type_t srtp_aes_icm_128;
    const srtp_auth_type_t *srtp_crypto_kernel_get_auth_type(srtp_auth_type_id_t id);
    """
    const srtp_cipher_type_t srtp_aes_icm_128
    const srtp_auth_type_t* srtp_crypto_kernel_get_auth_type(srtp_auth_type_id_t id) nogil
