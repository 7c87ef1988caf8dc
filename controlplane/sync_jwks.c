/*
 * sync_jwks: fetches the external issuers' JWKS documents and stores their keys (sync_jwks.h).
 *
 * One thread, waking once a second (or at once on stop), looks at the issuers table, fetches what is due outside the
 * database lock, and writes what changed: new keys go through cph_db_write like an admin write (actor "sync", an audit
 * row, a new snapshot version, ?wait=applied semantics for whoever polls), because they change what the data planes
 * accept; an unchanged document or a failure only touches fetched_at / last_error, which are not in the snapshot,
 * so a healthy issuer refreshing every five minutes never bumps the version. A failure keeps the last-known-good keys:
 * an identity provider being down must not log everybody out.
 *
 * The URL is the admin's, the server is not ours: the transfer is held by http_client.c (http/https, no redirects,
 * short timeouts) to a 256 KiB answer, and the document is read as hostile by jwks_import.c. Logs name the issuer,
 * never the keys; the URL is not logged either (it may carry a token in its query).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "controlplane/http_client.h"
#include "controlplane/jwks_import.h"
#include "controlplane/store_issuer.h"
#include "controlplane/sync_jwks.h"
#include "proto/log.h"

#define MODULE "cp/sync_jwks"
#define WHY_MAX 256
#define STATES_MAX 64

/* When one issuer is next due (monotonic seconds) and its backoff; reset when its row's updated_at changes. */
typedef struct st_state_t {
    int64_t id;
    char updated_at[40];
    int64_t next_at;
    int64_t backoff;
} state_t;

struct st_cph_sync_jwks_t {
    cph_db_t *db;
    pthread_t thread;
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    atomic_int stop;
    state_t states[STATES_MAX];
    size_t num_states;
};

/* ---------------------------------------------------------------- fetch */

int cph_sync_jwks_fetch(const char *url, atomic_int *stop, char **body, size_t *len, char *why, size_t why_cap)
{
    cph_http_opts_t o = {CPH_JWKS_CONNECT_TIMEOUT_S * 1000L, CPH_JWKS_TIMEOUT_S * 1000L, stop, NULL};
    cph_http_buf_t b = CPH_HTTP_BUF_INIT(CPH_JWKS_DOC_MAX, 0);
    long status = 0;
    CURLcode rc;

    *body = NULL, *len = 0;
    rc = cph_http_call("GET", url, NULL, &o, &status, &b);
    if (rc == CURLE_FAILED_INIT)
        snprintf(why, why_cap, "cannot start an HTTP client");
    else if (rc == CURLE_FILESIZE_EXCEEDED)
        snprintf(why, why_cap, "the JWKS document is over %d bytes", CPH_JWKS_DOC_MAX);
    else if (rc != CURLE_OK)
        snprintf(why, why_cap, "fetching the JWKS failed: %s", curl_easy_strerror(rc));
    else if (status != 200)
        snprintf(why, why_cap, "the JWKS URL answered HTTP %ld", status);
    if (rc != CURLE_OK || status != 200) {
        cph_http_buf_free(&b);
        return -1;
    }
    *body = b.data != NULL ? b.data : strdup("");
    *len = b.len;
    return 0;
}

/* ---------------------------------------------------------------- apply */

typedef struct st_keys_write_t {
    const json_t *row;
    const json_t *keys;
} keys_write_t;

static int on_keys(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    keys_write_t *w = p;
    int64_t id = json_integer_value(json_object_get(w->row, "id"));
    char key[24];

    snprintf(key, sizeof(key), "%lld", (long long)id);
    if ((change->before = cph_store_issuer_get(db, key, err)) == NULL ||
        cph_store_issuer_set_keys(db, id, json_string_value(json_object_get(w->row, "jwks_url")),
                                  json_string_value(json_object_get(w->row, "updated_at")), w->keys, err) != 0 ||
        (change->after = cph_store_issuer_get(db, key, err)) == NULL)
        return -1;
    change->action = "update";
    change->entity_type = "issuer";
    change->entity_id = id;
    return 0;
}

/* Records a fetch that wrote no key (why NULL: a success) under the lock. */
static void set_status(cph_db_t *db, const json_t *row, const char *why)
{
    cph_error_t err;

    cph_db_lock(db);
    if (cph_store_issuer_set_status(db, json_integer_value(json_object_get(row, "id")), why, &err) != 0)
        cph_log_warn(MODULE, "issuer %s: cannot record the fetch: %s", json_string_value(json_object_get(row, "name")), err.msg);
    cph_db_unlock(db);
}

int cph_sync_jwks_apply(cph_db_t *db, const json_t *row, const char *doc, size_t len, char *why, size_t why_cap)
{
    keys_write_t w = {row, NULL};
    json_t *keys = NULL;
    cph_error_t err;
    uint64_t version;
    int ret = -1;

    memset(&err, 0, sizeof(err));
    if (doc == NULL || cph_jwks_import(doc, len, &keys, why, why_cap) != 0) {
        set_status(db, row, why);
        return -1;
    }
    if (json_equal(keys, json_object_get(row, "jwks"))) {
        set_status(db, row, NULL);
        ret = 0;
        goto Exit;
    }
    w.keys = keys;
    if (cph_db_write(db, "sync", on_keys, &w, &version, &err) != 0) {
        snprintf(why, why_cap, "the keys were not stored: %s", err.msg);
        if (strcmp(err.code, "conflict") != 0) /* stale: the admin changed the issuer; its next fetch is due at once */
            set_status(db, row, why);
        goto Exit;
    }
    cph_log_info(MODULE, "issuer %s: %zu keys, snapshot version %llu", json_string_value(json_object_get(row, "name")),
                 json_array_size(keys), (unsigned long long)version);
    ret = 1;
Exit:
    json_decref(keys);
    return ret;
}

/* ---------------------------------------------------------------- the thread */

static int64_t now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

/* The state of row's issuer, created (due now) or reset when the admin changed the row. */
static state_t *state_of(cph_sync_jwks_t *s, const json_t *row)
{
    int64_t id = json_integer_value(json_object_get(row, "id"));
    const char *updated = json_string_value(json_object_get(row, "updated_at"));
    state_t *st = NULL;

    for (size_t i = 0; i != s->num_states && st == NULL; ++i)
        if (s->states[i].id == id)
            st = &s->states[i];
    if (st == NULL) {
        if (s->num_states == STATES_MAX) /* forget the oldest: issuers are capped at 16, deleted ones linger */
            memmove(&s->states[0], &s->states[1], --s->num_states * sizeof(s->states[0]));
        st = &s->states[s->num_states++];
        *st = (state_t){id, "", 0, 0};
    }
    if (strcmp(st->updated_at, updated != NULL ? updated : "") != 0) {
        snprintf(st->updated_at, sizeof(st->updated_at), "%s", updated != NULL ? updated : "");
        st->next_at = 0, st->backoff = 0;
    }
    return st;
}

static void sync_one(cph_sync_jwks_t *s, const json_t *row, state_t *st)
{
    int64_t refresh = json_integer_value(json_object_get(row, "refresh_s"));
    char why[WHY_MAX] = "", *doc = NULL;
    size_t len = 0;

    if (cph_sync_jwks_fetch(json_string_value(json_object_get(row, "jwks_url")), &s->stop, &doc, &len, why, sizeof(why)) != 0)
        doc = NULL;
    if (atomic_load(&s->stop)) {
        free(doc);
        return;
    }
    if (cph_sync_jwks_apply(s->db, row, doc, len, why, sizeof(why)) >= 0) {
        st->backoff = 0;
        st->next_at = now_s() + refresh;
    } else {
        cph_log_warn(MODULE, "issuer %s: %s", json_string_value(json_object_get(row, "name")), why);
        st->backoff = st->backoff == 0 ? (refresh < CPH_JWKS_BACKOFF_MAX_S ? refresh : CPH_JWKS_BACKOFF_MAX_S)
                                       : (st->backoff * 2 < refresh ? st->backoff * 2 : refresh);
        st->next_at = now_s() + st->backoff;
    }
    free(doc);
}

/* One pass: every issuer that is due is fetched, outside the database lock. */
static void pass(cph_sync_jwks_t *s)
{
    cph_error_t err;
    json_t *rows, *row;
    size_t i;

    cph_db_lock(s->db);
    rows = cph_store_issuer_sync_list(s->db, &err);
    cph_db_unlock(s->db);
    if (rows == NULL) {
        cph_log_warn(MODULE, "cannot list the issuers: %s", err.msg);
        return;
    }
    json_array_foreach(rows, i, row)
    {
        state_t *st = state_of(s, row);
        if (atomic_load(&s->stop))
            break;
        if (now_s() >= st->next_at)
            sync_one(s, row, st);
    }
    json_decref(rows);
}

static void *run(void *arg)
{
    cph_sync_jwks_t *s = arg;
    struct timespec until;

    while (!atomic_load(&s->stop)) {
        pass(s);
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += 1;
        pthread_mutex_lock(&s->mutex);
        while (!atomic_load(&s->stop) && pthread_cond_timedwait(&s->cond, &s->mutex, &until) != ETIMEDOUT)
            ;
        pthread_mutex_unlock(&s->mutex);
    }
    return NULL;
}

cph_sync_jwks_t *cph_sync_jwks_start(cph_db_t *db, cph_error_t *err)
{
    cph_sync_jwks_t *s = calloc(1, sizeof(*s));
    pthread_condattr_t attr;

    if (s == NULL)
        cph_fatal(MODULE, "out of memory");
    if (cph_http_global_init(err) != 0) {
        free(s);
        return NULL;
    }
    s->db = db;
    atomic_init(&s->stop, 0);
    pthread_mutex_init(&s->mutex, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&s->thread, NULL, run, s) != 0) {
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->mutex);
        cph_http_global_cleanup();
        free(s);
        cph_error_set(err, "internal", "", "cannot start the JWKS thread");
        return NULL;
    }
    return s;
}

void cph_sync_jwks_stop(cph_sync_jwks_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mutex);
    atomic_store(&s->stop, 1);
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mutex);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->mutex);
    cph_http_global_cleanup();
    free(s);
}
