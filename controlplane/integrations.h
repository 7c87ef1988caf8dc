/*
 * integrations: the control plane's connections to HashiCorp Vault (secrets, sync_vault.c) and Consul (service
 * discovery, sync_consul.c) - their settings, fixed at start from flags, and their live state, which each sync thread
 * publishes after every pass and which GET /api/v1/integrations and GET /metrics read.
 *
 * The state is a small table behind one mutex: two writers (the threads, a few times a second at most) and the
 * admin API readers. Nothing here is on a data plane's path, and nothing here ever holds a secret value: reasons are
 * our own texts, details list versions and key names only.
 */
#ifndef CPH_INTEGRATIONS_H
#define CPH_INTEGRATIONS_H

#include <stdint.h>
#include <jansson.h>

#define CPH_INTEGRATION_URL_MAX 256
#define CPH_INTEGRATION_SECRET_MAX 1024 /* a Vault token, an AppRole secret id, a Consul ACL token */

/** Set once by main() from flags before any thread starts; immutable afterwards. "" = not set. */
typedef struct st_cph_integration_settings_t {
    char vault_addr[CPH_INTEGRATION_URL_MAX];         /* "" = Vault disabled; http(s)://host:port */
    char vault_token[CPH_INTEGRATION_SECRET_MAX];     /* token auth (file or CEPHALO_VAULT_TOKEN), or "" */
    char vault_role_id[CPH_INTEGRATION_SECRET_MAX];   /* AppRole auth when set (with vault_secret_id) */
    char vault_secret_id[CPH_INTEGRATION_SECRET_MAX]; /* read from --vault-secret-id-file */
    char vault_kv_mount[129];                         /* default "secret" */
    char vault_signing_path[257];                     /* "" = signing keys are the control plane's own */
    int vault_poll_s;                                 /* 1..3600, default 30 */
    int vault_timeout_ms;                             /* per call, 100..60000, default 5000 */
    char consul_addr[CPH_INTEGRATION_URL_MAX];        /* "" = Consul disabled */
    char consul_token[CPH_INTEGRATION_SECRET_MAX];    /* X-Consul-Token, or "" */
    char consul_datacenter[129];                      /* ?dc=, or "" */
    int consul_wait_s;                                /* blocking query wait, 1..600, default 60 */
} cph_integration_settings_t;

/** Fills s with the defaults (everything disabled). */
void cph_integration_settings_defaults(cph_integration_settings_t *s);
/** The settings in force (defaults until cph_integration_settings_set). */
const cph_integration_settings_t *cph_integration_settings(void);
/** Replaces the settings; call before any other thread starts. */
void cph_integration_settings_set(const cph_integration_settings_t *s);

typedef enum en_cph_integration_t { CPH_INTEGRATION_VAULT = 0, CPH_INTEGRATION_CONSUL, CPH_INTEGRATION_COUNT } cph_integration_t;

typedef enum en_cph_integration_state_t {
    CPH_INTEGRATION_DISABLED = 0, /* not configured */
    CPH_INTEGRATION_STARTING,     /* configured, no pass finished yet */
    CPH_INTEGRATION_OK,
    CPH_INTEGRATION_DEGRADED /* the last pass failed: the last known state is kept */
} cph_integration_state_t;

/** The reason kinds of a failure (the `reason` label of cephalo_cp_integration_errors_total). */
typedef enum en_cph_integration_reason_t {
    CPH_REASON_SEALED = 0,
    CPH_REASON_UNREACHABLE,
    CPH_REASON_TIMEOUT,
    CPH_REASON_FORBIDDEN,
    CPH_REASON_NOT_FOUND,
    CPH_REASON_BAD_RESPONSE,
    CPH_REASON_SERVER_ERROR,
    CPH_REASON_COUNT
} cph_integration_reason_t;

/** "sealed", "unreachable", ... */
const char *cph_integration_reason_name(cph_integration_reason_t r);

/** Marks an integration configured (state STARTING); main() calls it before starting the thread. */
void cph_integration_enable(cph_integration_t which);
/** A pass succeeded: state OK, reason cleared, last_success = now, syncs_total + 1. */
void cph_integration_ok(cph_integration_t which);
/**
 * A pass failed: state DEGRADED with reason "<kind>: <text>" (text is ours, at most 200 bytes, never a secret),
 * errors_total{kind} + 1, syncs_total + 1. `since` changes only when the state changes.
 */
void cph_integration_fail(cph_integration_t which, cph_integration_reason_t kind, const char *text);
/** Replaces the integration's details object (steals the reference; NULL clears). Never values of secrets. */
void cph_integration_set_details(cph_integration_t which, json_t *details);
/** Sets a gauge the metrics show (vault: token expiry as a Unix time; 0 = unknown). */
void cph_integration_set_token_expiry(cph_integration_t which, int64_t unix_time);

/**
 * {"vault": {...}, "consul": {...}} as GET /api/v1/integrations answers (state, reason, since, last_success,
 * errors_total, then the details' members). A new reference.
 */
json_t *cph_integrations_json(void);
/** Appends the integrations' Prometheus lines to the string buffer (metrics.c's writer): see metrics.h. */
struct st_cph_metrics_buf_t;
void cph_integrations_metrics(struct st_cph_metrics_buf_t *out);
/** Back to all-disabled, details dropped (tests). */
void cph_integrations_reset(void);

#endif
