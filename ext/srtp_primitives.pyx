# AES-ICM-128 and HMAC-SHA1 from OpenSSL for libsrtp2 (included by srtp.pyx; names srtp_ossl_*).
#
# How this works: Debian builds libsrtp2 against NSS, whose PKCS#11 layer creates and frees
# a cipher context and an HMAC context for every packet: about 2.5 us per protect, five
# times the AES and SHA-1 work itself. libsrtp2 lets an application replace a cipher or
# authentication type (srtp_replace_cipher_type / srtp_replace_auth_type; each replacement
# must first pass the original type's known-answer tests, which libsrtp runs). We give it
# the same two primitives from OpenSSL's libcrypto, with their state kept per session:
# - AES-ICM (RFC 3711 §4.1.1): the session key is expanded once into an EVP AES-128-CTR
#   context; per packet the counter block = salt XOR the packet IV libsrtp passes in, and
#   CTR mode's 128-bit big-endian increment equals ICM's 16-bit block counter for any
#   packet under 1 MiB.
# - HMAC-SHA1 (RFC 2104, RFC 3711 §4.2.1): the inner and outer SHA-1 states after the
#   padded key are computed once at init; per packet they are copied, not recomputed.
# libsrtp2 still does everything SRTP: key derivation (through these same primitives),
# packet formats, rollover counter, replay window. AES-GCM stays with NSS.

from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset

cdef extern from "<openssl/evp.h>" nogil:
    ctypedef struct EVP_CIPHER_CTX:
        pass
    ctypedef struct EVP_CIPHER:
        pass
    EVP_CIPHER_CTX* EVP_CIPHER_CTX_new()
    void EVP_CIPHER_CTX_free(EVP_CIPHER_CTX* c)
    const EVP_CIPHER* EVP_aes_128_ctr()
    int EVP_EncryptInit_ex(EVP_CIPHER_CTX* c, const EVP_CIPHER* t, void* impl,
                           const unsigned char* key, const unsigned char* iv)
    int EVP_EncryptUpdate(EVP_CIPHER_CTX* c, unsigned char* out, int* outl,
                          const unsigned char* inp, int inl)

cdef extern from "<openssl/sha.h>" nogil:
    ctypedef struct SHA_CTX:
        pass
    int SHA1_Init(SHA_CTX* c)
    int SHA1_Update(SHA_CTX* c, const void* data, size_t n)
    int SHA1_Final(unsigned char* md, SHA_CTX* c)

cdef enum:
    OSSL_AES_KEY = 16
    OSSL_SALT = 14
    OSSL_SHA1 = 20
    OSSL_SHA1_BLOCK = 64


cdef struct OsslIcm:
    EVP_CIPHER_CTX* ctx
    uint8_t salt[16]               # master salt in the first 14 bytes, then zeros


cdef struct OsslHmac:
    SHA_CTX inner0                 # SHA-1 state after (key XOR ipad)
    SHA_CTX outer0                 # SHA-1 state after (key XOR opad)
    SHA_CTX inner                  # the message being authenticated


cdef srtp_cipher_type_t srtp_ossl_icm
cdef srtp_auth_type_t srtp_ossl_hmac


# ---------------------------------------------------------------- AES-ICM

cdef srtp_err_status_t srtp_ossl_icm_alloc(srtp_cipher_t** cp, int key_len,
                                           int tag_len) noexcept nogil:
    cdef srtp_cipher_t* c
    cdef OsslIcm* st
    if key_len != OSSL_AES_KEY + OSSL_SALT:
        return srtp_err_status_bad_param
    c = <srtp_cipher_t*>calloc(1, sizeof(srtp_cipher_t))
    st = <OsslIcm*>calloc(1, sizeof(OsslIcm))
    if c == NULL or st == NULL:
        free(c)
        free(st)
        return srtp_err_status_alloc_fail
    st.ctx = EVP_CIPHER_CTX_new()
    if st.ctx == NULL:
        free(c)
        free(st)
        return srtp_err_status_alloc_fail
    c.type = &srtp_ossl_icm
    c.state = st
    c.key_len = key_len
    c.algorithm = SRTP_AES_ICM_128
    cp[0] = c
    return srtp_err_status_ok


cdef srtp_err_status_t srtp_ossl_icm_dealloc(srtp_cipher_t* c) noexcept nogil:
    cdef OsslIcm* st = <OsslIcm*>c.state
    if st != NULL:
        EVP_CIPHER_CTX_free(st.ctx)
        memset(st, 0, sizeof(OsslIcm))
        free(st)
    free(c)
    return srtp_err_status_ok


cdef srtp_err_status_t srtp_ossl_icm_init(void* state, const uint8_t* key) noexcept nogil:
    cdef OsslIcm* st = <OsslIcm*>state
    memset(st.salt, 0, 16)
    memcpy(st.salt, key + OSSL_AES_KEY, OSSL_SALT)
    if EVP_EncryptInit_ex(st.ctx, EVP_aes_128_ctr(), NULL, key, NULL) != 1:
        return srtp_err_status_init_fail
    return srtp_err_status_ok


cdef srtp_err_status_t srtp_ossl_icm_set_iv(void* state, uint8_t* iv,
                                            srtp_cipher_direction_t d) noexcept nogil:
    cdef OsslIcm* st = <OsslIcm*>state
    cdef uint8_t counter[16]
    cdef int i
    for i in range(16):
        counter[i] = st.salt[i] ^ iv[i]
    if EVP_EncryptInit_ex(st.ctx, NULL, NULL, NULL, counter) != 1:
        return srtp_err_status_cipher_fail
    return srtp_err_status_ok


cdef srtp_err_status_t srtp_ossl_icm_crypt(void* state, uint8_t* buf,
                                           unsigned int* n) noexcept nogil:
    cdef OsslIcm* st = <OsslIcm*>state
    cdef int out = 0
    if EVP_EncryptUpdate(st.ctx, buf, &out, buf, <int>n[0]) != 1:
        return srtp_err_status_cipher_fail
    return srtp_err_status_ok


# ---------------------------------------------------------------- HMAC-SHA1

cdef srtp_err_status_t srtp_ossl_hmac_alloc(srtp_auth_t** ap, int key_len,
                                            int out_len) noexcept nogil:
    cdef srtp_auth_t* a
    if key_len < 0 or key_len > OSSL_SHA1 or out_len < 0 or out_len > OSSL_SHA1:
        return srtp_err_status_bad_param
    a = <srtp_auth_t*>calloc(1, sizeof(srtp_auth_t))
    if a == NULL:
        return srtp_err_status_alloc_fail
    a.state = calloc(1, sizeof(OsslHmac))
    if a.state == NULL:
        free(a)
        return srtp_err_status_alloc_fail
    a.type = &srtp_ossl_hmac
    a.out_len = out_len
    a.key_len = key_len
    a.prefix_len = 0
    ap[0] = a
    return srtp_err_status_ok


cdef srtp_err_status_t srtp_ossl_hmac_dealloc(srtp_auth_t* a) noexcept nogil:
    if a.state != NULL:
        memset(a.state, 0, sizeof(OsslHmac))
        free(a.state)
    free(a)
    return srtp_err_status_ok


cdef srtp_err_status_t srtp_ossl_hmac_init(void* state, const uint8_t* key,
                                           int key_len) noexcept nogil:
    cdef OsslHmac* h = <OsslHmac*>state
    cdef uint8_t ipad[OSSL_SHA1_BLOCK]
    cdef uint8_t opad[OSSL_SHA1_BLOCK]
    cdef int i
    memset(ipad, 0x36, OSSL_SHA1_BLOCK)
    memset(opad, 0x5C, OSSL_SHA1_BLOCK)
    for i in range(key_len):
        ipad[i] ^= key[i]
        opad[i] ^= key[i]
    SHA1_Init(&h.inner0)
    SHA1_Update(&h.inner0, ipad, OSSL_SHA1_BLOCK)
    SHA1_Init(&h.outer0)
    SHA1_Update(&h.outer0, opad, OSSL_SHA1_BLOCK)
    h.inner = h.inner0
    memset(ipad, 0, OSSL_SHA1_BLOCK)
    memset(opad, 0, OSSL_SHA1_BLOCK)
    return srtp_err_status_ok


cdef srtp_err_status_t srtp_ossl_hmac_start(void* state) noexcept nogil:
    cdef OsslHmac* h = <OsslHmac*>state
    h.inner = h.inner0
    return srtp_err_status_ok


cdef srtp_err_status_t srtp_ossl_hmac_update(void* state, const uint8_t* buf,
                                             int n) noexcept nogil:
    SHA1_Update(&(<OsslHmac*>state).inner, buf, n)
    return srtp_err_status_ok


cdef srtp_err_status_t srtp_ossl_hmac_compute(void* state, const uint8_t* buf, int n,
                                              int tag_len, uint8_t* tag) noexcept nogil:
    cdef OsslHmac* h = <OsslHmac*>state
    cdef SHA_CTX outer = h.outer0
    cdef uint8_t digest[OSSL_SHA1]
    if tag_len > OSSL_SHA1:
        return srtp_err_status_bad_param
    SHA1_Update(&h.inner, buf, n)
    SHA1_Final(digest, &h.inner)
    SHA1_Update(&outer, digest, OSSL_SHA1)
    SHA1_Final(digest, &outer)
    memcpy(tag, digest, tag_len)
    return srtp_err_status_ok


# ---------------------------------------------------------------- registration

cdef int srtp_ossl_install() noexcept nogil:
    """Replace libsrtp2's AES-ICM-128 and HMAC-SHA1; 0, or -1 if it refused (a failed
    known-answer test leaves its own types in place, so nothing is lost but speed)."""
    cdef const srtp_auth_type_t* hmac = srtp_crypto_kernel_get_auth_type(SRTP_HMAC_SHA1)
    srtp_ossl_icm.alloc = srtp_ossl_icm_alloc
    srtp_ossl_icm.dealloc = srtp_ossl_icm_dealloc
    srtp_ossl_icm.init = srtp_ossl_icm_init
    srtp_ossl_icm.set_aad = NULL
    srtp_ossl_icm.encrypt = srtp_ossl_icm_crypt
    srtp_ossl_icm.decrypt = srtp_ossl_icm_crypt
    srtp_ossl_icm.set_iv = srtp_ossl_icm_set_iv
    srtp_ossl_icm.get_tag = NULL
    srtp_ossl_icm.description = "AES-128 integer counter mode (OpenSSL, mediasrv)"
    srtp_ossl_icm.test_data = srtp_aes_icm_128.test_data
    srtp_ossl_icm.id = SRTP_AES_ICM_128
    if hmac == NULL:
        return -1
    srtp_ossl_hmac.alloc = srtp_ossl_hmac_alloc
    srtp_ossl_hmac.dealloc = srtp_ossl_hmac_dealloc
    srtp_ossl_hmac.init = srtp_ossl_hmac_init
    srtp_ossl_hmac.compute = srtp_ossl_hmac_compute
    srtp_ossl_hmac.update = srtp_ossl_hmac_update
    srtp_ossl_hmac.start = srtp_ossl_hmac_start
    srtp_ossl_hmac.description = "HMAC-SHA1 (OpenSSL SHA-1, mediasrv)"
    srtp_ossl_hmac.test_data = hmac.test_data
    srtp_ossl_hmac.id = SRTP_HMAC_SHA1
    if srtp_replace_cipher_type(&srtp_ossl_icm, SRTP_AES_ICM_128) != srtp_err_status_ok:
        return -1
    if srtp_replace_auth_type(&srtp_ossl_hmac, SRTP_HMAC_SHA1) != srtp_err_status_ok:
        return -1
    return 0
