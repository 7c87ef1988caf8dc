/*
 * control: the control thread of the data plane (PROTOCOL.md sections 4 and 6, DESIGN.md section 3).
 *
 * Applying a snapshot is a small state machine on this thread's loop: build (validate + compile, off the hot path),
 * publish one h2o_multithread message per worker, count the CPH_NOTE_SWAPPED answers, and only when the last worker
 * has swapped persist to disk and ack. Until then the old snapshot is the one the control plane is told about; on any
 * failure before the publish, nothing changed and a nack goes out. Every snapshot put in force (booted from disk or
 * swapped in) also reconfigures the active health checks (core/health.h). One swap is in flight at a time; a snapshot that
 * arrives meanwhile waits, and a newer one replaces it (latest wins).
 *
 * The drain is here too: SIGTERM/SIGINT arrive through a signalfd on this loop (blocked in every thread), the
 * workers are told to drain, and the loop ends when all of them report no connection left or the deadline passes.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>
#include "proto/log.h"
#include "dataplane/core/cache.h"
#include "dataplane/core/control.h"
#include "dataplane/core/health.h"
#include "dataplane/core/observe.h"
#include "dataplane/core/persist.h"
#include "dataplane/core/redis.h"
#include "dataplane/compile/ratelimit.h"

#define MODULE "dp/core/control"

uint64_t cph_control_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The swap in flight's receipt time and build time (one swap at a time), for cph_observe_snapshot_applied. */
static uint64_t swap_started_ns, swap_build_ns;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void set_applied(cph_control_t *c, const char *epoch, uint64_t version, const char *hash, const char *source)
{
    snprintf(c->applied.epoch, sizeof(c->applied.epoch), "%s", epoch);
    c->applied.version = version;
    snprintf(c->applied.hash, sizeof(c->applied.hash), "%s", hash);
    snprintf(c->applied.source, sizeof(c->applied.source), "%s", source);
}

/* Points the Redis rate-limit backend at the snapshot's gateway.redis (none: disconnected); the same address keeps
 * its connection. */
static void configure_redis(const cph_snapshot_t *snap)
{
    const cph_redis_config_t *cfg = cph_rl_redis_config(snap);
    cph_redis_config_t none;

    memset(&none, 0, sizeof(none));
    cph_redis_configure(cfg != NULL ? cfg : &none);
}

/* The response store outlives swaps (its entries belong to stable route ids); only its budget follows the snapshot. */
static void configure_cache(const cph_snapshot_t *snap)
{
    cph_cache_t *store = cph_cache_default();

    if (cph_cache_max_bytes(store) != snap->cache_max_bytes)
        cph_log_info(MODULE, "response cache budget: %llu bytes", (unsigned long long)snap->cache_max_bytes);
    cph_cache_configure(store, snap->cache_max_bytes);
}

/* ---------------------------------------------------------------- boot */

/* This data plane's own limits, beyond the schema's: a snapshot over them is refused whole. */
static int check_limits(const cph_control_t *c, const json_t *body, cph_error_t *err)
{
    size_t routes = json_array_size(json_object_get(body, "routes"));

    if (c->max_routes != 0 && routes > c->max_routes)
        return cph_error_set(err, "over_limit", "/routes", "%zu routes is more than this data plane's --max-routes %zu", routes,
                             c->max_routes);
    return 0;
}

static int boot_from(cph_control_t *c, const char *name)
{
    char path[4096];
    cph_persisted_t p;
    cph_error_t err;
    memset(&err, 0, sizeof(err));
    cph_snapshot_t *snap;

    snprintf(path, sizeof(path), "%s/%s", c->state_dir, name);
    if (cph_persist_load_file(path, &p, &err) != 0) {
        if (strcmp(err.code, "not_found") != 0)
            cph_log_warn(MODULE, "skipping %s: %s: %s (at '%s')", path, err.code, err.msg, err.path);
        return strcmp(err.code, "not_found") == 0 ? 0 : -1;
    }
    uint64_t build_start_ns = now_ns();
    snap = check_limits(c, p.body, &err) == 0 ? cph_snapshot_build(p.body, p.epoch, p.version, p.hash, "disk", &err) : NULL;
    if (snap != NULL) {
        cph_observe_snapshot_applied(now_ns() - build_start_ns, now_ns() - build_start_ns); /* no swap at boot */
        configure_redis(snap);
        configure_cache(snap);
        cph_health_configure(snap); /* taken up when the health thread starts */
    }
    cph_persisted_dispose(&p);
    if (snap == NULL) {
        cph_log_warn(MODULE, "skipping %s: does not compile: %s: %s (at '%s')", path, err.code, err.msg, err.path);
        return -1;
    }
    c->current = snap;
    set_applied(c, snap->epoch, snap->version, snap->hash, "disk");
    cph_log_info(MODULE, "booted from %s: version %llu, %s", path, (unsigned long long)snap->version, snap->hash);
    return 1;
}

cph_snapshot_t *cph_control_boot(cph_control_t *c)
{
    int r = boot_from(c, CPH_PERSIST_FILE);

    c->file_ok = r >= 0; /* a bad snapshot.json must never displace a good snapshot.prev.json */
    if (r <= 0 && boot_from(c, CPH_PERSIST_PREV) <= 0)
        cph_log_warn(MODULE, "no usable snapshot in %s: every request answers 503 no_config until one arrives", c->state_dir);
    return c->current;
}

/* ---------------------------------------------------------------- apply */

static void reply(cph_control_reply_cb cb, void *cbdata, uint64_t tag, json_t *msg)
{
    if (msg == NULL)
        cph_fatal(MODULE, "out of memory");
    if (cb != NULL)
        cb(cbdata, tag, msg);
    json_decref(msg);
}

static void nack(cph_control_t *c, uint64_t version, const char *hash, const cph_error_t *err, cph_control_reply_cb cb,
                 void *cbdata, uint64_t tag)
{
    c->nacks++;
    cph_log_warn(MODULE, "nack version %llu: %s: %s (at '%s'); version %llu stays in force", (unsigned long long)version, err->code,
                 err->msg, err->path, (unsigned long long)c->applied.version);
    reply(cb, cbdata, tag, cph_msg_nack(version, hash, &c->applied, err));
}

static int persist(cph_control_t *c, const json_t *body)
{
    cph_error_t err;
    memset(&err, 0, sizeof(err));

    if (cph_persist_write(c->state_dir, c->applied.epoch, c->applied.version, c->applied.hash, body, c->file_ok, &err) != 0) {
        cph_log_error(MODULE, "persisting version %llu failed: %s", (unsigned long long)c->applied.version, err.msg);
        return 0;
    }
    c->file_ok = 1;
    return 1;
}

static void apply_next(cph_control_t *c);

static void finish_swap(cph_control_t *c)
{
    cph_snapshot_t *snap = c->swap.snap, *old = c->current;
    json_t *body = c->swap.body;
    int persisted;

    c->current = snap;
    if (old != NULL)
        cph_snapshot_release(old);
    set_applied(c, snap->epoch, snap->version, snap->hash, "cp");
    configure_redis(snap);
    configure_cache(snap);
    cph_health_configure(snap);
    persisted = persist(c, body);
    c->applies++;
    cph_observe_snapshot_applied(swap_build_ns, now_ns() - swap_started_ns);
    cph_log_info(MODULE, "applied version %llu (%s) on %u workers", (unsigned long long)snap->version, snap->hash,
                 c->server->num_workers);
    c->swap.snap = NULL;
    c->swap.body = NULL;
    reply(c->swap.cb, c->swap.cbdata, c->swap.tag,
          cph_msg_ack(snap->version, snap->hash, cph_control_now_ms() - c->swap.started_ms, persisted));
    json_decref(body);
    apply_next(c);
}

/* Same body as the one in force, under a maybe new identity: nothing to compile, nothing to swap. */
static void apply_same(cph_control_t *c, const char *epoch, uint64_t version, const char *hash, const json_t *body,
                       uint64_t started, cph_control_reply_cb cb, void *cbdata, uint64_t tag)
{
    int persisted = 1;

    if (strcmp(c->applied.epoch, epoch) != 0 || c->applied.version != version || strcmp(c->applied.source, "cp") != 0) {
        set_applied(c, epoch, version, hash, "cp");
        int keep = c->file_ok;
        c->file_ok = 0; /* same body: keep the older prev rather than a copy of this one */
        persisted = persist(c, body);
        if (!persisted)
            c->file_ok = keep;
    }
    c->applies++;
    reply(cb, cbdata, tag, cph_msg_ack(version, hash, cph_control_now_ms() - started, persisted));
}

void cph_control_apply(cph_control_t *c, const json_t *msg, cph_control_reply_cb cb, void *cbdata, uint64_t tag)
{
    const char *epoch = json_string_value(json_object_get(msg, "epoch"));
    const char *hash = json_string_value(json_object_get(msg, "hash"));
    uint64_t version = (uint64_t)json_integer_value(json_object_get(msg, "version"));
    json_int_t schema = json_integer_value(json_object_get(msg, "schema"));
    json_t *body = json_object_get(msg, "body");
    char computed[CPH_HASH_SIZE];
    cph_error_t err;
    memset(&err, 0, sizeof(err));
    uint64_t started = cph_control_now_ms(), started_ns = now_ns();

    if (c->swap.snap != NULL || c->draining) {
        if (c->queued.msg != NULL)
            json_decref(c->queued.msg); /* superseded: latest wins */
        c->queued.msg = json_incref((json_t *)msg);
        c->queued.cb = cb;
        c->queued.cbdata = cbdata;
        c->queued.tag = tag;
        return;
    }
    if (schema != CPH_SCHEMA_VERSION) {
        cph_error_set(&err, "invalid", "", "schema %lld is not supported (want %d)", (long long)schema, CPH_SCHEMA_VERSION);
        nack(c, version, hash, &err, cb, cbdata, tag);
        return;
    }
    if (cph_snapshot_hash(body, computed) != 0 || strcmp(computed, hash) != 0) {
        cph_error_set(&err, "hash_mismatch", "", "the hash of the body is not the announced hash");
        nack(c, version, hash, &err, cb, cbdata, tag);
        return;
    }
    if (c->current != NULL && strcmp(c->current->hash, hash) == 0) {
        apply_same(c, epoch, version, hash, body, started, cb, cbdata, tag);
        return;
    }
    uint64_t build_start_ns = now_ns();
    cph_snapshot_t *snap = check_limits(c, body, &err) == 0 ? cph_snapshot_build(body, epoch, version, hash, "cp", &err) : NULL;
    if (snap == NULL) {
        nack(c, version, hash, &err, cb, cbdata, tag);
        return;
    }
    swap_build_ns = now_ns() - build_start_ns;
    swap_started_ns = started_ns;
    c->swap.snap = snap;
    c->swap.body = json_incref(body);
    c->swap.remaining = c->server->num_workers;
    c->swap.started_ms = started;
    c->swap.cb = cb;
    c->swap.cbdata = cbdata;
    c->swap.tag = tag;
    cph_server_publish(c->server, snap);
}

static void apply_next(cph_control_t *c)
{
    json_t *msg = c->queued.msg;

    if (msg == NULL || c->draining)
        return;
    c->queued.msg = NULL;
    cph_control_apply(c, msg, c->queued.cb, c->queued.cbdata, c->queued.tag);
    json_decref(msg);
}

/* ---------------------------------------------------------------- worker notes and drain */

static void on_note(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    cph_control_t *c = H2O_STRUCT_FROM_MEMBER(cph_control_t, notify, receiver);

    while (!h2o_linklist_is_empty(messages)) {
        cph_worker_note_t *note = H2O_STRUCT_FROM_MEMBER(cph_worker_note_t, super.link, messages->next);
        h2o_linklist_unlink(&note->super.link);
        if (note->kind == CPH_NOTE_SWAPPED) {
            if (c->swap.snap != NULL && note->snap == c->swap.snap && --c->swap.remaining == 0)
                finish_swap(c);
        } else if (note->kind == CPH_NOTE_DRAINED) {
            if (++c->drained == c->server->num_workers) {
                cph_log_info(MODULE, "drained: every connection finished");
                c->exit = 1;
            }
        }
        free(note);
    }
}

static void on_drain_timeout(h2o_timeout_entry_t *entry)
{
    cph_control_t *c = H2O_STRUCT_FROM_MEMBER(cph_control_t, drain_entry, entry);

    cph_log_warn(MODULE, "drain timeout (%llu ms) with %u of %u workers still busy: exiting",
                 (unsigned long long)c->drain_timeout_ms, c->server->num_workers - c->drained, c->server->num_workers);
    c->exit = 1;
    c->forced = 1;
}

void cph_control_drain(cph_control_t *c)
{
    if (c->draining)
        return;
    c->draining = 1;
    cph_log_info(MODULE, "draining: listeners closed, waiting up to %llu ms for in-flight requests",
                 (unsigned long long)c->drain_timeout_ms);
    if (c->server == NULL) {
        c->exit = 1;
        return;
    }
    h2o_timeout_init(c->loop, &c->drain_timeout, c->drain_timeout_ms);
    c->drain_entry.cb = on_drain_timeout;
    h2o_timeout_link(c->loop, &c->drain_timeout, &c->drain_entry);
    cph_server_drain(c->server);
}

static void on_signal_read(h2o_socket_t *sock, const char *err)
{
    cph_control_t *c = sock->data;

    if (err != NULL) {
        cph_log_error(MODULE, "signalfd read failed: %s", err);
        h2o_socket_read_stop(sock);
        return;
    }
    h2o_buffer_consume(&sock->input, sock->input->size);
    cph_control_drain(c);
}

void cph_control_watch_signals(cph_control_t *c, uint64_t drain_timeout_ms)
{
    sigset_t set;
    int fd;

    c->drain_timeout_ms = drain_timeout_ms;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if ((fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1)
        cph_fatal(MODULE, "signalfd failed");
    c->signal_sock = h2o_evloop_socket_create(c->loop, fd, 0); /* h2o reads the siginfo records */
    c->signal_sock->data = c;
    h2o_socket_read_start(c->signal_sock, on_signal_read);
}

/* ---------------------------------------------------------------- lifecycle */

int cph_control_init(cph_control_t *c, const char *state_dir, cph_error_t *err)
{
    memset(c, 0, sizeof(*c));
    c->state_dir = state_dir;
    c->drain_timeout_ms = 10000;
    c->file_ok = 1;
    set_applied(c, "", 0, "", "none");
    if (cph_persist_ensure_dir(state_dir, err) != 0)
        return -1;
    c->loop = h2o_evloop_create();
    c->queue = h2o_multithread_create_queue(c->loop);
    h2o_multithread_register_receiver(c->queue, &c->notify, on_note);
    return 0;
}

void cph_control_attach(cph_control_t *c, cph_server_t *server)
{
    c->server = server;
}

int cph_control_run(cph_control_t *c)
{
    while (!c->exit)
        h2o_evloop_run(c->loop, INT32_MAX);
    if (c->server != NULL)
        cph_server_stop(c->server, c->forced);
    return c->forced;
}

void cph_control_dispose(cph_control_t *c)
{
    if (h2o_timeout_is_linked(&c->drain_entry))
        h2o_timeout_unlink(&c->drain_entry);
    if (c->draining)
        h2o_timeout_dispose(c->loop, &c->drain_timeout);
    if (c->signal_sock != NULL)
        h2o_socket_close(c->signal_sock);
    if (c->current != NULL)
        cph_snapshot_release(c->current);
    if (c->swap.snap != NULL)
        cph_snapshot_release(c->swap.snap);
    json_decref(c->swap.body);
    json_decref(c->queued.msg);
    h2o_multithread_unregister_receiver(c->queue, &c->notify);
    h2o_multithread_destroy_queue(c->queue);
    h2o_evloop_destroy(c->loop);
}
