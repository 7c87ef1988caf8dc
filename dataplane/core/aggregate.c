/*
 * aggregate: what a route of kind "aggregate" does without I/O (core/aggregate.h): match the client path against
 * the route's pattern, fill the backends' path templates, and merge the backends' JSON objects into one answer.
 *
 * Substitution is where a client could try to steer a backend call: a value comes from the client's path or query
 * and lands in another service's request line. Every value is decoded once and re-encoded with only RFC 3986
 * unreserved bytes left raw, so '/', '?', '#', '&', '=', '%', spaces and line breaks arrive as %XX inside the one
 * segment or query value the template put them in; a value of dots alone is encoded in the path part, so it cannot
 * form a "." or ".." segment. Templates themselves were checked by the schema (proto/schema_aggregate.c).
 *
 * The merge uses jansson (this is core/, not filter/): each backend's body is parsed as it arrives, and the answer
 * is serialised through a callback that stops at the cap, so an oversized answer is never built whole.
 */
#include <string.h>
#include <jansson.h>
#include "proto/log.h"
#include "dataplane/core/aggregate.h"

#define MODULE "dp/core/aggregate"

/* ---------------------------------------------------------------- pattern */

int cph_aggregate_pattern_parse(cph_arena_t *a, const char *pattern, cph_aggregate_pattern_t *out)
{
    size_t len = strlen(pattern), n = 0;
    const char *p = pattern, *end = pattern + len;

    memset(out, 0, sizeof(*out));
    if (len == 0 || pattern[0] != '/')
        return -1;
    for (const char *q = pattern; *q != '\0'; ++q)
        n += *q == '/';
    out->segs = cph_arena_alloc(a, sizeof(*out->segs) * n);
    out->is_param = cph_arena_alloc(a, n);
    while (p != end) { /* at a '/' */
        const char *seg = p + 1, *slash = memchr(seg, '/', (size_t)(end - seg));
        size_t seg_len = (size_t)((slash != NULL ? slash : end) - seg);
        p = seg + seg_len;
        if (seg_len == 1 && seg[0] == '*') {
            if (p != end)
                return -1;
            out->tail = 1;
            break;
        }
        if (seg_len >= 3 && seg[0] == '{' && seg[seg_len - 1] == '}') {
            if (out->num_params == CPH_AGGREGATE_MAX_PARAMS)
                return -1;
            out->params[out->num_params++] = h2o_iovec_init(seg + 1, seg_len - 2);
            out->is_param[out->num_segs] = 1;
            out->segs[out->num_segs++] = h2o_iovec_init(seg + 1, seg_len - 2);
        } else if (memchr(seg, '{', seg_len) != NULL || memchr(seg, '}', seg_len) != NULL || memchr(seg, '*', seg_len) != NULL) {
            return -1;
        } else {
            out->segs[out->num_segs++] = h2o_iovec_init(seg, seg_len);
        }
    }
    return 0;
}

int cph_aggregate_pattern_match(const cph_aggregate_pattern_t *pt, const char *path, size_t len, h2o_iovec_t *values)
{
    const char *p = path, *end = path + len;
    size_t k = 0;

    for (size_t i = 0; i != pt->num_segs; ++i) {
        if (p == end || *p != '/')
            return 0;
        const char *seg = ++p, *slash = memchr(seg, '/', (size_t)(end - seg));
        size_t seg_len = (size_t)((slash != NULL ? slash : end) - seg);
        if (pt->is_param[i]) {
            if (seg_len == 0)
                return 0;
            values[k++] = h2o_iovec_init(seg, seg_len);
        } else if (!h2o_memis(seg, seg_len, pt->segs[i].base, pt->segs[i].len)) {
            return 0;
        }
        p = seg + seg_len;
    }
    return p == end || (pt->tail && *p == '/');
}

/* ---------------------------------------------------------------- template */

static void add_part(cph_aggregate_template_t *t, cph_aggregate_part_kind_t kind, const char *s, size_t len, size_t param,
                     int in_query)
{
    t->parts[t->num_parts++] = (cph_aggregate_part_t){kind, h2o_iovec_init(s, len), param, in_query};
}

/* The index of name among p's parameters, or SIZE_MAX. */
static size_t find_param(const cph_aggregate_pattern_t *p, const char *name, size_t len)
{
    for (size_t i = 0; i != p->num_params; ++i)
        if (h2o_memis(p->params[i].base, p->params[i].len, name, len))
            return i;
    return SIZE_MAX;
}

int cph_aggregate_template_parse(cph_arena_t *a, const char *tmpl, const cph_aggregate_pattern_t *p, cph_aggregate_template_t *out)
{
    size_t len = strlen(tmpl), n = 1;
    const char *s = tmpl, *end = tmpl + len;
    int in_query = 0;

    memset(out, 0, sizeof(*out));
    if (len == 0 || tmpl[0] != '/')
        return -1;
    for (const char *q = tmpl; *q != '\0'; ++q)
        n += *q == '{' || *q == '}';
    out->parts = cph_arena_alloc(a, sizeof(*out->parts) * n);
    while (s != end) {
        const char *open = memchr(s, '{', (size_t)(end - s)), *lit_end = open != NULL ? open : end;
        if (memchr(s, '}', (size_t)(lit_end - s)) != NULL)
            return -1;
        if (lit_end != s) {
            add_part(out, CPH_AGGREGATE_LITERAL, s, (size_t)(lit_end - s), 0, in_query);
            in_query |= memchr(s, '?', (size_t)(lit_end - s)) != NULL;
        }
        if (open == NULL)
            break;
        const char *name = open + 1, *close = memchr(name, '}', (size_t)(end - name));
        if (close == NULL || close == name || memchr(name, '{', (size_t)(close - name)) != NULL)
            return -1;
        size_t nlen = (size_t)(close - name), idx;
        if (nlen > 6 && memcmp(name, "query.", 6) == 0) {
            add_part(out, CPH_AGGREGATE_QUERY, name + 6, nlen - 6, 0, in_query);
        } else if ((idx = find_param(p, name, nlen)) != SIZE_MAX) {
            add_part(out, CPH_AGGREGATE_PARAM, name, nlen, idx, in_query);
        } else {
            return -1;
        }
        s = close + 1;
    }
    return 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decodes s once into pool ('+' as a space when plus); a malformed escape stays as it is. */
static h2o_iovec_t decode(h2o_mem_pool_t *pool, const char *s, size_t len, int plus)
{
    char *out = h2o_mem_alloc_pool(pool, len + 1);
    size_t o = 0;

    for (size_t i = 0; i != len; ++i) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len && (hi = hexval(s[i + 1])) >= 0 && (lo = hexval(s[i + 2])) >= 0) {
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = plus && s[i] == '+' ? ' ' : s[i];
        }
    }
    out[o] = '\0';
    return h2o_iovec_init(out, o);
}

h2o_iovec_t cph_aggregate_query_value(h2o_mem_pool_t *pool, h2o_iovec_t query, h2o_iovec_t name)
{
    const char *p = query.base, *end = query.base + query.len;

    if (p != end && *p == '?')
        ++p;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p)), *pair_end = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pair_end - p)), *name_end = eq != NULL ? eq : pair_end;
        if (h2o_memis(p, (size_t)(name_end - p), name.base, name.len)) {
            const char *v = eq != NULL ? eq + 1 : pair_end;
            return decode(pool, v, (size_t)(pair_end - v), 1);
        }
        p = pair_end + 1;
    }
    return h2o_iovec_init("", 0);
}

static int unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

/* Writes v percent-encoded at out (room for 3 * v.len); returns the bytes written. */
static size_t encode(char *out, h2o_iovec_t v, int in_query)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0, dots = 0;

    while (dots != v.len && v.base[dots] == '.')
        ++dots;
    int all_dots = v.len != 0 && dots == v.len && !in_query;
    for (size_t i = 0; i != v.len; ++i) {
        unsigned char c = (unsigned char)v.base[i];
        if (unreserved(c) && !all_dots) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    return o;
}

h2o_iovec_t cph_aggregate_substitute(h2o_mem_pool_t *pool, const cph_aggregate_template_t *t, const h2o_iovec_t *params,
                                     h2o_iovec_t query)
{
    h2o_iovec_t *vals = h2o_mem_alloc_pool(pool, sizeof(*vals) * (t->num_parts + 1));
    size_t cap = 1, o = 0;

    for (size_t i = 0; i != t->num_parts; ++i) {
        const cph_aggregate_part_t *part = &t->parts[i];
        if (part->kind == CPH_AGGREGATE_LITERAL)
            vals[i] = part->text;
        else if (part->kind == CPH_AGGREGATE_PARAM)
            vals[i] = decode(pool, params[part->param].base, params[part->param].len, 0);
        else
            vals[i] = cph_aggregate_query_value(pool, query, part->text);
        cap += part->kind == CPH_AGGREGATE_LITERAL ? vals[i].len : 3 * vals[i].len;
    }
    char *out = h2o_mem_alloc_pool(pool, cap);
    for (size_t i = 0; i != t->num_parts; ++i) {
        if (t->parts[i].kind == CPH_AGGREGATE_LITERAL) {
            memcpy(out + o, vals[i].base, vals[i].len);
            o += vals[i].len;
        } else {
            o += encode(out + o, vals[i], t->parts[i].in_query);
        }
    }
    out[o] = '\0';
    return h2o_iovec_init(out, o);
}

/* ---------------------------------------------------------------- merge */

struct st_cph_aggregate_merge_t {
    const cph_aggregate_route_t *cfg;
    json_t *objs[CPH_AGGREGATE_MAX_BACKENDS];
    int failed[CPH_AGGREGATE_MAX_BACKENDS];
    int status[CPH_AGGREGATE_MAX_BACKENDS];
    const char *kind[CPH_AGGREGATE_MAX_BACKENDS];
};

cph_aggregate_merge_t *cph_aggregate_merge_new(const cph_aggregate_route_t *cfg)
{
    cph_aggregate_merge_t *m = calloc(1, sizeof(*m));

    if (m == NULL)
        cph_fatal(MODULE, "out of memory");
    m->cfg = cfg;
    return m;
}

void cph_aggregate_merge_free(cph_aggregate_merge_t *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i != CPH_AGGREGATE_MAX_BACKENDS; ++i)
        json_decref(m->objs[i]);
    free(m);
}

int cph_aggregate_merge_set(cph_aggregate_merge_t *m, size_t i, const char *body, size_t len)
{
    json_t *v;

    if (i >= m->cfg->num_backends || (v = json_loadb(body, len, 0, NULL)) == NULL)
        return -1;
    if (!json_is_object(v)) {
        json_decref(v);
        return -1;
    }
    json_decref(m->objs[i]);
    m->objs[i] = v;
    m->failed[i] = 0;
    return 0;
}

void cph_aggregate_merge_fail(cph_aggregate_merge_t *m, size_t i, int status, const char *kind)
{
    if (i >= m->cfg->num_backends)
        return;
    json_decref(m->objs[i]);
    m->objs[i] = NULL;
    m->failed[i] = 1;
    m->status[i] = status;
    m->kind[i] = kind;
}

typedef struct st_dump_t {
    char *buf;
    size_t len, cap, max;
} dump_t;

static int dump_cb(const char *s, size_t n, void *data)
{
    dump_t *d = data;

    if (d->len + n > d->max)
        return -1;
    if (d->len + n + 1 > d->cap) {
        size_t ncap = (d->len + n + 1) * 2;
        char *nb = realloc(d->buf, ncap);
        if (nb == NULL)
            cph_fatal(MODULE, "out of memory");
        d->buf = nb;
        d->cap = ncap;
    }
    memcpy(d->buf + d->len, s, n);
    d->len += n;
    d->buf[d->len] = '\0';
    return 0;
}

/* {"<name>": {"status": <int or null>, "error": "<kind>"}} of the failed backends, or NULL when none failed. */
static json_t *errors_of(const cph_aggregate_merge_t *m)
{
    json_t *errors = NULL;

    for (size_t i = 0; i != m->cfg->num_backends; ++i) {
        if (!m->failed[i])
            continue;
        if (errors == NULL)
            errors = json_object();
        json_object_set_new(errors, m->cfg->backends[i].name,
                            json_pack("{s:o,s:s}", "status", m->status[i] != 0 ? json_integer(m->status[i]) : json_null(), "error",
                                      m->kind[i] != NULL ? m->kind[i] : "failed"));
    }
    return errors;
}

char *cph_aggregate_merge_build(const cph_aggregate_merge_t *m, size_t max, size_t *len)
{
    json_t *root = json_object(), *errors;
    dump_t d = {NULL, 0, 0, max};

    if (root == NULL)
        cph_fatal(MODULE, "out of memory");
    for (size_t i = 0; i != m->cfg->num_backends; ++i) {
        if (m->objs[i] == NULL)
            continue;
        if (m->cfg->backends[i].key != NULL)
            json_object_set(root, m->cfg->backends[i].key, m->objs[i]);
        else
            json_object_update(root, m->objs[i]);
    }
    if ((errors = errors_of(m)) != NULL)
        json_object_set_new(root, "_errors", errors);
    if (json_dump_callback(root, dump_cb, &d, JSON_COMPACT) != 0 || d.buf == NULL) {
        free(d.buf);
        d.buf = NULL;
    }
    json_decref(root);
    *len = d.len;
    return d.buf;
}

h2o_iovec_t cph_aggregate_error_body(h2o_mem_pool_t *pool, const char *code, const char *message, const char *backend, int status,
                                     const char *reason, h2o_iovec_t request_id)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:o}", "error", code, "message", message, "backend", backend, "status",
                          status != 0 ? json_integer(status) : json_null());
    h2o_iovec_t out;
    char *text;

    if (o == NULL)
        cph_fatal(MODULE, "out of memory");
    if (reason != NULL)
        json_object_set_new(o, "reason", json_string(reason));
    if (request_id.len != 0)
        json_object_set_new(o, "request_id", json_stringn(request_id.base, request_id.len));
    if ((text = json_dumps(o, JSON_COMPACT)) == NULL)
        cph_fatal(MODULE, "out of memory");
    out = h2o_concat(pool, h2o_iovec_init(text, strlen(text)), h2o_iovec_init(H2O_STRLIT("\n")));
    free(text);
    json_decref(o);
    return out;
}
