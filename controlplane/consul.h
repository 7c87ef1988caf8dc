/*
 * consul: the pure half of the Consul service discovery (sync_consul.c is the thread and the HTTP): the URL of a
 * blocking health query, the answer turned into a service's targets, the X-Consul-Index rules of HashiCorp's
 * "Blocking Queries" page, and how a failed call is classified. No I/O and no clock here, so every rule is unit-tested
 * (tests/unit/controlplane/consul_test.c) with the bodies a real Consul and a hostile server send.
 */
#ifndef CPH_CONSUL_H
#define CPH_CONSUL_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "controlplane/integrations.h"
#include "proto/proto.h"

#define CPH_CONSUL_URL_MAX 2048
#define CPH_CONSUL_BODY_MAX (1024 * 1024) /* a bigger answer is a bad_response */
#define CPH_CONSUL_TARGETS_MAX 256        /* the snapshot schema's cap on a service's targets */
#define CPH_CONSUL_WEIGHT_MAX 1000        /* the snapshot schema's largest target weight */
#define CPH_CONSUL_NAME_MAX 128           /* consul.service / consul.tag */
#define CPH_CONSUL_MIN_INTERVAL_MS 500    /* at most two requests per watch per second */
#define CPH_CONSUL_BACKOFF_MIN_MS 1000    /* after a failure: 1 s, doubling ... */
#define CPH_CONSUL_BACKOFF_MAX_MS 30000   /* ... up to 30 s */
#define CPH_CONSUL_CONNECT_TIMEOUT_MS 3000

/**
 * Writes into out (cap bytes) the URL of a blocking query for the healthy instances of service:
 * `<addr>/v1/health/service/<service>?passing=true[&tag=<tag>][&dc=<dc>]&index=<index>&wait=<wait_s>s`. addr is
 * http(s)://host[:port] with an optional trailing '/' (no query, fragment, space or control byte); service, tag and
 * dc are percent-encoded (everything but RFC 3986 unreserved bytes), tag and dc may be NULL or "" (left out); service
 * must not be empty. wait_s is 1..600. Returns 0, or -1 with err {invalid} when an input is refused or out is too
 * small.
 */
int cph_consul_health_url(const char *addr, const char *service, const char *tag, const char *dc, uint64_t index, int wait_s,
                          char *out, size_t cap, cph_error_t *err);

/**
 * Writes into out the URL `<addr>/v1/status/leader`, the cheap call (no ACL needed) that tells whether Consul answers
 * while no service is watched. 0, or -1 with err {invalid} (addr as for cph_consul_health_url).
 */
int cph_consul_leader_url(const char *addr, char *out, size_t cap, cph_error_t *err);

/** The result of parsing one answer: counts for the logs (never addresses of skipped entries). */
typedef struct st_cph_consul_parse_stats_t {
    size_t entries;   /* entries in the answer */
    size_t skipped;   /* entries without a usable address and port */
    size_t unhealthy; /* entries carrying a check that is not "passing" (a passing=true answer has none) */
    size_t merged;    /* entries whose URL an earlier entry already gave */
    size_t dropped;   /* distinct URLs beyond CPH_CONSUL_TARGETS_MAX (the last ones by URL order) */
} cph_consul_parse_stats_t;

/**
 * Turns the body of a GET /v1/health/service answer (len bytes, need not be NUL-terminated) into a new array of
 * targets [{"url", "weight"}]: the address is Service.Address, or Node.Address when that is empty or absent, the port
 * Service.Port (IPv6 addresses in brackets), the weight Service.Weights.Passing clamped to 1..1000 (1 when absent or
 * null). An entry whose address and port make no valid target URL (port 0, a zone index, a bad host name ...) is
 * skipped, one with a non-passing check too; equal URLs are merged (the larger weight wins); the array is sorted by
 * URL and cut at CPH_CONSUL_TARGETS_MAX. The answer is read strictly: anything but an array of objects, each with an
 * object "Service", string addresses, an integer port and weights of the documented types, is refused as a whole
 * (NULL, err {bad_response}), so a broken answer never replaces good targets. stats may be NULL.
 */
json_t *cph_consul_parse_health(const char *body, size_t len, cph_consul_parse_stats_t *stats, cph_error_t *err);

/** What one answer's X-Consul-Index means for the watch. */
typedef struct st_cph_consul_index_t {
    uint64_t next; /* the index of the next request */
    int changed;   /* 1: the answer may carry a change (parse it); 0: same index as before, nothing changed */
    int reset;     /* 1: the index went backwards or is 0/missing (restarts the blocking loop) */
} cph_consul_index_t;

/**
 * Applies the Blocking Queries rules to an answer's X-Consul-Index header value (header NULL: absent) after a request
 * made with index last: an index that is not a plain decimal number in 1..2^63-1 (missing, 0, garbage) or that went
 * backwards (< last) resets the next index to 0 and counts as a change; an index equal to last (not 0) is "no
 * change"; a greater one is the next index and a change. The first request (last 0) always sees a change.
 */
cph_consul_index_t cph_consul_index_next(uint64_t last, const char *header);

/**
 * The monotonic time (ms) at which a watch may start its next request, after one that started at started_ms and ended
 * at now_ms: at least CPH_CONSUL_MIN_INTERVAL_MS after the start (rate limit: a churning service degrades into polling
 * twice a second), and, after a failure, *backoff_ms (1 s, doubling up to 30 s, reset by a success) after now_ms.
 * ok: whether the request succeeded; *backoff_ms is updated.
 */
int64_t cph_consul_next_start(int64_t started_ms, int64_t now_ms, int ok, int64_t *backoff_ms);

/**
 * Classifies a finished call: curl_code is the libcurl result (0 = the transfer completed), status the HTTP status.
 * Returns 0 for a 200, else 1 with *kind set: unreachable (connection refused, DNS, reset, empty reply), timeout,
 * forbidden (401/403), not_found (404), server_error (5xx), bad_response (any other status, an over-size answer).
 * body (the answer's bytes, may be NULL) is Consul's plain-text error: its first line, printable ASCII only and cut
 * at 80 bytes, goes into text (cap bytes) with the status, e.g. "Consul answered 403: ACL not found".
 */
int cph_consul_classify(int curl_code, const char *curl_text, long status, const char *body, size_t body_len,
                        cph_integration_reason_t *kind, char *text, size_t cap);

#endif
