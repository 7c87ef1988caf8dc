/*
 * integrations: the settings and the live state of the control plane's Vault and Consul connections (integrations.h).
 *
 * The settings are written once by main() before any thread starts and read without a lock afterwards. The state is
 * one small table behind one mutex: the sync threads write it after every pass (cph_integration_ok/fail), the admin
 * API and GET /metrics read it. Every reader gets a copy (a new JSON object, or text appended to its buffer), so no
 * pointer into the table ever leaves the lock.
 *
 * Nothing here holds a secret: a reason is the sync thread's own text (cut to 200 bytes, control bytes replaced), and
 * the details are what the threads publish - versions and key names, never values.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "controlplane/integrations.h"
#include "controlplane/metrics.h"

#define MODULE "cp/integrations"
#define REASON_TEXT_MAX 200

typedef struct st_entry_t {
    cph_integration_state_t state;
    char reason[256]; /* "<kind>: <text>", "" = none */
    time_t since;     /* when state last changed (or the table was reset) */
    time_t last_success;
    uint64_t errors[CPH_REASON_COUNT];
    uint64_t syncs;
    int64_t token_expiry;
    json_t *details;
} entry_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static entry_t table[CPH_INTEGRATION_COUNT];
static int table_ready;
static cph_integration_settings_t settings;
static int settings_ready;

static const char *const NAMES[CPH_INTEGRATION_COUNT] = {"vault", "consul"};
static const char *const STATES[] = {"disabled", "starting", "ok", "degraded"};
static const char *const REASONS[CPH_REASON_COUNT] = {"sealed",    "unreachable",  "timeout",     "forbidden",
                                                      "not_found", "bad_response", "server_error"};
/* The members cph_integrations_json writes itself: a details object cannot replace them. */
static const char *const OWN_MEMBERS[] = {"state", "reason", "since", "last_success", "errors_total", "syncs_total", NULL};

/* ---------------------------------------------------------------- settings */

void cph_integration_settings_defaults(cph_integration_settings_t *s)
{
    memset(s, 0, sizeof(*s));
    strcpy(s->vault_kv_mount, "secret");
    s->vault_poll_s = 30;
    s->vault_timeout_ms = 5000;
    s->consul_wait_s = 60;
}

const cph_integration_settings_t *cph_integration_settings(void)
{
    if (!settings_ready) {
        cph_integration_settings_defaults(&settings);
        settings_ready = 1;
    }
    return &settings;
}

void cph_integration_settings_set(const cph_integration_settings_t *s)
{
    settings = *s;
    settings_ready = 1;
}

/* ---------------------------------------------------------------- state (writers) */

const char *cph_integration_reason_name(cph_integration_reason_t r)
{
    return (unsigned)r < CPH_REASON_COUNT ? REASONS[r] : "unknown";
}

/* Lock held: the table, initialised on first use (every integration disabled since now). */
static entry_t *entry(cph_integration_t which)
{
    if (!table_ready) {
        time_t now = time(NULL);
        for (int i = 0; i != CPH_INTEGRATION_COUNT; ++i)
            table[i] = (entry_t){.state = CPH_INTEGRATION_DISABLED, .since = now};
        table_ready = 1;
    }
    return (unsigned)which < CPH_INTEGRATION_COUNT ? &table[which] : NULL;
}

static void set_state(entry_t *e, cph_integration_state_t state)
{
    if (e->state != state) {
        e->state = state;
        e->since = time(NULL);
    }
}

void cph_integration_enable(cph_integration_t which)
{
    entry_t *e;

    pthread_mutex_lock(&lock);
    if ((e = entry(which)) != NULL && e->state == CPH_INTEGRATION_DISABLED)
        set_state(e, CPH_INTEGRATION_STARTING);
    pthread_mutex_unlock(&lock);
}

void cph_integration_ok(cph_integration_t which)
{
    entry_t *e;

    pthread_mutex_lock(&lock);
    if ((e = entry(which)) != NULL) {
        set_state(e, CPH_INTEGRATION_OK);
        e->reason[0] = '\0';
        e->last_success = time(NULL);
        e->syncs++;
    }
    pthread_mutex_unlock(&lock);
}

/* "<kind>: <text>" with text cut to REASON_TEXT_MAX bytes and every control byte made a space (one log-safe line). */
static void format_reason(char *out, size_t cap, cph_integration_reason_t kind, const char *text)
{
    size_t n = (size_t)snprintf(out, cap, "%s: ", cph_integration_reason_name(kind));

    for (size_t i = 0; text != NULL && text[i] != '\0' && i != REASON_TEXT_MAX && n + 1 < cap; ++i, ++n)
        out[n] = (unsigned char)text[i] < 0x20 || text[i] == 0x7f ? ' ' : text[i];
    out[n] = '\0';
}

void cph_integration_fail(cph_integration_t which, cph_integration_reason_t kind, const char *text)
{
    entry_t *e;

    if ((unsigned)kind >= CPH_REASON_COUNT)
        kind = CPH_REASON_BAD_RESPONSE;
    pthread_mutex_lock(&lock);
    if ((e = entry(which)) != NULL) {
        set_state(e, CPH_INTEGRATION_DEGRADED);
        format_reason(e->reason, sizeof(e->reason), kind, text);
        e->errors[kind]++;
        e->syncs++;
    }
    pthread_mutex_unlock(&lock);
}

void cph_integration_set_details(cph_integration_t which, json_t *details)
{
    json_t *old;
    entry_t *e;

    if (details != NULL && !json_is_object(details)) {
        json_decref(details);
        details = NULL;
    }
    old = details; /* dropped below unless kept */
    pthread_mutex_lock(&lock);
    if ((e = entry(which)) != NULL) {
        old = e->details;
        e->details = details;
    }
    pthread_mutex_unlock(&lock);
    json_decref(old); /* outside the lock: a large details tree is freed without holding up the readers */
}

void cph_integration_set_token_expiry(cph_integration_t which, int64_t unix_time)
{
    entry_t *e;

    pthread_mutex_lock(&lock);
    if ((e = entry(which)) != NULL)
        e->token_expiry = unix_time > 0 ? unix_time : 0;
    pthread_mutex_unlock(&lock);
}

void cph_integrations_reset(void)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i != CPH_INTEGRATION_COUNT; ++i)
        json_decref(table[i].details);
    table_ready = 0;
    entry(CPH_INTEGRATION_VAULT);
    pthread_mutex_unlock(&lock);
}

/* ---------------------------------------------------------------- state (readers) */

/* RFC 3339 UTC, or JSON null for 0. */
static json_t *time_json(time_t t)
{
    struct tm tm;
    char buf[32];

    if (t == 0)
        return json_null();
    gmtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

static int own_member(const char *key)
{
    for (size_t i = 0; OWN_MEMBERS[i] != NULL; ++i)
        if (strcmp(OWN_MEMBERS[i], key) == 0)
            return 1;
    return 0;
}

/* Lock held: one integration's object. */
static json_t *entry_json(const entry_t *e)
{
    json_t *o = json_object(), *v;
    uint64_t errors = 0;
    const char *k;

    for (int r = 0; r != CPH_REASON_COUNT; ++r)
        errors += e->errors[r];
    json_object_set_new(o, "state", json_string(STATES[e->state]));
    json_object_set_new(o, "reason", e->reason[0] != '\0' ? json_string(e->reason) : json_null());
    json_object_set_new(o, "since", time_json(e->since));
    json_object_set_new(o, "last_success", time_json(e->last_success));
    json_object_set_new(o, "errors_total", json_integer((json_int_t)errors));
    json_object_set_new(o, "syncs_total", json_integer((json_int_t)e->syncs));
    json_object_foreach(e->details, k, v)
    {
        if (!own_member(k))
            json_object_set_new(o, k, json_deep_copy(v)); /* a copy: the thread may replace its details meanwhile */
    }
    return o;
}

json_t *cph_integrations_json(void)
{
    json_t *out = json_object();

    pthread_mutex_lock(&lock);
    for (int i = 0; i != CPH_INTEGRATION_COUNT; ++i)
        json_object_set_new(out, NAMES[i], entry_json(entry((cph_integration_t)i)));
    pthread_mutex_unlock(&lock);
    return out;
}

/* The integrations' metric families: an enabled integration has every sample, a disabled one none. */
void cph_integrations_metrics(struct st_cph_metrics_buf_t *out)
{
    pthread_mutex_lock(&lock);
    entry(CPH_INTEGRATION_VAULT); /* the table is initialised: table[] is read directly below */
    cph_metrics_family(out, "cephalo_cp_integration_up", "gauge",
                       "1 when the integration's last pass succeeded, 0 while starting or degraded; absent when disabled.");
    for (int i = 0; i != CPH_INTEGRATION_COUNT; ++i)
        if (table[i].state != CPH_INTEGRATION_DISABLED)
            cph_metrics_printf(out, "cephalo_cp_integration_up{integration=\"%s\"} %d\n", NAMES[i],
                               table[i].state == CPH_INTEGRATION_OK);
    cph_metrics_family(out, "cephalo_cp_integration_errors_total", "counter", "Failed passes by integration and reason kind.");
    for (int i = 0; i != CPH_INTEGRATION_COUNT; ++i)
        for (int r = 0; table[i].state != CPH_INTEGRATION_DISABLED && r != CPH_REASON_COUNT; ++r)
            cph_metrics_printf(out, "cephalo_cp_integration_errors_total{integration=\"%s\",reason=\"%s\"} %llu\n", NAMES[i],
                               REASONS[r], (unsigned long long)table[i].errors[r]);
    cph_metrics_family(out, "cephalo_cp_integration_syncs_total", "counter", "Passes (successful or not) by integration.");
    for (int i = 0; i != CPH_INTEGRATION_COUNT; ++i)
        if (table[i].state != CPH_INTEGRATION_DISABLED)
            cph_metrics_printf(out, "cephalo_cp_integration_syncs_total{integration=\"%s\"} %llu\n", NAMES[i],
                               (unsigned long long)table[i].syncs);
    cph_metrics_family(out, "cephalo_cp_vault_token_expiry_seconds", "gauge",
                       "When the Vault token expires (Unix time); absent when Vault is disabled or the token does not expire.");
    if (table[CPH_INTEGRATION_VAULT].state != CPH_INTEGRATION_DISABLED && table[CPH_INTEGRATION_VAULT].token_expiry != 0)
        cph_metrics_printf(out, "cephalo_cp_vault_token_expiry_seconds %lld\n",
                           (long long)table[CPH_INTEGRATION_VAULT].token_expiry);
    pthread_mutex_unlock(&lock);
}
