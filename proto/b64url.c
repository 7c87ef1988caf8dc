/*
 * b64url: the one base64url of the tree (the JOSE alphabet, RFC 7515 section 2: '-' and '_', no padding).
 *
 * Tokens, JWK numbers, API keys and refresh tokens all use it, and both planes must agree on which spellings are
 * valid, so there is a single copy here, linked by both. The bit work is OpenSSL's (EVP_EncodeBlock,
 * EVP_DecodeBlock); what this file adds is the part OpenSSL does not do: the other alphabet, no padding, and
 * strictness. OpenSSL's decoder accepts padding, whitespace and '+' '/', and ignores the spare bits of the last
 * character, so several strings would decode to the same bytes; here only [A-Za-z0-9_-] passes, a length of 1 mod 4
 * is impossible and the spare bits must be zero, which leaves exactly one spelling per byte string. Both directions
 * work in fixed-size chunks, so a long input needs no allocation and OpenSSL's int lengths never overflow.
 */
#include <string.h>
#include <openssl/evp.h>
#include "proto/log.h"
#include "proto/proto.h"

#define MODULE "proto/b64url"

#define DECODE_CHUNK 1024 /* characters per EVP_DecodeBlock call: a multiple of 4 */
#define ENCODE_CHUNK 768  /* bytes per EVP_EncodeBlock call: a multiple of 3 */

/* The 6-bit value of one base64url character, or -1. */
static int sextet(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* s[0..len) in the standard alphabet into dst; 0, or -1 when a character is not base64url. */
static int to_standard(const char *s, size_t len, unsigned char *dst)
{
    for (size_t i = 0; i != len; ++i) {
        int v = sextet(s[i]);
        if (v < 0)
            return -1;
        dst[i] = v == 62 ? '+' : v == 63 ? '/' : (unsigned char)s[i];
    }
    return 0;
}

long cph_b64url_decode(const char *s, size_t len, unsigned char *out, size_t cap)
{
    size_t tail = len % 4, full = len - tail, n = full / 4 * 3 + (tail != 0 ? tail - 1 : 0);
    unsigned char std[DECODE_CHUNK], group[4] = {'=', '=', '=', '='}, bytes[3];

    if (tail == 1 || n > cap)
        return -1;
    for (size_t i = 0; i != full;) {
        size_t k = full - i < DECODE_CHUNK ? full - i : DECODE_CHUNK;
        if (to_standard(s + i, k, std) != 0 || (out != NULL && EVP_DecodeBlock(out + i / 4 * 3, std, (int)k) != (int)(k / 4 * 3)))
            return -1;
        i += k;
    }
    if (tail != 0) {
        /* the spare bits: 4 of the last character after 2, 2 after 3 */
        if (to_standard(s + full, tail, group) != 0 || (sextet(s[len - 1]) & (tail == 2 ? 0x0f : 0x03)) != 0)
            return -1;
        if (out != NULL) {
            if (EVP_DecodeBlock(bytes, group, 4) != 3) /* '=' counts as a zero byte */
                return -1;
            memcpy(out + full / 4 * 3, bytes, tail - 1);
        }
    }
    return (long)n;
}

size_t cph_b64url_encode(const unsigned char *in, size_t len, char *out, size_t cap)
{
    size_t groups = len / 3 + (len % 3 != 0), n = 0;

    if (cap == 0 || groups > (cap - 1) / 4)
        cph_fatal(MODULE, "encoding %zu bytes needs %zu bytes of output, have %zu", len, 4 * groups + 1, cap);
    for (size_t i = 0; i != len;) {
        size_t k = len - i < ENCODE_CHUNK ? len - i : ENCODE_CHUNK;
        n += (size_t)EVP_EncodeBlock((unsigned char *)out + n, in + i, (int)k);
        i += k;
    }
    while (n > 0 && out[n - 1] == '=')
        --n;
    out[n] = '\0';
    for (size_t i = 0; i != n; ++i)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return n;
}
