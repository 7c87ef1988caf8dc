/*
 * sync_vault: keeps the services' Vault secrets current (sync_vault.h).
 *
 * One thread wakes once a second (or at once on stop). A pass makes sure it holds a usable token - AppRole login or
 * token lookup at first, renew-self once 2/3 of the TTL has passed, a fresh AppRole login after a 403 - then checks
 * each secret path that is due: the metadata's current_version first (cheap, no secret in the answer), and only when
 * it differs from the stored version the data itself, which is stored through cph_db_write as actor "vault". So a
 * new version makes exactly one new snapshot version and an unchanged poll makes none.
 *
 * Every failure keeps what is stored (the data planes keep the credentials they have), marks the integration
 * degraded with the reason kind, and backs that path off 1 s doubling up to poll_s. Paths no service names any more
 * are pruned. The token lives in this thread's cph_vault_t (copied under a mutex for the admin API's LIST) and is
 * wiped when it is replaced or the thread stops; no token and no secret value reaches a log line.
 *
 * With vault_signing_path set, the same schedule reads the signing key's secret (private_key, kid?): a new version
 * becomes the active signing key by a normal rotation whose row holds no private half (signing.c keeps it in memory,
 * cph_signing_hold); after a restart the version already active is only held again, no rotation.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include "controlplane/http_client.h"
#include "controlplane/signing.h"
#include "controlplane/store_secret.h"
#include "controlplane/sync_vault.h"
#include "controlplane/vault.h"
#include "proto/log.h"

#define MODULE "cp/sync_vault"
#define PATHS_MAX 1024

typedef struct st_path_state_t {
    char path[260];
    int64_t next_at; /* monotonic seconds; 0 = due now */
    int64_t backoff;
} path_state_t;

struct st_cph_sync_vault_t {
    cph_db_t *db;
    cph_integration_settings_t s; /* a copy: holds the token or the secret id, wiped at stop */
    int approle;
    pthread_t thread;
    pthread_mutex_t mutex; /* the wake-up, and client.token for readers on other threads */
    pthread_cond_t cond;
    atomic_int stop;
    cph_vault_t client;
    int have_token;
    cph_vault_token_info_t token;
    int64_t token_at_ms;        /* monotonic time the TTL was learnt */
    int64_t token_expires_unix; /* 0 = never / unknown */
    int64_t auth_next_at, auth_backoff, idle_next_at;
    path_state_t *paths;
    size_t num_paths;
    path_state_t signing;    /* vault_signing_path's schedule */
    int64_t signing_version; /* the version of the signing key held; 0 = none */
};

static int64_t now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t next_backoff(int64_t cur, int poll_s)
{
    int64_t b = cur == 0 ? CPH_SYNC_VAULT_BACKOFF_MIN_S : cur * 2;

    return b < poll_s ? b : poll_s;
}

/* ---------------------------------------------------------------- the token */

/* Installs a token learnt by login (token != NULL) or lookup/renew, under the mutex readers take. */
static void set_token(cph_sync_vault_t *v, const char *token, const cph_vault_token_info_t *info)
{
    pthread_mutex_lock(&v->mutex);
    if (token != NULL)
        memcpy(v->client.token, token, sizeof(v->client.token));
    v->have_token = 1;
    pthread_mutex_unlock(&v->mutex);
    v->token = *info;
    v->token_at_ms = now_ms();
    v->token_expires_unix = info->ttl_s > 0 ? (int64_t)time(NULL) + info->ttl_s : 0;
    cph_integration_set_token_expiry(CPH_INTEGRATION_VAULT, v->token_expires_unix);
}

static void drop_token(cph_sync_vault_t *v)
{
    pthread_mutex_lock(&v->mutex);
    v->have_token = 0;
    if (v->approle)
        cph_vault_forget(&v->client);
    pthread_mutex_unlock(&v->mutex);
}

/* AppRole login (the new token replaces the old) or, in token mode, lookup-self. */
static int authenticate(cph_sync_vault_t *v, cph_vault_error_t *e)
{
    cph_vault_token_info_t info = {0, 0};
    cph_vault_t login;

    if (!v->approle) {
        if (cph_vault_lookup_self(&v->client, &info, e) != 0)
            return -1;
        set_token(v, NULL, &info);
        return 0;
    }
    login = v->client; /* logs in on a copy: readers keep the old token until the new one is there */
    if (cph_vault_approle_login(&login, v->s.vault_role_id, v->s.vault_secret_id, &info, e) != 0) {
        cph_vault_forget(&login);
        return -1;
    }
    set_token(v, login.token, &info);
    cph_vault_forget(&login);
    cph_log_info(MODULE, "logged in to Vault with AppRole (token TTL %lld s, %s)", (long long)info.ttl_s,
                 info.renewable ? "renewable" : "not renewable");
    return 0;
}

/* 1 when 2/3 of the token's TTL has passed. */
static int renewal_due(const cph_sync_vault_t *v)
{
    return v->token.ttl_s > 0 && now_ms() - v->token_at_ms >= v->token.ttl_s * 2000 / 3;
}

/* Makes sure a usable token is held; returns 1 when it called Vault, 0 when nothing was due, -1 with e. */
static int ensure_token(cph_sync_vault_t *v, cph_vault_error_t *e)
{
    cph_vault_token_info_t info = {0, 0};

    if (!v->have_token)
        return authenticate(v, e) == 0 ? 1 : -1;
    if (!renewal_due(v))
        return 0;
    if (v->token.renewable && cph_vault_renew_self(&v->client, &info, e) == 0) {
        set_token(v, NULL, &info);
        cph_log_info(MODULE, "renewed the Vault token (TTL %lld s)", (long long)info.ttl_s);
        return 1;
    }
    if (!v->approle) {
        if (!v->token.renewable) /* nothing to do: it expires, then Vault answers 403 and we say so */
            return 0;
        return -1;
    }
    return authenticate(v, e) == 0 ? 1 : -1; /* not renewable any more, or refused: a fresh login */
}

/* ---------------------------------------------------------------- one secret */

typedef struct st_put_t {
    const char *path;
    int64_t version;
    const json_t *data;
} put_t;

static int on_put(cph_db_t *db, void *ctx, cph_db_change_t *change, cph_error_t *err)
{
    put_t *p = ctx;

    return cph_store_secret_put(db, p->path, p->version, p->data, change, err);
}

/* The stored version of path, or 0 when none is stored. */
static int64_t stored_version(cph_db_t *db, const char *path)
{
    cph_error_t err;
    json_t *row;
    int64_t version = 0;

    cph_db_lock(db);
    if ((row = cph_store_secret_get(db, path, &err)) != NULL) {
        version = json_integer_value(json_object_get(row, "version"));
        cph_vault_wipe_values(json_object_get(row, "data"));
        json_decref(row);
    }
    cph_db_unlock(db);
    return version;
}

/* Drops a secret object after wiping its values. */
static void wipe(json_t *data)
{
    cph_vault_wipe_values(data);
    json_decref(data);
}

/* Checks one path; writes a new version. Returns 1 (written), 0 (unchanged), -1 with e. */
static int sync_path(cph_sync_vault_t *v, const char *path, cph_vault_error_t *e)
{
    int64_t current = 0, version = 0, stored = stored_version(v->db, path);
    uint64_t snap = 0;
    json_t *data = NULL;
    cph_error_t err;
    put_t put;

    if (cph_vault_kv_version(&v->client, path, &current, e) != 0)
        return -1;
    if (current == stored)
        return 0;
    if (cph_vault_kv_read(&v->client, path, &version, &data, e) != 0)
        return -1;
    if (version == stored) { /* the metadata moved between the two calls; what we hold is current */
        wipe(data);
        return 0;
    }
    put = (put_t){path, version, data};
    if (cph_db_write(v->db, "vault", on_put, &put, &snap, &err) != 0) {
        wipe(data);
        e->kind = CPH_REASON_BAD_RESPONSE, e->status = 0;
        snprintf(e->text, sizeof(e->text), "storing %.120s: %.60s", path, err.msg);
        return -1;
    }
    cph_log_info(MODULE, "secret %s: version %lld (%zu keys), snapshot version %llu", path, (long long)version,
                 json_object_size(data), (unsigned long long)snap);
    wipe(data);
    return 1;
}

/* sync_path, with one fresh AppRole login and retry when Vault refused the token. */
static int sync_path_relogin(cph_sync_vault_t *v, const char *path, cph_vault_error_t *e)
{
    int ret = sync_path(v, path, e);

    if (ret >= 0 || e->kind != CPH_REASON_FORBIDDEN || !v->approle || atomic_load(&v->stop))
        return ret;
    cph_log_warn(MODULE, "Vault refused the token; logging in again");
    drop_token(v);
    if (authenticate(v, e) != 0)
        return -1;
    return sync_path(v, path, e);
}

/* ---------------------------------------------------------------- the signing key */

static int on_rotate(cph_db_t *db, void *ctx, cph_db_change_t *change, cph_error_t *err)
{
    return cph_signing_rotate(db, ctx, time(NULL), change, err);
}

/* The key of the signing secret's data (private_key, kid?) as k, for source; -1 with e {bad_response}. */
static int signing_key_of(const json_t *data, const char *source, cph_signing_new_t *k, cph_vault_error_t *e)
{
    const json_t *pem = json_object_get(data, "private_key"), *kid = json_object_get(data, "kid");
    cph_error_t err;

    e->kind = CPH_REASON_BAD_RESPONSE, e->status = 0;
    if (!json_is_string(pem)) {
        snprintf(e->text, sizeof(e->text), "the signing key secret has no private_key");
        return -1;
    }
    if (cph_signing_from_pem(json_string_value(pem), json_string_value(kid), source, k, &err) != 0) {
        snprintf(e->text, sizeof(e->text), "the signing key secret: %.120s", err.msg);
        return -1;
    }
    return 0;
}

/*
 * Reads vault_signing_path when its version is not the one held: a new version rotates it in (actor "vault"), the
 * version the active key already comes from (a restart) is only held again. Returns 1 (changed), 0, -1 with e.
 */
static int sync_signing(cph_sync_vault_t *v, cph_vault_error_t *e)
{
    const char *path = v->s.vault_signing_path;
    int64_t current = 0, version = 0;
    cph_signing_new_t k = {0};
    char source[320], active[320] = "";
    json_t *data = NULL;
    cph_error_t err;
    uint64_t snap;
    int ret = -1;

    if (cph_vault_kv_version(&v->client, path, &current, e) != 0)
        return -1;
    if (current == v->signing_version)
        return 0;
    if (cph_vault_kv_read(&v->client, path, &version, &data, e) != 0)
        return -1;
    snprintf(source, sizeof(source), "vault:%s@%lld", path, (long long)version);
    if (signing_key_of(data, source, &k, e) != 0)
        goto Exit;
    cph_db_lock(v->db);
    if (cph_signing_active_source(v->db, active, sizeof(active), &err) != 0)
        active[0] = '\0';
    cph_db_unlock(v->db);
    if (strcmp(active, source) != 0 && cph_db_write(v->db, "vault", on_rotate, &k, &snap, &err) != 0) {
        e->kind = CPH_REASON_BAD_RESPONSE, e->status = 0;
        snprintf(e->text, sizeof(e->text), "the signing key from Vault was not stored: %.100s", err.msg);
        goto Exit;
    }
    cph_signing_hold(source, k.private_pem);
    if (strcmp(active, source) != 0)
        cph_log_info(MODULE, "signing key from Vault %s: %s kid %s is active (snapshot version %llu)", source, k.alg, k.kid,
                     (unsigned long long)snap);
    v->signing_version = version;
    ret = 1;
Exit:
    cph_signing_new_clear(&k);
    wipe(data);
    return ret;
}

/* ---------------------------------------------------------------- the paths */

/* The state of path, created due now; states of paths no longer named are dropped by refresh_states. */
static path_state_t *state_of(cph_sync_vault_t *v, const char *path)
{
    for (size_t i = 0; i != v->num_paths; ++i)
        if (strcmp(v->paths[i].path, path) == 0)
            return &v->paths[i];
    if (v->num_paths == PATHS_MAX)
        return NULL;
    if ((v->paths = realloc(v->paths, (v->num_paths + 1) * sizeof(v->paths[0]))) == NULL)
        cph_fatal(MODULE, "out of memory");
    path_state_t *st = &v->paths[v->num_paths++];
    memset(st, 0, sizeof(*st));
    snprintf(st->path, sizeof(st->path), "%s", path);
    return st;
}

/* Drops the states of paths not in names. */
static void refresh_states(cph_sync_vault_t *v, const json_t *names)
{
    size_t keep = 0, i;
    json_t *n;

    for (size_t j = 0; j != v->num_paths; ++j) {
        int found = 0;
        json_array_foreach(names, i, n) if (strcmp(json_string_value(n), v->paths[j].path) == 0) found = 1;
        if (found)
            v->paths[keep++] = v->paths[j];
    }
    v->num_paths = keep;
}

static int on_prune(cph_db_t *db, void *ctx, cph_db_change_t *change, cph_error_t *err)
{
    size_t deleted = 0;

    (void)ctx;
    if (cph_store_secret_prune(db, &deleted, change, err) != 0)
        return -1;
    if (deleted == 0)
        return cph_error_set(err, "conflict", "", "nothing to prune");
    return 0;
}

/* Deletes stored secrets no service names any more (a write only when there is one). */
static void prune(cph_sync_vault_t *v, const json_t *names)
{
    cph_error_t err;
    json_t *stored, *row;
    uint64_t snap;
    size_t i, stale = 0;

    cph_db_lock(v->db);
    stored = cph_store_secret_list_public(v->db, &err);
    cph_db_unlock(v->db);
    json_array_foreach(stored, i, row)
    {
        const char *p = json_string_value(json_object_get(row, "path"));
        size_t j;
        json_t *n;
        int named = 0;
        json_array_foreach(names, j, n) if (p != NULL && strcmp(json_string_value(n), p) == 0) named = 1;
        stale += !named;
    }
    json_decref(stored);
    if (stale > 0 && cph_db_write(v->db, "vault", on_prune, NULL, &snap, &err) != 0 && strcmp(err.code, "conflict") != 0)
        cph_log_warn(MODULE, "cannot prune the secrets no service names: %s", err.msg);
}

/* ---------------------------------------------------------------- a pass */

static void publish(cph_sync_vault_t *v)
{
    json_t *details = json_object(), *secrets;
    cph_error_t err;

    json_object_set_new(details, "auth", json_string(v->approle ? "approle" : "token"));
    json_object_set_new(details, "token_renewable", json_boolean(v->have_token && v->token.renewable));
    if (v->have_token && v->token_expires_unix > 0) {
        char buf[32];
        time_t t = (time_t)v->token_expires_unix;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
        json_object_set_new(details, "token_expires_at", json_string(buf));
    } else {
        json_object_set_new(details, "token_expires_at", json_null());
    }
    cph_db_lock(v->db);
    secrets = cph_store_secret_list_public(v->db, &err);
    cph_db_unlock(v->db);
    json_object_set_new(details, "secrets", secrets != NULL ? secrets : json_array());
    cph_integration_set_details(CPH_INTEGRATION_VAULT, details);
}

/* Checks the paths that are due; fills first with the first failure. Returns how many were checked. */
static size_t check_paths(cph_sync_vault_t *v, const json_t *names, int *failed, cph_vault_error_t *first)
{
    size_t i, checked = 0;
    json_t *n;

    json_array_foreach(names, i, n)
    {
        path_state_t *st = state_of(v, json_string_value(n));
        cph_vault_error_t e;
        if (atomic_load(&v->stop) || st == NULL || now_s() < st->next_at)
            continue;
        ++checked;
        if (sync_path_relogin(v, st->path, &e) >= 0) {
            st->backoff = 0, st->next_at = now_s() + v->s.vault_poll_s;
            continue;
        }
        if (atomic_load(&v->stop))
            break;
        cph_log_warn(MODULE, "%s", e.text);
        st->backoff = next_backoff(st->backoff, v->s.vault_poll_s), st->next_at = now_s() + st->backoff;
        if (!*failed)
            *first = e, *failed = 1;
    }
    return checked;
}

/* The signing key's path when due, as one more path of check_paths. */
static size_t check_signing(cph_sync_vault_t *v, int *failed, cph_vault_error_t *first)
{
    path_state_t *st = &v->signing;
    cph_vault_error_t e;

    if (v->s.vault_signing_path[0] == '\0' || atomic_load(&v->stop) || now_s() < st->next_at)
        return 0;
    if (sync_signing(v, &e) >= 0) {
        st->backoff = 0, st->next_at = now_s() + v->s.vault_poll_s;
        return 1;
    }
    cph_log_warn(MODULE, "%s", e.text);
    st->backoff = next_backoff(st->backoff, v->s.vault_poll_s), st->next_at = now_s() + st->backoff;
    if (!*failed)
        *first = e, *failed = 1;
    return 1;
}

/* In token mode with no path to check, a lookup every poll_s still tells whether Vault and the token are fine. */
static int idle_check(cph_sync_vault_t *v, cph_vault_error_t *e)
{
    cph_vault_token_info_t info;

    v->idle_next_at = now_s() + v->s.vault_poll_s;
    if (cph_vault_lookup_self(&v->client, &info, e) != 0)
        return -1;
    return 0;
}

static void pass(cph_sync_vault_t *v)
{
    cph_vault_error_t e = {CPH_REASON_BAD_RESPONSE, 0, ""};
    int failed = 0, worked = 0;
    cph_error_t err;
    json_t *names;

    if (now_s() < v->auth_next_at)
        return;
    cph_db_lock(v->db);
    names = cph_store_secret_paths(v->db, &err);
    cph_db_unlock(v->db);
    if (names == NULL) {
        cph_log_warn(MODULE, "cannot list the secret paths: %s", err.msg);
        return;
    }
    refresh_states(v, names);
    if ((worked = ensure_token(v, &e)) < 0) {
        failed = 1;
        if (e.kind == CPH_REASON_FORBIDDEN)
            drop_token(v);
        /* nothing is checked without a good token: back the whole pass off */
        v->auth_backoff = next_backoff(v->auth_backoff, v->s.vault_poll_s);
        v->auth_next_at = now_s() + v->auth_backoff;
    } else {
        v->auth_backoff = 0;
        worked += (int)check_paths(v, names, &failed, &e);
        worked += (int)check_signing(v, &failed, &e);
        if (!failed && json_array_size(names) == 0 && worked == 0 && now_s() >= v->idle_next_at) {
            worked = 1;
            failed = idle_check(v, &e) != 0;
        }
        if (!atomic_load(&v->stop))
            prune(v, names);
    }
    json_decref(names);
    if (atomic_load(&v->stop) || (!failed && worked == 0))
        return;
    if (failed) {
        cph_log_warn(MODULE, "%s", e.text);
        cph_integration_fail(CPH_INTEGRATION_VAULT, e.kind, e.text);
    } else {
        cph_integration_ok(CPH_INTEGRATION_VAULT);
    }
    publish(v);
}

/* ---------------------------------------------------------------- the thread */

static void *run(void *arg)
{
    cph_sync_vault_t *v = arg;
    struct timespec until;

    while (!atomic_load(&v->stop)) {
        pass(v);
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += 1;
        pthread_mutex_lock(&v->mutex);
        while (!atomic_load(&v->stop) && pthread_cond_timedwait(&v->cond, &v->mutex, &until) != ETIMEDOUT)
            ;
        pthread_mutex_unlock(&v->mutex);
    }
    return NULL;
}

static void destroy(cph_sync_vault_t *v)
{
    pthread_cond_destroy(&v->cond);
    pthread_mutex_destroy(&v->mutex);
    cph_vault_forget(&v->client);
    OPENSSL_cleanse(&v->s, sizeof(v->s));
    free(v->paths);
    free(v);
}

/* The settings' checks; the copy into v. */
static int configure(cph_sync_vault_t *v, const cph_integration_settings_t *s, cph_error_t *err)
{
    v->s = *s;
    if (v->s.vault_poll_s < 1 || v->s.vault_poll_s > 3600)
        v->s.vault_poll_s = 30;
    if (cph_vault_init(&v->client, s->vault_addr, s->vault_kv_mount[0] != '\0' ? s->vault_kv_mount : "secret",
                       s->vault_timeout_ms) != 0)
        return cph_error_set(err, "invalid", "", "the Vault address must be http(s)://host[:port] and the KV mount a path");
    v->approle = s->vault_role_id[0] != '\0';
    if (v->approle && s->vault_secret_id[0] == '\0')
        return cph_error_set(err, "invalid", "", "AppRole auth needs a secret id (--vault-secret-id-file)");
    if (!v->approle && s->vault_token[0] == '\0')
        return cph_error_set(err, "invalid", "", "Vault needs a token (--vault-token-file) or an AppRole role id");
    if (!v->approle)
        snprintf(v->client.token, sizeof(v->client.token), "%s", s->vault_token);
    v->client.stop = &v->stop;
    return 0;
}

cph_sync_vault_t *cph_sync_vault_start(cph_db_t *db, const cph_integration_settings_t *s, cph_error_t *err)
{
    cph_sync_vault_t *v = calloc(1, sizeof(*v));
    pthread_condattr_t attr;

    if (v == NULL)
        cph_fatal(MODULE, "out of memory");
    v->db = db;
    atomic_init(&v->stop, 0);
    pthread_mutex_init(&v->mutex, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&v->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (configure(v, s, err) != 0) {
        destroy(v);
        return NULL;
    }
    if (cph_http_global_init(err) != 0) {
        destroy(v);
        return NULL;
    }
    if (pthread_create(&v->thread, NULL, run, v) != 0) {
        cph_http_global_cleanup();
        destroy(v);
        cph_error_set(err, "internal", "", "cannot start the Vault thread");
        return NULL;
    }
    return v;
}

void cph_sync_vault_stop(cph_sync_vault_t *v)
{
    if (v == NULL)
        return;
    pthread_mutex_lock(&v->mutex);
    atomic_store(&v->stop, 1);
    pthread_cond_signal(&v->cond);
    pthread_mutex_unlock(&v->mutex);
    pthread_join(v->thread, NULL);
    cph_signing_hold(NULL, NULL);
    cph_http_global_cleanup();
    destroy(v);
}

json_t *cph_sync_vault_list(cph_sync_vault_t *v, const char *prefix, cph_error_t *err)
{
    size_t len = prefix != NULL ? strlen(prefix) : 0;
    char folder[260];
    cph_vault_error_t e;
    cph_vault_t c;
    json_t *out;
    int have;

    snprintf(folder, sizeof(folder), "%.*s", (int)(len > 0 && len < sizeof(folder) && prefix[len - 1] == '/' ? len - 1 : len),
             len > 0 ? prefix : "");
    if (len >= sizeof(folder) || (folder[0] != '\0' && !cph_vault_path_valid(folder))) {
        cph_error_set(err, "invalid", "/prefix", "the prefix must be path segments of [A-Za-z0-9._-] separated by '/'");
        return NULL;
    }
    pthread_mutex_lock(&v->mutex);
    c = v->client;
    have = v->have_token;
    pthread_mutex_unlock(&v->mutex);
    c.timeout_ms = CPH_SYNC_VAULT_LIST_TIMEOUT_MS;
    if (!have) {
        cph_vault_forget(&c);
        cph_error_set(err, "unavailable", "", "the control plane holds no Vault token yet");
        return NULL;
    }
    if ((out = cph_vault_kv_list(&c, folder, &e)) == NULL) {
        if (e.kind == CPH_REASON_NOT_FOUND)
            cph_error_set(err, "not_found", "", "nothing in Vault under this prefix");
        else
            cph_error_set(err, "unavailable", "", "%s", e.text);
    }
    cph_vault_forget(&c);
    return out;
}
