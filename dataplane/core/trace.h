/*
 * trace: the request's correlation headers - a client's X-Request-Id when the gateway trusts it, and the W3C Trace
 * Context (traceparent / tracestate, https://www.w3.org/TR/trace-context/): a valid incoming traceparent keeps its
 * trace id and flags and gets the gateway's own span id as the new parent, so the upstream's spans join the
 * client's trace; without one (or with an invalid one) the gateway starts a trace. Pure functions plus a per-thread
 * generator; filter/sanitize.c applies them to each request.
 */
#ifndef CPH_TRACE_H
#define CPH_TRACE_H

#include <stddef.h>

#define CPH_TRACEPARENT_LEN 55 /* "00-" 32 hex "-" 16 hex "-" 2 hex */
#define CPH_TRACE_ID_HEX 32
#define CPH_SPAN_ID_HEX 16
#define CPH_TRACESTATE_MAX 512 /* what the specification requires a vendor to propagate; longer is dropped */
#define CPH_REQUEST_ID_MAX 128 /* a trusted client request id: at most this many bytes */

/**
 * Whether s[0..len) is a request id the gateway may adopt: 1..CPH_REQUEST_ID_MAX bytes of [A-Za-z0-9] and
 * "-_.:+/=@" (UUIDs, ULIDs, base64 and the usual prefixes), nothing that could split a header or a log line.
 */
int cph_trace_request_id_valid(const char *s, size_t len);

/**
 * Parses a traceparent header value as version 00 of the specification reads it (a later version: the first 55
 * bytes, then nothing or '-'): lower-case hex only, version not "ff", trace id and parent id not all zeros. Copies
 * the trace id (32 hex) and the flags (2 hex) out. Returns 0, or -1 when the value is not acceptable.
 */
int cph_trace_parse(const char *s, size_t len, char trace_id[CPH_TRACE_ID_HEX], char flags[2]);

/** Whether s[0..len) may be forwarded as tracestate: 1..CPH_TRACESTATE_MAX bytes of printable ASCII (0x20-0x7e). */
int cph_trace_state_valid(const char *s, size_t len);

/**
 * Writes the traceparent "00-<trace_id>-<span>-<flags>" (CPH_TRACEPARENT_LEN bytes, no NUL) into out with a new
 * span id from the thread's generator. trace_id NULL: a new trace id too, and flags "00" (not sampled: the gateway
 * records no spans itself) unless flags is given.
 */
void cph_trace_write_parent(char *out, const char *trace_id, const char *flags);

/** Fills out with n random lower-case hex characters from the calling thread's generator (never all zeros). */
void cph_trace_random_hex(char *out, size_t n);

#endif
