/*
 * filter/authn: finds the request's credential and turns it into r->principal (core/authn.h), before any rule is
 * looked at (docs/access.md sections 3 and 4 step 0).
 *
 * Credentials: `Authorization: Bearer <jwt>`, `Authorization: ApiKey <prefix>.<secret>`, `Authorization: Basic
 * base64(<prefix>:<secret>)` and `X-API-Key: <prefix>.<secret>`. Scheme names are case-insensitive and, as RFC 7235
 * has one space after the scheme but clients send more, any run of spaces or tabs separates it from the credential,
 * which itself is one token. Basic is decoded with OpenSSL's EVP_DecodeBlock after a strict check (canonical length,
 * alphabet, padding only at the end), and must hold a ':' and no control character.
 *
 * No credential: the principal stays NONE and authz decides. Two credential headers that say different things: 401
 * invalid_request (the same API key sent twice, say in X-API-Key and as ApiKey, counts once). An unknown scheme or a
 * header without a credential: 401 invalid_request. A credential that does not verify: 401 invalid_token, also on a
 * public endpoint. Every 401 carries `WWW-Authenticate: Bearer realm="cephalo", error="..."` (core/respond.c). An API key is never
 * forwarded (r->strip_credential; filter/proxy_head.c removes the headers), a bearer token is. A bearer token that
 * verified is remembered per worker for its snapshot (core/authn_cache.h), so a client reusing it skips the signature.
 */
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include "dataplane/core/authn.h"
#include "dataplane/core/authn_cache.h"
#include "dataplane/core/respond.h"
#include "dataplane/filter/filter.h"

#define MODULE "dp/filter/authn"
#define MAX_BASIC 1024 /* encoded bytes of a Basic credential: prefix (12) + ':' + a secret of at most 512 */
#define INVALID_REQUEST "invalid_request"
#define INVALID_TOKEN "invalid_token"

typedef enum en_cred_kind_t {
    CRED_NONE = 0,
    CRED_BEARER,
    CRED_API_KEY,
    CRED_BAD /* present but unusable: error says which 401 */
} cred_kind_t;

typedef struct st_cred_t {
    cred_kind_t kind;
    h2o_iovec_t a;     /* bearer: the token; API key: the prefix, or the whole value when it has no separator */
    h2o_iovec_t b;     /* API key: the secret; base NULL when there was no separator */
    const char *error; /* CRED_BAD: INVALID_REQUEST or INVALID_TOKEN */
} cred_t;

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

static cred_t bad(const char *error)
{
    return (cred_t){CRED_BAD, {NULL, 0}, {NULL, 0}, error};
}

/* "<prefix><sep><secret>" split at the first sep; without one, a is everything (core/authn answers malformed). */
static cred_t api_key(h2o_iovec_t v, char sep)
{
    const char *p = memchr(v.base, sep, v.len);

    if (p == NULL)
        return (cred_t){CRED_API_KEY, v, {NULL, 0}, NULL};
    return (cred_t){CRED_API_KEY, h2o_iovec_init(v.base, (size_t)(p - v.base)),
                    h2o_iovec_init(p + 1, v.len - (size_t)(p - v.base) - 1), NULL};
}

static int is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* A Basic credential: strict base64 of "<prefix>:<secret>" without control characters. */
static cred_t basic(h2o_iovec_t v, h2o_mem_pool_t *pool)
{
    size_t pad = 0, i;
    unsigned char *out;
    int n;

    if (v.len == 0 || v.len % 4 != 0 || v.len > MAX_BASIC)
        return bad(INVALID_TOKEN);
    while (pad < 2 && v.base[v.len - 1 - pad] == '=')
        ++pad;
    for (i = 0; i != v.len - pad; ++i)
        if (!is_b64(v.base[i]))
            return bad(INVALID_TOKEN);
    out = h2o_mem_alloc_pool(pool, v.len / 4 * 3 + 1);
    if ((n = EVP_DecodeBlock(out, (const unsigned char *)v.base, (int)v.len)) < (int)pad)
        return bad(INVALID_TOKEN);
    n -= (int)pad; /* EVP_DecodeBlock counts the bytes '=' stands for */
    for (i = 0; i != (size_t)n; ++i)
        if (out[i] < 0x20 || out[i] == 0x7f)
            return bad(INVALID_TOKEN);
    if (memchr(out, ':', (size_t)n) == NULL)
        return bad(INVALID_TOKEN);
    return api_key(h2o_iovec_init(out, (size_t)n), ':');
}

static h2o_iovec_t trim(h2o_iovec_t v)
{
    while (v.len != 0 && is_space(v.base[0]))
        ++v.base, --v.len;
    while (v.len != 0 && is_space(v.base[v.len - 1]))
        --v.len;
    return v;
}

/* "<scheme> <credential>": the scheme case-insensitive, one or more spaces, then one token. */
static cred_t parse_authorization(h2o_iovec_t v, h2o_mem_pool_t *pool)
{
    size_t s = 0, i;
    h2o_iovec_t cred;

    v = trim(v);
    while (s < v.len && !is_space(v.base[s]))
        ++s;
    for (i = s; i < v.len && is_space(v.base[i]); ++i)
        ;
    cred = h2o_iovec_init(v.base + i, v.len - i);
    if (i == s || cred.len == 0 || memchr(cred.base, ' ', cred.len) != NULL || memchr(cred.base, '\t', cred.len) != NULL)
        return bad(INVALID_REQUEST);
    if (h2o_lcstris(v.base, s, H2O_STRLIT("bearer")))
        return (cred_t){CRED_BEARER, cred, {NULL, 0}, NULL};
    if (h2o_lcstris(v.base, s, H2O_STRLIT("apikey")))
        return api_key(cred, '.');
    if (h2o_lcstris(v.base, s, H2O_STRLIT("basic")))
        return basic(cred, pool);
    return bad(INVALID_REQUEST);
}

static int same_iov(h2o_iovec_t a, h2o_iovec_t b)
{
    return (a.base == NULL) == (b.base == NULL) && h2o_memis(a.base, a.len, b.base, b.len);
}

static int same(const cred_t *x, const cred_t *y)
{
    return x->kind == y->kind && x->kind != CRED_BAD && same_iov(x->a, y->a) && same_iov(x->b, y->b);
}

/* The one credential of the request (kind NONE when there is none), or CRED_BAD. */
static cred_t find_credential(h2o_req_t *req)
{
    cred_t found = {CRED_NONE, {NULL, 0}, {NULL, 0}, NULL}, c;
    size_t i;

    for (i = 0; i != req->headers.size; ++i) {
        const h2o_header_t *h = req->headers.entries + i;
        if (h->name == &H2O_TOKEN_AUTHORIZATION->buf)
            c = parse_authorization(h->value, &req->pool);
        else if (h2o_lcstris(h->name->base, h->name->len, H2O_STRLIT("x-api-key")))
            c = api_key(trim(h->value), '.');
        else
            continue;
        if (c.kind == CRED_BAD)
            return c;
        if (found.kind != CRED_NONE && !same(&found, &c))
            return bad(INVALID_REQUEST);
        found = c;
    }
    return found;
}

/* 401 with both challenges; `reason` (a core/authn.h code, or the error itself) is counted for /metrics. */
static int refuse(cph_req_t *r, const char *error, const char *reason)
{
    if (r->worker != NULL && r->worker->stats != NULL)
        cph_counter_add(&r->worker->stats->authn_failures[cph_stats_authn_reason(reason != NULL ? reason : error)], 1);
    cph_respond_401(r, error,
                    strcmp(error, INVALID_REQUEST) == 0 ? "The request's credentials are malformed or ambiguous"
                                                        : "The credential is not valid",
                    error);
    return CPH_DONE;
}

int cph_authn_on_req(cph_req_t *r)
{
    h2o_req_t *req = r->req;
    time_t now = req->processed_at.at.tv_sec != 0 ? req->processed_at.at.tv_sec : time(NULL);
    cred_t c = find_credential(req);
    const char *reason = NULL;
    cph_authn_result_t res;

    memset(&r->principal, 0, sizeof(r->principal));
    r->strip_credential = 0;
    switch (c.kind) {
    case CRED_NONE:
        return CPH_NEXT;
    case CRED_BAD:
        return refuse(r, c.error, c.error);
    case CRED_BEARER:
        if (cph_authn_cache_get(r->snap, c.a.base, c.a.len, now, &req->pool, &r->principal))
            return CPH_NEXT;
        if ((res = cph_authn_verify_jwt(r->snap, c.a.base, c.a.len, now, &req->pool, &r->principal, &reason)) == CPH_AUTHN_OK)
            cph_authn_cache_put(r->snap, c.a.base, c.a.len, &r->principal);
        break;
    default:
        r->strip_credential = 1;
        res = cph_authn_verify_api_key(r->snap, c.a.base, c.a.len, c.b.base, c.b.len, now, &r->principal, &reason);
        break;
    }
    if (res != CPH_AUTHN_OK) {
        memset(&r->principal, 0, sizeof(r->principal));
        return refuse(r, INVALID_TOKEN, reason);
    }
    return CPH_NEXT;
}
