/*
 * cache: the per-process response store behind filter/cache.c (docs/dataplane.md "Response cache") and the HTTP caching rules it
 * applies.
 *
 * A chained hash table over (route id, host, path) finds the variants of one resource; each variant carries the
 * request values of its response's Vary names, compared byte for byte. A doubly linked LRU list orders every entry;
 * the budget counts key + headers + body of each, and an insert evicts from the tail until the store fits. The store
 * holds one reference on each entry it links; lookups hand out another, so an entry evicted or purged while a worker
 * is sending it stays alive until that worker releases it. Everything but the refcounts is guarded by one mutex,
 * never held across I/O.
 *
 * The freshness rules are RFC 9111's for a shared cache, reduced to what the cache policy needs: s-maxage, max-age, Expires
 * minus Date, else the route's ttl_s, capped by its max_ttl_s; no revalidation (no-cache responses are not stored).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "proto/log.h"
#include "dataplane/core/cache.h"
#include "dataplane/core/cache_redis.h"
#include "dataplane/core/stats.h"
#include "dataplane/filter/proxy_head.h"

#define MODULE "dp/core/cache"
#define MIN_BUCKETS 256

struct st_cph_cache_t {
    pthread_mutex_t mutex;
    cph_cache_entry_t **buckets;
    size_t num_buckets;                     /* a power of 2 */
    cph_cache_entry_t *lru_head, *lru_tail; /* head: most recently used */
    uint64_t max_bytes;
    uint64_t bytes;
    uint64_t entries;
};

static void *xmalloc(size_t sz)
{
    void *p = malloc(sz != 0 ? sz : 1);

    if (p == NULL)
        cph_fatal(MODULE, "out of memory");
    return p;
}

static h2o_iovec_t dup_iov(h2o_iovec_t v)
{
    char *p = xmalloc(v.len + 1);

    if (v.len != 0)
        memcpy(p, v.base, v.len);
    p[v.len] = '\0';
    return h2o_iovec_init(p, v.len);
}

uint64_t cph_cache_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t cph_cache_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

h2o_iovec_t cph_cache_key_host(h2o_mem_pool_t *pool, h2o_iovec_t authority, int tls)
{
    h2o_iovec_t host = h2o_strdup(pool, authority.base, authority.len);
    const char *dflt = tls ? ":443" : ":80";
    size_t dlen = strlen(dflt);

    h2o_strtolower(host.base, host.len);
    if (host.len > dlen && memcmp(host.base + host.len - dlen, dflt, dlen) == 0 && host.base[host.len - dlen - 1] != ':')
        host.len -= dlen; /* "example.com:80" is "example.com" (an IPv6 literal ends with ']' before its port) */
    host.base[host.len] = '\0';
    return host;
}

/* ---------------------------------------------------------------- header rules */

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Calls cb for each comma-separated item of list (trimmed, quoted commas respected); stops when cb returns non-zero. */
static int each_item(const char *s, size_t len, int (*cb)(void *, const char *, size_t), void *ud)
{
    size_t i = 0;

    while (i < len) {
        size_t start, end;
        int quoted = 0;
        while (i < len && (is_space(s[i]) || s[i] == ','))
            i++;
        for (start = i; i < len && (quoted || s[i] != ','); i++)
            if (s[i] == '"')
                quoted = !quoted;
        for (end = i; end > start && is_space(s[end - 1]); end--)
            ;
        if (end > start && cb(ud, s + start, end - start))
            return 1;
    }
    return 0;
}

typedef struct st_directive_t {
    const char *token;
    size_t token_len;
    const char *value; /* after '=', quotes removed; NULL without a value */
    size_t value_len;
} directive_t;

static int match_directive(void *ud, const char *item, size_t len)
{
    directive_t *d = ud;
    size_t nlen = 0;

    while (nlen < len && item[nlen] != '=' && !is_space(item[nlen]))
        nlen++;
    if (!h2o_lcstris(item, nlen, d->token, d->token_len))
        return 0;
    const char *eq = memchr(item, '=', len);
    if (eq != NULL) {
        d->value = eq + 1;
        d->value_len = len - (size_t)(eq + 1 - item);
        while (d->value_len != 0 && is_space(*d->value))
            d->value++, d->value_len--;
        if (d->value_len >= 2 && d->value[0] == '"' && d->value[d->value_len - 1] == '"')
            d->value++, d->value_len -= 2;
    }
    return 1;
}

static int find_directive(const char *list, size_t len, const char *token, directive_t *d)
{
    *d = (directive_t){token, strlen(token), NULL, 0};
    return each_item(list, len, match_directive, d);
}

int cph_cache_has_directive(const char *list, size_t len, const char *token)
{
    directive_t d;

    return find_directive(list, len, token, &d);
}

/* A delta-seconds value; -1 when it is not one. Huge values saturate. */
static int64_t parse_seconds(const char *s, size_t len)
{
    int64_t v = 0;

    if (s == NULL || len == 0)
        return -1;
    for (size_t i = 0; i != len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v > INT64_MAX / 100 ? INT64_MAX / 100 : v * 10 + (s[i] - '0');
    }
    return v;
}

/* An HTTP date as Unix seconds, or -1. */
static int64_t parse_date(const char *s, size_t len)
{
    struct tm tm;

    if (len == 0 || h2o_time_parse_rfc1123(s, len, &tm) != 0)
        return -1;
    return (int64_t)timegm(&tm);
}

static int status_storable(int status)
{
    static const int ok[] = {200, 203, 204, 300, 301, 404, 405, 410, 414, 501};

    for (size_t i = 0; i != sizeof(ok) / sizeof(ok[0]); i++)
        if (ok[i] == status)
            return 1;
    return 0;
}

/* Cache-Control of all lines: the forbidding directives, then the freshness ones (s-maxage first). */
static void read_cache_control(const struct phr_header *h, cph_cache_resinfo_t *info, int64_t *smaxage, int64_t *maxage)
{
    directive_t d;

    if (cph_cache_has_directive(h->value, h->value_len, "no-store") || cph_cache_has_directive(h->value, h->value_len, "private") ||
        cph_cache_has_directive(h->value, h->value_len, "no-cache"))
        info->why = "Cache-Control forbids storing";
    if (cph_cache_has_directive(h->value, h->value_len, "public"))
        info->shared_ok = 1;
    if (find_directive(h->value, h->value_len, "s-maxage", &d)) {
        *smaxage = parse_seconds(d.value, d.value_len);
        info->shared_ok = 1;
        if (*smaxage < 0)
            *smaxage = 0; /* an unreadable s-maxage: stale at once */
    }
    if (find_directive(h->value, h->value_len, "max-age", &d) && (*maxage = parse_seconds(d.value, d.value_len)) < 0)
        *maxage = 0;
}

void cph_cache_response_info(int status, const struct phr_header *headers, size_t num_headers, uint64_t ttl_s, uint64_t max_ttl_s,
                             int need_shared, uint64_t now_s, cph_cache_resinfo_t *info)
{
    int64_t smaxage = -1, maxage = -1, date = -1, expires = -1, fresh;
    int has_expires = 0;

    *info = (cph_cache_resinfo_t){.content_length = SIZE_MAX};
    for (size_t i = 0; i != num_headers; i++) {
        const struct phr_header *h = &headers[i];
        if (CPH_LC_EQ(h->name, h->name_len, "cache-control")) {
            read_cache_control(h, info, &smaxage, &maxage);
        } else if (CPH_LC_EQ(h->name, h->name_len, "expires")) {
            has_expires = 1;
            expires = parse_date(h->value, h->value_len);
        } else if (CPH_LC_EQ(h->name, h->name_len, "date")) {
            date = parse_date(h->value, h->value_len);
        } else if (CPH_LC_EQ(h->name, h->name_len, "age")) {
            int64_t a = parse_seconds(h->value, h->value_len);
            info->age_s = a > 0 ? (uint64_t)a : 0;
        } else if (CPH_LC_EQ(h->name, h->name_len, "set-cookie")) {
            info->why = "Set-Cookie";
        } else if (CPH_LC_EQ(h->name, h->name_len, "content-length")) {
            int64_t cl = parse_seconds(h->value, h->value_len);
            info->content_length = cl >= 0 ? (size_t)cl : SIZE_MAX;
        } else if (CPH_LC_EQ(h->name, h->name_len, "vary")) {
            if (cph_cache_has_directive(h->value, h->value_len, "*"))
                info->why = "Vary: *";
            if (info->vary.base != NULL)
                info->why = "several Vary lines"; /* rare; one key list keeps the variants exact */
            info->vary = h2o_iovec_init(h->value, h->value_len);
        }
    }
    if (smaxage >= 0)
        fresh = smaxage;
    else if (maxage >= 0)
        fresh = maxage;
    else if (has_expires)
        fresh = expires < 0 ? 0 : expires - (date >= 0 ? date : (int64_t)now_s);
    else
        fresh = (int64_t)ttl_s;
    if (fresh < 0)
        fresh = 0;
    info->freshness_s = (uint64_t)fresh < max_ttl_s ? (uint64_t)fresh : max_ttl_s;
    if (info->why == NULL && !status_storable(status))
        info->why = "status";
    if (info->why == NULL && need_shared && !info->shared_ok)
        info->why = "authenticated request without public or s-maxage";
    if (info->why == NULL && info->freshness_s == 0)
        info->why = "no freshness";
    info->storable = info->why == NULL;
}

/* The weak comparison: W/ prefixes ignored, the opaque tags equal. */
static int match_etag(void *ud, const char *item, size_t len)
{
    h2o_iovec_t *etag = ud;
    h2o_iovec_t e = *etag;

    if (len == 1 && item[0] == '*')
        return 1;
    if (len >= 2 && item[0] == 'W' && item[1] == '/')
        item += 2, len -= 2;
    if (e.len >= 2 && e.base[0] == 'W' && e.base[1] == '/')
        e.base += 2, e.len -= 2;
    return len == e.len && memcmp(item, e.base, len) == 0;
}

int cph_cache_etag_match(h2o_iovec_t if_none_match, h2o_iovec_t etag)
{
    if (etag.len == 0)
        return 0;
    return each_item(if_none_match.base, if_none_match.len, match_etag, &etag);
}

/* ---------------------------------------------------------------- keys */

typedef struct st_vary_buf_t {
    const h2o_headers_t *headers;
    char *buf;
    size_t len, cap;
} vary_buf_t;

static void vary_put(vary_buf_t *vb, const char *s, size_t len)
{
    if (vb->len + len + 1 > vb->cap) {
        vb->cap = (vb->len + len + 1) * 2;
        if ((vb->buf = realloc(vb->buf, vb->cap)) == NULL)
            cph_fatal(MODULE, "out of memory");
    }
    memcpy(vb->buf + vb->len, s, len);
    vb->len += len;
}

/* Appends the request's values of one Vary name, joined with ", ", then a NUL. */
static int vary_add(void *ud, const char *name, size_t len)
{
    vary_buf_t *vb = ud;
    int first = 1;

    for (size_t i = 0; vb->headers != NULL && i != vb->headers->size; i++) {
        const h2o_header_t *h = &vb->headers->entries[i];
        if (!h2o_lcstris(h->name->base, h->name->len, name, len))
            continue;
        if (!first)
            vary_put(vb, ", ", 2);
        vary_put(vb, h->value.base, h->value.len);
        first = 0;
    }
    vary_put(vb, "", 1);
    return 0;
}

h2o_iovec_t cph_cache_vary_values(h2o_iovec_t vary, const h2o_headers_t *headers)
{
    vary_buf_t vb = {headers, NULL, 0, 0};

    each_item(vary.base, vary.len, vary_add, &vb);
    return h2o_iovec_init(vb.buf, vb.len);
}

static uint64_t key_hash(uint32_t route_id, h2o_iovec_t host, h2o_iovec_t path)
{
    uint64_t h = 14695981039346656037ull ^ route_id;

    for (size_t i = 0; i != host.len; i++)
        h = (h ^ (uint8_t)host.base[i]) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (size_t i = 0; i != path.len; i++)
        h = (h ^ (uint8_t)path.base[i]) * 1099511628211ull;
    return h;
}

static int same_key(const cph_cache_entry_t *e, uint64_t hash, uint32_t route_id, h2o_iovec_t host, h2o_iovec_t path)
{
    return e->hash == hash && e->route_id == route_id && h2o_memis(e->host.base, e->host.len, host.base, host.len) &&
           h2o_memis(e->path.base, e->path.len, path.base, path.len);
}

/* ---------------------------------------------------------------- entries */

/* Stores one response header unless it must not be (the name is lower-cased first: Connection lists any case). */
static void add_header(cph_cache_entry_t *e, const struct phr_header *h, h2o_iovec_t conn)
{
    h2o_iovec_t name = dup_iov(h2o_iovec_init(h->name, h->name_len));

    h2o_strtolower(name.base, name.len);
    if (cph_proxy_drop_response_header(name.base, name.len, conn) || h2o_memis(name.base, name.len, H2O_STRLIT("age")) ||
        h2o_memis(name.base, name.len, H2O_STRLIT("set-cookie"))) {
        free(name.base);
        return;
    }
    cph_cache_header_t *out = &e->headers[e->num_headers++];
    out->name = name;
    out->value = dup_iov(h2o_iovec_init(h->value, h->value_len));
    if (h2o_memis(out->name.base, out->name.len, H2O_STRLIT("etag")))
        e->etag = out->value;
    e->bytes += out->name.len + out->value.len + sizeof(*out);
}

cph_cache_entry_t *cph_cache_entry_new(uint32_t route_id, h2o_iovec_t host, h2o_iovec_t path, const h2o_headers_t *req_headers,
                                       const cph_cache_resinfo_t *info, int status, h2o_iovec_t reason,
                                       const struct phr_header *headers, size_t num_headers)
{
    cph_cache_entry_t *e = xmalloc(sizeof(*e));
    h2o_iovec_t conn = h2o_iovec_init(NULL, 0);

    memset(e, 0, sizeof(*e));
    atomic_init(&e->refcnt, 1);
    e->route_id = route_id;
    e->host = dup_iov(host);
    h2o_strtolower(e->host.base, e->host.len);
    e->path = dup_iov(path);
    e->hash = key_hash(route_id, e->host, e->path);
    e->vary = dup_iov(info->vary);
    h2o_strtolower(e->vary.base, e->vary.len);
    e->vary_values = cph_cache_vary_values(e->vary, req_headers);
    e->status = status;
    e->reason = dup_iov(reason);
    e->age_s = info->age_s;
    e->freshness_s = info->freshness_s;
    e->shared_ok = info->shared_ok;
    e->headers = xmalloc(sizeof(*e->headers) * (num_headers + 1));
    for (size_t i = 0; i != num_headers; ++i)
        if (CPH_LC_EQ(headers[i].name, headers[i].name_len, "connection"))
            conn = h2o_iovec_init(headers[i].value, headers[i].value_len);
    e->bytes = sizeof(*e) + e->host.len + e->path.len + e->vary.len + e->vary_values.len + e->reason.len;
    for (size_t i = 0; i != num_headers; ++i)
        add_header(e, &headers[i], conn);
    return e;
}

int cph_cache_entry_append(cph_cache_entry_t *e, const char *bytes, size_t len, size_t max_body)
{
    if (len > max_body || e->body_len > max_body - len)
        return -1;
    if (e->body_len + len > e->body_cap) {
        size_t cap = (e->body_len + len) * 2;
        e->body_cap = cap < max_body ? cap : max_body;
        if ((e->body = realloc(e->body, e->body_cap)) == NULL)
            cph_fatal(MODULE, "out of memory");
    }
    memcpy(e->body + e->body_len, bytes, len);
    e->body_len += len;
    e->bytes += len;
    return 0;
}

void cph_cache_entry_retain(cph_cache_entry_t *e)
{
    atomic_fetch_add_explicit(&e->refcnt, 1, memory_order_relaxed);
}

void cph_cache_entry_release(cph_cache_entry_t *e)
{
    if (e == NULL || atomic_fetch_sub_explicit(&e->refcnt, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i != e->num_headers; i++) {
        free(e->headers[i].name.base);
        free(e->headers[i].value.base);
    }
    free(e->headers);
    free(e->host.base);
    free(e->path.base);
    free(e->vary.base);
    free(e->vary_values.base);
    free(e->reason.base);
    free(e->body);
    free(e);
}

/* ---------------------------------------------------------------- the store (callers hold the mutex) */

static void lru_unlink(cph_cache_t *c, cph_cache_entry_t *e)
{
    *(e->lru_prev != NULL ? &e->lru_prev->lru_next : &c->lru_head) = e->lru_next;
    *(e->lru_next != NULL ? &e->lru_next->lru_prev : &c->lru_tail) = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(cph_cache_t *c, cph_cache_entry_t *e)
{
    e->lru_prev = NULL;
    e->lru_next = c->lru_head;
    *(c->lru_head != NULL ? &c->lru_head->lru_prev : &c->lru_tail) = e;
    c->lru_head = e;
}

/* Unlinks e from the table and the LRU and drops the store's reference. */
static void remove_entry(cph_cache_t *c, cph_cache_entry_t *e)
{
    cph_cache_entry_t **p = &c->buckets[e->hash & (c->num_buckets - 1)];

    while (*p != e)
        p = &(*p)->chain;
    *p = e->chain;
    lru_unlink(c, e);
    c->bytes -= e->bytes;
    c->entries--;
    e->in_store = 0;
    cph_cache_entry_release(e);
}

static void evict_to(cph_cache_t *c, uint64_t budget)
{
    while (c->bytes > budget && c->lru_tail != NULL)
        remove_entry(c, c->lru_tail);
}

static void grow(cph_cache_t *c)
{
    size_t n = c->num_buckets * 2;
    cph_cache_entry_t **b = calloc(n, sizeof(*b));

    if (b == NULL)
        cph_fatal(MODULE, "out of memory");
    for (size_t i = 0; i != c->num_buckets; i++) {
        while (c->buckets[i] != NULL) {
            cph_cache_entry_t *e = c->buckets[i];
            c->buckets[i] = e->chain;
            e->chain = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->num_buckets = n;
}

/* ---------------------------------------------------------------- public */

cph_cache_t *cph_cache_create(uint64_t max_bytes)
{
    cph_cache_t *c = xmalloc(sizeof(*c));

    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->mutex, NULL);
    c->num_buckets = MIN_BUCKETS;
    if ((c->buckets = calloc(c->num_buckets, sizeof(*c->buckets))) == NULL)
        cph_fatal(MODULE, "out of memory");
    c->max_bytes = max_bytes;
    return c;
}

void cph_cache_destroy(cph_cache_t *c)
{
    if (c == NULL)
        return;
    evict_to(c, 0);
    free(c->buckets);
    pthread_mutex_destroy(&c->mutex);
    free(c);
}

static cph_cache_t *default_store;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void create_default(void)
{
    default_store = cph_cache_create(0);
}

cph_cache_t *cph_cache_default(void)
{
    pthread_once(&default_once, create_default);
    return default_store;
}

void cph_cache_configure(cph_cache_t *c, uint64_t max_bytes)
{
    pthread_mutex_lock(&c->mutex);
    c->max_bytes = max_bytes;
    evict_to(c, max_bytes);
    pthread_mutex_unlock(&c->mutex);
}

uint64_t cph_cache_max_bytes(cph_cache_t *c)
{
    pthread_mutex_lock(&c->mutex);
    uint64_t v = c->max_bytes;
    pthread_mutex_unlock(&c->mutex);
    return v;
}

cph_cache_entry_t *cph_cache_lookup(cph_cache_t *c, uint32_t route_id, h2o_iovec_t host, h2o_iovec_t path,
                                    const h2o_headers_t *req_headers, uint64_t now_ms, uint64_t *age_s)
{
    uint64_t hash = key_hash(route_id, host, path);
    h2o_iovec_t vary = {NULL, 0}, values = {NULL, 0};
    cph_cache_entry_t *found = NULL, *e, *next;

    pthread_mutex_lock(&c->mutex);
    for (e = c->buckets[hash & (c->num_buckets - 1)]; e != NULL && found == NULL; e = next) {
        next = e->chain;
        if (!same_key(e, hash, route_id, host, path))
            continue;
        if (values.base == NULL || !h2o_memis(vary.base, vary.len, e->vary.base, e->vary.len)) {
            free(values.base);
            vary = e->vary;
            values = cph_cache_vary_values(vary, req_headers);
        }
        if (!h2o_memis(values.base, values.len, e->vary_values.base, e->vary_values.len))
            continue;
        uint64_t age = e->age_s + (now_ms > e->stored_ms ? now_ms - e->stored_ms : 0) / 1000; /* now_ms was read unlocked */
        if (age >= e->freshness_s) {
            remove_entry(c, e); /* stale: no revalidation, it only takes room */
            free(values.base);  /* vary pointed into e, which may be gone */
            values.base = NULL;
            continue;
        }
        *age_s = age;
        lru_unlink(c, e);
        lru_push_front(c, e);
        cph_cache_entry_retain(e);
        found = e;
    }
    pthread_mutex_unlock(&c->mutex);
    free(values.base);
    return found;
}

int cph_cache_insert(cph_cache_t *c, cph_cache_entry_t *e, uint64_t now_ms)
{
    cph_cache_entry_t *p, *next;

    e->stored_ms = now_ms;
    if (e->stored_wall_ms == 0)
        e->stored_wall_ms = cph_cache_wall_ms();
    pthread_mutex_lock(&c->mutex);
    if (c->max_bytes == 0 || e->bytes > c->max_bytes) {
        pthread_mutex_unlock(&c->mutex);
        cph_cache_entry_release(e);
        return -1;
    }
    for (p = c->buckets[e->hash & (c->num_buckets - 1)]; p != NULL; p = next) {
        next = p->chain;
        if (same_key(p, e->hash, e->route_id, e->host, e->path) &&
            (!h2o_memis(p->vary.base, p->vary.len, e->vary.base, e->vary.len) ||
             h2o_memis(p->vary_values.base, p->vary_values.len, e->vary_values.base, e->vary_values.len)))
            remove_entry(c, p);
    }
    if (c->entries >= c->num_buckets)
        grow(c);
    cph_cache_entry_t **bucket = &c->buckets[e->hash & (c->num_buckets - 1)];
    e->chain = *bucket;
    *bucket = e;
    lru_push_front(c, e);
    e->in_store = 1;
    c->bytes += e->bytes;
    c->entries++;
    evict_to(c, c->max_bytes);
    pthread_mutex_unlock(&c->mutex);
    return 0;
}

size_t cph_cache_purge(cph_cache_t *c, uint32_t route_id, const char *prefix, size_t prefix_len)
{
    return cph_cache_purge_at(c, route_id, prefix, prefix_len, 0);
}

size_t cph_cache_purge_at(cph_cache_t *c, uint32_t route_id, const char *prefix, size_t prefix_len, uint64_t before_ms)
{
    size_t n = 0;
    cph_cache_entry_t *e, *next;

    pthread_mutex_lock(&c->mutex);
    for (e = c->lru_head; e != NULL; e = next) {
        next = e->lru_next;
        if (e->route_id == route_id && e->path.len >= prefix_len && memcmp(e->path.base, prefix, prefix_len) == 0 &&
            (before_ms == 0 || e->stored_wall_ms < before_ms)) {
            remove_entry(c, e);
            n++;
        }
    }
    pthread_mutex_unlock(&c->mutex);
    return n;
}

size_t cph_cache_purge_before(const char *route, const char *prefix, uint64_t at_ms)
{
    uint32_t id = cph_stats_route_lookup(route);
    size_t prefix_len = prefix != NULL ? strlen(prefix) : 0;

    if (prefix == NULL)
        prefix = "";
    cph_cache_redis_purge(route, prefix, at_ms != 0 ? at_ms : cph_cache_wall_ms());
    return id != 0 ? cph_cache_purge_at(cph_cache_default(), id, prefix, prefix_len, at_ms) : 0;
}

void cph_cache_usage(cph_cache_t *c, uint64_t *bytes, uint64_t *entries)
{
    pthread_mutex_lock(&c->mutex);
    *bytes = c->bytes;
    *entries = c->entries;
    pthread_mutex_unlock(&c->mutex);
}
