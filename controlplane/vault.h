/*
 * vault: the control plane's HTTP client for HashiCorp Vault - token lookup and renewal, AppRole login, and the KV
 * version 2 reads (metadata, data, LIST) the Vault sync thread (sync_vault.c) makes. Each call is one libcurl easy
 * transfer, so calls are independent and a caller on another thread only needs its own cph_vault_t copy.
 *
 * Every answer is read as hostile: a size cap, strict JSON (duplicate keys refused), the exact members and types the
 * API documents, tokens that can only be sent back in a header. Every failure is classified into the integrations'
 * reason kinds (integrations.h) with a text of our own: no answer byte, no token and no secret value ever reaches
 * an error text or a log line.
 */
#ifndef CPH_VAULT_H
#define CPH_VAULT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "controlplane/integrations.h"

#define CPH_VAULT_BODY_MAX (1024 * 1024) /* an answer bigger than this is aborted while it arrives */
#define CPH_VAULT_CONNECT_TIMEOUT_MS 3000
#define CPH_VAULT_KEYS_MAX 256      /* keys of one secret, names of one LIST */
#define CPH_VAULT_KEY_MAX 128       /* a secret's key name: [A-Za-z0-9._-]{1,128}, as a template placeholder */
#define CPH_VAULT_VALUE_MAX 65536   /* one secret value */
#define CPH_VAULT_TTL_MAX 315360000 /* ten years: a longer TTL is read as this */

/** A failed call: the reason kind, the HTTP status (0 = no answer) and a text of ours (no secret, no answer bytes). */
typedef struct st_cph_vault_error_t {
    cph_integration_reason_t kind;
    long status;
    char text[200];
} cph_vault_error_t;

/** Where and how to call. A plain value: copy it to call from another thread. */
typedef struct st_cph_vault_t {
    char addr[CPH_INTEGRATION_URL_MAX];     /* http(s)://host[:port], no trailing slash needed */
    char mount[129];                        /* the KV v2 mount, e.g. "secret" */
    int timeout_ms;                         /* per call, connect included */
    atomic_int *stop;                       /* NULL, or aborts a transfer once non-zero (checked about once a second) */
    char token[CPH_INTEGRATION_SECRET_MAX]; /* sent as X-Vault-Token when not empty */
} cph_vault_t;

/** What Vault says about the token in use. */
typedef struct st_cph_vault_token_info_t {
    int64_t ttl_s; /* seconds left; 0 = never expires (a root or periodic-less token) */
    int renewable;
} cph_vault_token_info_t;

/** Fills v (stop NULL, no token); -1 when addr is not http(s)://... or mount is not a valid path. */
int cph_vault_init(cph_vault_t *v, const char *addr, const char *mount, int timeout_ms);
/** Wipes the token held by v (call before v goes out of scope). */
void cph_vault_forget(cph_vault_t *v);

/** GET /v1/auth/token/lookup-self with v->token. Returns 0 with info, or -1 with e. */
int cph_vault_lookup_self(const cph_vault_t *v, cph_vault_token_info_t *info, cph_vault_error_t *e);
/** POST /v1/auth/token/renew-self. Returns 0 with the new info, or -1 with e. */
int cph_vault_renew_self(const cph_vault_t *v, cph_vault_token_info_t *info, cph_vault_error_t *e);
/** POST /v1/auth/approle/login {"role_id","secret_id"}: on success v->token is the new client token. 0 or -1 with e. */
int cph_vault_approle_login(cph_vault_t *v, const char *role_id, const char *secret_id, cph_vault_token_info_t *info,
                            cph_vault_error_t *e);
/** GET /v1/<mount>/metadata/<path> -> data.current_version. 0, or -1 with e (not_found: no such secret). */
int cph_vault_kv_version(const cph_vault_t *v, const char *path, int64_t *version, cph_vault_error_t *e);
/**
 * GET /v1/<mount>/data/<path>: *data a new object of the secret's string values (keys that cannot be a template
 * placeholder are left out) and *version its version. A deleted or destroyed current version is -1 with e {not_found}
 * (and *version set). A value that is not a string is -1 {bad_response}.
 */
int cph_vault_kv_read(const cph_vault_t *v, const char *path, int64_t *version, json_t **data, cph_vault_error_t *e);
/**
 * LIST /v1/<mount>/metadata/<prefix> (prefix "" or segments, a trailing '/' optional): a new array of the names
 * (a folder ends with '/'), sorted, or NULL with e (not_found: nothing under prefix).
 */
json_t *cph_vault_kv_list(const cph_vault_t *v, const char *prefix, cph_vault_error_t *e);

/**
 * Wipes every string value of a secret object (data may be NULL or hold other types): call it on a parsed answer
 * or a copy of a secret before the last reference is dropped, so no value lingers in freed memory. data stays valid.
 */
void cph_vault_wipe_values(json_t *data);

/** 1 when path is 1-256 bytes of [A-Za-z0-9._-] segments joined by single '/', no '.'/'..' segment; else 0. */
int cph_vault_path_valid(const char *path);

/* ---- the parsers and the classifier, public for the unit tests; body is len bytes, not NUL-terminated ---- */

/** Classifies a transfer that got no usable answer (a CURLcode) into e. Returns -1. */
int cph_vault_classify_transport(int curl_code, const char *what, cph_vault_error_t *e);
/** Classifies an HTTP status other than 200 (sealed: 503 with "Vault is sealed" in errors). Returns -1. */
int cph_vault_classify_status(long status, const char *body, size_t len, const char *what, cph_vault_error_t *e);
/** An auth answer (login, renew-self): auth.client_token (into token when not NULL), lease_duration, renewable. */
int cph_vault_parse_auth(const char *body, size_t len, char *token, size_t token_cap, cph_vault_token_info_t *info,
                         cph_vault_error_t *e);
/** A lookup-self answer: data.ttl, data.renewable. */
int cph_vault_parse_lookup(const char *body, size_t len, cph_vault_token_info_t *info, cph_vault_error_t *e);
/** A metadata answer: data.current_version (>= 1). */
int cph_vault_parse_metadata(const char *body, size_t len, int64_t *version, cph_vault_error_t *e);
/** A data answer with its status (200, or 404 carrying a deleted version's metadata), as cph_vault_kv_read. */
int cph_vault_parse_data(long status, const char *body, size_t len, int64_t *version, json_t **data, cph_vault_error_t *e);
/** A LIST answer: data.keys, sorted copy. */
json_t *cph_vault_parse_list(const char *body, size_t len, cph_vault_error_t *e);

#endif
