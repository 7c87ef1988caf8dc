/*
 * sync_consul: one thread that follows, for every service discovered through Consul, the healthy instances Consul
 * knows (sync_consul.h), and writes them as the service's targets.
 *
 * Each watched service has one blocking query in flight (GET /v1/health/service/...&index=&wait=), all of them on one
 * libcurl multi handle, so a hundred services cost one thread and a hundred idle connections, and a change in Consul
 * wakes the query at once: the new targets are written through cph_db_write (actor "consul", an audit row, a new
 * snapshot version) as soon as the answer arrives, so the data planes route to a new instance within tens of
 * milliseconds (half a second at most when the service changed just before: the rate limit of consul.c).
 * The pure rules - the URL, the parsing, X-Consul-Index, the rate limit and backoff - live in consul.c, the libcurl
 * options shared with the other clients in http_client.c.
 *
 * Every second the thread re-reads the services with a "consul" member: a new one gets a watch that starts at once,
 * one whose consul member changed starts over (index 0), a deleted one is dropped, and the targets Consul gave last
 * are compared with the stored ones, which also repairs a write that failed or raced the admin. A write happens only
 * when the set of instances differs, never on an idle wake-up. A failure of Consul (refused, timeout, 403, 5xx, a
 * broken answer) touches nothing stored: the last known targets stay and the integration is reported degraded.
 * While no service is watched, GET /v1/status/leader every 10 s tells whether Consul answers at all.
 *
 * The ACL token travels only in the X-Consul-Token header; it is never in a URL, a log line or a reason.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "controlplane/consul.h"
#include "controlplane/http_client.h"
#include "controlplane/store_service.h"
#include "controlplane/sync_consul.h"
#include "proto/log.h"

#define MODULE "cp/sync_consul"
#define RELOAD_MS 1000
#define PROBE_EVERY_MS 10000
#define WRITE_RETRY_MS 5000
#define INFLIGHT_MAX 128 /* Consul allows 200 connections per client address by default */
#define WHY_MAX 200

/* One watched service (or, probe set, the leader check while nothing is watched). */
typedef struct st_watch_t {
    int64_t id;
    char name[65];
    json_t *consul;  /* the service's consul member this watch follows */
    json_t *stored;  /* the targets stored now */
    json_t *targets; /* Consul's healthy instances as targets, NULL until the first good answer */
    uint64_t index;
    int64_t next_at, started_at, backoff, write_retry_at;
    CURL *easy;
    cph_http_buf_t body;
    int probe, failing, seen;
    char why[WHY_MAX];
    char last_change[40];
} watch_t;

struct st_cph_sync_consul_t {
    cph_db_t *db;
    char addr[CPH_INTEGRATION_URL_MAX];
    char dc[129];
    int wait_s;
    struct curl_slist *headers; /* holds the token: wiped and freed in stop */
    CURLM *multi;
    pthread_t thread;
    atomic_int stop;
    watch_t **watches;
    size_t num_watches;
    watch_t probe;
    size_t inflight;
    int degraded; /* the last state reported */
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- requests */

static int url_of(cph_sync_consul_t *c, const watch_t *w, char *url, size_t cap, cph_error_t *err)
{
    const char *tag;

    if (w->probe)
        return cph_consul_leader_url(c->addr, url, cap, err);
    tag = json_string_value(json_object_get(w->consul, "tag"));
    return cph_consul_health_url(c->addr, json_string_value(json_object_get(w->consul, "service")), tag, c->dc, w->index, c->wait_s,
                                 url, cap, err);
}

/* Starts w's request on the multi handle; 0, or -1 (logged; the watch retries after its backoff). */
static int start_request(cph_sync_consul_t *c, watch_t *w, int64_t now)
{
    char url[CPH_CONSUL_URL_MAX];
    cph_error_t err;
    long timeout_ms = ((long)c->wait_s + c->wait_s / 16 + 5) * 1000;
    cph_http_opts_t o = {CPH_CONSUL_CONNECT_TIMEOUT_MS, w->probe ? 5000L : timeout_ms, NULL, c->headers};

    if (url_of(c, w, url, sizeof(url), &err) != 0 || (w->easy = curl_easy_init()) == NULL) {
        cph_log_warn(MODULE, "service %s: cannot start a Consul query", w->probe ? "(probe)" : w->name);
        w->next_at = cph_consul_next_start(now, now, 0, &w->backoff);
        return -1;
    }
    w->body = (cph_http_buf_t)CPH_HTTP_BUF_INIT(CPH_CONSUL_BODY_MAX, 0);
    cph_http_setup(w->easy, url, &o, &w->body);
    curl_easy_setopt(w->easy, CURLOPT_PRIVATE, w);
    if (curl_multi_add_handle(c->multi, w->easy) != CURLM_OK) {
        curl_easy_cleanup(w->easy);
        w->easy = NULL;
        w->next_at = cph_consul_next_start(now, now, 0, &w->backoff);
        return -1;
    }
    w->started_at = now;
    ++c->inflight;
    return 0;
}

static void end_request(cph_sync_consul_t *c, watch_t *w)
{
    if (w->easy != NULL) {
        curl_multi_remove_handle(c->multi, w->easy);
        curl_easy_cleanup(w->easy);
        w->easy = NULL;
        --c->inflight;
    }
    cph_http_buf_free(&w->body);
}

/* ---------------------------------------------------------------- writes */

static int on_discovered(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    watch_t *w = p;

    return cph_store_service_set_discovered(db, w->id, w->consul, w->targets, change, err);
}

static int by_url(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "url"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "url"));

    return strcmp(x != NULL ? x : "", y != NULL ? y : "");
}

/* Are two target arrays the same set (in any order)? */
static int same_targets(const json_t *a, const json_t *b)
{
    size_t n = json_array_size(a), i;
    json_t **x, **y;
    int same = 1;

    if (json_equal(a, b))
        return 1;
    if (!json_is_array(a) || !json_is_array(b) || n != json_array_size(b) || n == 0)
        return 0;
    if ((x = calloc(n, sizeof(*x))) == NULL || (y = calloc(n, sizeof(*y))) == NULL)
        cph_fatal(MODULE, "out of memory");
    for (i = 0; i != n; ++i)
        x[i] = json_array_get(a, i), y[i] = json_array_get(b, i);
    qsort(x, n, sizeof(*x), by_url);
    qsort(y, n, sizeof(*y), by_url);
    for (i = 0; i != n && same; ++i)
        same = json_equal(x[i], y[i]);
    free(x);
    free(y);
    return same;
}

/* Writes w's targets when they differ from the stored ones. */
static void apply(cph_sync_consul_t *c, watch_t *w, int64_t now)
{
    cph_error_t err;
    uint64_t version = 0;

    if (w->probe || w->targets == NULL || same_targets(w->targets, w->stored) || now < w->write_retry_at)
        return;
    memset(&err, 0, sizeof(err));
    if (cph_db_write(c->db, "consul", on_discovered, w, &version, &err) != 0) {
        if (strcmp(err.code, "conflict") == 0 || strcmp(err.code, "not_found") == 0) {
            cph_log_info(MODULE, "service %s: changed meanwhile, the targets are written at the next look", w->name);
            w->write_retry_at = now + RELOAD_MS;
        } else {
            cph_log_warn(MODULE, "service %s: the Consul targets were not stored: %s", w->name, err.msg);
            w->write_retry_at = now + WRITE_RETRY_MS;
        }
        return;
    }
    json_decref(w->stored);
    w->stored = json_deep_copy(w->targets);
    cph_db_now(w->last_change, sizeof(w->last_change));
    cph_log_info(MODULE, "service %s: %zu targets from Consul, snapshot version %llu", w->name, json_array_size(w->targets),
                 (unsigned long long)version);
}

/* ---------------------------------------------------------------- state */

static int any_failing(const cph_sync_consul_t *c)
{
    size_t i;

    for (i = 0; i != c->num_watches; ++i)
        if (c->watches[i]->failing)
            return 1;
    return c->num_watches == 0 && c->probe.failing;
}

static json_t *watch_json(const watch_t *w)
{
    const json_t *tag = json_object_get(w->consul, "tag");

    return json_pack("{s:s, s:O, s:O, s:I, s:O, s:o, s:s, s:o}", "name", w->name, "consul_service",
                     json_object_get(w->consul, "service"), "tag", tag != NULL ? tag : json_null(), "index", (json_int_t)w->index,
                     "targets", w->stored != NULL ? w->stored : json_null(), "last_change",
                     w->last_change[0] != '\0' ? json_string(w->last_change) : json_null(), "state",
                     w->failing           ? "degraded"
                     : w->targets != NULL ? "ok"
                                          : "starting",
                     "reason", w->failing ? json_string(w->why) : json_null());
}

/* The integration's details for GET /api/v1/integrations: the watched services, by name. */
static void publish(cph_sync_consul_t *c)
{
    json_t *services = json_array();
    size_t i;

    for (i = 0; i != c->num_watches; ++i)
        json_array_append_new(services, watch_json(c->watches[i]));
    cph_integration_set_details(CPH_INTEGRATION_CONSUL, json_pack("{s:o}", "services", services));
}

/* Records w's failure (logged when it is new or different) and reports the integration degraded. */
static void failed(cph_sync_consul_t *c, watch_t *w, cph_integration_reason_t kind, const char *text)
{
    char why[WHY_MAX];

    snprintf(why, sizeof(why), "%s: %.150s", cph_integration_reason_name(kind), text);
    if (!w->failing || strcmp(why, w->why) != 0)
        cph_log_warn(MODULE, "service %s: %s (the last known targets stay)", w->probe ? "(none watched)" : w->name, why);
    w->failing = 1;
    memcpy(w->why, why, sizeof(why));
    if (w->probe)
        snprintf(why, sizeof(why), "%.150s", text);
    else
        snprintf(why, sizeof(why), "service %s: %.120s", w->name, text);
    cph_integration_fail(CPH_INTEGRATION_CONSUL, kind, why);
    c->degraded = 1;
}

/* Reports the integration ok when no watch is failing any more. */
static void recovered(cph_sync_consul_t *c)
{
    if (any_failing(c))
        return;
    cph_integration_ok(CPH_INTEGRATION_CONSUL);
    c->degraded = 0;
}

/* The answer of w's request is in: index rules, parsing, the write, the state. */
static void finish(cph_sync_consul_t *c, watch_t *w, CURLcode result, int64_t now)
{
    struct curl_header *h = NULL;
    char text[WHY_MAX], index[32] = "";
    cph_integration_reason_t kind = CPH_REASON_BAD_RESPONSE;
    cph_consul_parse_stats_t st;
    cph_consul_index_t idx;
    cph_error_t err;
    long status = 0;
    json_t *targets;
    int bad;

    curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &status);
    if (curl_easy_header(w->easy, "X-Consul-Index", 0, CURLH_HEADER, -1, &h) == CURLHE_OK && strlen(h->value) < sizeof(index))
        snprintf(index, sizeof(index), "%s", h->value);
    bad =
        cph_consul_classify((int)result, curl_easy_strerror(result), status, w->body.data, w->body.len, &kind, text, sizeof(text));
    if (!bad && !w->probe) {
        idx = cph_consul_index_next(w->index, index[0] != '\0' ? index : NULL);
        if (idx.changed || w->targets == NULL) {
            if ((targets = cph_consul_parse_health(w->body.data, w->body.len, &st, &err)) == NULL) {
                bad = 1, kind = CPH_REASON_BAD_RESPONSE;
                snprintf(text, sizeof(text), "%.190s", err.msg);
            } else {
                if (st.skipped + st.dropped != 0)
                    cph_log_warn(MODULE,
                                 "service %s: %zu Consul instances without a usable address and port skipped, %zu over "
                                 "the %d targets dropped",
                                 w->name, st.skipped, st.dropped, CPH_CONSUL_TARGETS_MAX);
                json_decref(w->targets);
                w->targets = targets;
            }
        }
        if (!bad)
            w->index = idx.next;
    }
    end_request(c, w);
    w->next_at = cph_consul_next_start(w->started_at, now, !bad, &w->backoff);
    if (w->probe && !bad)
        w->next_at = now + PROBE_EVERY_MS;
    if (bad) {
        failed(c, w, kind, text);
        publish(c);
        return;
    }
    if (w->failing)
        cph_log_info(MODULE, "service %s: Consul answers again", w->probe ? "(probe)" : w->name);
    w->failing = 0;
    apply(c, w, now);
    recovered(c);
    publish(c);
}

/* Every finished transfer of the multi handle. */
static void collect(cph_sync_consul_t *c)
{
    CURLMsg *msg;
    char *p;
    int left;
    watch_t *w;

    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        p = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &p);
        if ((w = (watch_t *)p) != NULL)
            finish(c, w, msg->data.result, now_ms());
    }
}

/* ---------------------------------------------------------------- the watched services */

static void watch_free(cph_sync_consul_t *c, watch_t *w)
{
    end_request(c, w);
    json_decref(w->consul);
    json_decref(w->stored);
    json_decref(w->targets);
    free(w);
}

/* The watch of row: the existing one when it follows the same consul member, else a new one due now. */
static watch_t *watch_for(cph_sync_consul_t *c, const json_t *row)
{
    int64_t id = json_integer_value(json_object_get(row, "id"));
    const json_t *consul = json_object_get(row, "consul");
    watch_t *w;
    size_t i;

    for (i = 0; i != c->num_watches; ++i) {
        w = c->watches[i];
        if (w != NULL && w->id == id && json_equal(w->consul, consul)) {
            c->watches[i] = NULL; /* taken */
            return w;
        }
    }
    if ((w = calloc(1, sizeof(*w))) == NULL)
        cph_fatal(MODULE, "out of memory");
    w->id = id;
    w->consul = json_deep_copy(consul);
    return w;
}

/* Re-reads the watched services: new watches, changed ones restarted, deleted ones dropped, targets compared. */
static void reload(cph_sync_consul_t *c, int64_t now)
{
    json_t *rows, *row;
    watch_t **next;
    cph_error_t err;
    size_t i, n;

    cph_db_lock(c->db);
    rows = cph_store_service_consul_list(c->db, &err);
    cph_db_unlock(c->db);
    if (rows == NULL) {
        cph_log_warn(MODULE, "cannot list the services discovered through Consul: %s", err.msg);
        return;
    }
    n = json_array_size(rows);
    if ((next = calloc(n != 0 ? n : 1, sizeof(*next))) == NULL)
        cph_fatal(MODULE, "out of memory");
    json_array_foreach(rows, i, row)
    {
        watch_t *w = next[i] = watch_for(c, row);
        const char *name = json_string_value(json_object_get(row, "name"));
        snprintf(w->name, sizeof(w->name), "%s", name != NULL ? name : "?");
        json_decref(w->stored);
        w->stored = json_deep_copy(json_object_get(row, "targets"));
    }
    for (i = 0; i != c->num_watches; ++i) /* what watch_for did not take: deleted, or its consul member changed */
        if (c->watches[i] != NULL)
            watch_free(c, c->watches[i]);
    free(c->watches);
    c->watches = next, c->num_watches = n;
    json_decref(rows);
    for (i = 0; i != n; ++i)
        apply(c, c->watches[i], now);
    if (n != 0 && c->probe.easy != NULL)
        end_request(c, &c->probe);
    if (c->degraded && n != 0) /* the failing service was deleted or changed: do the others answer? */
        for (i = 0; i != n && c->degraded; ++i)
            if (c->watches[i]->targets != NULL && !c->watches[i]->failing)
                recovered(c);
    publish(c);
}

/* ---------------------------------------------------------------- the thread */

/* Starts every request that is due (within the in-flight cap); returns the earliest time another one is due. */
static int64_t start_due(cph_sync_consul_t *c, int64_t now)
{
    int64_t earliest = now + RELOAD_MS;
    size_t i;

    for (i = 0; i != c->num_watches; ++i) {
        watch_t *w = c->watches[i];
        if (w->easy != NULL || (w->next_at <= now && c->inflight >= INFLIGHT_MAX))
            continue; /* due but over the cap: tried again when a transfer ends */
        if (w->next_at <= now)
            start_request(c, w, now);
        if (w->easy == NULL && w->next_at < earliest)
            earliest = w->next_at;
    }
    if (c->num_watches == 0 && c->probe.easy == NULL) {
        if (c->probe.next_at <= now)
            start_request(c, &c->probe, now);
        if (c->probe.easy == NULL && c->probe.next_at < earliest)
            earliest = c->probe.next_at;
    }
    return earliest;
}

static void *run(void *arg)
{
    cph_sync_consul_t *c = arg;
    int64_t next_reload = 0, now, due;
    int running;
    size_t i;

    while (!atomic_load(&c->stop)) {
        now = now_ms();
        if (now >= next_reload) {
            reload(c, now);
            next_reload = now + RELOAD_MS;
        }
        due = start_due(c, now);
        if (due > next_reload)
            due = next_reload;
        curl_multi_poll(c->multi, NULL, 0, due > now ? (int)(due - now) : 0, NULL);
        curl_multi_perform(c->multi, &running);
        collect(c);
    }
    for (i = 0; i != c->num_watches; ++i)
        watch_free(c, c->watches[i]);
    free(c->watches);
    c->watches = NULL, c->num_watches = 0;
    end_request(c, &c->probe);
    return NULL;
}

cph_sync_consul_t *cph_sync_consul_start(cph_db_t *db, const cph_integration_settings_t *s, cph_error_t *err)
{
    cph_sync_consul_t *c;
    char url[CPH_CONSUL_URL_MAX];

    if (cph_consul_health_url(s->consul_addr, "x", NULL, s->consul_datacenter, 0, s->consul_wait_s, url, sizeof(url), err) != 0)
        return NULL;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        cph_fatal(MODULE, "out of memory");
    if (cph_http_global_init(err) != 0) {
        free(c);
        return NULL;
    }
    if ((c->multi = curl_multi_init()) == NULL) {
        cph_http_global_cleanup();
        free(c);
        cph_error_set(err, "internal", "", "cannot initialise libcurl");
        return NULL;
    }
    c->db = db;
    snprintf(c->addr, sizeof(c->addr), "%s", s->consul_addr);
    snprintf(c->dc, sizeof(c->dc), "%s", s->consul_datacenter);
    c->wait_s = s->consul_wait_s;
    c->probe.probe = 1;
    snprintf(c->probe.name, sizeof(c->probe.name), "(probe)");
    c->headers = cph_http_header_add(NULL, "Accept", "application/json");
    if (s->consul_token[0] != '\0')
        c->headers = cph_http_header_add(c->headers, "X-Consul-Token", s->consul_token);
    atomic_init(&c->stop, 0);
    if (pthread_create(&c->thread, NULL, run, c) != 0) {
        cph_http_headers_free(c->headers);
        curl_multi_cleanup(c->multi);
        cph_http_global_cleanup();
        free(c);
        cph_error_set(err, "internal", "", "cannot start the Consul thread");
        return NULL;
    }
    return c;
}

void cph_sync_consul_stop(cph_sync_consul_t *c)
{
    if (c == NULL)
        return;
    atomic_store(&c->stop, 1);
    curl_multi_wakeup(c->multi);
    pthread_join(c->thread, NULL);
    curl_multi_cleanup(c->multi);
    cph_http_headers_free(c->headers);
    cph_http_global_cleanup();
    free(c);
}
