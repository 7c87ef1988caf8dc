/*
 * dpsession: the protocol a data plane session follows on the control plane (PROTOCOL.md section 4), and the status
 * rows the admin API lists.
 *
 * A session must open with hello; the answer is welcome, then the latest snapshot unless the data plane already runs
 * it (same epoch, version and hash; a data plane with the same body under another version still gets the snapshot
 * message and acks it at once, so its version moves on). At most one snapshot is in flight per session: publishes
 * made meanwhile only replace server->latest, and the ack or nack sends whatever is latest then, so intermediate
 * versions are skipped. A nacked version is remembered per dp_id, across reconnects, and never sent to it again.
 *
 * Every data plane has a row keyed by dp_id that outlives its connection, so the admin API can show what it runs,
 * why it refused a snapshot and when it was last seen; rows of disconnected data planes are capped, the oldest go
 * first. cph_dpserver_wait_applied() waits on server->changed, broadcast on every hello, ack, nack and disconnect.
 *
 * A ping may carry the data plane's cumulative shadow-rule counters ("shadow", docs/access.md section 4). The row keeps the last
 * set its connected session reported - parsed defensively, capped, and dropped at disconnect - and
 * cph_dpserver_shadow_stats() sums them over the connected data planes for GET /api/v1/authz/shadow.
 *
 * A `health` message (PROTOCOL.md section 3: the data plane's upstream health report) is a type cph_msg_check() does
 * not know, so it is picked out before the unknown-type rule ignores it. Its "services" are rebuilt by
 * cph_api_health_sanitize() outside the lock (a report can be large); the row keeps the last good one with its
 * arrival time, until the session ends. A report that is refused, or comes before hello, is dropped with a log line
 * limited to one every HEALTH_LOG_MS (plus how many were dropped silently meanwhile); the session goes on.
 *
 * After hello's welcome and snapshot, the purges dpserver.c keeps are replayed to the session.
 *
 * cph_dpserver_summary() gives GET /api/v1/health and GET /metrics each row's lag: how many versions it is behind the
 * latest published one (a data plane running another epoch's snapshot, or none, counts as having none of ours). It is
 * computed from what the data plane reported (hello, ack, nack), copied under the lock and formatted by the caller.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "controlplane/api_health.h"
#include "controlplane/dpserver_internal.h"
#include "proto/log.h"

#define MODULE "cp/dpsession"
#define HEALTH_LOG_MS 10000

static const char *status_names[] = {"synced", "applying", "nacked", "disconnected"};

/* ---------------------------------------------------------------- rows */

static void row_free(cph_dprow_t *row)
{
    json_decref(row->health);
    free(row->shadow);
    json_decref(row->last_error);
    free(row->id);
    free(row);
}

void cph_dpsession_free_rows(cph_dpserver_t *s)
{
    size_t i;

    for (i = 0; i != s->num_rows; ++i)
        row_free(s->rows[i]);
    free(s->rows);
    s->rows = NULL;
    s->num_rows = s->cap_rows = 0;
}

static cph_dprow_t *find_or_add_row(cph_dpserver_t *s, const char *id)
{
    cph_dprow_t *row;
    size_t i;

    for (i = 0; i != s->num_rows; ++i)
        if (strcmp(s->rows[i]->id, id) == 0)
            return s->rows[i];
    if (s->num_rows == s->cap_rows) {
        s->cap_rows = s->cap_rows == 0 ? 16 : s->cap_rows * 2;
        if ((s->rows = realloc(s->rows, s->cap_rows * sizeof(*s->rows))) == NULL)
            cph_fatal(MODULE, "out of memory");
    }
    if ((row = calloc(1, sizeof(*row))) == NULL || (row->id = strdup(id)) == NULL)
        cph_fatal(MODULE, "out of memory");
    row->status = CPH_DPSTATUS_DISCONNECTED;
    s->rows[s->num_rows++] = row;
    return row;
}

/* Forgets the longest-gone disconnected rows beyond CPH_DPSERVER_MAX_DISCONNECTED. */
static void evict_rows(cph_dpserver_t *s)
{
    for (;;) {
        size_t i, num_gone = 0, oldest = SIZE_MAX;
        for (i = 0; i != s->num_rows; ++i) {
            if (s->rows[i]->session != NULL)
                continue;
            ++num_gone;
            if (oldest == SIZE_MAX || s->rows[i]->gone_seq < s->rows[oldest]->gone_seq)
                oldest = i;
        }
        if (num_gone <= CPH_DPSERVER_MAX_DISCONNECTED)
            return;
        row_free(s->rows[oldest]);
        s->rows[oldest] = s->rows[--s->num_rows];
    }
}

static int is_nacked(const cph_dprow_t *row, uint64_t version)
{
    size_t i;

    for (i = 0; i != row->num_nacked; ++i)
        if (row->nacked[i] == version)
            return 1;
    return 0;
}

static void remember_nack(cph_dprow_t *row, uint64_t version)
{
    if (is_nacked(row, version))
        return;
    row->nacked[row->nacked_next] = version;
    row->nacked_next = (row->nacked_next + 1) % CPH_DPSERVER_MAX_NACKED;
    if (row->num_nacked < CPH_DPSERVER_MAX_NACKED)
        ++row->num_nacked;
}

static void note_answered(cph_dprow_t *row, uint64_t version)
{
    if (!row->answered_any || version > row->answered)
        row->answered = version;
    row->answered_any = 1;
}

/* Copies at most max bytes of src, cut on a UTF-8 character boundary so the result is still valid UTF-8. */
static void copy_utf8(char *dst, size_t max, const char *src)
{
    size_t len = strlen(src);

    if (len > max) {
        len = max;
        while (len > 0 && ((unsigned char)src[len] & 0xC0) == 0x80)
            --len;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static json_t *short_string(const json_t *v)
{
    char buf[CPH_DPSERVER_ERROR_STR_MAX + 1];
    json_t *out;

    copy_utf8(buf, CPH_DPSERVER_ERROR_STR_MAX, json_string_value(v) != NULL ? json_string_value(v) : "");
    if ((out = json_string(buf)) == NULL)
        cph_fatal(MODULE, "out of memory");
    return out;
}

static void set_applied(cph_dprow_t *row, const cph_applied_t *a)
{
    if (strcmp(row->applied.epoch, a->epoch) != 0 || row->applied.version != a->version ||
        strcmp(row->applied.hash, a->hash) != 0 || strcmp(row->applied.source, a->source) != 0 || row->applied_at_wall_ms == 0)
        row->applied_at_wall_ms = cph_dpserver_wall_ms();
    row->applied = *a;
}

/* ---------------------------------------------------------------- snapshot pushing */

static int runs_latest(const cph_dpserver_t *s, const cph_dpsession_t *sess)
{
    return strcmp(sess->has.epoch, s->epoch) == 0 && sess->has.version == s->latest_version &&
           strcmp(sess->has.hash, s->latest_hash) == 0;
}

void cph_dpsession_push_latest(cph_dpserver_t *s, cph_dpsession_t *sess)
{
    if (s->latest == NULL || sess->inflight || sess->dead || !sess->hello_done || runs_latest(s, sess) ||
        is_nacked(sess->row, s->latest_version))
        return;
    sess->inflight = 1;
    sess->inflight_version = s->latest_version;
    memcpy(sess->inflight_hash, s->latest_hash, sizeof(sess->inflight_hash));
    sess->row->status = CPH_DPSTATUS_APPLYING;
    cph_log_debug(MODULE, "sending version %llu to %s", (unsigned long long)s->latest_version, sess->row->id);
    cph_dpsession_send(sess, s->latest);
}

/* Pushes the latest if it can, then sets the status from what is in flight and what was refused. */
static void push_and_settle(cph_dpserver_t *s, cph_dpsession_t *sess)
{
    cph_dprow_t *row = sess->row;

    cph_dpsession_push_latest(s, sess);
    if (sess->inflight)
        row->status = CPH_DPSTATUS_APPLYING;
    else if (s->latest != NULL && is_nacked(row, s->latest_version) && !runs_latest(s, sess))
        row->status = CPH_DPSTATUS_NACKED;
    else
        row->status = CPH_DPSTATUS_SYNCED;
}

/* ---------------------------------------------------------------- shadow-rule counters */

static void clear_shadow(cph_dprow_t *row)
{
    free(row->shadow);
    row->shadow = NULL;
    row->num_shadow = 0;
}

/* A canonical decimal rule id: 1 to 18 digits, no leading zero (so two keys never name one id). 0 when not. */
static int64_t shadow_key_id(const char *key)
{
    int64_t id = 0;
    size_t i, len = strlen(key);

    if (len == 0 || len > 18 || key[0] == '0')
        return 0;
    for (i = 0; i != len; ++i) {
        if (key[i] < '0' || key[i] > '9')
            return 0;
        id = id * 10 + (key[i] - '0');
    }
    return id;
}

static int shadow_count(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int cmp_shadow(const void *a, const void *b)
{
    int64_t x = ((const cph_dpshadow_t *)a)->id, y = ((const cph_dpshadow_t *)b)->id;

    return x < y ? -1 : x > y;
}

int cph_dpsession_parse_shadow(const json_t *v, cph_dpshadow_t **out, size_t *num)
{
    const char *key;
    json_t *val;
    cph_dpshadow_t e;
    size_t cap;

    *out = NULL;
    *num = 0;
    if (!json_is_object(v))
        return -1;
    cap = json_object_size(v) < CPH_DPSERVER_MAX_SHADOW ? json_object_size(v) : CPH_DPSERVER_MAX_SHADOW;
    if (cap == 0)
        return 0;
    if ((*out = malloc(cap * sizeof(**out))) == NULL)
        cph_fatal(MODULE, "out of memory");
    json_object_foreach((json_t *)v, key, val)
    {
        if (*num == cap)
            break;
        if ((e.id = shadow_key_id(key)) == 0 || !json_is_array(val) || json_array_size(val) != 2 ||
            shadow_count(json_array_get(val, 0), &e.would_allow) != 0 || shadow_count(json_array_get(val, 1), &e.would_deny) != 0)
            continue;
        (*out)[(*num)++] = e;
    }
    if (*num == 0) {
        free(*out);
        *out = NULL;
    } else {
        qsort(*out, *num, sizeof(**out), cmp_shadow);
    }
    return (int)*num;
}

/* A ping's "shadow": absent means no counts yet; a value that is not an object is ignored (the last set stays). */
static void on_ping_shadow(cph_dprow_t *row, const json_t *v)
{
    cph_dpshadow_t *list;
    size_t num;

    if (v == NULL) {
        clear_shadow(row);
        return;
    }
    if (cph_dpsession_parse_shadow(v, &list, &num) < 0) {
        cph_log_debug(MODULE, "data plane %s sent a ping whose \"shadow\" is not an object; ignored", row->id);
        return;
    }
    free(row->shadow);
    row->shadow = list;
    row->num_shadow = num;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a + b < a || a + b > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : a + b;
}

/* Every connected row's entries, concatenated (lock held). */
static cph_dpshadow_t *gather_shadow(const cph_dpserver_t *s, size_t *num)
{
    cph_dpshadow_t *all = NULL;
    size_t i, total = 0;

    for (i = 0; i != s->num_rows; ++i)
        if (s->rows[i]->session != NULL)
            total += s->rows[i]->num_shadow;
    *num = 0;
    if (total == 0)
        return NULL;
    if ((all = malloc(total * sizeof(*all))) == NULL)
        cph_fatal(MODULE, "out of memory");
    for (i = 0; i != s->num_rows; ++i) {
        const cph_dprow_t *row = s->rows[i];
        if (row->session == NULL || row->num_shadow == 0)
            continue;
        memcpy(all + *num, row->shadow, row->num_shadow * sizeof(*all));
        *num += row->num_shadow;
    }
    return all;
}

json_t *cph_dpserver_shadow_stats(cph_dpserver_t *s)
{
    cph_dpshadow_t *all;
    json_t *arr = json_array(), *res;
    size_t i, j, num;

    if (arr == NULL)
        cph_fatal(MODULE, "out of memory");
    pthread_mutex_lock(&s->lock);
    all = gather_shadow(s, &num);
    pthread_mutex_unlock(&s->lock);
    if (num > 1)
        qsort(all, num, sizeof(*all), cmp_shadow);
    for (i = 0; i != num; i = j) {
        uint64_t allow = all[i].would_allow, deny = all[i].would_deny;
        for (j = i + 1; j != num && all[j].id == all[i].id; ++j) {
            allow = add_sat(allow, all[j].would_allow);
            deny = add_sat(deny, all[j].would_deny);
        }
        if (json_array_append_new(arr, json_pack("{s:I, s:I, s:I}", "id", (json_int_t)all[i].id, "would_allow",
                                                 (json_int_t)add_sat(allow, 0), "would_deny", (json_int_t)add_sat(deny, 0))) != 0)
            cph_fatal(MODULE, "out of memory");
    }
    free(all);
    if ((res = json_pack("{s:o}", "endpoints", arr)) == NULL)
        cph_fatal(MODULE, "out of memory");
    return res;
}

/* ---------------------------------------------------------------- health reports */

static void clear_health(cph_dprow_t *row)
{
    json_decref(row->health);
    row->health = NULL;
    row->health_at_wall_ms = 0;
}

static int is_health(const json_t *msg)
{
    const json_t *type = json_object_get(msg, "type");

    return json_is_string(type) && json_string_length(type) == 6 && strcmp(json_string_value(type), "health") == 0;
}

/* Server thread: a dropped report's log line, at most one per HEALTH_LOG_MS. */
static void health_log(cph_dpserver_t *s, const cph_dpsession_t *sess, const char *why, const cph_error_t *err)
{
    uint64_t now = cph_dpserver_now_ms();

    if (s->health_log_ms != 0 && now - s->health_log_ms < HEALTH_LOG_MS) {
        ++s->health_log_dropped;
        return;
    }
    cph_log_warn(MODULE, "dropped a health report from data plane %s: %s (at %s; %llu more dropped since the last such line)",
                 sess->row != NULL ? sess->row->id : "(no hello)", why, err != NULL && err->path[0] != '\0' ? err->path : "/",
                 (unsigned long long)s->health_log_dropped);
    s->health_log_ms = now;
    s->health_log_dropped = 0;
}

static void on_health(cph_dpserver_t *s, cph_dpsession_t *sess, const json_t *msg)
{
    cph_error_t err;
    json_t *services;

    if (!sess->hello_done) {
        health_log(s, sess, "it came before hello", NULL);
        return;
    }
    memset(&err, 0, sizeof(err));
    if ((services = cph_api_health_sanitize(json_object_get(msg, "services"), &err)) == NULL) {
        health_log(s, sess, err.msg, &err);
        return;
    }
    pthread_mutex_lock(&s->lock);
    if (sess->row != NULL && sess->row->session == sess) {
        json_decref(sess->row->health);
        sess->row->health = services;
        sess->row->health_at_wall_ms = sess->row->last_seen_wall_ms = cph_dpserver_wall_ms();
        services = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    json_decref(services);
}

/* ---------------------------------------------------------------- messages */

static void on_hello(cph_dpserver_t *s, cph_dpsession_t *sess, const json_t *msg)
{
    const char *id = json_string_value(json_object_get(msg, "dp_id"));
    cph_dprow_t *row = find_or_add_row(s, id);

    if (row->session != NULL && row->session != sess) {
        cph_log_info(MODULE, "data plane %s connected again; the newer session wins", id);
        cph_dpsession_fail(row->session, "replaced", "a newer session with the same dp_id connected");
    }
    row->session = sess;
    sess->row = row;
    sess->hello_done = 1;
    clear_shadow(row); /* counts of a previous session (or process) are not this one's */
    clear_health(row);
    memset(&row->traffic, 0, sizeof(row->traffic));
    copy_utf8(row->hostname, CPH_DPSERVER_HOSTNAME_MAX, json_string_value(json_object_get(msg, "hostname")));
    copy_utf8(row->software, CPH_DPSERVER_HOSTNAME_MAX, json_string_value(json_object_get(msg, "software")));
    row->pid = (long)json_integer_value(json_object_get(msg, "pid"));
    if (cph_applied_from_json(json_object_get(msg, "applied"), &sess->has) != 0)
        memset(&sess->has, 0, sizeof(sess->has)); /* cannot happen: cph_msg_check() passed */
    set_applied(row, &sess->has);
    cph_dpsession_send_msg(sess, cph_msg_welcome(s->epoch, s->heartbeat_ms));
    push_and_settle(s, sess);
    /* nothing to send means the data plane is as current as it can get */
    if (!sess->inflight)
        note_answered(row, strcmp(sess->has.epoch, s->epoch) == 0 ? sess->has.version : 0);
    sess->replay_next = s->replay_first;
    sess->replay_end = s->replay_end;
    cph_dpsession_replay_purges(s, sess); /* behind the snapshot */
    cph_log_info(MODULE, "data plane %s connected (pid %ld, applied version %llu from %s)", id, row->pid,
                 (unsigned long long)sess->has.version, sess->has.source);
}

/* 0 when (version, hash) of an ack or nack is the snapshot in flight; otherwise fails the session. */
static int check_answer(cph_dpsession_t *sess, const json_t *msg, const char *type)
{
    uint64_t version = (uint64_t)json_integer_value(json_object_get(msg, "version"));
    const char *hash = json_string_value(json_object_get(msg, "hash"));

    if (sess->inflight && version == sess->inflight_version && strcmp(hash, sess->inflight_hash) == 0)
        return 0;
    cph_dpsession_fail(sess, "unexpected", "%s for version %llu, which is not the snapshot in flight", type,
                       (unsigned long long)version);
    return -1;
}

static void on_ack(cph_dpserver_t *s, cph_dpsession_t *sess, const json_t *msg)
{
    cph_dprow_t *row = sess->row;

    if (check_answer(sess, msg, "ack") != 0)
        return;
    sess->inflight = 0;
    snprintf(sess->has.epoch, sizeof(sess->has.epoch), "%s", s->epoch);
    sess->has.version = sess->inflight_version;
    memcpy(sess->has.hash, sess->inflight_hash, sizeof(sess->has.hash));
    snprintf(sess->has.source, sizeof(sess->has.source), "cp");
    set_applied(row, &sess->has);
    json_decref(row->last_error);
    row->last_error = NULL;
    note_answered(row, sess->inflight_version);
    cph_log_info(MODULE, "data plane %s applied version %llu in %lld ms", row->id, (unsigned long long)sess->has.version,
                 (long long)json_integer_value(json_object_get(msg, "apply_ms")));
    push_and_settle(s, sess);
}

static void on_nack(cph_dpserver_t *s, cph_dpsession_t *sess, const json_t *msg)
{
    cph_dprow_t *row = sess->row;
    const json_t *e = json_object_get(msg, "error");

    if (check_answer(sess, msg, "nack") != 0)
        return;
    sess->inflight = 0;
    remember_nack(row, sess->inflight_version);
    note_answered(row, sess->inflight_version);
    if (cph_applied_from_json(json_object_get(msg, "applied"), &sess->has) == 0)
        set_applied(row, &sess->has);
    json_decref(row->last_error);
    row->last_error = json_pack("{s:o, s:o, s:o, s:I}", "code", short_string(json_object_get(e, "code")), "path",
                                short_string(json_object_get(e, "path")), "message", short_string(json_object_get(e, "message")),
                                "version", (json_int_t)sess->inflight_version);
    if (row->last_error == NULL)
        cph_fatal(MODULE, "out of memory");
    cph_log_warn(MODULE, "data plane %s refused version %llu", row->id, (unsigned long long)sess->inflight_version);
    push_and_settle(s, sess);
    if (row->status == CPH_DPSTATUS_SYNCED)
        row->status = CPH_DPSTATUS_NACKED; /* the last word on the latest it was offered is a refusal */
}

static void dispatch(cph_dpserver_t *s, cph_dpsession_t *sess, const json_t *msg, cph_msg_type_t type)
{
    switch (type) {
    case CPH_MSG_HELLO:
        if (sess->hello_done)
            cph_dpsession_fail(sess, "unexpected", "hello was already received on this connection");
        else
            on_hello(s, sess, msg);
        break;
    case CPH_MSG_ACK:
        on_ack(s, sess, msg);
        break;
    case CPH_MSG_NACK:
        on_nack(s, sess, msg);
        break;
    case CPH_MSG_PING:
        on_ping_shadow(sess->row, json_object_get(msg, "shadow"));
        if (cph_dptraffic_on_ping(&sess->row->traffic, json_object_get(msg, "traffic"), cph_dpserver_now_ms()) != 0)
            cph_log_debug(MODULE, "data plane %s sent a ping whose \"traffic\" is malformed; ignored", sess->row->id);
        cph_dpsession_send_msg(sess, cph_msg_pong((uint64_t)json_integer_value(json_object_get(msg, "seq"))));
        break;
    case CPH_MSG_ERROR:
        cph_log_warn(MODULE, "data plane %s sent an error and closes: %s", sess->row->id,
                     json_string_value(json_object_get(msg, "code")));
        sess->dead = 1;
        break;
    default:
        cph_dpsession_fail(sess, "unexpected", "a data plane must not send \"%s\"",
                           json_string_value(json_object_get(msg, "type")));
        break;
    }
}

void cph_dpsession_on_message(cph_dpserver_t *s, cph_dpsession_t *sess, json_t *msg)
{
    cph_msg_type_t type = cph_msg_type(msg);
    cph_error_t err;

    if (is_health(msg)) { /* by name: whether or not the message table ever learns the type */
        on_health(s, sess, msg);
        return;
    }
    if (type == CPH_MSG_UNKNOWN)
        return; /* forward compatibility */
    pthread_mutex_lock(&s->lock);
    if (cph_msg_check(msg, &err) != 0) {
        cph_dpsession_fail(sess, err.code, "%s (at %s)", err.msg, err.path[0] != '\0' ? err.path : "/");
    } else if (!sess->hello_done && type != CPH_MSG_HELLO) {
        cph_dpsession_fail(sess, "unexpected", "the first message must be hello");
    } else {
        dispatch(s, sess, msg, type);
        if (sess->row != NULL && sess->row->session == sess)
            sess->row->last_seen_wall_ms = cph_dpserver_wall_ms();
    }
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
}

void cph_dpsession_on_close(cph_dpserver_t *s, cph_dpsession_t *sess)
{
    cph_dprow_t *row = sess->row;

    if (row != NULL && row->session == sess) {
        row->session = NULL;
        clear_shadow(row);
        clear_health(row);
        memset(&row->traffic, 0, sizeof(row->traffic)); /* no rates for a data plane we do not hear from */
        row->status = CPH_DPSTATUS_DISCONNECTED;
        row->last_seen_wall_ms = cph_dpserver_wall_ms();
        row->gone_seq = ++s->num_disconnects;
        cph_log_info(MODULE, "data plane %s disconnected", row->id);
        evict_rows(s);
    }
    sess->row = NULL;
    pthread_cond_broadcast(&s->changed);
}

/* ---------------------------------------------------------------- admin view */

/* RFC 3339 UTC with milliseconds, or JSON null for 0 (never). */
static json_t *rfc3339(uint64_t wall_ms)
{
    char buf[40];
    struct tm tm;
    time_t t = (time_t)(wall_ms / 1000);

    if (wall_ms == 0)
        return json_null();
    gmtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), ".%03uZ", (unsigned)(wall_ms % 1000));
    return json_string(buf);
}

/* A deep copy (JSON null for NULL): what another thread gets must share nothing with the rows. */
static json_t *private_copy(const json_t *v)
{
    json_t *copy = v != NULL ? json_deep_copy(v) : json_null();

    if (copy == NULL)
        cph_fatal(MODULE, "out of memory");
    return copy;
}

/* v, or fatal when building it ran out of memory. */
static json_t *packed(json_t *v)
{
    if (v == NULL)
        cph_fatal(MODULE, "out of memory");
    return v;
}

/* The whole row, for GET /api/v1/dataplanes. */
static json_t *row_json(const cph_dpserver_t *s, const cph_dprow_t *row)
{
    const cph_applied_t *a = &row->applied;
    json_t *applied = json_pack("{s:s, s:I, s:s, s:s, s:o}", "epoch", a->epoch, "version", (json_int_t)a->version, "hash", a->hash,
                                "source", a->source[0] != '\0' ? a->source : "none", "at", rfc3339(row->applied_at_wall_ms));

    (void)s;
    return packed(json_pack("{s:s, s:s, s:s, s:I, s:b, s:o, s:s, s:o, s:o, s:o}", "id", row->id, "hostname", row->hostname,
                            "software", row->software, "pid", (json_int_t)row->pid, "connected", row->session != NULL, "last_seen",
                            rfc3339(row->last_seen_wall_ms), "status", status_names[row->status], "applied", applied, "last_error",
                            private_copy(row->last_error), "traffic", cph_dptraffic_json(&row->traffic)));
}

/* The last upstream health report of a connected row (NULL: skipped). */
static json_t *health_json(const cph_dpserver_t *s, const cph_dprow_t *row)
{
    (void)s;
    if (row->session == NULL)
        return NULL;
    return packed(json_pack("{s:s, s:o, s:o}", "dp_id", row->id, "received_at", rfc3339(row->health_at_wall_ms), "services",
                            row->health != NULL ? private_copy(row->health) : json_array()));
}

/* Versions row is behind latest (lock held): a data plane that runs another epoch's snapshot, or none, has none of ours. */
static uint64_t row_lag(const cph_dpserver_t *s, const cph_dprow_t *row)
{
    if (strcmp(row->applied.epoch, s->epoch) != 0)
        return s->latest_version;
    return row->applied.version < s->latest_version ? s->latest_version - row->applied.version : 0;
}

/* The short form of a row, for the dashboard. */
static json_t *summary_json(const cph_dpserver_t *s, const cph_dprow_t *row)
{
    return packed(json_pack("{s:s, s:b, s:s, s:I, s:I, s:o}", "id", row->id, "connected", row->session != NULL, "status",
                            status_names[row->status], "version", (json_int_t)row->applied.version, "lag",
                            (json_int_t)row_lag(s, row), "last_seen", rfc3339(row->last_seen_wall_ms)));
}

static int cmp_rows(const void *a, const void *b)
{
    return strcmp((*(cph_dprow_t *const *)a)->id, (*(cph_dprow_t *const *)b)->id);
}

/* Lock held: every row, sorted by id, mapped by fn into a new array (a row fn maps to NULL is left out). */
static json_t *rows_json(cph_dpserver_t *s, json_t *(*fn)(const cph_dpserver_t *, const cph_dprow_t *))
{
    json_t *arr = json_array(), *v;

    if (arr == NULL)
        cph_fatal(MODULE, "out of memory");
    if (s->num_rows > 1) /* qsort's pointer must not be NULL, even for zero rows */
        qsort(s->rows, s->num_rows, sizeof(*s->rows), cmp_rows);
    for (size_t i = 0; i != s->num_rows; ++i) {
        if ((v = fn(s, s->rows[i])) != NULL && json_array_append_new(arr, v) != 0)
            cph_fatal(MODULE, "out of memory");
    }
    return arr;
}

/* Connected rows (lock held). */
static size_t num_connected(const cph_dpserver_t *s)
{
    size_t n = 0;

    for (size_t i = 0; i != s->num_rows; ++i)
        n += s->rows[i]->session != NULL;
    return n;
}

/* rows_json under the lock. */
static json_t *rows_json_locked(cph_dpserver_t *s, json_t *(*fn)(const cph_dpserver_t *, const cph_dprow_t *))
{
    json_t *arr;

    pthread_mutex_lock(&s->lock);
    arr = rows_json(s, fn);
    pthread_mutex_unlock(&s->lock);
    return arr;
}

json_t *cph_dpserver_list(cph_dpserver_t *s)
{
    return rows_json_locked(s, row_json);
}

json_t *cph_dpserver_health(cph_dpserver_t *s)
{
    return rows_json_locked(s, health_json);
}

json_t *cph_dpserver_summary(cph_dpserver_t *s)
{
    json_t *arr, *out;
    size_t connected;
    uint64_t latest;

    pthread_mutex_lock(&s->lock);
    arr = rows_json(s, summary_json);
    connected = num_connected(s);
    latest = s->latest_version;
    pthread_mutex_unlock(&s->lock);
    if ((out = json_pack("{s:I, s:I, s:o}", "latest_version", (json_int_t)latest, "connected", (json_int_t)connected, "dataplanes",
                         arr)) == NULL)
        cph_fatal(MODULE, "out of memory");
    return out;
}

size_t cph_dpserver_num_connected(cph_dpserver_t *s)
{
    size_t n;

    pthread_mutex_lock(&s->lock);
    n = num_connected(s);
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* ---------------------------------------------------------------- ?wait=applied */

static int all_answered(const cph_dpserver_t *s, uint64_t version)
{
    size_t i;

    for (i = 0; i != s->num_rows; ++i) {
        const cph_dprow_t *row = s->rows[i];
        if (row->session != NULL && (!row->answered_any || row->answered < version))
            return 0;
    }
    return 1;
}

static json_t *wait_result(const cph_dpserver_t *s, int settled)
{
    json_t *arr = json_array(), *res;
    size_t i;

    for (i = 0; arr != NULL && i != s->num_rows; ++i) {
        const cph_dprow_t *row = s->rows[i];
        json_t *v;
        if (row->session == NULL)
            continue;
        v = json_pack("{s:s, s:s, s:I}", "id", row->id, "status", status_names[row->status], "version",
                      (json_int_t)row->applied.version);
        if (v == NULL)
            cph_fatal(MODULE, "out of memory");
        if (row->status == CPH_DPSTATUS_NACKED && row->last_error != NULL)
            json_object_set_new(v, "error", private_copy(row->last_error));
        json_array_append_new(arr, v);
    }
    if (arr == NULL || (res = json_pack("{s:b, s:o}", "settled", settled, "dataplanes", arr)) == NULL)
        cph_fatal(MODULE, "out of memory");
    return res;
}

json_t *cph_dpserver_wait_applied(cph_dpserver_t *s, uint64_t version, uint64_t timeout_ms)
{
    struct timespec deadline;
    json_t *res;
    int settled;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (timeout_ms > 24 * 3600 * 1000)
        timeout_ms = 24 * 3600 * 1000;
    deadline.tv_sec += (time_t)(timeout_ms / 1000);
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&s->lock);
    while (!(settled = all_answered(s, version)) && !s->stopping)
        if (pthread_cond_timedwait(&s->changed, &s->lock, &deadline) != 0) {
            settled = all_answered(s, version);
            break;
        }
    res = wait_result(s, settled);
    pthread_mutex_unlock(&s->lock);
    return res;
}
