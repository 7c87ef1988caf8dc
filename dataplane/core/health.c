/*
 * health: active health checks on a thread of their own, driven by libcurl's multi interface (core/health.h).
 *
 * The control thread hands over the checked set after every applied snapshot (cph_health_configure): one check_t per
 * target of every service with a health_check, all strings copied, so the snapshot may go right after. The set waits
 * under a mutex as `pending` (latest wins) and the thread is woken with curl_multi_wakeup. The thread merges it into
 * its live set by target state pointer (one per (service, authority), core/target.h): a target that stays keeps its
 * schedule, its counters and its health; a new one starts HEALTHY (healthy until proven otherwise, so that a push or
 * a restart never ejects a working target before its first check) and is checked at once; a removed one has its
 * check abandoned and goes back to UNCHECKED (the balancer counts that as healthy).
 *
 * Each check is one GET of http://authority/path with no redirects, no proxy, connect and total timeout = timeout_ms,
 * Host = authority, User-Agent cephalo-health/1, a fresh connection each time and the body discarded (at most
 * BODY_MAX bytes read; past that the transfer is cut and the status judged). A status in expected_statuses is a
 * success. healthy_threshold consecutive successes turn an UNHEALTHY target HEALTHY, unhealthy_threshold consecutive
 * failures turn a HEALTHY one UNHEALTHY. Verdicts and the last result go into the target's atomics; a transition
 * bumps the target generation (cph_target_state_changed) and logs one line, at most LOG_BURST lines per second.
 * The next check is due interval_ms (+-10 % jitter) after a check ends; at most MAX_INFLIGHT run at once.
 *
 * Only this thread writes a checked target's health and check fields, so none of them needs more than a relaxed
 * atomic store; readers (workers, the report) may see the last_check fields of two consecutive checks mixed.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include "proto/log.h"
#include "dataplane/core/balance.h"
#include "dataplane/core/health.h"
#include "dataplane/core/target.h"

#define MODULE "dp/core/health"

#define USER_AGENT "cephalo-health/1"
#define MAX_INFLIGHT 128
#define BODY_MAX (64 * 1024)
#define FIRST_JITTER_MS 50 /* a new target's first check: within this of the configuration */
#define MAX_WAIT_MS 1000
#define LOG_BURST 20 /* transition lines per second; the rest are counted */
#define MAX_STATUSES 32

typedef struct st_check_t {
    cph_target_state_t *state;  /* the key; its service and authority strings live forever */
    char *url;                  /* http://authority/path */
    struct curl_slist *headers; /* Host */
    uint64_t interval_ms, timeout_ms;
    uint32_t healthy_threshold, unhealthy_threshold;
    uint16_t expected[MAX_STATUSES];
    size_t num_expected;
    /* live part (thread only) */
    CURL *easy; /* in flight, or NULL */
    uint64_t next_at_ms, started_ms;
    size_t body_bytes;
    int matched;
} check_t;

typedef struct st_checkset_t {
    check_t **items;
    size_t len;
} checkset_t;

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static checkset_t *pending; /* from the control thread, under mutex */
static CURLM *multi;        /* under mutex for the wakeup; the thread owns everything else */
static pthread_t thread;
static int running;
static _Atomic int stopping;

/* thread-only */
static checkset_t live;
static size_t inflight;
static unsigned rng_state;
static uint64_t log_window_ms, log_suppressed;
static unsigned log_count;

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t random_below(uint64_t n)
{
    return n == 0 ? 0 : (uint64_t)rand_r(&rng_state) % n;
}

static const char *health_name(int h)
{
    return h == CPH_HEALTH_HEALTHY ? "healthy" : h == CPH_HEALTH_UNHEALTHY ? "unhealthy" : "unchecked";
}

static const char *error_name(int e)
{
    switch (e) {
    case CPH_CHECK_ERR_CONNECT:
        return "connect";
    case CPH_CHECK_ERR_TIMEOUT:
        return "timeout";
    case CPH_CHECK_ERR_STATUS:
        return "status";
    case CPH_CHECK_ERR_PROTOCOL:
        return "protocol";
    default:
        return NULL;
    }
}

/* ---------------------------------------------------------------- check sets */

static void check_free(check_t *ck)
{
    if (ck->easy != NULL) {
        curl_multi_remove_handle(multi, ck->easy);
        curl_easy_cleanup(ck->easy);
        inflight--;
    }
    curl_slist_free_all(ck->headers);
    free(ck->url);
    free(ck);
}

static void checkset_free(checkset_t *set)
{
    for (size_t i = 0; set != NULL && i != set->len; i++)
        check_free(set->items[i]);
    if (set != NULL)
        free(set->items);
}

static int cmp_state(const void *a, const void *b)
{
    const cph_target_state_t *x = (*(check_t *const *)a)->state, *y = (*(check_t *const *)b)->state;

    return x < y ? -1 : x > y;
}

static check_t *check_new(const cph_service_t *svc, const cph_target_t *t)
{
    const cph_health_check_t *hc = svc->health_check;
    check_t *ck = calloc(1, sizeof(*ck));
    size_t ulen = strlen("http://") + t->authority.len + strlen(hc->path) + 1;
    char *host = malloc(strlen("Host: ") + t->authority.len + 1);

    if (ck == NULL || host == NULL || (ck->url = malloc(ulen)) == NULL)
        cph_fatal(MODULE, "out of memory");
    snprintf(ck->url, ulen, "http://%.*s%s", (int)t->authority.len, t->authority.base, hc->path);
    sprintf(host, "Host: %.*s", (int)t->authority.len, t->authority.base);
    if ((ck->headers = curl_slist_append(NULL, host)) == NULL)
        cph_fatal(MODULE, "out of memory");
    free(host);
    ck->state = t->state;
    ck->interval_ms = hc->interval_ms;
    ck->timeout_ms = hc->timeout_ms;
    ck->healthy_threshold = hc->healthy_threshold != 0 ? hc->healthy_threshold : 1;
    ck->unhealthy_threshold = hc->unhealthy_threshold != 0 ? hc->unhealthy_threshold : 1;
    for (size_t i = 0; i != hc->num_expected_statuses && i != MAX_STATUSES; i++)
        ck->expected[ck->num_expected++] = hc->expected_statuses[i];
    if (ck->num_expected == 0)
        ck->expected[ck->num_expected++] = 200;
    return ck;
}

/* The checked set of snap, sorted by state and without duplicates. */
static checkset_t *checkset_build(const cph_snapshot_t *snap)
{
    checkset_t *set = calloc(1, sizeof(*set));
    size_t cap = 0, out = 0;

    if (set == NULL)
        cph_fatal(MODULE, "out of memory");
    for (size_t s = 0; snap != NULL && s != snap->num_services; s++)
        if (snap->services[s].health_check != NULL)
            cap += snap->services[s].num_targets;
    if (cap != 0 && (set->items = malloc(cap * sizeof(*set->items))) == NULL)
        cph_fatal(MODULE, "out of memory");
    for (size_t s = 0; snap != NULL && s != snap->num_services; s++) {
        const cph_service_t *svc = &snap->services[s];
        for (size_t t = 0; svc->health_check != NULL && t != svc->num_targets; t++)
            if (svc->targets[t].state != NULL)
                set->items[set->len++] = check_new(svc, &svc->targets[t]);
    }
    if (set->len != 0)
        qsort(set->items, set->len, sizeof(*set->items), cmp_state);
    for (size_t i = 0; i != set->len; i++) {
        if (out != 0 && set->items[out - 1]->state == set->items[i]->state)
            check_free(set->items[i]);
        else
            set->items[out++] = set->items[i];
    }
    set->len = out;
    return set;
}

/* ---------------------------------------------------------------- verdicts */

static void log_transition(const check_t *ck, int from, int to, int error, int status)
{
    uint64_t now = now_ms();

    if (now - log_window_ms >= 1000) {
        if (log_suppressed != 0)
            cph_log_warn(MODULE, "%llu health transitions not logged (more than %d a second)", (unsigned long long)log_suppressed,
                         LOG_BURST);
        log_window_ms = now;
        log_count = 0;
        log_suppressed = 0;
    }
    if (++log_count > LOG_BURST) {
        log_suppressed++;
        return;
    }
    cph_log(to == CPH_HEALTH_UNHEALTHY ? CPH_LOG_WARN : CPH_LOG_INFO, MODULE, "service %s target %s: %s -> %s (%s%s, status %d)",
            ck->state->service, ck->state->authority, health_name(from), health_name(to),
            error != 0 ? "check failed: " : "check passed", error != 0 ? error_name(error) : "", status);
}

static void set_health(const check_t *ck, int to, int error, int status)
{
    int from = atomic_exchange_explicit(&ck->state->health, to, memory_order_relaxed);

    if (from == to)
        return;
    cph_target_state_changed();
    if (from == CPH_HEALTH_UNCHECKED || to == CPH_HEALTH_UNCHECKED)
        cph_log_debug(MODULE, "service %s target %s: %s -> %s", ck->state->service, ck->state->authority, health_name(from),
                      health_name(to));
    else
        log_transition(ck, from, to, error, status);
}

static int judge(const check_t *ck, CURLcode rc, long status)
{
    int expected = 0;

    for (size_t i = 0; i != ck->num_expected; i++)
        expected |= ck->expected[i] == status;
    if ((rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && ck->body_bytes > BODY_MAX)) && status != 0)
        return expected ? CPH_CHECK_OK : CPH_CHECK_ERR_STATUS;
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return CPH_CHECK_ERR_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        return CPH_CHECK_ERR_CONNECT;
    default:
        return CPH_CHECK_ERR_PROTOCOL;
    }
}

static void record(check_t *ck, CURLcode rc)
{
    cph_target_state_t *st = ck->state;
    long status = 0;
    int error;
    uint64_t now = now_ms();

    curl_easy_getinfo(ck->easy, CURLINFO_RESPONSE_CODE, &status);
    error = judge(ck, rc, status);
    atomic_store_explicit(&st->last_check_status, (int)status, memory_order_relaxed);
    atomic_store_explicit(&st->last_check_error, error, memory_order_relaxed);
    atomic_store_explicit(&st->last_check_duration_ms, (uint32_t)(now - ck->started_ms), memory_order_relaxed);
    atomic_store_explicit(&st->last_check_ms, wall_ms(), memory_order_relaxed);
    if (error == CPH_CHECK_OK) {
        uint32_t ok = atomic_load_explicit(&st->check_successes, memory_order_relaxed) + 1;
        atomic_store_explicit(&st->check_successes, ok, memory_order_relaxed);
        atomic_store_explicit(&st->check_failures, 0, memory_order_relaxed);
        if (atomic_load_explicit(&st->health, memory_order_relaxed) != CPH_HEALTH_HEALTHY && ok >= ck->healthy_threshold)
            set_health(ck, CPH_HEALTH_HEALTHY, error, (int)status);
    } else {
        uint32_t ko = atomic_load_explicit(&st->check_failures, memory_order_relaxed) + 1;
        atomic_store_explicit(&st->check_failures, ko, memory_order_relaxed);
        atomic_store_explicit(&st->check_successes, 0, memory_order_relaxed);
        if (atomic_load_explicit(&st->health, memory_order_relaxed) != CPH_HEALTH_UNHEALTHY && ko >= ck->unhealthy_threshold)
            set_health(ck, CPH_HEALTH_UNHEALTHY, error, (int)status);
    }
    curl_multi_remove_handle(multi, ck->easy);
    curl_easy_cleanup(ck->easy);
    ck->easy = NULL;
    inflight--;
    /* +-10 % so that targets configured together drift apart */
    ck->next_at_ms = now + ck->interval_ms * 9 / 10 + random_below(ck->interval_ms / 5 + 1);
}

/* ---------------------------------------------------------------- transfers */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    check_t *ck = userdata;

    (void)ptr;
    ck->body_bytes += size * nmemb;
    return ck->body_bytes > BODY_MAX ? 0 : size * nmemb; /* 0 cuts the transfer: the status is all we need */
}

static void check_begin(check_t *ck, uint64_t now)
{
    CURL *e = curl_easy_init();

    if (e == NULL)
        cph_fatal(MODULE, "out of memory");
    curl_easy_setopt(e, CURLOPT_URL, ck->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)ck->timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)ck->timeout_ms);
    curl_easy_setopt(e, CURLOPT_USERAGENT, USER_AGENT);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, ck->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, ck);
    curl_easy_setopt(e, CURLOPT_PRIVATE, ck);
    ck->easy = e;
    ck->started_ms = now;
    ck->body_bytes = 0;
    if (curl_multi_add_handle(multi, e) != CURLM_OK)
        cph_fatal(MODULE, "curl_multi_add_handle failed");
    inflight++;
}

/* Starts the due checks (within MAX_INFLIGHT); returns the ms until the next one is due (MAX_WAIT_MS at most). */
static long start_due(void)
{
    uint64_t now = now_ms(), wait = MAX_WAIT_MS;

    for (size_t i = 0; i != live.len; i++) {
        check_t *ck = live.items[i];
        if (ck->easy != NULL)
            continue;
        if (ck->next_at_ms <= now && inflight < MAX_INFLIGHT)
            check_begin(ck, now);
        else if (ck->next_at_ms > now && ck->next_at_ms - now < wait)
            wait = ck->next_at_ms - now;
        else if (ck->next_at_ms <= now)
            wait = 10; /* over MAX_INFLIGHT: retry soon */
    }
    return (long)wait;
}

static void collect_done(void)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(multi, &left)) != NULL) {
        check_t *ck = NULL;
        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&ck);
        record(ck, m->data.result);
    }
}

/* ---------------------------------------------------------------- configuration */

/*
 * Keeps `old` (its schedule and in-flight check) with `nw`'s configuration; frees nw. The same URL means the same
 * Host header: an in-flight transfer keeps using old's header list (curl does not copy it), so that one stays.
 */
static check_t *merge_one(check_t *old, check_t *nw, uint64_t now)
{
    int restart = strcmp(old->url, nw->url) != 0 || old->timeout_ms != nw->timeout_ms;
    check_t tmp;

    if (restart && old->easy != NULL) {
        curl_multi_remove_handle(multi, old->easy);
        curl_easy_cleanup(old->easy);
        old->easy = NULL;
        inflight--;
    }
    tmp = *old;
    *old = *nw;
    old->easy = tmp.easy;
    old->matched = 1;
    old->started_ms = tmp.started_ms;
    old->body_bytes = tmp.body_bytes;
    old->next_at_ms = restart ? now + random_below(FIRST_JITTER_MS) : tmp.next_at_ms;
    if (old->next_at_ms > now + old->interval_ms)
        old->next_at_ms = now + old->interval_ms;
    if (!restart) {
        old->headers = tmp.headers;
        tmp.headers = nw->headers;
    }
    nw->url = tmp.url;
    nw->headers = tmp.headers;
    nw->easy = NULL;
    check_free(nw);
    return old;
}

static void apply_pending(checkset_t *set)
{
    uint64_t now = now_ms();

    for (size_t i = 0; i != live.len; i++)
        live.items[i]->matched = 0;
    for (size_t i = 0; i != set->len; i++) {
        check_t *nw = set->items[i],
                **found = live.len != 0 ? bsearch(&nw, live.items, live.len, sizeof(*live.items), cmp_state) : NULL;
        if (found != NULL) {
            (*found)->matched = 1;
            set->items[i] = merge_one(*found, nw, now);
            continue;
        }
        nw->next_at_ms = now + random_below(FIRST_JITTER_MS);
        atomic_store_explicit(&nw->state->check_successes, 0, memory_order_relaxed);
        atomic_store_explicit(&nw->state->check_failures, 0, memory_order_relaxed);
        if (atomic_load_explicit(&nw->state->health, memory_order_relaxed) == CPH_HEALTH_UNCHECKED)
            set_health(nw, CPH_HEALTH_HEALTHY, 0, 0);
    }
    for (size_t i = 0; i != live.len; i++) {
        if (live.items[i]->matched)
            continue;
        set_health(live.items[i], CPH_HEALTH_UNCHECKED, 0, 0);
        atomic_store_explicit(&live.items[i]->state->check_successes, 0, memory_order_relaxed);
        atomic_store_explicit(&live.items[i]->state->check_failures, 0, memory_order_relaxed);
        check_free(live.items[i]);
    }
    free(live.items);
    live = *set;
    free(set);
}

/* ---------------------------------------------------------------- thread */

static void *run(void *arg)
{
    (void)arg;
    while (!atomic_load(&stopping)) {
        checkset_t *set;
        int still;
        pthread_mutex_lock(&mutex);
        set = pending;
        pending = NULL;
        pthread_mutex_unlock(&mutex);
        if (set != NULL)
            apply_pending(set);
        long wait = start_due();
        curl_multi_perform(multi, &still);
        collect_done();
        if (atomic_load(&stopping))
            break;
        curl_multi_poll(multi, NULL, 0, (int)wait, NULL);
        curl_multi_perform(multi, &still);
        collect_done();
    }
    return NULL;
}

void cph_health_start(void)
{
    if (running)
        return;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rng_state = (unsigned)(now_ms() ^ (uint64_t)time(NULL));
    atomic_store(&stopping, 0);
    pthread_mutex_lock(&mutex);
    if ((multi = curl_multi_init()) == NULL)
        cph_fatal(MODULE, "curl_multi_init failed");
    pthread_mutex_unlock(&mutex);
    if (pthread_create(&thread, NULL, run, NULL) != 0)
        cph_fatal(MODULE, "cannot start the health thread");
    running = 1;
}

void cph_health_stop(void)
{
    if (!running)
        return;
    pthread_mutex_lock(&mutex);
    atomic_store(&stopping, 1);
    curl_multi_wakeup(multi);
    pthread_mutex_unlock(&mutex);
    pthread_join(thread, NULL);
    running = 0;
    checkset_free(&live);
    memset(&live, 0, sizeof(live));
    pthread_mutex_lock(&mutex);
    checkset_free(pending);
    free(pending);
    pending = NULL;
    curl_multi_cleanup(multi);
    multi = NULL;
    pthread_mutex_unlock(&mutex);
    curl_global_cleanup();
}

void cph_health_configure(const cph_snapshot_t *snap)
{
    checkset_t *set = checkset_build(snap), *old;

    pthread_mutex_lock(&mutex);
    old = pending;
    pending = set;
    if (multi != NULL)
        curl_multi_wakeup(multi);
    pthread_mutex_unlock(&mutex);
    if (old != NULL) {
        checkset_free(old); /* never handed to curl: no easy handle */
        free(old);
    }
}

/* ---------------------------------------------------------------- report */

static json_t *last_check_json(const cph_target_state_t *st)
{
    uint64_t at = atomic_load_explicit(&st->last_check_ms, memory_order_relaxed);
    int status = atomic_load_explicit(&st->last_check_status, memory_order_relaxed);
    const char *error = error_name(atomic_load_explicit(&st->last_check_error, memory_order_relaxed));
    char ts[40];
    struct tm tm;
    time_t secs = (time_t)(at / 1000);

    if (at == 0)
        return json_null();
    gmtime_r(&secs, &tm);
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03uZ", (unsigned)(at % 1000));
    return json_pack("{s:s, s:o, s:o, s:I}", "at", ts, "status", status != 0 ? json_integer(status) : json_null(), "error",
                     error != NULL ? json_string(error) : json_null(), "duration_ms",
                     (json_int_t)atomic_load_explicit(&st->last_check_duration_ms, memory_order_relaxed));
}

static json_t *target_json(const cph_service_t *svc, const cph_target_t *t, uint64_t now_ns)
{
    static const char *breakers[] = {"closed", "open", "half_open"};
    const cph_target_state_t *st = t->state;
    int health = st != NULL ? atomic_load_explicit(&st->health, memory_order_relaxed) : CPH_HEALTH_UNCHECKED;
    int breaker = st != NULL ? cph_balance_breaker_state(st, now_ns) : 0;

    if (svc->health_check == NULL)
        health = CPH_HEALTH_UNCHECKED; /* the health thread may not have caught up with the swap yet */
    else if (health == CPH_HEALTH_UNCHECKED)
        health = CPH_HEALTH_HEALTHY; /* newly checked: healthy until its checks say otherwise */
    return json_pack("{s:s, s:I, s:s, s:s, s:I, s:I, s:o}", "url", t->url, "weight", (json_int_t)t->weight, "health",
                     health_name(health), "breaker", breakers[breaker >= 0 && breaker <= 2 ? breaker : 0], "active",
                     (json_int_t)(st != NULL ? atomic_load_explicit(&st->active, memory_order_relaxed) : 0), "ejections",
                     (json_int_t)(st != NULL ? atomic_load_explicit(&st->ejections_total, memory_order_relaxed) : 0), "last_check",
                     st != NULL && svc->health_check != NULL ? last_check_json(st) : json_null());
}

json_t *cph_health_report(const cph_snapshot_t *snap)
{
    json_t *services = json_array();
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    if (services == NULL)
        cph_fatal(MODULE, "out of memory");
    for (size_t s = 0; snap != NULL && s != snap->num_services; s++) {
        const cph_service_t *svc = &snap->services[s];
        json_t *targets = json_array();
        if (targets == NULL)
            cph_fatal(MODULE, "out of memory");
        for (size_t t = 0; t != svc->num_targets; t++)
            if (json_array_append_new(targets, target_json(svc, &svc->targets[t], now_ns)) != 0)
                cph_fatal(MODULE, "out of memory");
        if (json_array_append_new(services, json_pack("{s:s, s:b, s:o}", "name", svc->name, "health_check",
                                                      svc->health_check != NULL, "targets", targets)) != 0)
            cph_fatal(MODULE, "out of memory");
    }
    json_t *report = json_pack("{s:o}", "services", services);
    if (report == NULL)
        cph_fatal(MODULE, "out of memory");
    return report;
}
