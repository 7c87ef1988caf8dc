/*
 * cephalo-controlplane: the only writer of the gateway's configuration.
 *
 * Opens (and migrates) the SQLite database in --data-dir, makes sure an admin token exists (CEPHALO_ADMIN_TOKEN, or
 * one generated at the first start and printed once) and an owner account (CEPHALO_ADMIN_PASSWORD, or a password
 * generated when there is no account at all, printed once), makes sure the current config version has a snapshot,
 * starts the data-plane socket server with that snapshot, then the admin API and the auth API (login, refresh,
 * logout; --auth-listen off disables it). The auth settings (token lifetimes, issuer, audience, leeway, header
 * prefix, the auth API's URL) and the gateway settings (redis, trusted proxy hops, the login limit, the cache budget
 * and backend, the gateway-wide IP lists and request limits, the websocket drain grace) are fixed from flags before
 * the database is opened, because the snapshot carries them; so are the Vault and Consul settings (integrations.h:
 * the snapshot's credentials depend on whether Vault is configured), whose token and secret-id files are read once
 * here. Once the snapshot is ready the Vault and Consul sync threads start (each when its address is set), then the
 * admin API. Every committed write is published to the data planes from the write path itself (cph_db_set_on_commit),
 * in version order. SIGTERM/SIGINT stop the auth API and the admin API first (no new writes), then the sync threads,
 * then the socket server, then close the database, and exit 0.
 *
 * Signals are blocked before any thread starts and taken with sigwait() here, so no handler runs inside SQLite,
 * libmicrohttpd or the socket server.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/crypto.h>
#include "controlplane/api.h"
#include "controlplane/api_integrations.h"
#include "controlplane/authapi.h"
#include "controlplane/db.h"
#include "controlplane/dpserver.h"
#include "controlplane/settings.h"
#include "controlplane/ui.h"
#include "controlplane/signing.h"
#include "controlplane/store_issuer.h"
#include "controlplane/sync_consul.h"
#include "controlplane/sync_jwks.h"
#include "controlplane/sync_vault.h"
#include "proto/log.h"

#define MODULE "cp/main"
#define TOKEN_MIN 16

typedef struct st_config_t {
    const char *data_dir;
    const char *admin_listen;
    const char *socket;
    const char *migrations;
    const char *auth_listen;   /* NULL = off */
    const char *cookie_secure; /* "on" | "off" | NULL: on unless the admin listener is loopback */
    const char *ui_dir;        /* the admin page's directory, "off" = none */
    uint64_t heartbeat_ms;
    int jwks_min_refresh_s; /* the lower bound of an issuer's refresh_s (tests lower it) */
    cph_auth_settings_t auth;
    cph_gateway_settings_t gateway;
    cph_integration_settings_t integ; /* holds secrets: wiped before main returns */
    char socket_buf[4096];
} config_t;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cephalo-controlplane [options]\n"
            "  --data-dir DIR            CEPHALO_DATA_DIR        (default var/cp): cephalo.db and run/\n"
            "  --admin-listen HOST:PORT  CEPHALO_ADMIN_LISTEN    (default 127.0.0.1:8001): admin API\n"
            "  --socket PATH             CEPHALO_SOCKET          (default <data-dir>/run/cp.sock): data-plane socket\n"
            "  --heartbeat-ms N          CEPHALO_HEARTBEAT_MS    (default 1000): sent to data planes in welcome\n"
            "  --migrations DIR          CEPHALO_MIGRATIONS_DIR  (default %s)\n"
            "  --admin-cookie-secure on|off CEPHALO_ADMIN_COOKIE_SECURE (default on unless --admin-listen is loopback)\n"
            "  --ui-dir DIR              CEPHALO_UI_DIR          (default %s; \"off\"): the admin web page\n"
            "  --auth-listen HOST:PORT   CEPHALO_AUTH_LISTEN     (default 127.0.0.1:8002; \"off\"): login/refresh/logout API\n"
            "  --access-ttl-s N          CEPHALO_ACCESS_TTL_S    (default 300, 1..%d): access token lifetime\n"
            "  --refresh-ttl-s N         CEPHALO_REFRESH_TTL_S   (default 1209600, 60..31536000): refresh token lifetime\n"
            "  --jwt-issuer S            CEPHALO_JWT_ISSUER      (default cephalo): JWT iss, 1-256 printable ASCII\n"
            "  --jwt-audience S          CEPHALO_JWT_AUDIENCE    (default none): JWT aud, 1-256 printable ASCII\n"
            "  --jwt-leeway-s N          CEPHALO_JWT_LEEWAY_S    (default 30, 0..300): clock skew the data planes allow\n"
            "  --header-prefix P         CEPHALO_HEADER_PREFIX   (default x-cephalo-): identity header prefix, [a-z0-9-]\n"
            "                                                    2..32, ending in '-'\n"
            "  --jwks-min-refresh-s N    CEPHALO_JWKS_MIN_REFRESH_S (default 30, 1..30): lowest refresh_s of an issuer\n"
            "  --redis HOST:PORT[/DB]    CEPHALO_REDIS           (default none): where the data planes keep redis rate limits\n"
            "                                                    (HOST an IPv4, [IPv6] or DNS name; DB 0..15, default 0)\n"
            "  --redis-timeout-ms N      CEPHALO_REDIS_TIMEOUT_MS (default 50, 1..10000): per-call redis deadline\n"
            "  --trusted-proxy-hops N    CEPHALO_TRUSTED_PROXY_HOPS (default 0, 0..8): proxies in front of the data planes\n"
            "  --login-rate R/P/B        CEPHALO_LOGIN_RATE      (default 10/60/5): POST /auth/login limit per client IP,\n"
            "                                                    R requests per P seconds, burst B\n"
            "  --cache-max-bytes N       CEPHALO_CACHE_MAX_BYTES (default 67108864, 0..17179869184): response cache memory\n"
            "                                                    per data plane; 0 = caching off\n"
            "  --cache-backend B         CEPHALO_CACHE_BACKEND   (default memory; memory|redis): where the response cache\n"
            "                                                    lives (redis needs --redis)\n"
            "  --ip-allow CIDR           CEPHALO_IP_ALLOW        (repeatable; env: comma-separated): only these clients,\n"
            "                                                    on every route (a.b.c.d[/n] or IPv6[/n], no host bits)\n"
            "  --ip-deny CIDR            CEPHALO_IP_DENY         (repeatable; env: comma-separated): never these clients\n"
            "  --max-body-bytes N        CEPHALO_MAX_BODY_BYTES  (default 10485760, 0..1073741824): request body, 413\n"
            "  --max-url-bytes N         CEPHALO_MAX_URL_BYTES   (default 8192, 256..65536): path and query, 414\n"
            "  --max-headers N           CEPHALO_MAX_HEADERS     (default 100, 1..1000): request header count, 431\n"
            "  --max-header-bytes N      CEPHALO_MAX_HEADER_BYTES (default 65536, 1024..1048576): header names+values, 431\n"
            "  --ws-drain-grace-ms N     CEPHALO_WS_DRAIN_GRACE_MS (default 30000, 0..3600000): a websocket whose route is\n"
            "                                                    gone after a config change is closed after this\n"
            "  --trust-request-id        CEPHALO_TRUST_REQUEST_ID (0|1, default 0): keep a client's valid X-Request-Id\n"
            "                                                    (only when a proxy in front sets it)\n"
            "  --max-connections-per-ip N CEPHALO_MAX_CONNECTIONS_PER_IP (default 0 = no cap, 0..1000000): open client\n"
            "                                                    connections per TCP peer address, per data plane\n"
            "  --vault-addr URL          CEPHALO_VAULT_ADDR      (default none = Vault off): http(s)://HOST[:PORT]\n"
            "  --vault-token-file F      CEPHALO_VAULT_TOKEN_FILE (or the token itself in CEPHALO_VAULT_TOKEN; never a flag)\n"
            "  --vault-role-id ID        CEPHALO_VAULT_ROLE_ID   AppRole login instead of a token, with:\n"
            "  --vault-secret-id-file F  CEPHALO_VAULT_SECRET_ID_FILE\n"
            "  --vault-kv-mount M        CEPHALO_VAULT_KV_MOUNT  (default secret): the KV version 2 mount\n"
            "  --vault-poll-s N          CEPHALO_VAULT_POLL_S    (default 30, 1..3600): secret version check interval\n"
            "  --vault-timeout-ms N      CEPHALO_VAULT_TIMEOUT_MS (default 5000, 100..60000): per Vault call\n"
            "  --vault-signing-path P    CEPHALO_VAULT_SIGNING_PATH (default none): the JWT signing key's secret in Vault\n"
            "  --consul-addr URL         CEPHALO_CONSUL_ADDR     (default none = Consul off): http(s)://HOST[:PORT]\n"
            "  --consul-token-file F     CEPHALO_CONSUL_TOKEN_FILE (or the token itself in CEPHALO_CONSUL_TOKEN): ACL token\n"
            "  --consul-wait-s N         CEPHALO_CONSUL_WAIT_S   (default 60, 1..600): blocking query wait\n"
            "  --consul-datacenter DC    CEPHALO_CONSUL_DATACENTER (default the agent's): ?dc=\n"
            "  --help                    this text\n"
            "Admin token: CEPHALO_ADMIN_TOKEN (>= 16 chars), else generated at the first start and printed once.\n"
            "Admin account: CEPHALO_ADMIN_USER (default admin) with CEPHALO_ADMIN_PASSWORD (12..1024 bytes) is made an\n"
            "owner; without a password, a database with no account gets one generated and printed once.\n"
            "Token and secret-id files: one line, read at start; a file group or others can access is warned about.\n",
            CEPHALO_MIGRATIONS_DIR, CEPHALO_UI_DIR, CPH_ACCESS_TOKEN_MAX_S);
}

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);

    return v != NULL && v[0] != '\0' ? v : def;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v == 0 || v > 3600000)
        return -1;
    *out = v;
    return 0;
}

/* ---------------------------------------------------------------- auth settings */

/* The auth options as given (flag, else environment, else default), checked by check_auth(). */
typedef struct st_auth_args_t {
    const char *listen, *access_ttl, *refresh_ttl, *issuer, *audience, *leeway, *prefix;
} auth_args_t;

static void auth_args_from_env(auth_args_t *a)
{
    a->listen = env_or("CEPHALO_AUTH_LISTEN", "127.0.0.1:8002");
    a->access_ttl = env_or("CEPHALO_ACCESS_TTL_S", "300");
    a->refresh_ttl = env_or("CEPHALO_REFRESH_TTL_S", "1209600");
    a->issuer = env_or("CEPHALO_JWT_ISSUER", "cephalo");
    a->audience = env_or("CEPHALO_JWT_AUDIENCE", NULL);
    a->leeway = env_or("CEPHALO_JWT_LEEWAY_S", "30");
    a->prefix = env_or("CEPHALO_HEADER_PREFIX", "x-cephalo-");
}

static int parse_int(const char *s, long min, long max, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

/* 1..256 printable ASCII characters, copied into out (257 bytes). */
static int printable(const char *s, char *out)
{
    size_t n = strlen(s);

    if (n == 0 || n > 256)
        return -1;
    for (size_t i = 0; i < n; ++i)
        if (s[i] < 0x20 || s[i] > 0x7e)
            return -1;
    memcpy(out, s, n + 1);
    return 0;
}

static int check_prefix(const char *s, char *out)
{
    size_t n = strlen(s);

    if (n < 2 || n > 32 || s[n - 1] != '-' || strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") != n)
        return -1;
    memcpy(out, s, n + 1);
    return 0;
}

/* Fills c->auth and c->auth_listen from a; prints what is wrong and returns -1 on a bad value. */
static int check_auth(const auth_args_t *a, config_t *c)
{
    cph_auth_settings_t *s = &c->auth;
    const char *bad = NULL;

    cph_settings_auth_defaults(s);
    if (parse_int(a->access_ttl, 1, CPH_ACCESS_TOKEN_MAX_S, &s->access_ttl_s) != 0)
        bad = "--access-ttl-s";
    else if (parse_int(a->refresh_ttl, 60, 365L * 24 * 3600, &s->refresh_ttl_s) != 0)
        bad = "--refresh-ttl-s";
    else if (printable(a->issuer, s->issuer) != 0)
        bad = "--jwt-issuer";
    else if (a->audience != NULL && a->audience[0] != '\0' && printable(a->audience, s->audience) != 0)
        bad = "--jwt-audience";
    else if (parse_int(a->leeway, 0, 300, &s->leeway_s) != 0)
        bad = "--jwt-leeway-s";
    else if (check_prefix(a->prefix, s->header_prefix) != 0)
        bad = "--header-prefix";
    else if (strlen(a->listen) > sizeof(s->api) - 8)
        bad = "--auth-listen";
    if (bad != NULL) {
        fprintf(stderr, "cephalo-controlplane: bad value for %s\n", bad);
        return -1;
    }
    c->auth_listen = strcmp(a->listen, "off") == 0 ? NULL : a->listen;
    if (c->auth_listen != NULL)
        snprintf(s->api, sizeof(s->api), "http://%s", c->auth_listen);
    return 0;
}

/* An auth option of getopt_long (codes 'A'..'G'); 0 when ch is not one. */
static int auth_option(int ch, auth_args_t *a)
{
    const char **slot = ch == 'A'   ? &a->listen
                        : ch == 'B' ? &a->access_ttl
                        : ch == 'C' ? &a->refresh_ttl
                        : ch == 'D' ? &a->issuer
                        : ch == 'E' ? &a->audience
                        : ch == 'F' ? &a->leeway
                        : ch == 'G' ? &a->prefix
                                    : NULL;

    if (slot == NULL)
        return 0;
    *slot = optarg;
    return 1;
}

/* ---------------------------------------------------------------- gateway settings */

#define OPT_TRUST_REQUEST_ID 512 /* getopt codes of the gateway flags without a one-letter code */
#define OPT_MAX_CONNS_PER_IP 513

/* The gateway options as given (flag, else environment, else default), checked by check_gateway(). */
typedef struct st_gateway_args_t {
    const char *redis, *redis_timeout, *proxy_hops, *login_rate, *cache_max_bytes, *cache_backend, *ws_drain_grace;
    const char *trust_request_id, *max_conns_per_ip;
    const char *limits[4];                            /* in the order of LIMIT_MEMBERS */
    const char *cidrs[2][CPH_SETTINGS_MAX_CIDRS + 1]; /* --ip-allow, --ip-deny as given */
    size_t num_cidrs[2];                              /* one more than the cap: refused by check_cidrs */
    const char *cidr_env[2];                          /* CEPHALO_IP_ALLOW / _DENY: comma-separated */
} gateway_args_t;

static const char *const LIMIT_MEMBERS[] = {"max_body_bytes", "max_url_bytes", "max_headers", "max_header_bytes"};
static const char *const LIMIT_FLAGS[] = {"--max-body-bytes", "--max-url-bytes", "--max-headers", "--max-header-bytes"};
static const char *const CIDR_FLAGS[] = {"--ip-allow", "--ip-deny"};

static void gateway_args_from_env(gateway_args_t *a)
{
    memset(a, 0, sizeof(*a));
    a->redis = env_or("CEPHALO_REDIS", NULL);
    a->redis_timeout = env_or("CEPHALO_REDIS_TIMEOUT_MS", "50");
    a->proxy_hops = env_or("CEPHALO_TRUSTED_PROXY_HOPS", "0");
    a->login_rate = env_or("CEPHALO_LOGIN_RATE", "10/60/5");
    a->cache_max_bytes = env_or("CEPHALO_CACHE_MAX_BYTES", "67108864");
    a->cache_backend = env_or("CEPHALO_CACHE_BACKEND", "memory");
    a->ws_drain_grace = env_or("CEPHALO_WS_DRAIN_GRACE_MS", "30000");
    a->trust_request_id = env_or("CEPHALO_TRUST_REQUEST_ID", "0");
    a->max_conns_per_ip = env_or("CEPHALO_MAX_CONNECTIONS_PER_IP", "0");
    a->limits[0] = env_or("CEPHALO_MAX_BODY_BYTES", "10485760");
    a->limits[1] = env_or("CEPHALO_MAX_URL_BYTES", "8192");
    a->limits[2] = env_or("CEPHALO_MAX_HEADERS", "100");
    a->limits[3] = env_or("CEPHALO_MAX_HEADER_BYTES", "65536");
    a->cidr_env[0] = env_or("CEPHALO_IP_ALLOW", NULL);
    a->cidr_env[1] = env_or("CEPHALO_IP_DENY", NULL);
}

/* The IP lists: the flags when any was given, else the environment's comma-separated list. -1 after a message. */
static int check_cidrs(const gateway_args_t *a, cph_gateway_settings_t *g)
{
    char msg[256], item[CPH_SETTINGS_CIDR_MAX + 16];

    for (int deny = 0; deny != 2; deny++) {
        for (size_t i = 0; i != a->num_cidrs[deny]; i++) /* at most one past the cap: add_cidr refuses that one */
            if (cph_settings_add_cidr(g, deny, a->cidrs[deny][i], msg, sizeof(msg)) != 0)
                goto Bad;
        for (const char *p = a->num_cidrs[deny] == 0 ? a->cidr_env[deny] : NULL; p != NULL && *p != '\0';) {
            size_t len = strcspn(p, ",");
            snprintf(item, sizeof(item), "%.*s", (int)(len < sizeof(item) - 1 ? len : sizeof(item) - 1), p);
            if (cph_settings_add_cidr(g, deny, item, msg, sizeof(msg)) != 0)
                goto Bad;
            p += len + (p[len] == ',');
        }
        continue;
    Bad:
        fprintf(stderr, "cephalo-controlplane: bad value for %s: %s\n", CIDR_FLAGS[deny], msg);
        return -1;
    }
    return 0;
}

/* Fills c->gateway from a; prints what is wrong and returns -1 on a bad value. */
static int check_gateway(const gateway_args_t *a, config_t *c)
{
    cph_gateway_settings_t *g = &c->gateway;
    const char *bad = NULL;
    char msg[256];
    long timeout = 0, hops = 0, trust = 0;

    cph_settings_gateway_defaults(g);
    if (a->redis != NULL && cph_settings_parse_redis(a->redis, g) != 0)
        bad = "--redis";
    else if (cph_settings_parse_long(a->redis_timeout, 1, 10000, &timeout) != 0)
        bad = "--redis-timeout-ms";
    else if (cph_settings_parse_long(a->proxy_hops, 0, 8, &hops) != 0)
        bad = "--trusted-proxy-hops";
    else if (cph_settings_parse_login_rate(a->login_rate, g) != 0)
        bad = "--login-rate";
    else if (cph_settings_parse_cache_max_bytes(a->cache_max_bytes, g) != 0)
        bad = "--cache-max-bytes";
    else if (cph_settings_parse_cache_backend(a->cache_backend, g) != 0)
        bad = "--cache-backend (memory or redis)";
    else if (cph_settings_parse_ws_drain_grace(a->ws_drain_grace, g) != 0)
        bad = "--ws-drain-grace-ms (0..3600000)";
    else if (cph_settings_parse_long(a->trust_request_id, 0, 1, &trust) != 0)
        bad = "CEPHALO_TRUST_REQUEST_ID (0 or 1)";
    else if (cph_settings_parse_long(a->max_conns_per_ip, 0, CPH_MAX_CONNECTIONS_PER_IP, &g->max_connections_per_ip) != 0)
        bad = "--max-connections-per-ip (0..1000000)";
    for (size_t i = 0; bad == NULL && i != 4; i++)
        if (cph_settings_parse_limit(LIMIT_MEMBERS[i], a->limits[i], g) != 0)
            bad = LIMIT_FLAGS[i];
    if (bad != NULL) {
        fprintf(stderr, "cephalo-controlplane: bad value for %s\n", bad);
        return -1;
    }
    if (check_cidrs(a, g) != 0)
        return -1;
    if (cph_settings_check_gateway(g, msg, sizeof(msg)) != 0) {
        fprintf(stderr, "cephalo-controlplane: %s\n", msg);
        return -1;
    }
    g->redis_timeout_ms = (int)timeout;
    g->trusted_proxy_hops = (int)hops;
    g->trust_request_id = (int)trust;
    return 0;
}

/* A gateway option of getopt_long; 0 when ch is not one. */
static int gateway_option(int ch, gateway_args_t *a)
{
    const char **slot = ch == 'R'                    ? &a->redis
                        : ch == 'T'                  ? &a->redis_timeout
                        : ch == 'P'                  ? &a->proxy_hops
                        : ch == 'L'                  ? &a->login_rate
                        : ch == 'K'                  ? &a->cache_max_bytes
                        : ch == 'c'                  ? &a->cache_backend
                        : ch == 'W'                  ? &a->ws_drain_grace
                        : ch == 'y'                  ? &a->limits[0]
                        : ch == 'U'                  ? &a->limits[1]
                        : ch == 'N'                  ? &a->limits[2]
                        : ch == 'H'                  ? &a->limits[3]
                        : ch == OPT_MAX_CONNS_PER_IP ? &a->max_conns_per_ip
                                                     : NULL;

    if (ch == OPT_TRUST_REQUEST_ID) {
        a->trust_request_id = "1";
        return 1;
    }
    if (ch == 'a' || ch == 'x') { /* repeatable */
        int deny = ch == 'x';
        if (a->num_cidrs[deny] <= CPH_SETTINGS_MAX_CIDRS)
            a->cidrs[deny][a->num_cidrs[deny]++] = optarg;
        return 1;
    }
    if (slot == NULL)
        return 0;
    *slot = optarg;
    return 1;
}

/* ---------------------------------------------------------------- Vault and Consul settings */

#define OPT_INTEG 256 /* getopt codes OPT_INTEG + i: INTEG_FLAGS[i] */

/* The Vault and Consul options taking a value, with their environment variable and their slot in the args. */
static const struct st_integ_flag_t {
    const char *env;
    size_t offset;
} INTEG_FLAGS[] = {
    {"CEPHALO_VAULT_ADDR", offsetof(cph_integration_args_t, vault_addr)},
    {"CEPHALO_VAULT_TOKEN_FILE", offsetof(cph_integration_args_t, vault_token_file)},
    {"CEPHALO_VAULT_ROLE_ID", offsetof(cph_integration_args_t, vault_role_id)},
    {"CEPHALO_VAULT_SECRET_ID_FILE", offsetof(cph_integration_args_t, vault_secret_id_file)},
    {"CEPHALO_VAULT_KV_MOUNT", offsetof(cph_integration_args_t, vault_kv_mount)},
    {"CEPHALO_VAULT_POLL_S", offsetof(cph_integration_args_t, vault_poll_s)},
    {"CEPHALO_VAULT_TIMEOUT_MS", offsetof(cph_integration_args_t, vault_timeout_ms)},
    {"CEPHALO_VAULT_SIGNING_PATH", offsetof(cph_integration_args_t, vault_signing_path)},
    {"CEPHALO_CONSUL_ADDR", offsetof(cph_integration_args_t, consul_addr)},
    {"CEPHALO_CONSUL_TOKEN_FILE", offsetof(cph_integration_args_t, consul_token_file)},
    {"CEPHALO_CONSUL_WAIT_S", offsetof(cph_integration_args_t, consul_wait_s)},
    {"CEPHALO_CONSUL_DATACENTER", offsetof(cph_integration_args_t, consul_datacenter)},
    {NULL, 0}, /* --vault-token: refused (a token in argv is visible to every local user) */
    {NULL, 0}, /* --consul-token: refused */
};
#define NUM_INTEG_FLAGS (sizeof(INTEG_FLAGS) / sizeof(INTEG_FLAGS[0]))

static void integ_args_from_env(cph_integration_args_t *a)
{
    memset(a, 0, sizeof(*a));
    for (size_t i = 0; i != NUM_INTEG_FLAGS; i++)
        if (INTEG_FLAGS[i].env != NULL)
            *(const char **)((char *)a + INTEG_FLAGS[i].offset) = env_or(INTEG_FLAGS[i].env, NULL);
    a->vault_token = env_or("CEPHALO_VAULT_TOKEN", NULL);
    a->consul_token = env_or("CEPHALO_CONSUL_TOKEN", NULL);
}

/* A Vault or Consul option of getopt_long: 1 taken, 0 not one, -1 refused (after a message). */
static int integ_option(int ch, cph_integration_args_t *a)
{
    size_t i = (size_t)(ch - OPT_INTEG);

    if (ch < OPT_INTEG || i >= NUM_INTEG_FLAGS)
        return 0;
    if (INTEG_FLAGS[i].env == NULL) {
        fprintf(stderr, "cephalo-controlplane: a token is never given as a flag (every local user can read the command "
                        "line): use --vault-token-file / CEPHALO_VAULT_TOKEN, --consul-token-file / CEPHALO_CONSUL_TOKEN\n");
        return -1;
    }
    *(const char **)((char *)a + INTEG_FLAGS[i].offset) = optarg;
    return 1;
}

/* Fills c->integ from a; prints what is wrong (never a value) and returns -1 on a bad value. */
static int check_integ(const cph_integration_args_t *a, config_t *c)
{
    char msg[320];

    if (cph_settings_parse_integrations(a, &c->integ, msg, sizeof(msg)) != 0) {
        cph_settings_integrations_wipe(&c->integ);
        fprintf(stderr, "cephalo-controlplane: %s\n", msg);
        return -1;
    }
    return 0;
}

/*
 * getopt's own message would repeat an unknown option with its value ("--vault-tokn=s3cr3t"): ours names only the
 * part before '='.
 */
static void bad_option(int argc, char **argv)
{
    const char *arg = optind >= 1 && optind - 1 < argc ? argv[optind - 1] : "";

    fprintf(stderr, "cephalo-controlplane: unknown option, or an option without its value: %.*s (see --help)\n",
            (int)(strcspn(arg, "=") < 64 ? strcspn(arg, "=") : 64), arg);
}

/* ---------------------------------------------------------------- arguments */

static const struct option OPTS[] = {{"data-dir", required_argument, NULL, 'd'},
                                     {"admin-listen", required_argument, NULL, 'l'},
                                     {"socket", required_argument, NULL, 's'},
                                     {"heartbeat-ms", required_argument, NULL, 'b'},
                                     {"migrations", required_argument, NULL, 'm'},
                                     {"auth-listen", required_argument, NULL, 'A'},
                                     {"access-ttl-s", required_argument, NULL, 'B'},
                                     {"refresh-ttl-s", required_argument, NULL, 'C'},
                                     {"jwt-issuer", required_argument, NULL, 'D'},
                                     {"jwt-audience", required_argument, NULL, 'E'},
                                     {"jwt-leeway-s", required_argument, NULL, 'F'},
                                     {"header-prefix", required_argument, NULL, 'G'},
                                     {"jwks-min-refresh-s", required_argument, NULL, 'J'},
                                     {"redis", required_argument, NULL, 'R'},
                                     {"redis-timeout-ms", required_argument, NULL, 'T'},
                                     {"trusted-proxy-hops", required_argument, NULL, 'P'},
                                     {"login-rate", required_argument, NULL, 'L'},
                                     {"cache-max-bytes", required_argument, NULL, 'K'},
                                     {"cache-backend", required_argument, NULL, 'c'},
                                     {"ws-drain-grace-ms", required_argument, NULL, 'W'},
                                     {"ip-allow", required_argument, NULL, 'a'},
                                     {"ip-deny", required_argument, NULL, 'x'},
                                     {"max-body-bytes", required_argument, NULL, 'y'},
                                     {"max-url-bytes", required_argument, NULL, 'U'},
                                     {"max-headers", required_argument, NULL, 'N'},
                                     {"max-header-bytes", required_argument, NULL, 'H'},
                                     {"trust-request-id", no_argument, NULL, OPT_TRUST_REQUEST_ID},
                                     {"max-connections-per-ip", required_argument, NULL, OPT_MAX_CONNS_PER_IP},
                                     {"vault-addr", required_argument, NULL, OPT_INTEG + 0},
                                     {"vault-token-file", required_argument, NULL, OPT_INTEG + 1},
                                     {"vault-role-id", required_argument, NULL, OPT_INTEG + 2},
                                     {"vault-secret-id-file", required_argument, NULL, OPT_INTEG + 3},
                                     {"vault-kv-mount", required_argument, NULL, OPT_INTEG + 4},
                                     {"vault-poll-s", required_argument, NULL, OPT_INTEG + 5},
                                     {"vault-timeout-ms", required_argument, NULL, OPT_INTEG + 6},
                                     {"vault-signing-path", required_argument, NULL, OPT_INTEG + 7},
                                     {"consul-addr", required_argument, NULL, OPT_INTEG + 8},
                                     {"consul-token-file", required_argument, NULL, OPT_INTEG + 9},
                                     {"consul-wait-s", required_argument, NULL, OPT_INTEG + 10},
                                     {"consul-datacenter", required_argument, NULL, OPT_INTEG + 11},
                                     {"vault-token", required_argument, NULL, OPT_INTEG + 12},
                                     {"consul-token", required_argument, NULL, OPT_INTEG + 13},
                                     {"admin-cookie-secure", required_argument, NULL, 'O'},
                                     {"ui-dir", required_argument, NULL, 'I'},
                                     {"help", no_argument, NULL, 'h'},
                                     {NULL, 0, NULL, 0}};

/* Returns 0 to run, 1 to exit 0 (--help), -1 on a usage error. */
static int parse_args(int argc, char **argv, config_t *c)
{
    const char *hb = env_or("CEPHALO_HEARTBEAT_MS", "1000"), *jwks_min = env_or("CEPHALO_JWKS_MIN_REFRESH_S", "30");
    auth_args_t auth;
    gateway_args_t gateway;
    cph_integration_args_t integ;
    int ch, r;

    auth_args_from_env(&auth);
    gateway_args_from_env(&gateway);
    integ_args_from_env(&integ);
    opterr = 0; /* bad_option() says it without the value */
    c->data_dir = env_or("CEPHALO_DATA_DIR", "var/cp");
    c->admin_listen = env_or("CEPHALO_ADMIN_LISTEN", "127.0.0.1:8001");
    c->socket = env_or("CEPHALO_SOCKET", NULL);
    c->migrations = env_or("CEPHALO_MIGRATIONS_DIR", CEPHALO_MIGRATIONS_DIR);
    c->cookie_secure = env_or("CEPHALO_ADMIN_COOKIE_SECURE", NULL);
    c->ui_dir = env_or("CEPHALO_UI_DIR", CEPHALO_UI_DIR);
    while ((ch = getopt_long(argc, argv, "", OPTS, NULL)) != -1) {
        switch (ch) {
        case 'd':
            c->data_dir = optarg;
            break;
        case 'l':
            c->admin_listen = optarg;
            break;
        case 's':
            c->socket = optarg;
            break;
        case 'b':
            hb = optarg;
            break;
        case 'm':
            c->migrations = optarg;
            break;
        case 'J':
            jwks_min = optarg;
            break;
        case 'O':
            c->cookie_secure = optarg;
            break;
        case 'I':
            c->ui_dir = optarg;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            if (auth_option(ch, &auth) || gateway_option(ch, &gateway))
                break;
            if ((r = integ_option(ch, &integ)) != 0) {
                if (r < 0)
                    return -1;
                break;
            }
            bad_option(argc, argv);
            usage(stderr);
            return -1;
        }
    }
    if (optind != argc || parse_u64(hb, &c->heartbeat_ms) != 0 ||
        parse_int(jwks_min, 1, CPH_ISSUER_REFRESH_MIN_S, &c->jwks_min_refresh_s) != 0) {
        usage(stderr);
        return -1;
    }
    if (check_auth(&auth, c) != 0 || check_gateway(&gateway, c) != 0 || check_integ(&integ, c) != 0)
        return -1;
    if (c->cookie_secure != NULL && strcmp(c->cookie_secure, "on") != 0 && strcmp(c->cookie_secure, "off") != 0) {
        fprintf(stderr, "cephalo-controlplane: bad value for --admin-cookie-secure\n");
        return -1;
    }
    if (c->socket == NULL) {
        snprintf(c->socket_buf, sizeof(c->socket_buf), "%s/run/cp.sock", c->data_dir);
        c->socket = c->socket_buf;
    }
    return 0;
}

/* mkdir -p with mode 0700 for the directories we create. */
static int make_dirs(const char *path)
{
    char buf[4096];

    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p != '\0'; ++p) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

/* CEPHALO_ADMIN_TOKEN replaces the stored admin token; without it one is generated once and printed once. */
static int bootstrap_token(cph_db_t *db)
{
    const char *env = getenv("CEPHALO_ADMIN_TOKEN");
    char generated[65];
    cph_error_t err = {0};

    if (env != NULL && strlen(env) < TOKEN_MIN) {
        cph_log_error(MODULE, "CEPHALO_ADMIN_TOKEN must be at least %d characters", TOKEN_MIN);
        return -1;
    }
    if (cph_admin_bootstrap_token(db, env, generated, &err) != 0) {
        cph_log_error(MODULE, "cannot store the admin token");
        return -1;
    }
    if (generated[0] != '\0') {
        printf("admin token: %s\n", generated);
        fflush(stdout);
    }
    OPENSSL_cleanse(generated, sizeof(generated));
    return 0;
}

/* The owner account: CEPHALO_ADMIN_PASSWORD for CEPHALO_ADMIN_USER, or a generated password printed once. */
static int bootstrap_account(cph_db_t *db)
{
    char generated[65];
    cph_error_t err = {0};

    if (cph_admin_bootstrap(db, env_or("CEPHALO_ADMIN_USER", "admin"), env_or("CEPHALO_ADMIN_PASSWORD", NULL), generated, &err) !=
        0) {
        cph_log_error(MODULE, "cannot bootstrap the admin account: %s", err.msg);
        return -1;
    }
    if (generated[0] != '\0') {
        printf("admin password: %s\n", generated);
        fflush(stdout);
    }
    OPENSSL_cleanse(generated, sizeof(generated));
    return 0;
}

/* The session cookie is Secure unless told otherwise or the admin listener is loopback (plain HTTP on this host). */
static void set_cookie_secure(const config_t *c)
{
    const char *l = c->admin_listen;
    int loopback = strncmp(l, "127.", 4) == 0 || strncmp(l, "localhost:", 10) == 0 || strncmp(l, "[::1]:", 6) == 0;

    cph_admin_set_cookie_secure(c->cookie_secure != NULL ? strcmp(c->cookie_secure, "on") == 0 : !loopback);
}

static void on_commit(void *ud, uint64_t version, const char *hash, json_t *body)
{
    cph_dpserver_publish(ud, version, hash, body);
}

/* Starts the socket server with the current snapshot, then hooks it to every future commit. */
static cph_dpserver_t *start_dpserver(const config_t *c, cph_db_t *db)
{
    cph_error_t err;
    json_t *snap = cph_db_current_snapshot(db, 1);
    cph_dpserver_t *dps = NULL;

    if (snap == NULL) {
        cph_log_error(MODULE, "no current snapshot");
        return NULL;
    }
    if ((dps = cph_dpserver_start(c->socket, json_string_value(json_object_get(snap, "epoch")), c->heartbeat_ms, &err)) == NULL) {
        cph_log_error(MODULE, "cannot start the data-plane server: %s", err.msg);
        goto Exit;
    }
    cph_dpserver_publish(dps, (uint64_t)json_integer_value(json_object_get(snap, "version")),
                         json_string_value(json_object_get(snap, "hash")), json_object_get(snap, "body"));
    cph_db_set_on_commit(db, on_commit, dps);
Exit:
    json_decref(snap);
    return dps;
}

/* The Vault and Consul sync threads, each when its address is set. -1 after a log line (the others stopped). */
static int start_integrations(const config_t *c, cph_db_t *db, cph_sync_vault_t **vault, cph_sync_consul_t **consul)
{
    cph_error_t err = {0};

    if (c->integ.vault_addr[0] != '\0') {
        cph_integration_enable(CPH_INTEGRATION_VAULT);
        if ((*vault = cph_sync_vault_start(db, &c->integ, &err)) == NULL) {
            cph_log_error(MODULE, "cannot start the Vault sync: %s", err.msg);
            return -1;
        }
    }
    if (c->integ.consul_addr[0] != '\0') {
        cph_integration_enable(CPH_INTEGRATION_CONSUL);
        if ((*consul = cph_sync_consul_start(db, &c->integ, &err)) == NULL) {
            cph_log_error(MODULE, "cannot start the Consul sync: %s", err.msg);
            cph_sync_vault_stop(*vault);
            *vault = NULL;
            return -1;
        }
    }
    cph_api_integrations_set_vault(*vault);
    return 0;
}

/* The reverse of start_integrations, once the admin and auth APIs (their users) have stopped. */
static void stop_integrations(cph_sync_vault_t *vault, cph_sync_consul_t *consul)
{
    cph_api_integrations_set_vault(NULL);
    cph_sync_consul_stop(consul);
    cph_sync_vault_stop(vault);
}

static int run(const config_t *c, cph_db_t *db, const sigset_t *sigs)
{
    cph_dpserver_t *dps;
    cph_api_t *api = NULL;
    cph_authapi_t *auth = NULL;
    cph_sync_jwks_t *jwks = NULL;
    cph_sync_vault_t *vault = NULL;
    cph_sync_consul_t *consul = NULL;
    cph_error_t err = {0};
    int sig = 0;

    if ((dps = start_dpserver(c, db)) == NULL)
        return -1;
    if (start_integrations(c, db, &vault, &consul) != 0) {
        cph_db_set_on_commit(db, NULL, NULL);
        cph_dpserver_stop(dps);
        return -1;
    }
    if ((api = cph_api_start(c->admin_listen, db, dps, &err)) == NULL ||
        (c->auth_listen != NULL && (auth = cph_authapi_start(c->auth_listen, db, NULL, &err)) == NULL) ||
        (jwks = cph_sync_jwks_start(db, &err)) == NULL) {
        cph_log_error(MODULE, "%s", err.msg);
        cph_authapi_stop(auth);
        cph_api_stop(api);
        stop_integrations(vault, consul);
        cph_db_set_on_commit(db, NULL, NULL);
        cph_dpserver_stop(dps);
        return -1;
    }
    cph_log_info(MODULE, "admin API on %s, auth API on %s, data planes on %s, Vault %s, Consul %s", c->admin_listen,
                 c->auth_listen != NULL ? c->auth_listen : "(off)", c->socket, vault != NULL ? c->integ.vault_addr : "(off)",
                 consul != NULL ? c->integ.consul_addr : "(off)");
    sigwait(sigs, &sig);
    cph_log_info(MODULE, "signal %d: shutting down", sig);
    cph_sync_jwks_stop(jwks); /* no write of its own after this */
    cph_authapi_stop(auth);
    cph_api_stop(api);
    stop_integrations(vault, consul); /* after the APIs: a login signs with Vault's key, vault/paths asks Vault */
    cph_db_set_on_commit(db, NULL, NULL);
    cph_dpserver_stop(dps);
    return 0;
}

int main(int argc, char **argv)
{
    config_t c = {0};
    cph_error_t err = {0};
    cph_db_t *db = NULL;
    sigset_t sigs;
    char path[4096];
    int r, ret = 1;

    if ((r = parse_args(argc, argv, &c)) != 0)
        return r > 0 ? 0 : 2;
    cph_settings_set_auth(&c.auth); /* before the database: ensure_snapshot builds the "auth" and "gateway" sections */
    cph_settings_set_gateway(&c.gateway);
    cph_integration_settings_set(&c.integ); /* snapbuild: without Vault, credentials resolve to an error */
    cph_store_issuer_set_min_refresh(c.jwks_min_refresh_s);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    if (make_dirs(c.data_dir) != 0) {
        cph_log_error(MODULE, "cannot create the data directory");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/cephalo.db", c.data_dir);
    if ((db = cph_db_open(path, c.migrations, &err)) == NULL) {
        cph_log_error(MODULE, "cannot open the database: %s", err.msg);
        return 1;
    }
    /* the first key's write is a fresh database's version 1 (its snapshot is the empty one the bootstrap would write) */
    set_cookie_secure(&c);
    cph_ui_set_dir(strcmp(c.ui_dir, "off") == 0 ? NULL : c.ui_dir);
    if (bootstrap_token(db) != 0 || bootstrap_account(db) != 0 || cph_signing_ensure(db, &err) != 0 ||
        cph_db_ensure_snapshot(db, &err) != 0) {
        if (err.msg[0] != '\0')
            cph_log_error(MODULE, "cannot initialise the database: %s", err.msg);
        goto Exit;
    }
    if (run(&c, db, &sigs) == 0)
        ret = 0;
Exit:
    cph_db_close(db);
    cph_settings_integrations_wipe(&c.integ);
    return ret;
}
