/*
 * settings: the control plane's auth and gateway settings, set once by main() from flags before the database is
 * opened and read by snapbuild.c (the snapshot's "auth" and "gateway" sections), token.c (issuing) and authapi.c.
 * Immutable after start. The parsers of the gateway flags, and of the Vault and Consul flags (whose settings live in
 * integrations.h), live here so that they can be tested.
 */
#ifndef CPH_SETTINGS_H
#define CPH_SETTINGS_H

#include <stddef.h>
#include "controlplane/integrations.h"

typedef struct st_cph_auth_settings_t {
    char issuer[257];       /* JWT iss; default "cephalo" */
    char audience[257];     /* JWT aud; "" = none */
    int leeway_s;           /* 0..300, default 30 */
    int max_token_bytes;    /* 256..65536, default 8192 */
    char header_prefix[33]; /* default "x-cephalo-" */
    char api[256];          /* the auth API base URL the data planes forward /auth/... to: "http://127.0.0.1:8002"; "" = none */
    int access_ttl_s;       /* 1..CPH_ACCESS_TOKEN_MAX_S, default 300 */
    int refresh_ttl_s;      /* default 14 days */
} cph_auth_settings_t;

/** The settings in force (defaults until cph_settings_set_auth). */
const cph_auth_settings_t *cph_settings_auth(void);
/** Replaces the settings; call before any other thread starts. */
void cph_settings_set_auth(const cph_auth_settings_t *s);
/** Fills s with the defaults. */
void cph_settings_auth_defaults(cph_auth_settings_t *s);

#define CPH_SETTINGS_MAX_CIDRS 256 /* per list (--ip-allow, --ip-deny); the schema allows 1024 */
#define CPH_SETTINGS_CIDR_MAX 50   /* an IPv6 address, "/128" and the NUL */

/* The snapshot's "gateway" section (proto/PROTOCOL.md section 5). */
typedef struct st_cph_gateway_settings_t {
    int trusted_proxy_hops;   /* 0..8, default 0 */
    char redis_host[254];     /* an IPv4/IPv6 literal (no brackets) or a DNS name; "" = no redis (default) */
    int redis_port;           /* 1..65535 */
    int redis_db;             /* 0..15, default 0 */
    int redis_timeout_ms;     /* 1..10000, default 50 */
    long long max_body_bytes; /* the gateway-wide limits: 0..1073741824, default 10485760 */
    int max_url_bytes;        /* 256..65536, default 8192 */
    int max_headers;          /* 1..1000, default 100 */
    int max_header_bytes;     /* 1024..1048576, default 65536 */
    long login_rate;          /* POST /auth/login per client IP: 1..1000000000 per login_period_s (1..86400), */
    int login_period_s;       /* burst 0..1000000000; default 10 / 60 / 5 */
    long login_burst;
    long long cache_max_bytes; /* gateway.cache.max_bytes: 0..CPH_CACHE_MAX_BYTES_MAX, default 67108864; 0 = caching off */
    int cache_redis;           /* gateway.cache.backend: 0 "memory" (default), 1 "redis" (needs redis_host) */
    int ws_drain_grace_ms;     /* gateway.websocket.drain_grace_ms: 0..3600000, default 30000 */
    int trust_request_id;      /* gateway.request_id.trust_incoming: keep a valid client X-Request-Id (default 0) */
    long max_connections_per_ip; /* gateway.connections.max_per_ip: 0..CPH_MAX_CONNECTIONS_PER_IP, default 0 (no cap) */
    size_t num_ip_allow, num_ip_deny;
    char ip_allow[CPH_SETTINGS_MAX_CIDRS][CPH_SETTINGS_CIDR_MAX]; /* gateway.ip_allow, in flag order */
    char ip_deny[CPH_SETTINGS_MAX_CIDRS][CPH_SETTINGS_CIDR_MAX];  /* gateway.ip_deny */
} cph_gateway_settings_t;

#define CPH_WS_DRAIN_GRACE_MS_DEFAULT 30000
#define CPH_CACHE_MAX_BYTES_DEFAULT 67108864LL
#define CPH_CACHE_MAX_BYTES_MAX 17179869184LL /* the snapshot schema's cap (16 GiB) */

/** The gateway settings in force (defaults until cph_settings_set_gateway). */
const cph_gateway_settings_t *cph_settings_gateway(void);
/** Replaces the gateway settings; call before any other thread starts. */
void cph_settings_set_gateway(const cph_gateway_settings_t *g);
/** Fills g with the defaults (no redis). */
void cph_settings_gateway_defaults(cph_gateway_settings_t *g);
/**
 * Parses "HOST:PORT[/DB]" into g's redis_host, redis_port, redis_db (db 0 when absent). HOST is an IPv4 literal, a
 * bracketed IPv6 literal ("[::1]", stored without the brackets) or a DNS name (1-246 bytes, labels of 1-63
 * [A-Za-z0-9-] not starting or ending with '-'); PORT 1..65535, DB 0..15, both plain decimal. Returns 0, or -1 leaving
 * g unchanged.
 */
int cph_settings_parse_redis(const char *s, cph_gateway_settings_t *g);
/** Parses "RATE/PERIOD_S/BURST" (plain decimals within the ranges above) into g's login_*. 0, or -1 leaving g unchanged. */
int cph_settings_parse_login_rate(const char *s, cph_gateway_settings_t *g);
/** Parses a plain decimal (no sign, no space) within [min, max] into *out. 0, or -1 leaving *out unchanged. */
int cph_settings_parse_long(const char *s, long min, long max, long *out);
/**
 * Parses --cache-max-bytes: a plain decimal (no sign, no space, no unit, at most 19 digits) within
 * 0..CPH_CACHE_MAX_BYTES_MAX into g->cache_max_bytes. 0, or -1 leaving g unchanged.
 */
int cph_settings_parse_cache_max_bytes(const char *s, cph_gateway_settings_t *g);

/**
 * Checks one CIDR as the snapshot schema wants it: an IPv4 (a.b.c.d) or IPv6 address as inet_pton reads it, then
 * optionally '/' and a prefix length without a leading zero (0-32 / 0-128; a bare address is one host), with no bit
 * set after the prefix. Returns 0, or -1 with a one-line reason in msg (msg_cap bytes; for host bits, the network the
 * user probably meant, e.g. "did you mean 10.0.0.0/8?").
 */
int cph_settings_check_cidr(const char *s, char *msg, size_t msg_cap);
/**
 * Appends the CIDR s (checked as above) to g's ip_deny (deny != 0) or ip_allow. Returns 0, or -1 with msg (invalid,
 * or more than CPH_SETTINGS_MAX_CIDRS in the list) leaving g unchanged.
 */
int cph_settings_add_cidr(cph_gateway_settings_t *g, int deny, const char *s, char *msg, size_t msg_cap);
/**
 * Parses one gateway-wide request limit: member is "max_body_bytes" (0..1073741824), "max_url_bytes" (256..65536),
 * "max_headers" (1..1000) or "max_header_bytes" (1024..1048576), s a plain decimal. 0, or -1 leaving g unchanged.
 */
int cph_settings_parse_limit(const char *member, const char *s, cph_gateway_settings_t *g);
/** Parses --cache-backend: "memory" or "redis" (exactly). 0, or -1 leaving g unchanged. */
int cph_settings_parse_cache_backend(const char *s, cph_gateway_settings_t *g);
/** Parses --ws-drain-grace-ms: a plain decimal 0..3600000. 0, or -1 leaving g unchanged. */
int cph_settings_parse_ws_drain_grace(const char *s, cph_gateway_settings_t *g);
/**
 * The checks across flags, after every flag was parsed: cache backend redis needs a redis (--redis). 0, or -1 with a
 * one-line reason in msg.
 */
int cph_settings_check_gateway(const cph_gateway_settings_t *g, char *msg, size_t msg_cap);

/* ---------------------------------------------------------------- Vault and Consul (integrations.h) */

#define CPH_SECRET_FILE_MAX 4096 /* a token or secret-id file bigger than this is refused unread */

/** The integration options as given: each the flag's value, else its environment variable's, else NULL. */
typedef struct st_cph_integration_args_t {
    const char *vault_addr, *vault_token_file, *vault_token /* CEPHALO_VAULT_TOKEN: the environment only */;
    const char *vault_role_id, *vault_secret_id_file, *vault_kv_mount, *vault_poll_s, *vault_timeout_ms, *vault_signing_path;
    const char *consul_addr, *consul_token_file, *consul_token /* CEPHALO_CONSUL_TOKEN: the environment only */;
    const char *consul_wait_s, *consul_datacenter;
} cph_integration_args_t;

/**
 * Parses a Vault or Consul address: "http://" or "https://" (lower case), a host (a DNS name as for --redis, an IPv4
 * literal or a bracketed IPv6 literal), an optional ":PORT" (1..65535, plain decimal) and an optional single trailing
 * '/' - no user info, path, query or fragment, fewer than CPH_INTEGRATION_URL_MAX bytes. Copies it without the
 * trailing '/' into out (CPH_INTEGRATION_URL_MAX bytes). Returns 0, or -1 leaving out unchanged.
 */
int cph_settings_parse_integration_url(const char *s, char *out);
/** 1 when s[0..len) can be sent as a token in an HTTP header: 1 to CPH_INTEGRATION_SECRET_MAX - 1 bytes of 0x21..0x7e. */
int cph_settings_secret_valid(const char *s, size_t len);
/**
 * Reads a token or secret-id file: a regular file (a FIFO, a device or a directory is refused without blocking) of
 * at most CPH_SECRET_FILE_MAX bytes, leading and trailing whitespace (space, tab, CR, LF) trimmed, the rest valid as
 * cph_settings_secret_valid says and shorter than cap. Copies it into out and sets *loose to 1 when the file's mode
 * gives group or others any access (the caller warns), else 0. Returns 0, or -1 with a one-line reason in msg that
 * holds neither the file's content nor its path. The read buffer is wiped.
 */
int cph_settings_read_secret_file(const char *path, char *out, size_t cap, int *loose, char *msg, size_t msg_cap);
/**
 * Fills s (from cph_integration_settings_defaults) from a: addresses as cph_settings_parse_integration_url, the
 * secret files read (a loose mode is logged as a warning naming the flag), --vault-kv-mount 1-128 bytes and
 * --vault-signing-path 1-256 bytes of Vault path segments ([A-Za-z0-9._-] joined by single '/', no '.'/'..'),
 * --vault-role-id as a secret, --vault-poll-s 1..3600, --vault-timeout-ms 100..60000, --consul-wait-s 1..600,
 * --consul-datacenter 1-128 bytes of [A-Za-z0-9._-]. Across options: Vault needs exactly one of a token (file or
 * CEPHALO_VAULT_TOKEN, not both) and AppRole (--vault-role-id with --vault-secret-id-file); no Vault or Consul option
 * without its address; not both --consul-token-file and CEPHALO_CONSUL_TOKEN. Returns 0, or -1 with a one-line
 * message in msg naming the flag and never a value. s may be partly filled on failure: wipe it
 * (cph_settings_integrations_wipe).
 */
int cph_settings_parse_integrations(const cph_integration_args_t *a, cph_integration_settings_t *s, char *msg, size_t msg_cap);
/** Overwrites the secrets in s (tokens, role id, secret id) with zeros in a way the compiler keeps. */
void cph_settings_integrations_wipe(cph_integration_settings_t *s);

#endif
