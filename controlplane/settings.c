/*
 * settings: the process-wide auth and gateway settings (settings.h). Written once by main() before the admin and auth
 * listeners start, read-only afterwards, so readers need no lock.
 *
 * The gateway flags are parsed here rather than in main.c so that the exact accepted forms are unit tested: a value
 * the data planes' schema would refuse must stop the control plane at start (exit 2), never reach a snapshot.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include "controlplane/settings.h"
#include "proto/log.h"

#define MODULE "cp/settings"

static cph_auth_settings_t current;
static int initialised;
static cph_gateway_settings_t gateway;
static int gateway_initialised;

void cph_settings_auth_defaults(cph_auth_settings_t *s)
{
    memset(s, 0, sizeof(*s));
    strcpy(s->issuer, "cephalo");
    s->leeway_s = 30;
    s->max_token_bytes = 8192;
    strcpy(s->header_prefix, "x-cephalo-");
    s->access_ttl_s = 300;
    s->refresh_ttl_s = 14 * 24 * 3600;
}

const cph_auth_settings_t *cph_settings_auth(void)
{
    if (!initialised) {
        cph_settings_auth_defaults(&current);
        initialised = 1;
    }
    return &current;
}

void cph_settings_set_auth(const cph_auth_settings_t *s)
{
    current = *s;
    initialised = 1;
}

/* ---------------------------------------------------------------- gateway */

void cph_settings_gateway_defaults(cph_gateway_settings_t *g)
{
    memset(g, 0, sizeof(*g));
    g->redis_port = 6379;
    g->redis_timeout_ms = 50;
    g->max_body_bytes = 10485760;
    g->max_url_bytes = 8192;
    g->max_headers = 100;
    g->max_header_bytes = 65536;
    g->login_rate = 10;
    g->login_period_s = 60;
    g->login_burst = 5;
    g->cache_max_bytes = CPH_CACHE_MAX_BYTES_DEFAULT;
    g->ws_drain_grace_ms = CPH_WS_DRAIN_GRACE_MS_DEFAULT;
}

const cph_gateway_settings_t *cph_settings_gateway(void)
{
    if (!gateway_initialised) {
        cph_settings_gateway_defaults(&gateway);
        gateway_initialised = 1;
    }
    return &gateway;
}

void cph_settings_set_gateway(const cph_gateway_settings_t *g)
{
    gateway = *g;
    gateway_initialised = 1;
}

int cph_settings_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    if (s == NULL || s[0] < '0' || s[0] > '9' || strlen(s) > 10)
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (*end != '\0' || errno != 0 || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/*
 * A DNS name: dot-separated labels of 1-63 [A-Za-z0-9-], none starting or ending with '-'; at most 246 bytes, because
 * the snapshot schema checks the host as part of "http://<host>:1" (255 bytes at most).
 */
static int valid_dns_name(const char *s, size_t len)
{
    size_t label = 0;

    if (len == 0 || len > 246)
        return 0;
    for (size_t i = 0; i <= len; ++i) {
        char c = i < len ? s[i] : '.';
        if (c == '.') {
            if (label == 0 || label > 63 || s[i - 1] == '-' || s[i - label] == '-')
                return 0;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-') {
            ++label;
        } else {
            return 0;
        }
    }
    return 1;
}

/* HOST of "HOST:PORT": "[v6]" or an IPv4 literal / DNS name; copied (without brackets) into out[254]. */
static int parse_redis_host(const char *s, size_t len, char *out)
{
    unsigned char addr[16];
    char buf[254];

    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        if (len - 2 >= sizeof(buf))
            return -1;
        memcpy(buf, s + 1, len - 2);
        buf[len - 2] = '\0';
        if (inet_pton(AF_INET6, buf, addr) != 1)
            return -1;
    } else {
        if (len >= sizeof(buf) || !valid_dns_name(s, len))
            return -1;
        memcpy(buf, s, len);
        buf[len] = '\0';
        /* all digits and dots: must then be a real IPv4 literal, not "1.2.3" or "999.1.1.1" */
        if (strspn(buf, "0123456789.") == len && inet_pton(AF_INET, buf, addr) != 1)
            return -1;
    }
    memcpy(out, buf, strlen(buf) + 1);
    return 0;
}

int cph_settings_parse_redis(const char *s, cph_gateway_settings_t *g)
{
    char host[254], port[8], db[4] = "0";
    const char *colon, *slash;
    long p, d;

    if (s == NULL || (colon = strrchr(s, ':')) == NULL)
        return -1;
    if ((slash = strchr(colon, '/')) == NULL)
        slash = colon + strlen(colon);
    else if (strlen(slash + 1) >= sizeof(db) || slash[1] == '\0')
        return -1;
    else
        memcpy(db, slash + 1, strlen(slash + 1) + 1);
    if ((size_t)(slash - colon - 1) >= sizeof(port))
        return -1;
    memcpy(port, colon + 1, (size_t)(slash - colon - 1));
    port[slash - colon - 1] = '\0';
    if (parse_redis_host(s, (size_t)(colon - s), host) != 0 || cph_settings_parse_long(port, 1, 65535, &p) != 0 ||
        cph_settings_parse_long(db, 0, 15, &d) != 0)
        return -1;
    memcpy(g->redis_host, host, strlen(host) + 1);
    g->redis_port = (int)p;
    g->redis_db = (int)d;
    return 0;
}

int cph_settings_parse_login_rate(const char *s, cph_gateway_settings_t *g)
{
    char buf[40], *period, *burst;
    long r, p, b;

    if (s == NULL || strlen(s) >= sizeof(buf))
        return -1;
    memcpy(buf, s, strlen(s) + 1);
    if ((period = strchr(buf, '/')) == NULL || (burst = strchr(period + 1, '/')) == NULL)
        return -1;
    *period++ = '\0';
    *burst++ = '\0';
    if (cph_settings_parse_long(buf, 1, 1000000000, &r) != 0 || cph_settings_parse_long(period, 1, 86400, &p) != 0 ||
        cph_settings_parse_long(burst, 0, 1000000000, &b) != 0)
        return -1;
    g->login_rate = r;
    g->login_period_s = (int)p;
    g->login_burst = b;
    return 0;
}

int cph_settings_parse_cache_max_bytes(const char *s, cph_gateway_settings_t *g)
{
    char *end;
    long long v;

    if (s == NULL || s[0] < '0' || s[0] > '9' || strlen(s) > 19)
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (*end != '\0' || errno != 0 || v < 0 || v > CPH_CACHE_MAX_BYTES_MAX)
        return -1;
    g->cache_max_bytes = v;
    return 0;
}

/* ---------------------------------------------------------------- IP lists, limits, cache backend, websockets */

/* The prefix length after '/': 1-3 digits, no leading zero, at most bits. -1 when malformed. */
static int parse_prefix(const char *p, unsigned bits)
{
    size_t len = strlen(p);
    unsigned v = 0;

    if (len < 1 || len > 3 || (len > 1 && p[0] == '0'))
        return -1;
    for (size_t i = 0; i != len; ++i) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    return v <= bits ? (int)v : -1;
}

int cph_settings_check_cidr(const char *s, char *msg, size_t msg_cap)
{
    char addr[INET6_ADDRSTRLEN], net[INET6_ADDRSTRLEN];
    const char *slash = s != NULL ? strchr(s, '/') : NULL;
    size_t alen = s == NULL ? 0 : slash != NULL ? (size_t)(slash - s) : strlen(s);
    unsigned char bytes[16];
    unsigned bits;
    int prefix, host_bits = 0;

    if (alen == 0 || alen >= sizeof(addr))
        goto Bad;
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    bits = memchr(addr, ':', alen) != NULL ? 128 : 32;
    if (inet_pton(bits == 128 ? AF_INET6 : AF_INET, addr, bytes) != 1)
        goto Bad;
    if (slash == NULL)
        return 0;
    if ((prefix = parse_prefix(slash + 1, bits)) < 0) {
        snprintf(msg, msg_cap, "\"%s\": the prefix length must be 0..%u, without a leading zero", s, bits);
        return -1;
    }
    for (unsigned b = (unsigned)prefix; b != bits; ++b) {
        host_bits |= bytes[b / 8] & (0x80u >> (b % 8));
        bytes[b / 8] &= (unsigned char)~(0x80u >> (b % 8));
    }
    if (!host_bits)
        return 0;
    inet_ntop(bits == 128 ? AF_INET6 : AF_INET, bytes, net, sizeof(net));
    snprintf(msg, msg_cap, "\"%s\": bits are set after the prefix (did you mean %s/%d?)", s, net, prefix);
    return -1;
Bad:
    snprintf(msg, msg_cap, "\"%.64s\": not a CIDR (a.b.c.d[/0-32] or an IPv6 address[/0-128])", s != NULL ? s : "");
    return -1;
}

int cph_settings_add_cidr(cph_gateway_settings_t *g, int deny, const char *s, char *msg, size_t msg_cap)
{
    size_t *n = deny ? &g->num_ip_deny : &g->num_ip_allow;
    char(*list)[CPH_SETTINGS_CIDR_MAX] = deny ? g->ip_deny : g->ip_allow;

    if (cph_settings_check_cidr(s, msg, msg_cap) != 0)
        return -1;
    if (*n == CPH_SETTINGS_MAX_CIDRS) {
        snprintf(msg, msg_cap, "more than %d CIDRs", CPH_SETTINGS_MAX_CIDRS);
        return -1;
    }
    memcpy(list[*n], s, strlen(s) + 1); /* a valid CIDR is shorter than CPH_SETTINGS_CIDR_MAX */
    ++*n;
    return 0;
}

int cph_settings_parse_limit(const char *member, const char *s, cph_gateway_settings_t *g)
{
    long v;

    if (strcmp(member, "max_body_bytes") == 0) {
        if (cph_settings_parse_long(s, 0, 1073741824, &v) != 0)
            return -1;
        g->max_body_bytes = v;
    } else if (strcmp(member, "max_url_bytes") == 0) {
        if (cph_settings_parse_long(s, 256, 65536, &v) != 0)
            return -1;
        g->max_url_bytes = (int)v;
    } else if (strcmp(member, "max_headers") == 0) {
        if (cph_settings_parse_long(s, 1, 1000, &v) != 0)
            return -1;
        g->max_headers = (int)v;
    } else if (strcmp(member, "max_header_bytes") == 0) {
        if (cph_settings_parse_long(s, 1024, 1048576, &v) != 0)
            return -1;
        g->max_header_bytes = (int)v;
    } else {
        return -1;
    }
    return 0;
}

int cph_settings_parse_cache_backend(const char *s, cph_gateway_settings_t *g)
{
    if (s == NULL || (strcmp(s, "memory") != 0 && strcmp(s, "redis") != 0))
        return -1;
    g->cache_redis = strcmp(s, "redis") == 0;
    return 0;
}

int cph_settings_parse_ws_drain_grace(const char *s, cph_gateway_settings_t *g)
{
    long v;

    if (cph_settings_parse_long(s, 0, 3600000, &v) != 0)
        return -1;
    g->ws_drain_grace_ms = (int)v;
    return 0;
}

int cph_settings_check_gateway(const cph_gateway_settings_t *g, char *msg, size_t msg_cap)
{
    if (g->cache_redis && g->redis_host[0] == '\0') {
        snprintf(msg, msg_cap, "--cache-backend redis needs --redis HOST:PORT[/DB]");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- Vault and Consul */

#define SECRET_SPACE " \t\r\n"
#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

/* HOST[:PORT] of an address (len bytes, no '/'): "[v6]" or an IPv4 literal / DNS name, then an optional port. */
static int valid_authority(const char *s, size_t len)
{
    const char *close = len != 0 && s[0] == '[' ? memchr(s, ']', len) : NULL;
    const char *colon = close != NULL ? (close + 1 < s + len ? close + 1 : NULL) : memchr(s, ':', len);
    size_t hlen = colon != NULL ? (size_t)(colon - s) : len;
    char host[254], port[8];
    long p;

    if (s[0] == '[' && close == NULL)
        return 0;
    if (colon != NULL) {
        if (*colon != ':' || len - hlen - 1 >= sizeof(port))
            return 0;
        memcpy(port, colon + 1, len - hlen - 1);
        port[len - hlen - 1] = '\0';
        if (cph_settings_parse_long(port, 1, 65535, &p) != 0)
            return 0;
    }
    return parse_redis_host(s, hlen, host) == 0; /* the same host forms as --redis */
}

int cph_settings_parse_integration_url(const char *s, char *out)
{
    size_t len, skip;

    if (s == NULL || (len = strlen(s)) >= CPH_INTEGRATION_URL_MAX)
        return -1;
    if (strncmp(s, "http://", 7) == 0)
        skip = 7;
    else if (strncmp(s, "https://", 8) == 0)
        skip = 8;
    else
        return -1;
    if (len > skip && s[len - 1] == '/')
        --len;
    if (len == skip || memchr(s + skip, '/', len - skip) != NULL || !valid_authority(s + skip, len - skip))
        return -1; /* '@', '?', '#', '%' and spaces are refused by the host and port checks */
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

int cph_settings_secret_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len >= CPH_INTEGRATION_SECRET_MAX)
        return 0;
    for (size_t i = 0; i != len; ++i)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

/* Opens path for reading without blocking on a FIFO and checks it is a small regular file. fd or -1 with msg. */
static int open_secret_file(const char *path, int *loose, char *msg, size_t msg_cap)
{
    struct stat st;
    int fd;

    if (path == NULL || path[0] == '\0' || (fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)) < 0) {
        snprintf(msg, msg_cap, "cannot open the file: %s", path == NULL || path[0] == '\0' ? "no path" : strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > CPH_SECRET_FILE_MAX) {
        snprintf(msg, msg_cap, "not a regular file of at most %d bytes", CPH_SECRET_FILE_MAX);
        close(fd);
        return -1;
    }
    *loose = (st.st_mode & 077) != 0;
    return fd;
}

int cph_settings_read_secret_file(const char *path, char *out, size_t cap, int *loose, char *msg, size_t msg_cap)
{
    char buf[CPH_SECRET_FILE_MAX + 1];
    size_t len = 0, start;
    ssize_t n;
    int fd, ret = -1;

    if ((fd = open_secret_file(path, loose, msg, msg_cap)) < 0)
        return -1;
    while (len < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - len)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(msg, msg_cap, "cannot read the file: %s", strerror(errno));
            goto Exit;
        }
        len += (size_t)n;
    }
    if (len > CPH_SECRET_FILE_MAX) { /* it grew since fstat */
        snprintf(msg, msg_cap, "not a regular file of at most %d bytes", CPH_SECRET_FILE_MAX);
        goto Exit;
    }
    for (start = 0; start != len && strchr(SECRET_SPACE, buf[start]) != NULL && buf[start] != '\0'; ++start)
        ;
    while (len > start && strchr(SECRET_SPACE, buf[len - 1]) != NULL && buf[len - 1] != '\0')
        --len;
    if (len == start) {
        snprintf(msg, msg_cap, "the file is empty");
        goto Exit;
    }
    if (!cph_settings_secret_valid(buf + start, len - start) || len - start >= cap) {
        snprintf(msg, msg_cap, "the file must hold one token of 1 to %zu printable ASCII characters, no space",
                 (cap < CPH_INTEGRATION_SECRET_MAX ? cap : CPH_INTEGRATION_SECRET_MAX) - 1);
        goto Exit;
    }
    memcpy(out, buf + start, len - start);
    out[len - start] = '\0';
    ret = 0;
Exit:
    OPENSSL_cleanse(buf, sizeof(buf));
    close(fd);
    return ret;
}

/* 1..max bytes of [A-Za-z0-9._-] segments joined by single '/', no "." or ".." segment (a Vault mount or path). */
static int vault_path_valid(const char *s, size_t max)
{
    size_t len = s != NULL ? strlen(s) : 0, seg;

    if (len == 0 || len > max)
        return 0;
    for (const char *p = s;; p += seg + 1) {
        seg = strcspn(p, "/");
        if (seg == 0 || strspn(p, NAME_CHARS) < seg || (seg == 1 && p[0] == '.') || (seg == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        if (p[seg] == '\0')
            return 1;
    }
}

/* Reads the file a secret-file flag names into out (CPH_INTEGRATION_SECRET_MAX bytes); warns about a loose mode. */
static int secret_file(const char *flag, const char *path, char *out, char *msg, size_t msg_cap)
{
    char why[160];
    int loose = 0;

    if (cph_settings_read_secret_file(path, out, CPH_INTEGRATION_SECRET_MAX, &loose, why, sizeof(why)) != 0) {
        snprintf(msg, msg_cap, "bad value for %s: %s", flag, why);
        return -1;
    }
    if (loose)
        cph_log_warn(MODULE, "the file of %s can be read or written by its group or by others: make it 0600 or 0400", flag);
    return 0;
}

/* A token in plain http crosses the network readable unless the address is this host. */
static void warn_plain_http(const char *flag, const char *url)
{
    const char *host = url + 7;

    if (strncmp(url, "http://", 7) != 0 || strncmp(host, "127.", 4) == 0 || strncmp(host, "[::1]", 5) == 0 ||
        (strncmp(host, "localhost", 9) == 0 && (host[9] == '\0' || host[9] == ':')))
        return;
    cph_log_warn(MODULE, "%s is plain http to another host: its token and answers cross the network unencrypted", flag);
}

/* Vault's token or AppRole: exactly one of them, the secrets read. -1 with msg. */
static int parse_vault_auth(const cph_integration_args_t *a, cph_integration_settings_t *s, char *msg, size_t msg_cap)
{
    int token = a->vault_token_file != NULL || a->vault_token != NULL;
    int approle = a->vault_role_id != NULL || a->vault_secret_id_file != NULL;

    if (a->vault_token_file != NULL && a->vault_token != NULL) {
        snprintf(msg, msg_cap, "give the Vault token in --vault-token-file or in CEPHALO_VAULT_TOKEN, not both");
        return -1;
    }
    if (token == approle) {
        snprintf(msg, msg_cap,
                 "--vault-addr needs exactly one of a token (--vault-token-file or CEPHALO_VAULT_TOKEN) and "
                 "AppRole (--vault-role-id with --vault-secret-id-file)");
        return -1;
    }
    if (approle && (a->vault_role_id == NULL || a->vault_secret_id_file == NULL)) {
        snprintf(msg, msg_cap, "AppRole needs both --vault-role-id and --vault-secret-id-file");
        return -1;
    }
    if (a->vault_token != NULL) {
        if (!cph_settings_secret_valid(a->vault_token, strlen(a->vault_token))) {
            snprintf(msg, msg_cap, "bad value for CEPHALO_VAULT_TOKEN (1 to %d printable ASCII characters, no space)",
                     CPH_INTEGRATION_SECRET_MAX - 1);
            return -1;
        }
        memcpy(s->vault_token, a->vault_token, strlen(a->vault_token) + 1);
        return 0;
    }
    if (token)
        return secret_file("--vault-token-file", a->vault_token_file, s->vault_token, msg, msg_cap);
    if (!cph_settings_secret_valid(a->vault_role_id, strlen(a->vault_role_id))) {
        snprintf(msg, msg_cap, "bad value for --vault-role-id (1 to %d printable ASCII characters, no space)",
                 CPH_INTEGRATION_SECRET_MAX - 1);
        return -1;
    }
    memcpy(s->vault_role_id, a->vault_role_id, strlen(a->vault_role_id) + 1);
    return secret_file("--vault-secret-id-file", a->vault_secret_id_file, s->vault_secret_id, msg, msg_cap);
}

/* The first Vault option given (flag name), or NULL. */
static const char *vault_option_given(const cph_integration_args_t *a)
{
    return a->vault_token_file != NULL       ? "--vault-token-file"
           : a->vault_token != NULL          ? "CEPHALO_VAULT_TOKEN"
           : a->vault_role_id != NULL        ? "--vault-role-id"
           : a->vault_secret_id_file != NULL ? "--vault-secret-id-file"
           : a->vault_kv_mount != NULL       ? "--vault-kv-mount"
           : a->vault_poll_s != NULL         ? "--vault-poll-s"
           : a->vault_timeout_ms != NULL     ? "--vault-timeout-ms"
           : a->vault_signing_path != NULL   ? "--vault-signing-path"
                                             : NULL;
}

static int parse_vault(const cph_integration_args_t *a, cph_integration_settings_t *s, char *msg, size_t msg_cap)
{
    const char *bad = NULL;
    long poll = s->vault_poll_s, timeout = s->vault_timeout_ms;

    if (a->vault_addr == NULL) {
        if ((bad = vault_option_given(a)) == NULL)
            return 0;
        snprintf(msg, msg_cap, "%s needs --vault-addr", bad);
        return -1;
    }
    if (cph_settings_parse_integration_url(a->vault_addr, s->vault_addr) != 0)
        bad = "--vault-addr (http://HOST[:PORT] or https://HOST[:PORT])";
    else if (a->vault_kv_mount != NULL && !vault_path_valid(a->vault_kv_mount, sizeof(s->vault_kv_mount) - 1))
        bad = "--vault-kv-mount (1-128 bytes: [A-Za-z0-9._-] segments joined by '/')";
    else if (a->vault_signing_path != NULL && !vault_path_valid(a->vault_signing_path, sizeof(s->vault_signing_path) - 1))
        bad = "--vault-signing-path (1-256 bytes: [A-Za-z0-9._-] segments joined by '/')";
    else if (a->vault_poll_s != NULL && cph_settings_parse_long(a->vault_poll_s, 1, 3600, &poll) != 0)
        bad = "--vault-poll-s (1..3600)";
    else if (a->vault_timeout_ms != NULL && cph_settings_parse_long(a->vault_timeout_ms, 100, 60000, &timeout) != 0)
        bad = "--vault-timeout-ms (100..60000)";
    if (bad != NULL) {
        snprintf(msg, msg_cap, "bad value for %s", bad);
        return -1;
    }
    if (a->vault_kv_mount != NULL)
        memcpy(s->vault_kv_mount, a->vault_kv_mount, strlen(a->vault_kv_mount) + 1);
    if (a->vault_signing_path != NULL)
        memcpy(s->vault_signing_path, a->vault_signing_path, strlen(a->vault_signing_path) + 1);
    s->vault_poll_s = (int)poll;
    s->vault_timeout_ms = (int)timeout;
    if (parse_vault_auth(a, s, msg, msg_cap) != 0)
        return -1;
    warn_plain_http("--vault-addr", s->vault_addr);
    return 0;
}

static int parse_consul(const cph_integration_args_t *a, cph_integration_settings_t *s, char *msg, size_t msg_cap)
{
    const char *bad = NULL;
    long wait = s->consul_wait_s;
    size_t dlen = a->consul_datacenter != NULL ? strlen(a->consul_datacenter) : 0;

    if (a->consul_addr == NULL) {
        bad = a->consul_token_file != NULL   ? "--consul-token-file"
              : a->consul_token != NULL      ? "CEPHALO_CONSUL_TOKEN"
              : a->consul_wait_s != NULL     ? "--consul-wait-s"
              : a->consul_datacenter != NULL ? "--consul-datacenter"
                                             : NULL;
        if (bad != NULL)
            snprintf(msg, msg_cap, "%s needs --consul-addr", bad);
        return bad != NULL ? -1 : 0;
    }
    if (cph_settings_parse_integration_url(a->consul_addr, s->consul_addr) != 0)
        bad = "--consul-addr (http://HOST[:PORT] or https://HOST[:PORT])";
    else if (a->consul_wait_s != NULL && cph_settings_parse_long(a->consul_wait_s, 1, 600, &wait) != 0)
        bad = "--consul-wait-s (1..600)";
    else if (a->consul_datacenter != NULL && (dlen == 0 || dlen > 128 || strspn(a->consul_datacenter, NAME_CHARS) != dlen))
        bad = "--consul-datacenter (1-128 bytes of [A-Za-z0-9._-])";
    else if (a->consul_token != NULL && !cph_settings_secret_valid(a->consul_token, strlen(a->consul_token)))
        bad = "CEPHALO_CONSUL_TOKEN (1 to 1023 printable ASCII characters, no space)";
    if (bad != NULL || (a->consul_token != NULL && a->consul_token_file != NULL)) {
        snprintf(msg, msg_cap, bad != NULL ? "bad value for %s" : "%s",
                 bad != NULL ? bad : "give the Consul token in --consul-token-file or in CEPHALO_CONSUL_TOKEN, not both");
        return -1;
    }
    s->consul_wait_s = (int)wait;
    if (a->consul_datacenter != NULL)
        memcpy(s->consul_datacenter, a->consul_datacenter, dlen + 1);
    if (a->consul_token != NULL)
        memcpy(s->consul_token, a->consul_token, strlen(a->consul_token) + 1);
    else if (a->consul_token_file != NULL &&
             secret_file("--consul-token-file", a->consul_token_file, s->consul_token, msg, msg_cap) != 0)
        return -1;
    if (s->consul_token[0] != '\0')
        warn_plain_http("--consul-addr", s->consul_addr);
    return 0;
}

int cph_settings_parse_integrations(const cph_integration_args_t *a, cph_integration_settings_t *s, char *msg, size_t msg_cap)
{
    cph_integration_settings_defaults(s);
    if (parse_vault(a, s, msg, msg_cap) != 0 || parse_consul(a, s, msg, msg_cap) != 0)
        return -1;
    return 0;
}

void cph_settings_integrations_wipe(cph_integration_settings_t *s)
{
    OPENSSL_cleanse(s->vault_token, sizeof(s->vault_token));
    OPENSSL_cleanse(s->vault_role_id, sizeof(s->vault_role_id));
    OPENSSL_cleanse(s->vault_secret_id, sizeof(s->vault_secret_id));
    OPENSSL_cleanse(s->consul_token, sizeof(s->consul_token));
}
