/*
 * stats: the stable name -> id tables behind the per-worker counters (core/stats.h).
 *
 * Ids are handed out by name on the control thread while a snapshot compiles, and never taken back, so a route
 * that keeps its name keeps its counters across swaps. The exposition may run on another thread: a name is written
 * into its slot before the count is published with a release store, and readers load the count with acquire, so
 * every id below the count has its name. Lookup by name is an open-addressing hash table touched only by the writer.
 * Endpoint rules are keyed by their control-plane id written in decimal, and rate limits by "scope\nname", so the
 * same table serves them. The PDF render metrics (core/pdf.h) are written here as Prometheus text, for the status
 * listener to append.
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "proto/log.h"
#include "dataplane/core/stats.h"
#include "dataplane/core/text.h"

#define MODULE "dp/core/stats"

typedef struct st_cph_name_table_t {
    uint32_t cap;           /* ids 1..cap-1 */
    const char **names;     /* [cap], names[0] unused */
    uint32_t *slots;        /* hash slots: 0 = empty, else an id; 2 * cap of them */
    _Atomic uint32_t count; /* ids handed out */
} cph_name_table_t;

static cph_name_table_t routes = {CPH_STATS_MAX_ROUTES, NULL, NULL, 0};
static cph_name_table_t services = {CPH_STATS_MAX_SERVICES, NULL, NULL, 0};
static cph_name_table_t endpoints = {CPH_STATS_MAX_ENDPOINTS, NULL, NULL, 0}; /* keyed by the decimal rule id */
static cph_name_table_t limits = {CPH_STATS_MAX_LIMITS, NULL, NULL, 0};       /* keyed by "scope\nname" */

static const char *const authn_reasons[CPH_AUTHN_REASONS] = {"too_large",     "malformed",      "unknown_kid",     "alg_mismatch",
                                                             "bad_signature", "bad_claims",     "wrong_issuer",    "wrong_audience",
                                                             "expired",       "not_yet_valid",  "revoked",         "unknown_key",
                                                             "bad_secret",    "unknown_issuer", "invalid_request", "other"};

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s != '\0'; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static uint32_t table_id(cph_name_table_t *t, const char *name)
{
    uint32_t nslots = 2 * t->cap, count = atomic_load_explicit(&t->count, memory_order_relaxed);

    if (t->names == NULL) {
        if ((t->names = calloc(t->cap, sizeof(*t->names))) == NULL || (t->slots = calloc(nslots, sizeof(*t->slots))) == NULL)
            cph_fatal(MODULE, "out of memory");
    }
    for (uint32_t i = fnv1a(name) % nslots;; i = (i + 1) % nslots) {
        uint32_t id = t->slots[i];
        if (id != 0 && strcmp(t->names[id], name) == 0)
            return id;
        if (id == 0) {
            if (count + 1 >= t->cap)
                return 0; /* past the cap: folded into id 0 */
            uint32_t nid = count + 1;
            if ((t->names[nid] = strdup(name)) == NULL)
                cph_fatal(MODULE, "out of memory");
            t->slots[i] = nid;
            atomic_store_explicit(&t->count, nid, memory_order_release);
            return nid;
        }
    }
}

static uint32_t table_lookup(cph_name_table_t *t, const char *name)
{
    uint32_t nslots = 2 * t->cap;

    if (t->names == NULL)
        return 0;
    for (uint32_t i = fnv1a(name) % nslots; t->slots[i] != 0; i = (i + 1) % nslots)
        if (strcmp(t->names[t->slots[i]], name) == 0)
            return t->slots[i];
    return 0;
}

static const char *table_name(cph_name_table_t *t, uint32_t id)
{
    if (id == 0 || id > atomic_load_explicit(&t->count, memory_order_acquire))
        return NULL;
    return t->names[id];
}

uint32_t cph_stats_route_id(const char *name)
{
    return table_id(&routes, name);
}

uint32_t cph_stats_route_lookup(const char *name)
{
    return table_lookup(&routes, name);
}

uint32_t cph_stats_service_id(const char *name)
{
    return table_id(&services, name);
}

const char *cph_stats_route_name(uint32_t id)
{
    return table_name(&routes, id);
}

const char *cph_stats_service_name(uint32_t id)
{
    return table_name(&services, id);
}

uint32_t cph_stats_num_routes(void)
{
    return atomic_load_explicit(&routes.count, memory_order_acquire);
}

uint32_t cph_stats_num_services(void)
{
    return atomic_load_explicit(&services.count, memory_order_acquire);
}

uint32_t cph_stats_endpoint_id(int64_t id)
{
    char key[24];

    if (id < 1)
        return 0;
    snprintf(key, sizeof(key), "%lld", (long long)id);
    return table_id(&endpoints, key);
}

int64_t cph_stats_endpoint_key(uint32_t stat_id)
{
    const char *name = table_name(&endpoints, stat_id);

    return name != NULL ? strtoll(name, NULL, 10) : 0;
}

uint32_t cph_stats_num_endpoints(void)
{
    return atomic_load_explicit(&endpoints.count, memory_order_acquire);
}

void cph_stats_shadow_foreach(cph_worker_stats_t *const *workers, size_t n,
                              void (*cb)(void *ud, int64_t endpoint_id, uint64_t allow, uint64_t deny), void *ud)
{
    uint32_t num = cph_stats_num_endpoints();

    for (uint32_t id = 1; id <= num && id < CPH_STATS_MAX_ENDPOINTS; id++) {
        uint64_t allow = 0, deny = 0;
        for (size_t w = 0; w != n; w++) {
            if (workers[w] == NULL)
                continue;
            allow += cph_counter_read(&workers[w]->authz_shadow[id][CPH_STATS_SHADOW_ALLOW]);
            deny += cph_counter_read(&workers[w]->authz_shadow[id][CPH_STATS_SHADOW_DENY]);
        }
        if (allow != 0 || deny != 0)
            cb(ud, cph_stats_endpoint_key(id), allow, deny);
    }
}

uint32_t cph_stats_limit_id(const char *scope, const char *name)
{
    size_t slen = strlen(scope), nlen = strlen(name);
    char *key = malloc(slen + nlen + 2);
    uint32_t id;

    if (key == NULL)
        cph_fatal(MODULE, "out of memory");
    memcpy(key, scope, slen);
    key[slen] = '\n';
    memcpy(key + slen + 1, name, nlen + 1);
    id = table_id(&limits, key);
    free(key);
    return id;
}

int cph_stats_limit_name(uint32_t id, const char **scope, size_t *scope_len, const char **name)
{
    const char *key = table_name(&limits, id), *nl;

    if (key == NULL || (nl = strrchr(key, '\n')) == NULL)
        return 0;
    *scope = key;
    *scope_len = (size_t)(nl - key);
    *name = nl + 1;
    return 1;
}

uint32_t cph_stats_num_limits(void)
{
    return atomic_load_explicit(&limits.count, memory_order_acquire);
}

const char *cph_stats_rl_outcome_name(cph_rl_outcome_t outcome)
{
    static const char *const names[CPH_RL_OUTCOMES] = {"allowed", "limited", "error_open", "error_closed"};

    return outcome >= 0 && outcome < CPH_RL_OUTCOMES ? names[outcome] : "other";
}

const char *cph_stats_cache_outcome_name(cph_cache_outcome_t outcome)
{
    static const char *const names[CPH_CACHE_OUTCOMES] = {"hit",  "miss", "bypass", "stored", "not_storable", "revalidated_304",
                                                          "error"};

    return outcome >= 0 && outcome < CPH_CACHE_OUTCOMES ? names[outcome] : "other";
}

cph_authn_reason_t cph_stats_authn_reason(const char *reason)
{
    for (int i = 0; reason != NULL && i != CPH_AUTHN_REASON_OTHER; i++)
        if (strcmp(authn_reasons[i], reason) == 0)
            return (cph_authn_reason_t)i;
    return CPH_AUTHN_REASON_OTHER;
}

const char *cph_stats_authn_reason_name(cph_authn_reason_t reason)
{
    return reason >= 0 && reason < CPH_AUTHN_REASONS ? authn_reasons[reason] : "other";
}

/* ---------------------------------------------------------------- PDF renders (core/pdf.h, filter/pdf.c) */

void cph_stats_pdf_observe(cph_worker_stats_t *stats, uint64_t render_us)
{
    static const double bounds[] = {CPH_STATS_PDF_BUCKET_BOUNDS};
    size_t b = 0;

    while (b != sizeof(bounds) / sizeof(bounds[0]) && (double)render_us > bounds[b] * 1e6)
        b++;
    cph_counter_add(&stats->pdf_seconds[b], 1);
    cph_counter_add(&stats->pdf_seconds_sum_us, render_us);
}

const char *cph_stats_pdf_reason_name(cph_pdf_result_t reason)
{
    static const char *const names[CPH_PDF_FAIL_REASONS] = {"timeout", "too_large", "exit", "spawn", "busy"};

    return reason >= 0 && reason < CPH_PDF_FAIL_REASONS ? names[reason] : "other";
}

static uint64_t sum_counter(cph_worker_stats_t *const *workers, size_t n, size_t offset)
{
    uint64_t sum = 0;

    for (size_t w = 0; w != n; w++)
        if (workers[w] != NULL)
            sum += cph_counter_read((cph_counter_t *)((char *)workers[w] + offset));
    return sum;
}

/* A route name as a label value: backslash, double quote and newline escaped (names are [A-Za-z0-9._-] anyway). */
static void add_route_label(cph_text_t *t, const char *name)
{
    for (; *name != '\0'; name++) {
        if (*name == '\\' || *name == '"')
            cph_text_printf(t, "\\%c", *name);
        else if (*name == '\n')
            cph_text_printf(t, "\\n");
        else
            cph_text_printf(t, "%c", *name);
    }
}

static void pdf_histogram(cph_text_t *t, cph_worker_stats_t *const *workers, size_t n)
{
    static const double bounds[] = {CPH_STATS_PDF_BUCKET_BOUNDS};
    uint64_t cumulative = 0;

    cph_text_printf(t, "# HELP cephalo_dp_pdf_render_seconds Time from a render's start to its child's exit.\n"
                       "# TYPE cephalo_dp_pdf_render_seconds histogram\n");
    for (size_t b = 0; b != CPH_STATS_PDF_BUCKETS; b++) {
        cumulative += sum_counter(workers, n, offsetof(cph_worker_stats_t, pdf_seconds) + b * sizeof(cph_counter_t));
        if (b < sizeof(bounds) / sizeof(bounds[0]))
            cph_text_printf(t, "cephalo_dp_pdf_render_seconds_bucket{le=\"%g\"} %llu\n", bounds[b], (unsigned long long)cumulative);
        else
            cph_text_printf(t, "cephalo_dp_pdf_render_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cumulative);
    }
    cph_text_printf(t, "cephalo_dp_pdf_render_seconds_sum %.6f\n",
                    (double)sum_counter(workers, n, offsetof(cph_worker_stats_t, pdf_seconds_sum_us)) / 1e6);
    cph_text_printf(t, "cephalo_dp_pdf_render_seconds_count %llu\n", (unsigned long long)cumulative);
}

char *cph_stats_pdf_exposition(cph_worker_stats_t *const *workers, size_t n, uint64_t queue_depth)
{
    cph_text_t t;
    uint32_t num = cph_stats_num_routes();

    cph_text_init(&t, 1024);
    cph_text_printf(&t, "# HELP cephalo_dp_pdf_renders_total PDFs rendered and answered, by route.\n"
                        "# TYPE cephalo_dp_pdf_renders_total counter\n");
    for (uint32_t id = 1; id <= num && id < CPH_STATS_MAX_ROUTES; id++) {
        const char *name = cph_stats_route_name(id);
        uint64_t sum = sum_counter(workers, n, offsetof(cph_worker_stats_t, pdf_renders) + id * sizeof(cph_counter_t));
        if (sum == 0 || name == NULL)
            continue;
        cph_text_printf(&t, "cephalo_dp_pdf_renders_total{route=\"");
        add_route_label(&t, name);
        cph_text_printf(&t, "\"} %llu\n", (unsigned long long)sum);
    }
    cph_text_printf(&t, "# HELP cephalo_dp_pdf_failures_total PDF renders that failed or were refused, by reason.\n"
                        "# TYPE cephalo_dp_pdf_failures_total counter\n");
    for (int r = 0; r < CPH_PDF_FAIL_REASONS; r++) {
        size_t at = offsetof(cph_worker_stats_t, pdf_failures) + (size_t)r * sizeof(cph_counter_t);
        cph_text_printf(&t, "cephalo_dp_pdf_failures_total{reason=\"%s\"} %llu\n", cph_stats_pdf_reason_name((cph_pdf_result_t)r),
                        (unsigned long long)sum_counter(workers, n, at));
    }
    cph_text_printf(&t, "# HELP cephalo_dp_pdf_queue_depth PDF renders waiting for a free render slot.\n");
    cph_text_printf(&t, "# TYPE cephalo_dp_pdf_queue_depth gauge\ncephalo_dp_pdf_queue_depth %llu\n",
                    (unsigned long long)queue_depth);
    pdf_histogram(&t, workers, n);
    return t.buf;
}
