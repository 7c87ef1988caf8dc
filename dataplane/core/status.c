/*
 * status: /health, /ready and /metrics for orchestrators and Prometheus, and /health/services (the upstream targets'
 * health, breaker and last check: cph_health_report), served on the control thread's loop.
 *
 * It has its own tiny h2o globalconf and context so that it neither shares the client listeners' limits nor goes
 * through the request pipeline, and so that it answers while the workers drain. The snapshot identity and the
 * apply/nack counters live on this same thread; the per-worker counters are summed with relaxed loads (each has one
 * writer, its worker), so a scrape never stops a worker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "proto/log.h"
#include "dataplane/core/accesslog.h"
#include "dataplane/core/balance.h"
#include "dataplane/core/cache.h"
#include "dataplane/core/health.h"
#include "dataplane/core/observe.h"
#include "dataplane/core/pdf.h"
#include "dataplane/core/server.h"
#include "dataplane/core/status.h"
#include "dataplane/core/text.h"
#include "dataplane/core/websocket.h"

#define MODULE "dp/core/status"

struct st_cph_status_t {
    cph_control_t *control;
    h2o_globalconf_t globalconf;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    h2o_linklist_t conns; /* cph_status_conn_t: closed before the context is disposed */
    size_t num_conns;
};

typedef struct st_cph_status_conn_t {
    h2o_linklist_t link;
    cph_status_t *status;
    h2o_socket_t *sock;
} cph_status_conn_t;

typedef struct st_cph_status_handler_t {
    h2o_handler_t super;
    cph_control_t *control;
} cph_status_handler_t;

/* ---------------------------------------------------------------- exposition */

/* A label value as the text format wants it: backslash, double quote and newline escaped. */
static const char *escape_label(const char *s, char *out, size_t cap)
{
    size_t o = 0;

    for (; *s != '\0' && o + 3 < cap; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n') {
            out[o++] = '\\';
            out[o++] = *s == '\n' ? 'n' : *s;
        } else {
            out[o++] = *s;
        }
    }
    out[o] = '\0';
    return out;
}

static void header(cph_text_t *t, const char *name, const char *type, const char *help)
{
    cph_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The per-request families (core/observe.c) summed over the workers. */
static void render_observed(cph_text_t *t, cph_server_t *s)
{
    cph_worker_stats_t **stats = malloc(sizeof(*stats) * (s->num_workers + 1));

    if (stats == NULL)
        cph_fatal(MODULE, "out of memory");
    for (unsigned w = 0; w < s->num_workers; w++)
        stats[w] = s->workers[w].stats;
    cph_observe_render(t, stats, s->num_workers);
    free(stats);
}

static void render_upstream_errors(cph_text_t *t, cph_server_t *s)
{
    static const char *kinds[CPH_UPSTREAM_ERR_KINDS] = {"connect", "timeout", "protocol", "no_target", "no_healthy", "overloaded"};
    uint32_t n = cph_stats_num_services();
    char esc[512];

    header(t, "cephalo_dp_upstream_errors_total", "counter", "Upstream failures by service and kind.");
    for (uint32_t id = 0; id <= n && id < CPH_STATS_MAX_SERVICES; id++) {
        const char *name = id == 0 ? "" : cph_stats_service_name(id);
        for (int k = 0; k < CPH_UPSTREAM_ERR_KINDS; k++) {
            uint64_t sum = 0;
            for (unsigned w = 0; w < s->num_workers; w++)
                sum += cph_counter_read(&s->workers[w].stats->upstream_errors[id][k]);
            if (sum != 0 && name != NULL)
                cph_text_printf(t, "cephalo_dp_upstream_errors_total{service=\"%s\",kind=\"%s\"} %llu\n",
                                escape_label(name, esc, sizeof(esc)), kinds[k], (unsigned long long)sum);
        }
    }
}

/* Retries (per worker, summed) and breaker ejections (process-wide, core/balance.c) by service. */
static void render_upstream_resilience(cph_text_t *t, cph_server_t *s)
{
    uint32_t n = cph_stats_num_services();
    char esc[512];

    header(t, "cephalo_dp_upstream_retries_total", "counter", "Requests retried to another target, by service.");
    for (uint32_t id = 1; id <= n && id < CPH_STATS_MAX_SERVICES; id++) {
        const char *name = cph_stats_service_name(id);
        uint64_t sum = 0;
        for (unsigned w = 0; w < s->num_workers; w++)
            sum += cph_counter_read(&s->workers[w].stats->upstream_retries[id]);
        if (sum != 0 && name != NULL)
            cph_text_printf(t, "cephalo_dp_upstream_retries_total{service=\"%s\"} %llu\n", escape_label(name, esc, sizeof(esc)),
                            (unsigned long long)sum);
    }
    header(t, "cephalo_dp_upstream_ejections_total", "counter", "Targets ejected by the breaker, by service.");
    for (uint32_t id = 1; id <= n && id < CPH_STATS_MAX_SERVICES; id++) {
        const char *name = cph_stats_service_name(id);
        uint64_t sum = cph_balance_ejections(id);
        if (sum != 0 && name != NULL)
            cph_text_printf(t, "cephalo_dp_upstream_ejections_total{service=\"%s\"} %llu\n", escape_label(name, esc, sizeof(esc)),
                            (unsigned long long)sum);
    }
}

/* Open tunnels (gauge) and ended tunnels by reason, summed over the workers (core/websocket.c). */
static void render_websockets(cph_text_t *t, cph_server_t *s)
{
    uint64_t open = 0;

    for (unsigned w = 0; w < s->num_workers; w++)
        open += cph_websocket_count(&s->workers[w]);
    header(t, "cephalo_dp_websocket_tunnels", "gauge", "Websocket tunnels open.");
    cph_text_printf(t, "cephalo_dp_websocket_tunnels %llu\n", (unsigned long long)open);
    header(t, "cephalo_dp_websocket_closed_total", "counter", "Websocket tunnels ended, by reason.");
    for (int reason = 0; reason < CPH_WS_CLOSED_REASONS; reason++) {
        uint64_t sum = 0;
        for (unsigned w = 0; w < s->num_workers; w++)
            sum += cph_websocket_closed(&s->workers[w], (cph_ws_closed_reason_t)reason);
        if (sum != 0)
            cph_text_printf(t, "cephalo_dp_websocket_closed_total{reason=\"%s\"} %llu\n",
                            cph_websocket_closed_reason_name((cph_ws_closed_reason_t)reason), (unsigned long long)sum);
    }
}

/* The PDF renders, failures, queue depth and render time histogram (core/pdf.c, core/stats.c). */
static void render_pdf(cph_text_t *t, cph_server_t *s)
{
    cph_worker_stats_t **stats = malloc(sizeof(*stats) * (s->num_workers + 1));
    char *text;

    if (stats == NULL)
        cph_fatal(MODULE, "out of memory");
    for (unsigned w = 0; w < s->num_workers; w++)
        stats[w] = s->workers[w].stats;
    if ((text = cph_stats_pdf_exposition(stats, s->num_workers, cph_pdf_queue_depth())) == NULL)
        cph_fatal(MODULE, "out of memory");
    cph_text_printf(t, "%s", text);
    free(text);
    free(stats);
}

static void add_shadow_sample(void *ud, int64_t endpoint_id, uint64_t allow, uint64_t deny)
{
    cph_text_t *t = ud;

    if (allow != 0)
        cph_text_printf(t, "cephalo_authz_shadow_total{endpoint=\"%lld\",outcome=\"would_allow\"} %llu\n", (long long)endpoint_id,
                        (unsigned long long)allow);
    if (deny != 0)
        cph_text_printf(t, "cephalo_authz_shadow_total{endpoint=\"%lld\",outcome=\"would_deny\"} %llu\n", (long long)endpoint_id,
                        (unsigned long long)deny);
}

/* Decisions by outcome (always the three samples), shadow outcomes per rule id and authn failures by reason. */
static void render_auth(cph_text_t *t, cph_server_t *s)
{
    static const char *outcomes[CPH_STATS_AUTHZ_OUTCOMES] = {"allow", "unauthenticated", "forbidden"};
    cph_worker_stats_t **stats = malloc(sizeof(*stats) * (s->num_workers + 1));

    if (stats == NULL)
        cph_fatal(MODULE, "out of memory");
    for (unsigned w = 0; w < s->num_workers; w++)
        stats[w] = s->workers[w].stats;
    header(t, "cephalo_authz_decisions_total", "counter", "Authorization decisions by outcome.");
    for (int o = 0; o < CPH_STATS_AUTHZ_OUTCOMES; o++) {
        uint64_t sum = 0;
        for (unsigned w = 0; w < s->num_workers; w++)
            sum += cph_counter_read(&stats[w]->authz_decisions[o]);
        cph_text_printf(t, "cephalo_authz_decisions_total{outcome=\"%s\"} %llu\n", outcomes[o], (unsigned long long)sum);
    }
    header(t, "cephalo_authz_shadow_total", "counter", "Would-be decisions of shadow endpoint rules, by rule id.");
    cph_stats_shadow_foreach(stats, s->num_workers, add_shadow_sample, t);
    header(t, "cephalo_authn_failures_total", "counter", "Credentials refused, by reason.");
    for (int r = 0; r < CPH_AUTHN_REASONS; r++) {
        uint64_t sum = 0;
        for (unsigned w = 0; w < s->num_workers; w++)
            sum += cph_counter_read(&stats[w]->authn_failures[r]);
        if (sum != 0)
            cph_text_printf(t, "cephalo_authn_failures_total{reason=\"%s\"} %llu\n",
                            cph_stats_authn_reason_name((cph_authn_reason_t)r), (unsigned long long)sum);
    }
    free(stats);
}

/* Rate-limit decisions per limit (route = its scope: the route, "endpoint:<rule id>" or "/auth") and outcome. */
static void render_ratelimit(cph_text_t *t, cph_server_t *s)
{
    uint32_t n = cph_stats_num_limits();
    char esc_scope[512], esc_name[512], scope[256];

    header(t, "cephalo_ratelimit_total", "counter", "Rate-limit decisions by route, limit and outcome.");
    for (uint32_t id = 1; id <= n && id < CPH_STATS_MAX_LIMITS; id++) {
        const char *sc, *name;
        size_t sc_len;
        if (!cph_stats_limit_name(id, &sc, &sc_len, &name))
            continue;
        snprintf(scope, sizeof(scope), "%.*s", (int)sc_len, sc);
        for (int o = 0; o < CPH_RL_OUTCOMES; o++) {
            uint64_t sum = 0;
            for (unsigned w = 0; w < s->num_workers; w++)
                sum += cph_counter_read(&s->workers[w].stats->ratelimit[id][o]);
            if (sum != 0)
                cph_text_printf(t, "cephalo_ratelimit_total{route=\"%s\",limit=\"%s\",outcome=\"%s\"} %llu\n",
                                escape_label(scope, esc_scope, sizeof(esc_scope)), escape_label(name, esc_name, sizeof(esc_name)),
                                cph_stats_rl_outcome_name((cph_rl_outcome_t)o), (unsigned long long)sum);
        }
    }
}

/* Cache outcomes per route (ids as cephalo_dp_requests_total) and the store's two gauges. */
static void render_cache(cph_text_t *t, cph_server_t *s)
{
    uint32_t n = cph_stats_num_routes();
    uint64_t bytes, entries;
    char esc[512];

    header(t, "cephalo_cache_total", "counter", "Response cache outcomes by route.");
    for (uint32_t id = 1; id <= n && id < CPH_STATS_MAX_ROUTES; id++) {
        const char *name = cph_stats_route_name(id);
        for (int o = 0; o < CPH_CACHE_OUTCOMES && name != NULL; o++) {
            uint64_t sum = 0;
            for (unsigned w = 0; w < s->num_workers; w++)
                sum += cph_counter_read(&s->workers[w].stats->cache[id][o]);
            if (sum != 0)
                cph_text_printf(t, "cephalo_cache_total{route=\"%s\",outcome=\"%s\"} %llu\n", escape_label(name, esc, sizeof(esc)),
                                cph_stats_cache_outcome_name((cph_cache_outcome_t)o), (unsigned long long)sum);
        }
    }
    cph_cache_usage(cph_cache_default(), &bytes, &entries);
    header(t, "cephalo_cache_bytes", "gauge", "Bytes held by the response cache (keys, headers and bodies).");
    cph_text_printf(t, "cephalo_cache_bytes %llu\n", (unsigned long long)bytes);
    header(t, "cephalo_cache_entries", "gauge", "Responses held by the response cache.");
    cph_text_printf(t, "cephalo_cache_entries %llu\n", (unsigned long long)entries);
}

/* The HTTP/2 stream-reset guard's counters (core/h2guard.h), summed over the workers. */
static void render_http2_guard(cph_text_t *t, cph_server_t *s)
{
    uint64_t received = 0, before = 0, calmed = 0;

    for (unsigned w = 0; w < s->num_workers; w++) {
        received += cph_counter_read(&s->workers[w].stats->http2_resets_received);
        before += cph_counter_read(&s->workers[w].stats->http2_resets_before_dispatch);
        calmed += cph_counter_read(&s->workers[w].stats->http2_connections_calmed);
    }
    header(t, "cephalo_dp_http2_resets_total", "counter", "RST_STREAM frames received from HTTP/2 clients.");
    cph_text_printf(t, "cephalo_dp_http2_resets_total %llu\n", (unsigned long long)received);
    header(t, "cephalo_dp_http2_streams_reset_before_dispatch_total", "counter",
           "HTTP/2 streams answered without any work because their reset had already arrived.");
    cph_text_printf(t, "cephalo_dp_http2_streams_reset_before_dispatch_total %llu\n", (unsigned long long)before);
    header(t, "cephalo_dp_http2_connections_closed_total", "counter",
           "HTTP/2 connections closed with GOAWAY ENHANCE_YOUR_CALM over the stream-reset budget.");
    cph_text_printf(t, "cephalo_dp_http2_connections_closed_total{reason=\"stream_resets\"} %llu\n", (unsigned long long)calmed);
}

char *cph_status_metrics(cph_control_t *c)
{
    cph_text_t t;
    uint64_t accepted = 0, refused = 0;

    cph_text_init(&t, 4096);
    if (c->server != NULL) {
        render_observed(&t, c->server);
        render_upstream_errors(&t, c->server);
        render_upstream_resilience(&t, c->server);
        render_auth(&t, c->server);
        render_ratelimit(&t, c->server);
        render_cache(&t, c->server);
        render_websockets(&t, c->server);
        render_pdf(&t, c->server);
        render_http2_guard(&t, c->server);
        for (unsigned w = 0; w < c->server->num_workers; w++) {
            accepted += cph_counter_read(&c->server->workers[w].stats->connections_accepted);
            refused += cph_counter_read(&c->server->workers[w].stats->connections_refused_per_ip);
        }
    }
    header(&t, "cephalo_dp_access_log_dropped_total", "counter", "Access-log lines dropped because a worker's ring was full.");
    cph_text_printf(&t, "cephalo_dp_access_log_dropped_total %llu\n", (unsigned long long)cph_accesslog_dropped());
    header(&t, "cephalo_dp_connections_accepted_total", "counter", "Client connections accepted.");
    cph_text_printf(&t, "cephalo_dp_connections_accepted_total %llu\n", (unsigned long long)accepted);
    header(&t, "cephalo_dp_connections_refused_total", "counter", "Client connections closed at accept, by reason.");
    cph_text_printf(&t, "cephalo_dp_connections_refused_total{reason=\"per_ip_limit\"} %llu\n", (unsigned long long)refused);
    header(&t, "cephalo_dp_snapshot_version", "gauge", "Version of the snapshot in force (0 = none).");
    cph_text_printf(&t, "cephalo_dp_snapshot_version %llu\n", (unsigned long long)c->applied.version);
    cph_observe_render_snapshot(&t);
    cph_observe_render_targets(&t, c->current);
    header(&t, "cephalo_dp_snapshot_applies_total", "counter", "Snapshots applied and acked.");
    cph_text_printf(&t, "cephalo_dp_snapshot_applies_total %llu\n", (unsigned long long)c->applies);
    header(&t, "cephalo_dp_snapshot_nacks_total", "counter", "Snapshots refused (nack).");
    cph_text_printf(&t, "cephalo_dp_snapshot_nacks_total %llu\n", (unsigned long long)c->nacks);
    header(&t, "cephalo_dp_config_loaded", "gauge", "1 when a snapshot is in force.");
    cph_text_printf(&t, "cephalo_dp_config_loaded %d\n", c->current != NULL);
    header(&t, "cephalo_dp_cp_connected", "gauge", "1 while the control plane session is up.");
    cph_text_printf(&t, "cephalo_dp_cp_connected %d\n", c->cp_connected);
    return t.buf;
}

/* ---------------------------------------------------------------- handlers */

static void respond(h2o_req_t *req, int status, const char *reason, const char *type, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_send_inline(req, body, len);
}

/* GET /health/services: cph_health_report of the snapshot in force (no snapshot: no service). */
static void health_services(h2o_req_t *req, cph_control_t *c)
{
    static const char json[] = "application/json";
    json_t *report;
    char *text;

    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET, HEAD"));
        respond(req, 405, "Method Not Allowed", json, H2O_STRLIT("{\"error\":\"method_not_allowed\"}\n"));
        return;
    }
    report = cph_health_report(c->current);
    if ((text = json_dumps(report, JSON_COMPACT)) == NULL)
        cph_fatal(MODULE, "out of memory");
    json_decref(report);
    respond(req, 200, "OK", json, text, strlen(text));
    free(text);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    cph_control_t *c = ((cph_status_handler_t *)self)->control;
    static const char json[] = "application/json";
    char buf[128];

    if (h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/health/services"))) {
        health_services(req, c);
    } else if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
               !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        respond(req, 405, "Method Not Allowed", json, H2O_STRLIT("{\"error\":\"method_not_allowed\"}\n"));
    } else if (h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/health"))) {
        respond(req, 200, "OK", json, H2O_STRLIT("{\"status\":\"ok\"}\n"));
    } else if (h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/ready"))) {
        if (c->current != NULL && !c->draining) {
            int n = snprintf(buf, sizeof(buf), "{\"status\":\"ready\",\"version\":%llu}\n", (unsigned long long)c->applied.version);
            respond(req, 200, "OK", json, buf, (size_t)n);
        } else {
            const char *body = c->draining ? "{\"status\":\"draining\"}\n" : "{\"status\":\"no_config\"}\n";
            respond(req, 503, "Service Unavailable", json, body, strlen(body));
        }
    } else if (h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/metrics"))) {
        char *text = cph_status_metrics(c);
        respond(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
        free(text);
    } else {
        respond(req, 404, "Not Found", json, H2O_STRLIT("{\"error\":\"not_found\"}\n"));
    }
    return 0;
}

static void on_conn_close(void *data)
{
    cph_status_conn_t *conn = data;

    h2o_linklist_unlink(&conn->link);
    conn->status->num_conns--;
    free(conn);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    cph_status_t *st = listener->data;
    h2o_socket_t *sock;

    if (err != NULL)
        return;
    for (int i = 0; i < 16 && (sock = h2o_evloop_socket_accept(listener)) != NULL; i++) {
        cph_status_conn_t *conn = calloc(1, sizeof(*conn));
        if (conn == NULL)
            cph_fatal(MODULE, "out of memory");
        conn->status = st;
        conn->sock = sock;
        h2o_linklist_insert(&st->conns, &conn->link);
        st->num_conns++;
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = conn;
        h2o_accept(&st->accept_ctx, sock);
    }
}

/* ---------------------------------------------------------------- lifecycle */

cph_status_t *cph_status_start(cph_control_t *c, const char *hostport, cph_error_t *err)
{
    int fd = cph_server_listen_fd(hostport, 0, err);
    cph_status_t *st;

    if (fd == -1)
        return NULL;
    if ((st = calloc(1, sizeof(*st))) == NULL)
        cph_fatal(MODULE, "out of memory");
    st->control = c;
    h2o_linklist_init_anchor(&st->conns);
    h2o_config_init(&st->globalconf);
    st->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("cephalo-status"));
    st->globalconf.max_request_entity_size = 64 * 1024;
    h2o_hostconf_t *host = h2o_config_register_host(&st->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    cph_status_handler_t *h = (void *)h2o_create_handler(path, sizeof(*h));
    h->super.on_req = on_req;
    h->control = c;
    h2o_context_init(&st->ctx, c->loop, &st->globalconf);
    st->accept_ctx.ctx = &st->ctx;
    st->accept_ctx.hosts = st->globalconf.hosts;
    st->listener = h2o_evloop_socket_create(c->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    st->listener->data = st;
    h2o_socket_read_start(st->listener, on_accept);
    return st;
}

void cph_status_stop(cph_status_t *st)
{
    h2o_linklist_t *node;

    h2o_socket_read_stop(st->listener);
    h2o_socket_close(st->listener);
    /* h2o_context_dispose asserts that no connection is left: make h2o read EOF on each and close it (bounded) */
    for (node = st->conns.next; node != &st->conns; node = node->next)
        shutdown(h2o_socket_get_fd(H2O_STRUCT_FROM_MEMBER(cph_status_conn_t, link, node)->sock), SHUT_RDWR);
    for (int i = 0; i < 100 && st->num_conns != 0; i++)
        h2o_evloop_run(st->control->loop, 10);
    if (st->num_conns != 0) {
        cph_log_warn(MODULE, "%zu status connections would not close: not freeing the status context", st->num_conns);
        return;
    }
    h2o_context_dispose(&st->ctx);
    h2o_config_dispose(&st->globalconf);
    free(st);
}
