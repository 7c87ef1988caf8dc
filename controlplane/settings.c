/*
 * settings: the process-wide auth and gateway settings (settings.h). Written once by main() before the admin and auth
 * listeners start, read-only afterwards, so readers need no lock.
 *
 * The gateway flags are parsed here rather than in main.c so that the exact accepted forms are unit tested: a value
 * the data planes' schema would refuse must stop the control plane at start (exit 2), never reach a snapshot.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "controlplane/settings.h"

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
