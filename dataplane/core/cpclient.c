/*
 * cpclient: the control plane client of the data plane, on the control thread's event loop.
 *
 * One Unix stream socket to --cp-socket, opened non-blocking (a Unix connect either succeeds at once or fails), then
 * driven by h2o socket callbacks: frames in through cph_frame_reader_*, messages checked with cph_msg_check(), frames
 * out through a two-buffer queue because h2o allows one write in flight per socket. A 50 ms tick drives the ping,
 * the missed-pong detection and the reconnect backoff, so no timer is ever re-created with a new interval.
 *
 * Each connection has a generation number; a snapshot is applied with it as tag, and an ack or nack computed after
 * the connection died is dropped (the next hello carries what is applied).
 *
 * Every ping carries the requests answered so far, in all and 4xx / 5xx ("traffic", the control plane's dashboard
 * rates), and the shadow-rule counters of this process (docs/access.md section 4): {"<endpoint id>": [would_allow,
 * would_deny]}, summed over the workers by cph_stats_shadow_foreach, only ids with a non-zero count and at most
 * SHADOW_MAX of them (the control plane keeps no more). The counters are cumulative, so a lost ping loses nothing.
 *
 * The health of the upstream targets goes to the control plane as {"type":"health","services":[...]} (the body of
 * the status listener's GET /health/services): right after the first snapshot answered on a connection, then after
 * each later snapshot and whenever cph_target_generation() moved, at most once a second, checked on the same tick.
 *
 * A purge message (docs/admin-api.md, PROTOCOL.md section 3) is handed to the response store (cph_cache_purge_before) on this
 * thread: it drops that route's entries under the optional upstream path prefix stored before the message's `at` (the
 * control plane's clock; absent = all), and records the purge in Redis when gateway.redis is configured.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <openssl/rand.h>
#include "proto/log.h"
#include "dataplane/core/cache.h"
#include "dataplane/core/cpclient.h"
#include "dataplane/core/health.h"
#include "dataplane/core/stats.h"
#include "dataplane/core/target.h"

#define MODULE "dp/core/cpclient"

#define TICK_MS 50
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define HEARTBEAT_DEFAULT_MS 1000
#define MISSED_PONGS 3
#define SHADOW_MAX 4096               /* entries per ping; the control plane's CPH_DPSERVER_MAX_SHADOW */
#define HEALTH_MIN_GAP_MS 1000        /* health reports on change: at most one a second */
#define HEALTH_MAX_BACKLOG (1u << 20) /* queued bytes past which a health report waits for the next tick */

typedef enum en_cph_cp_state_t { CP_DISCONNECTED, CP_HELLO_SENT, CP_READY } cph_cp_state_t;

struct st_cph_cpclient_t {
    cph_control_t *control;
    char *socket_path;
    char *dp_id;
    char hostname[256];
    h2o_socket_t *sock;
    cph_cp_state_t state;
    uint64_t gen;
    cph_frame_reader_t reader;
    char *out; /* queued bytes, not yet handed to h2o */
    size_t outlen;
    size_t outcap;
    char *inflight; /* handed to h2o_socket_write, freed on completion */
    uint64_t heartbeat_ms;
    uint64_t last_pong_ms; /* or the connect time */
    uint64_t last_ping_ms;
    uint64_t ping_seq;
    unsigned attempt;
    uint64_t reconnect_at_ms;
    h2o_timeout_t tick;
    h2o_timeout_entry_t tick_entry;
    /* health reports (cph_health_report): on change, at most one a second, and one after each connection's snapshot */
    int health_due;          /* a snapshot was answered: report (the connection's first at once, others 1 s apart) */
    int health_sent_on_conn; /* a report went out on this connection */
    uint64_t health_gen;     /* cph_target_generation() at the last report */
    uint64_t health_sent_ms;
};

static void flush(cph_cpclient_t *cl);
static void disconnect(cph_cpclient_t *cl, const char *why);

/* ---------------------------------------------------------------- output */

static void send_msg(cph_cpclient_t *cl, json_t *msg)
{
    cph_error_t err;
    char *frame;
    size_t len;

    if (msg == NULL)
        cph_fatal(MODULE, "out of memory");
    if (cl->sock == NULL)
        goto Exit;
    if (cph_frame_encode(msg, CPH_FRAME_MAX_DEFAULT, &frame, &len, &err) != 0) {
        cph_log_error(MODULE, "cannot encode %s: %s", json_string_value(json_object_get(msg, "type")), err.msg);
        goto Exit;
    }
    if (cl->outlen + len > cl->outcap) {
        cl->outcap = (cl->outlen + len) * 2;
        if ((cl->out = realloc(cl->out, cl->outcap)) == NULL)
            cph_fatal(MODULE, "out of memory");
    }
    memcpy(cl->out + cl->outlen, frame, len);
    cl->outlen += len;
    free(frame);
    flush(cl);
Exit:
    json_decref(msg);
}

static void on_write_complete(h2o_socket_t *sock, const char *err)
{
    cph_cpclient_t *cl = sock->data;

    free(cl->inflight);
    cl->inflight = NULL;
    if (err != NULL) {
        disconnect(cl, err);
        return;
    }
    flush(cl);
}

static void flush(cph_cpclient_t *cl)
{
    if (cl->sock == NULL || cl->inflight != NULL || cl->outlen == 0)
        return;
    h2o_iovec_t buf = h2o_iovec_init(cl->out, cl->outlen);
    cl->inflight = cl->out;
    cl->out = NULL;
    cl->outlen = cl->outcap = 0;
    h2o_socket_write(cl->sock, &buf, 1, on_write_complete);
}

/* ---------------------------------------------------------------- connection */

static uint64_t backoff_ms(unsigned attempt)
{
    uint64_t base = BACKOFF_MIN_MS;
    uint32_t r = 0;

    for (unsigned i = 0; i < attempt && base < BACKOFF_MAX_MS; i++)
        base *= 2;
    if (base > BACKOFF_MAX_MS)
        base = BACKOFF_MAX_MS;
    RAND_bytes((unsigned char *)&r, sizeof(r));
    /* +-25 % */
    return base * 3 / 4 + (uint64_t)(r % (base / 2 + 1));
}

static void disconnect(cph_cpclient_t *cl, const char *why)
{
    if (cl->sock != NULL) {
        cph_log_warn(MODULE, "disconnected from the control plane (%s): serving version %llu meanwhile", why,
                     (unsigned long long)cl->control->applied.version);
        h2o_socket_close(cl->sock);
        cl->sock = NULL;
    }
    free(cl->inflight);
    cl->inflight = NULL;
    free(cl->out);
    cl->out = NULL;
    cl->outlen = cl->outcap = 0;
    cph_frame_reader_dispose(&cl->reader);
    cl->state = CP_DISCONNECTED;
    cl->health_due = 0;
    cl->health_sent_on_conn = 0;
    cl->control->cp_connected = 0;
    cl->gen++;
    cl->reconnect_at_ms = cph_control_now_ms() + backoff_ms(cl->attempt);
    if (cl->attempt < 16)
        cl->attempt++;
}

static void on_reply(void *data, uint64_t tag, json_t *reply)
{
    cph_cpclient_t *cl = data;

    if (tag == cl->gen && cl->state == CP_READY) {
        send_msg(cl, json_incref(reply));
        cl->health_due = 1;
    }
}

/* Matched by its type string, so this works whether or not proto/ knows CPH_MSG_PURGE (then cph_msg_check ran). */
static int is_purge(const json_t *msg)
{
    const char *type = json_string_value(json_object_get(msg, "type"));

    return type != NULL && strcmp(type, "purge") == 0;
}

/*
 * {"type":"purge","route":name,"prefix":"/x"|null,"at":ms}: drops the route's entries (under the prefix) stored before
 * `at` (the control plane's wall clock; absent from older control planes: 0, every entry) and records the purge in
 * Redis when configured (cph_cache_purge_before).
 */
static void purge(const json_t *msg)
{
    const char *route = json_string_value(json_object_get(msg, "route"));
    const json_t *prefix = json_object_get(msg, "prefix"), *at = json_object_get(msg, "at");
    size_t n;

    if (route == NULL || (prefix != NULL && !json_is_null(prefix) && !json_is_string(prefix)) ||
        (at != NULL && !json_is_null(at) && (!json_is_integer(at) || json_integer_value(at) < 0))) {
        cph_log_warn(MODULE, "purge message without a route name or with a bad prefix or at: ignored");
        return;
    }
    n = cph_cache_purge_before(route, json_is_string(prefix) ? json_string_value(prefix) : NULL,
                               json_is_integer(at) ? (uint64_t)json_integer_value(at) : 0);
    cph_log_info(MODULE, "purged %zu cached responses of route %s%s%s", n, route, json_is_string(prefix) ? " under " : "",
                 json_is_string(prefix) ? json_string_value(prefix) : "");
}

static void on_message(cph_cpclient_t *cl, json_t *msg)
{
    cph_msg_type_t type = cph_msg_type(msg);

    if (cl->state == CP_HELLO_SENT && type != CPH_MSG_WELCOME && type != CPH_MSG_ERROR && type != CPH_MSG_UNKNOWN) {
        send_msg(cl, cph_msg_error("bad_frame", "expected welcome"));
        disconnect(cl, "message before welcome");
        return;
    }
    switch (type) {
    case CPH_MSG_WELCOME:
        cl->heartbeat_ms = (uint64_t)json_integer_value(json_object_get(msg, "heartbeat_ms"));
        if (cl->heartbeat_ms == 0)
            cl->heartbeat_ms = HEARTBEAT_DEFAULT_MS;
        cl->state = CP_READY;
        cl->attempt = 0;
        cl->control->cp_connected = 1;
        cph_log_info(MODULE, "connected to the control plane, epoch %s, heartbeat %llu ms",
                     json_string_value(json_object_get(msg, "epoch")), (unsigned long long)cl->heartbeat_ms);
        break;
    case CPH_MSG_SNAPSHOT:
        cph_control_apply(cl->control, msg, on_reply, cl, cl->gen);
        break;
    case CPH_MSG_PONG:
        cl->last_pong_ms = cph_control_now_ms();
        break;
    case CPH_MSG_ERROR:
        cph_log_warn(MODULE, "control plane error %s: %s", json_string_value(json_object_get(msg, "code")),
                     json_string_value(json_object_get(msg, "message")));
        disconnect(cl, "error from the control plane");
        break;
    default:
        if (is_purge(msg))
            purge(msg);
        break; /* unknown or not for us: ignored (forward compatibility) */
    }
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    cph_cpclient_t *cl = sock->data;
    uint64_t gen = cl->gen;
    cph_error_t perr;
    json_t *msg;
    int r;

    if (err != NULL) {
        disconnect(cl, err);
        return;
    }
    cph_frame_reader_feed(&cl->reader, sock->input->bytes, sock->input->size);
    h2o_buffer_consume(&sock->input, sock->input->size);
    while (gen == cl->gen && (r = cph_frame_reader_next(&cl->reader, &msg, &perr)) != 0) {
        if (r < 0 || cph_msg_check(msg, &perr) != 0) {
            if (r > 0)
                json_decref(msg);
            cph_log_warn(MODULE, "bad frame from the control plane: %s: %s", perr.code, perr.msg);
            send_msg(cl, cph_msg_error(perr.code, perr.msg));
            disconnect(cl, "bad frame");
            return;
        }
        on_message(cl, msg);
        json_decref(msg);
    }
}

static void try_connect(cph_cpclient_t *cl)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(cl->socket_path) >= sizeof(sa.sun_path)) {
        cph_log_error(MODULE, "--cp-socket path is longer than %zu bytes", sizeof(sa.sun_path) - 1);
        cl->reconnect_at_ms = UINT64_MAX;
        return;
    }
    strcpy(sa.sun_path, cl->socket_path);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        cph_log(cl->attempt == 0 ? CPH_LOG_INFO : CPH_LOG_DEBUG, MODULE, "control plane at %s unreachable: %s", cl->socket_path,
                strerror(errno));
        if (fd != -1)
            close(fd);
        disconnect(cl, "connect failed");
        return;
    }
    cl->sock = h2o_evloop_socket_create(cl->control->loop, fd, 0);
    cl->sock->data = cl;
    cph_frame_reader_init(&cl->reader, CPH_FRAME_MAX_DEFAULT);
    cl->state = CP_HELLO_SENT;
    cl->last_pong_ms = cl->last_ping_ms = cph_control_now_ms();
    h2o_socket_read_start(cl->sock, on_read);
    send_msg(cl, cph_msg_hello(cl->dp_id, cl->hostname, (long)getpid(), CPH_SOFTWARE, &cl->control->applied));
}

static void add_shadow(void *ud, int64_t endpoint_id, uint64_t allow, uint64_t deny)
{
    json_t *shadow = ud;
    char key[24];

    if (endpoint_id < 1 || (allow == 0 && deny == 0) || json_object_size(shadow) >= SHADOW_MAX)
        return;
    allow = allow > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : allow;
    deny = deny > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : deny;
    snprintf(key, sizeof(key), "%lld", (long long)endpoint_id);
    if (json_object_set_new(shadow, key, json_pack("[I, I]", (json_int_t)allow, (json_int_t)deny)) != 0)
        cph_fatal(MODULE, "out of memory");
}

/* {"requests", "4xx", "5xx"}: the responses of every worker so far (cumulative, so a lost ping loses nothing). */
static json_t *traffic(const cph_server_t *server)
{
    uint64_t by_class[CPH_STATS_STATUS_CLASSES] = {0}, all = 0;

    for (unsigned w = 0; w != server->num_workers; ++w)
        for (int c = 0; c != CPH_STATS_STATUS_CLASSES; ++c)
            by_class[c] += cph_counter_read(&server->workers[w].stats->requests_by_class[c]);
    for (int c = 0; c != CPH_STATS_STATUS_CLASSES; ++c)
        all += by_class[c];
    return json_pack("{s:I, s:I, s:I}", "requests", (json_int_t)(all & INT64_MAX), "4xx", (json_int_t)(by_class[4] & INT64_MAX),
                     "5xx", (json_int_t)(by_class[5] & INT64_MAX));
}

/* A ping with the request counters and the workers' shadow counters ("shadow" left out while there are none). */
static json_t *build_ping(cph_cpclient_t *cl)
{
    json_t *msg = cph_msg_ping(++cl->ping_seq), *shadow;
    cph_server_t *server = cl->control->server;
    cph_worker_stats_t **stats;
    unsigned i;

    if (server == NULL || server->workers == NULL || server->num_workers == 0)
        return msg;
    json_object_set_new(msg, "traffic", traffic(server));
    if ((shadow = json_object()) == NULL || (stats = malloc(server->num_workers * sizeof(*stats))) == NULL)
        cph_fatal(MODULE, "out of memory");
    for (i = 0; i != server->num_workers; ++i)
        stats[i] = server->workers[i].stats;
    cph_stats_shadow_foreach(stats, server->num_workers, add_shadow, shadow);
    free(stats);
    if (json_object_size(shadow) != 0)
        json_object_set(msg, "shadow", shadow);
    json_decref(shadow);
    return msg;
}

/*
 * {"type":"health","services":[...]} (cph_health_report of the snapshot in force): at once after the first snapshot
 * answered on this connection; after a later one, or when a target's health or breaker changed, once the last report
 * is a second old. A backed-up
 * socket defers it: the report is rebuilt from the live state when it goes, so nothing is lost by waiting.
 */
static void maybe_send_health(cph_cpclient_t *cl, uint64_t now)
{
    uint64_t gen = cph_target_generation();
    int gap_ok = now - cl->health_sent_ms >= HEALTH_MIN_GAP_MS;
    json_t *msg;

    if (cl->state != CP_READY || cl->outlen > HEALTH_MAX_BACKLOG)
        return;
    if (!(cl->health_due && (!cl->health_sent_on_conn || gap_ok)) && !(gen != cl->health_gen && gap_ok))
        return;
    cl->health_due = 0;
    cl->health_sent_on_conn = 1;
    cl->health_gen = gen;
    cl->health_sent_ms = now;
    msg = cph_health_report(cl->control->current);
    if (json_object_set_new(msg, "type", json_string("health")) != 0)
        cph_fatal(MODULE, "out of memory");
    send_msg(cl, msg);
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    cph_cpclient_t *cl = H2O_STRUCT_FROM_MEMBER(cph_cpclient_t, tick_entry, entry);
    uint64_t now = cph_control_now_ms();
    uint64_t hb = cl->heartbeat_ms != 0 ? cl->heartbeat_ms : HEARTBEAT_DEFAULT_MS;

    if (cl->state == CP_DISCONNECTED) {
        if (now >= cl->reconnect_at_ms && !cl->control->draining)
            try_connect(cl);
    } else if (now - cl->last_pong_ms > MISSED_PONGS * hb) {
        disconnect(cl, "3 heartbeats without a pong");
    } else if (cl->state == CP_READY && now - cl->last_ping_ms >= hb) {
        cl->last_ping_ms = now;
        send_msg(cl, build_ping(cl));
    }
    maybe_send_health(cl, now);
    h2o_timeout_link(cl->control->loop, &cl->tick, &cl->tick_entry);
}

cph_cpclient_t *cph_cpclient_create(cph_control_t *c, const char *socket_path, const char *dp_id)
{
    cph_cpclient_t *cl = calloc(1, sizeof(*cl));

    if (cl == NULL || (cl->socket_path = strdup(socket_path)) == NULL || (cl->dp_id = strdup(dp_id)) == NULL)
        cph_fatal(MODULE, "out of memory");
    cl->control = c;
    if (gethostname(cl->hostname, sizeof(cl->hostname) - 1) != 0)
        strcpy(cl->hostname, "unknown");
    cph_frame_reader_init(&cl->reader, CPH_FRAME_MAX_DEFAULT);
    h2o_timeout_init(c->loop, &cl->tick, TICK_MS);
    cl->tick_entry.cb = on_tick;
    h2o_timeout_link(c->loop, &cl->tick, &cl->tick_entry);
    try_connect(cl);
    return cl;
}

void cph_cpclient_destroy(cph_cpclient_t *cl)
{
    if (cl->sock != NULL) {
        h2o_socket_close(cl->sock);
        cl->sock = NULL;
    }
    free(cl->inflight);
    free(cl->out);
    cph_frame_reader_dispose(&cl->reader);
    if (h2o_timeout_is_linked(&cl->tick_entry))
        h2o_timeout_unlink(&cl->tick_entry);
    h2o_timeout_dispose(cl->control->loop, &cl->tick);
    free(cl->socket_path);
    free(cl->dp_id);
    free(cl);
}
