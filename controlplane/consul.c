/*
 * consul: the rules of the Consul discovery that need neither a socket nor a clock (consul.h) - kept apart from the
 * thread (sync_consul.c) so each is tested on its own.
 *
 * Consul is not trusted to be well-formed: the answer of /v1/health/service is parsed strictly (a shape Consul never
 * sends refuses the whole answer, and the last known targets stay), and each instance's address and port must make a
 * target URL the snapshot schema accepts - checked with the schema itself, so the sync can never write a service the
 * data planes would refuse. An instance that cannot be reached that way (no port, a zone index, a bad host name) is
 * skipped, not fatal: one bad registration must not hide the good ones. IPv6 addresses are written in their canonical
 * form and host names in lower case, so two spellings of one instance merge into one target.
 *
 * The index rules follow HashiCorp's "Blocking Queries" page: reset to 0 when the index goes backwards (a restored
 * snapshot, a new leader), never block on a 0 index, treat an unchanged index as no change; the thread rate-limits
 * each watch to two requests a second so a reset can never become a busy loop.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include "controlplane/consul.h"
#include "proto/log.h"

#define MODULE "cp/consul"
#define ADDR_MAX 253       /* a DNS name's length; an IPv6 literal is shorter */
#define TARGET_URL_MAX 280 /* "http://[" + 253 + "]:" + 5 digits */

/* ---------------------------------------------------------------- the URL */

static int unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* Appends s percent-encoded (RFC 3986: everything but unreserved bytes) at out + *len; 0, or -1 when out is full. */
static int append_escaped(char *out, size_t cap, size_t *len, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s != '\0'; ++s) {
        unsigned char c = (unsigned char)*s;
        if (*len + 4 > cap)
            return -1;
        if (unreserved(c)) {
            out[(*len)++] = (char)c;
        } else {
            out[(*len)++] = '%';
            out[(*len)++] = hex[c >> 4];
            out[(*len)++] = hex[c & 15];
        }
    }
    out[*len] = '\0';
    return 0;
}

static int append_raw(char *out, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);

    if (*len + n + 1 > cap)
        return -1;
    memcpy(out + *len, s, n + 1);
    *len += n;
    return 0;
}

/* http(s)://host[:port][/]: nothing that could add a path, a query or a header to what we build on it. */
static int valid_addr(const char *addr, size_t *base_len)
{
    size_t n = strlen(addr), i, start;

    if (strncmp(addr, "http://", 7) == 0)
        start = 7;
    else if (strncmp(addr, "https://", 8) == 0)
        start = 8;
    else
        return 0;
    while (n > start && addr[n - 1] == '/')
        --n;
    if (n == start || n > CPH_INTEGRATION_URL_MAX)
        return 0;
    for (i = start; i != n; ++i) {
        unsigned char c = (unsigned char)addr[i];
        if (c <= 0x20 || c >= 0x7f || c == '/' || c == '?' || c == '#' || c == '@' || c == '\\')
            return 0;
    }
    *base_len = n;
    return 1;
}

int cph_consul_health_url(const char *addr, const char *service, const char *tag, const char *dc, uint64_t index, int wait_s,
                          char *out, size_t cap, cph_error_t *err)
{
    size_t base = 0, len;
    char num[64];

    if (addr == NULL || !valid_addr(addr, &base))
        return cph_error_set(err, "invalid", "", "the Consul address must be http(s)://host[:port]");
    if (service == NULL || service[0] == '\0')
        return cph_error_set(err, "invalid", "", "the Consul service name is empty");
    if (wait_s < 1 || wait_s > 600)
        return cph_error_set(err, "invalid", "", "the blocking query wait must be 1 to 600 seconds");
    if (cap < base + 1)
        goto TooLong;
    memcpy(out, addr, base);
    out[len = base] = '\0';
    if (append_raw(out, cap, &len, "/v1/health/service/") != 0 || append_escaped(out, cap, &len, service) != 0 ||
        append_raw(out, cap, &len, "?passing=true") != 0)
        goto TooLong;
    if (tag != NULL && tag[0] != '\0' && (append_raw(out, cap, &len, "&tag=") != 0 || append_escaped(out, cap, &len, tag) != 0))
        goto TooLong;
    if (dc != NULL && dc[0] != '\0' && (append_raw(out, cap, &len, "&dc=") != 0 || append_escaped(out, cap, &len, dc) != 0))
        goto TooLong;
    snprintf(num, sizeof(num), "&index=%llu&wait=%ds", (unsigned long long)index, wait_s);
    if (append_raw(out, cap, &len, num) != 0)
        goto TooLong;
    return 0;
TooLong:
    return cph_error_set(err, "invalid", "", "the Consul query URL is too long");
}

int cph_consul_leader_url(const char *addr, char *out, size_t cap, cph_error_t *err)
{
    size_t base = 0;

    if (addr == NULL || !valid_addr(addr, &base))
        return cph_error_set(err, "invalid", "", "the Consul address must be http(s)://host[:port]");
    if ((size_t)snprintf(out, cap, "%.*s/v1/status/leader", (int)base, addr) >= cap)
        return cph_error_set(err, "invalid", "", "the Consul query URL is too long");
    return 0;
}

/* ---------------------------------------------------------------- the answer */

typedef struct st_target_t {
    char url[TARGET_URL_MAX];
    json_int_t weight;
} target_t;

static int bad(cph_error_t *err, size_t i, const char *what)
{
    return cph_error_set(err, "bad_response", "", "the health answer's entry %zu is not what Consul sends: %s", i, what);
}

/* A member that must be absent, null or of type `type`: *out is NULL for absent/null. 0, or -1 for another type. */
static int optional(const json_t *obj, const char *key, json_type type, const json_t **out)
{
    const json_t *v = json_object_get(obj, key);

    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_typeof(v) != type)
        return -1;
    *out = v;
    return 0;
}

/* Does the schema take url with weight as a target? The one judge of what the data planes accept. */
static int schema_accepts(const char *url, json_int_t weight)
{
    json_t *svc = json_pack("{s:s, s:[{s:s, s:I}]}", "name", "consul", "targets", "url", url, "weight", weight);
    cph_error_t err;
    int ok;

    if (svc == NULL)
        return 0; /* url is not UTF-8 */
    ok = cph_schema_validate_service(svc, &err) == 0;
    json_decref(svc);
    return ok;
}

/* The target URL of addr:port into out (TARGET_URL_MAX bytes), or -1 when it cannot make one. */
static int make_url(const char *addr, size_t addr_len, json_int_t port, char *out)
{
    char host[ADDR_MAX + 1], canon[INET6_ADDRSTRLEN];
    struct in6_addr a6;
    size_t i;

    if (addr_len == 0 || addr_len > ADDR_MAX || memchr(addr, '\0', addr_len) != NULL || port < 1 || port > 65535)
        return -1;
    memcpy(host, addr, addr_len);
    host[addr_len] = '\0';
    if (strchr(host, ':') != NULL) { /* IPv6 (a zone index "%eth0" is refused by inet_pton) */
        if (inet_pton(AF_INET6, host, &a6) != 1 || inet_ntop(AF_INET6, &a6, canon, sizeof(canon)) == NULL)
            return -1;
        snprintf(out, TARGET_URL_MAX, "http://[%s]:%d", canon, (int)port);
    } else {
        for (i = 0; i != addr_len; ++i)
            host[i] = (char)tolower((unsigned char)host[i]);
        snprintf(out, TARGET_URL_MAX, "http://%s:%d", host, (int)port);
    }
    return 0;
}

/* Does the entry carry a check whose Status is not "passing"? -1 when Checks is not what Consul sends. */
static int unhealthy(const json_t *entry)
{
    const json_t *checks, *check, *status;
    size_t i;

    if (optional(entry, "Checks", JSON_ARRAY, &checks) != 0)
        return -1;
    json_array_foreach(checks, i, check)
    {
        if (!json_is_object(check) || optional(check, "Status", JSON_STRING, &status) != 0)
            return -1;
        if (status != NULL && strcmp(json_string_value(status), "passing") != 0)
            return 1;
    }
    return 0;
}

/* The weight of svc: Weights.Passing clamped to 1..1000, 1 when absent. -1 when of the wrong type. */
static json_int_t weight_of(const json_t *svc)
{
    const json_t *weights, *passing;

    if (optional(svc, "Weights", JSON_OBJECT, &weights) != 0 ||
        (weights != NULL && optional(weights, "Passing", JSON_INTEGER, &passing) != 0))
        return -1;
    if (weights == NULL || passing == NULL)
        return 1;
    if (json_integer_value(passing) < 1)
        return 1;
    return json_integer_value(passing) > CPH_CONSUL_WEIGHT_MAX ? CPH_CONSUL_WEIGHT_MAX : json_integer_value(passing);
}

/* Entry i into *t: 1 = a target, 0 = skipped (stats counted), -1 = the answer is refused (err). */
static int read_entry(const json_t *entry, size_t i, target_t *t, cph_consul_parse_stats_t *st, cph_error_t *err)
{
    const json_t *svc, *node, *addr, *port, *node_addr = NULL;
    int sick;

    if (!json_is_object(entry) || !json_is_object(svc = json_object_get(entry, "Service")))
        return bad(err, i, "not an object with an object \"Service\"");
    if (optional(entry, "Node", JSON_OBJECT, &node) != 0 || optional(svc, "Address", JSON_STRING, &addr) != 0 ||
        optional(svc, "Port", JSON_INTEGER, &port) != 0 ||
        (node != NULL && optional(node, "Address", JSON_STRING, &node_addr) != 0))
        return bad(err, i, "a member of the wrong type");
    if ((t->weight = weight_of(svc)) < 0)
        return bad(err, i, "\"Weights\" of the wrong type");
    if ((sick = unhealthy(entry)) < 0)
        return bad(err, i, "\"Checks\" of the wrong type");
    if (sick) {
        ++st->unhealthy;
        return 0;
    }
    if (addr == NULL || json_string_length(addr) == 0)
        addr = node_addr;
    if (addr == NULL || port == NULL ||
        make_url(json_string_value(addr), json_string_length(addr), json_integer_value(port), t->url) != 0 ||
        !schema_accepts(t->url, t->weight)) {
        ++st->skipped;
        return 0;
    }
    return 1;
}

static int by_url(const void *a, const void *b)
{
    return strcmp(((const target_t *)a)->url, ((const target_t *)b)->url);
}

/* Sorts, merges equal URLs (the larger weight wins), caps, and builds the JSON array. */
static json_t *to_json(target_t *t, size_t n, cph_consul_parse_stats_t *st)
{
    json_t *out = json_array();
    size_t i, kept = 0;

    if (n != 0)
        qsort(t, n, sizeof(*t), by_url);
    for (i = 0; i != n; ++i) {
        if (kept != 0 && strcmp(t[kept - 1].url, t[i].url) == 0) {
            ++st->merged;
            if (t[i].weight > t[kept - 1].weight)
                t[kept - 1].weight = t[i].weight;
            continue;
        }
        t[kept++] = t[i];
    }
    if (kept > CPH_CONSUL_TARGETS_MAX) {
        st->dropped = kept - CPH_CONSUL_TARGETS_MAX;
        kept = CPH_CONSUL_TARGETS_MAX;
    }
    for (i = 0; i != kept; ++i)
        json_array_append_new(out, json_pack("{s:s, s:I}", "url", t[i].url, "weight", t[i].weight));
    return out;
}

json_t *cph_consul_parse_health(const char *body, size_t len, cph_consul_parse_stats_t *stats, cph_error_t *err)
{
    cph_consul_parse_stats_t local;
    json_t *doc = NULL, *out = NULL, *entry;
    target_t *t = NULL, one;
    json_error_t jerr;
    size_t i, n = 0, cap = 0;
    int r;

    if (stats == NULL)
        stats = &local;
    memset(stats, 0, sizeof(*stats));
    if (body == NULL || len > CPH_CONSUL_BODY_MAX) {
        cph_error_set(err, "bad_response", "", "the health answer is over %d bytes", CPH_CONSUL_BODY_MAX);
        goto Exit;
    }
    if ((doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL || !json_is_array(doc)) {
        cph_error_set(err, "bad_response", "", "the health answer is not a JSON array");
        goto Exit;
    }
    stats->entries = json_array_size(doc);
    json_array_foreach(doc, i, entry)
    {
        if ((r = read_entry(entry, i, &one, stats, err)) < 0)
            goto Exit;
        if (r == 0)
            continue;
        if (n == cap && (t = realloc(t, (cap = cap != 0 ? cap * 2 : 16) * sizeof(*t))) == NULL)
            cph_fatal(MODULE, "out of memory");
        t[n++] = one;
    }
    out = to_json(t, n, stats);
Exit:
    free(t);
    json_decref(doc);
    return out;
}

/* ---------------------------------------------------------------- the index */

/* A plain decimal number 1..2^63-1 (surrounding spaces allowed: a raw header value), else 0. */
static uint64_t parse_index(const char *s)
{
    uint64_t v = 0;
    size_t digits = 0;

    if (s == NULL)
        return 0;
    while (*s == ' ' || *s == '\t')
        ++s;
    for (; *s >= '0' && *s <= '9'; ++s, ++digits) {
        if (v > (UINT64_C(0x7fffffffffffffff) - (uint64_t)(*s - '0')) / 10)
            return 0;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        ++s;
    return digits != 0 && *s == '\0' ? v : 0;
}

cph_consul_index_t cph_consul_index_next(uint64_t last, const char *header)
{
    uint64_t got = parse_index(header);
    cph_consul_index_t r = {got, 1, 0};

    if (got == 0 || got < last) { /* "reset the index if it goes backwards"; never block on 0 */
        r.next = 0;
        r.reset = 1;
    } else if (got == last) {
        r.changed = 0; /* the wait expired, or a write that does not touch this query */
    }
    return r;
}

int64_t cph_consul_next_start(int64_t started_ms, int64_t now_ms, int ok, int64_t *backoff_ms)
{
    int64_t at = started_ms + CPH_CONSUL_MIN_INTERVAL_MS;

    if (ok) {
        *backoff_ms = 0;
    } else {
        *backoff_ms = *backoff_ms < CPH_CONSUL_BACKOFF_MIN_MS       ? CPH_CONSUL_BACKOFF_MIN_MS
                      : *backoff_ms * 2 > CPH_CONSUL_BACKOFF_MAX_MS ? CPH_CONSUL_BACKOFF_MAX_MS
                                                                    : *backoff_ms * 2;
        if (now_ms + *backoff_ms > at)
            at = now_ms + *backoff_ms;
    }
    return at > now_ms ? at : now_ms;
}

/* ---------------------------------------------------------------- failures */

/* The first line of a plain-text error body, printable ASCII only, at most 80 bytes, into out. */
static void excerpt(const char *body, size_t len, char *out, size_t cap)
{
    size_t i, n = 0;

    for (i = 0; body != NULL && i != len && body[i] != '\n' && body[i] != '\r' && n + 1 < cap && n < 80; ++i)
        out[n++] = body[i] >= 0x20 && body[i] < 0x7f ? body[i] : '?';
    while (n != 0 && out[n - 1] == ' ')
        --n;
    out[n] = '\0';
}

static cph_integration_reason_t curl_kind(int code)
{
    switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
        return CPH_REASON_TIMEOUT;
    case CURLE_FILESIZE_EXCEEDED:
    case CURLE_WRITE_ERROR:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_WEIRD_SERVER_REPLY:
        return CPH_REASON_BAD_RESPONSE;
    default:
        return CPH_REASON_UNREACHABLE; /* refused, DNS, reset, an empty reply, TLS */
    }
}

int cph_consul_classify(int curl_code, const char *curl_text, long status, const char *body, size_t body_len,
                        cph_integration_reason_t *kind, char *text, size_t cap)
{
    char line[96];

    if (curl_code != 0) {
        *kind = curl_kind(curl_code);
        if (curl_code == CURLE_FILESIZE_EXCEEDED || curl_code == CURLE_WRITE_ERROR)
            snprintf(text, cap, "the Consul answer is over %d bytes", CPH_CONSUL_BODY_MAX);
        else
            snprintf(text, cap, "calling Consul failed: %s", curl_text != NULL ? curl_text : "transfer error");
        return 1;
    }
    if (status == 200)
        return 0;
    *kind = status == 401 || status == 403  ? CPH_REASON_FORBIDDEN
            : status == 404                 ? CPH_REASON_NOT_FOUND
            : status >= 500 && status < 600 ? CPH_REASON_SERVER_ERROR
                                            : CPH_REASON_BAD_RESPONSE;
    excerpt(body, body_len, line, sizeof(line));
    snprintf(text, cap, "Consul answered %ld%s%s", status, line[0] != '\0' ? ": " : "", line);
    return 1;
}
