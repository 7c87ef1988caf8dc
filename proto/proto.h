/*
 * proto: the only contract between the control plane and the data plane.
 *
 * Both daemons link this code, so a snapshot the control plane accepts is exactly a snapshot the data plane can
 * apply: the admin API runs cph_snapshot_validate() before it commits, the data plane runs it again before it
 * compiles. See proto/PROTOCOL.md for the wire format and the schema in prose.
 *
 * Pieces:
 *   - cph_error_t          a human-readable error with a JSON-pointer path (admin 4xx bodies, NACK text)
 *   - framing              u32 big-endian length + one JSON object, checked against max_frame before allocating
 *   - messages             hello, welcome, snapshot, ack, nack, ping, pong, error, purge: builders and a checker
 *   - schema v1            validation of a snapshot body with JSON-pointer error paths
 *   - canonical hash       "sha256:" + hex of the canonical serialisation (compact, sorted keys, no floats)
 *   - canonical path       the one path normaliser: the router and the upstream see what it returns
 *   - base64url            the one strict unpadded base64url (JOSE) codec of both planes
 */
#ifndef CPH_PROTO_H
#define CPH_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/* ---------------------------------------------------------------- errors */

typedef struct st_cph_error_t {
    char code[48];  /* machine code, e.g. "invalid", "unknown_field", "frame_too_large" */
    char path[256]; /* JSON pointer into the offending document ("" = the whole document) */
    char msg[256];  /* one sentence for a human; never contains secrets */
} cph_error_t;

/** Fills err (when non-NULL) and returns -1, so callers can write `return cph_error_set(...)`. */
int cph_error_set(cph_error_t *err, const char *code, const char *path, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/** Appends an RFC 6901 escaped token to a JSON pointer held in buf (cap bytes, NUL-terminated, truncates safely). */
void cph_jsonptr_append(char *buf, size_t cap, const char *token);
/** Same, for an array index. */
void cph_jsonptr_append_index(char *buf, size_t cap, size_t index);

/* ---------------------------------------------------------------- framing */

#define CPH_FRAME_HEADER_SIZE 4
#define CPH_FRAME_MAX_DEFAULT (64u * 1024 * 1024)

/**
 * Serialises msg (must be an object with a string "type") compactly and prefixes the u32 big-endian length.
 * Returns a malloc'd buffer in *out (caller frees) and its size in *outlen; -1 with err filled if the frame would
 * exceed max_frame.
 */
int cph_frame_encode(const json_t *msg, size_t max_frame, char **out, size_t *outlen, cph_error_t *err);

/** Incremental frame reader for a non-blocking stream socket. */
typedef struct st_cph_frame_reader_t {
    char *buf;
    size_t len;
    size_t cap;
    size_t max_frame;
} cph_frame_reader_t;

void cph_frame_reader_init(cph_frame_reader_t *r, size_t max_frame);
void cph_frame_reader_dispose(cph_frame_reader_t *r);
/** Appends bytes read from the socket. Out of memory aborts. */
void cph_frame_reader_feed(cph_frame_reader_t *r, const void *data, size_t len);
/**
 * Extracts the next complete frame. Returns 1 and sets *msg (caller json_decref()s) when a frame is ready, 0 when
 * more bytes are needed, -1 on a bad frame (length over max_frame - checked before any allocation -, invalid UTF-8 or
 * JSON, duplicate keys, not an object, no string "type"); after -1 the stream is unusable and must be closed.
 */
int cph_frame_reader_next(cph_frame_reader_t *r, json_t **msg, cph_error_t *err);

/* ---------------------------------------------------------------- messages */

#define CPH_SCHEMA_VERSION 1
#define CPH_MAX_CONNECTIONS_PER_IP 1000000 /* gateway.connections.max_per_ip: the schema's cap (0 = no cap) */

typedef enum en_cph_msg_type_t {
    CPH_MSG_UNKNOWN = 0, /* ignored by receivers, for forward compatibility */
    CPH_MSG_HELLO,
    CPH_MSG_WELCOME,
    CPH_MSG_SNAPSHOT,
    CPH_MSG_ACK,
    CPH_MSG_NACK,
    CPH_MSG_PING,
    CPH_MSG_PONG,
    CPH_MSG_ERROR,
    CPH_MSG_PURGE,
} cph_msg_type_t;

#define CPH_PURGE_ROUTE_MAX 64    /* bytes of a purge message's route name (a snapshot name) */
#define CPH_PURGE_PREFIX_MAX 1024 /* bytes of a purge message's path prefix (a route path's cap) */

/** What a data plane has applied; source is "disk", "cp" or "none". epoch/hash are "" and version 0 when none. */
typedef struct st_cph_applied_t {
    char epoch[65];
    uint64_t version;
    char hash[72];
    char source[8];
} cph_applied_t;

/** Returns the type of a message that passed cph_frame_reader_next(). */
cph_msg_type_t cph_msg_type(const json_t *msg);
/**
 * Checks that a known message has every required field with the right JSON type (see PROTOCOL.md); unknown
 * extra fields are allowed for forward compatibility. Returns 0, or -1 with err filled.
 */
int cph_msg_check(const json_t *msg, cph_error_t *err);

/* Builders: each returns a new reference. */
json_t *cph_msg_hello(const char *dp_id, const char *hostname, long pid, const char *software, const cph_applied_t *applied);
json_t *cph_msg_welcome(const char *epoch, uint64_t heartbeat_ms);
/** body is borrowed (incref'd into the message). */
json_t *cph_msg_snapshot(const char *epoch, uint64_t version, const char *hash, json_t *body);
json_t *cph_msg_ack(uint64_t version, const char *hash, uint64_t apply_ms, int persisted);
json_t *cph_msg_nack(uint64_t version, const char *hash, const cph_applied_t *applied, const cph_error_t *error);
json_t *cph_msg_ping(uint64_t seq);
json_t *cph_msg_pong(uint64_t seq);
json_t *cph_msg_error(const char *code, const char *message);
/**
 * CP -> DP: drop the cached responses of route (a route name), all of them when prefix is NULL, else those whose
 * upstream path starts with prefix (a string starting with '/'). The builder does not check its arguments; receivers
 * run cph_msg_check() (route 1-64 bytes of [A-Za-z0-9._-], prefix null or 1-1024 bytes starting with '/').
 */
json_t *cph_msg_purge(const char *route, const char *prefix);

/** Reads an "applied" object (as found in hello and nack) into out. Returns 0 or -1. */
int cph_applied_from_json(const json_t *obj, cph_applied_t *out);

/* ---------------------------------------------------------------- snapshot schema v1 */

/**
 * Validates a snapshot body against schema v1 (PROTOCOL.md "Snapshot body"): required and optional fields, types,
 * ranges, unknown fields rejected, no floats anywhere, names unique, every route's service defined, target URLs
 * parseable http://host:port, route paths canonical (cph_path_canonicalize() returns them unchanged), and the
 * optional access members (auth, groups, endpoints, api_keys, revoked: caps, syntax, uniqueness, every endpoint's
 * service defined, endpoint paths as cph_endpoint_pattern_check()), and the traffic policies (route "policies",
 * endpoint "rate_limits", top-level "gateway": rate limits, CORS, security headers, limits, CIDR lists, cache,
 * upstream timeouts, retries, websocket tunnels, the websocket drain grace), and a service's "policies" (load
 * balancing, health checks, outlier ejection, concurrency limits).
 * Returns 0, or -1 with err->path a JSON pointer to the first offending value.
 */
int cph_snapshot_validate(const json_t *body, cph_error_t *err);

/**
 * Validates one service or route object on its own, exactly as cph_snapshot_validate() would inside a body, so the
 * admin API can point at the offending field of the object it was given (path relative to the object).
 */
int cph_schema_validate_service(const json_t *service, cph_error_t *err);
int cph_schema_validate_route(const json_t *route, cph_error_t *err);

/**
 * Validates a service's "policies" object on its own (PROTOCOL.md section 5, "service policies": lb, health_check,
 * outlier, limits), exactly as cph_snapshot_validate() would inside a service. at_prefix is the JSON pointer the
 * object is reported at ("/policies" for an admin body, NULL or "" for the object itself); every error path starts
 * with it ("/policies/lb/policy"). Not an object is "invalid" at at_prefix. Returns 0, or -1 with err filled.
 */
int cph_schema_validate_service_policies(const json_t *policies, const char *at_prefix, cph_error_t *err);

/**
 * Whether the gateway refuses to inject a header of this name as a service credential (PROTOCOL.md section 5,
 * "service credentials"): 1 for host, content-length, transfer-encoding, connection, keep-alive, proxy-connection, te,
 * trailer, upgrade, expect, http2-settings, forwarded, x-forwarded-for, x-forwarded-proto, x-forwarded-host,
 * x-request-id, any name starting with the identity prefix "x-cephalo-", and any name starting with ':'; else 0.
 * Compared without case and with '_' read as '-' ("X_Forwarded_For" is refused: CGI-style upstreams read it as
 * X-Forwarded-For). Says nothing about syntax: an empty or non-token name is 0 here and invalid elsewhere. name need
 * not be NUL-terminated. The data plane also refuses names under the snapshot's own auth.header_prefix.
 */
int cph_credentials_header_forbidden(const char *name, size_t len);

/* ---------------------------------------------------------------- endpoint path patterns */

#define CPH_ENDPOINT_PATTERN_MAX 1024      /* bytes */
#define CPH_ENDPOINT_PATTERN_PARAMS_MAX 16 /* "{name}" segments per pattern */

/**
 * Checks the path pattern of an endpoint rule (PROTOCOL.md section 5, "endpoint"): 1 to CPH_ENDPOINT_PATTERN_MAX
 * bytes starting with '/'; an exact path ("/a/b"), a template whose segments may be "{name}" ("/a/{id}"; name
 * [A-Za-z_][A-Za-z0-9_]{0,31}, unique within the pattern, at most CPH_ENDPOINT_PATTERN_PARAMS_MAX of them), or a
 * prefix whose last segment is "*" ("/a/" then "*"; a template may end so too). '{', '}' and '*' appear nowhere else.
 * With every parameter replaced by a plain segment and the final "*" dropped, the pattern must be canonical
 * (cph_path_canonicalize() returns it unchanged: no dot segments, no "//", no ';', no %2F, no needless escapes, no
 * control bytes). pattern is a NUL-terminated string (NULL is invalid). Returns 0, or -1 with err {"invalid", path,
 * reason}: path is the JSON pointer the caller wants the error reported at ("/path", "/endpoints/3/path").
 */
int cph_endpoint_pattern_check(const char *pattern, const char *path, cph_error_t *err);

/* ---------------------------------------------------------------- canonical form and hash */

#define CPH_HASH_SIZE 72 /* "sha256:" + 64 hex + NUL */

/** Canonical serialisation: compact, keys sorted, arrays in their given order; NULL if v holds a real (float). */
char *cph_json_canonical(const json_t *v);
/** Writes "sha256:<hex>" of cph_json_canonical(body) into out. Returns 0, -1 if body holds a float. */
int cph_snapshot_hash(const json_t *body, char out[CPH_HASH_SIZE]);

/* ---------------------------------------------------------------- canonical path */

/**
 * The canonical request path: the router matches it and the upstream receives it.
 *
 * Input is the raw path of the request target without the query string. Percent-escapes are decoded once
 * (unreserved characters stay decoded; everything else is re-encoded in upper-case hex), dot segments are resolved
 * (RFC 3986 5.2.4, never above the root), runs of '/' are merged. Rejected (-1): not starting with '/', an encoded
 * '/' (%2F) or '\' (%5C), a raw '\', NUL or any control byte (raw or encoded), ';' in a segment, a malformed escape.
 * out must hold at least 3 * len + 1 bytes; *outlen receives the length (NUL-terminated).
 */
int cph_path_canonicalize(const char *path, size_t len, char *out, size_t *outlen);

/* ---------------------------------------------------------------- base64url (RFC 7515 section 2) */

/**
 * Decodes strict unpadded base64url: only [A-Za-z0-9_-] (no '=', no whitespace, no '+' or '/'), a length that is not
 * 1 mod 4 and zero spare bits in the last character, so every byte string has exactly one accepted spelling. s need
 * not be NUL-terminated (a NUL byte in s[0..len) is refused). Writes the bytes to out and returns their number (0 for
 * len 0), or -1 when s is not such a string or its bytes would exceed cap (out is then left in any state). out may be
 * NULL to only validate and count; cap still bounds the count (pass SIZE_MAX for no bound).
 */
long cph_b64url_decode(const char *s, size_t len, unsigned char *out, size_t cap);

/** The decoded length of a valid base64url string of len characters (len % 4 != 1): the cap cph_b64url_decode needs. */
#define CPH_B64URL_DECODED_LEN(len) ((len) / 4 * 3 + ((len) % 4 != 0 ? (len) % 4 - 1 : 0))
/** The out capacity cph_b64url_encode needs for len bytes (room for OpenSSL's padded output and the NUL). */
#define CPH_B64URL_ENCODE_CAP(len) (4 * (((len) + 2) / 3) + 1)

/**
 * Encodes in[0..len) as unpadded base64url into out, NUL-terminated, and returns its length (no NUL). cap must be at
 * least CPH_B64URL_ENCODE_CAP(len), although the result is shorter: a smaller cap is the caller's bug and aborts.
 */
size_t cph_b64url_encode(const unsigned char *in, size_t len, char *out, size_t cap);

#endif
