/*
 * hash: the canonical serialisation of a snapshot body and its identity, "sha256:" + hex (PROTOCOL.md section 2).
 *
 * Two processes must derive the same hash from the same configuration, whatever order they built its objects in:
 * the body is written compactly with keys sorted by byte value, arrays kept in their order, strings as jansson
 * writes them. Real numbers are refused, because a float has many spellings and would make the hash depend on the
 * printer. The walk that looks for them is bounded in depth, so a cyclic or absurdly deep value built in memory is
 * refused too instead of overflowing the stack (jansson's own parser stops at 2048 levels).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "proto/log.h"
#include "proto/proto.h"

#define MODULE "proto/hash"

#define MAX_DEPTH 4096

/* 1 when v and everything under it hold no real number, within MAX_DEPTH levels. */
static int no_real(const json_t *v, unsigned depth)
{
    const char *key;
    json_t *child;
    size_t i;

    if (depth > MAX_DEPTH)
        return 0;
    switch (json_typeof(v)) {
    case JSON_REAL:
        return 0;
    case JSON_OBJECT:
        json_object_foreach((json_t *)v, key, child)
        {
            if (!no_real(child, depth + 1))
                return 0;
        }
        return 1;
    case JSON_ARRAY:
        json_array_foreach(v, i, child)
        {
            if (!no_real(child, depth + 1))
                return 0;
        }
        return 1;
    default:
        return 1;
    }
}

char *cph_json_canonical(const json_t *v)
{
    if (v == NULL || !no_real(v, 0))
        return NULL;
    return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

int cph_snapshot_hash(const json_t *body, char out[CPH_HASH_SIZE])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char *canon, hex[2 * EVP_MAX_MD_SIZE + 1];
    size_t hexlen, i;

    out[0] = '\0';
    if ((canon = cph_json_canonical(body)) == NULL)
        return -1;
    if (EVP_Digest(canon, strlen(canon), md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        cph_fatal(MODULE, "SHA-256 failed");
    if (OPENSSL_buf2hexstr_ex(hex, sizeof(hex), &hexlen, md, mdlen, '\0') != 1)
        cph_fatal(MODULE, "hex encoding failed");
    for (i = 0; hex[i] != '\0'; ++i)
        hex[i] = (char)tolower((unsigned char)hex[i]);
    memcpy(out, "sha256:", 7);
    memcpy(out + 7, hex, 64);
    out[7 + 64] = '\0';
    free(canon);
    return 0;
}
