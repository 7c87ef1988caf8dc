/*
 * accesslog: one JSON line per request (docs/dataplane.md "Access log"), written off the worker loops: a worker
 * formats its line into its own single-producer ring and one writer thread drains the rings to stdout or a file.
 */
#ifndef CPH_ACCESSLOG_H
#define CPH_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>
#include "proto/proto.h"
#include "dataplane/core/pipeline.h"

/** 1 while the log is open; the dispose hook tests it (the disabled path is this one branch). */
extern int cph_accesslog_enabled;

/**
 * Opens the log: `dest` "stdout", "off" (or NULL: nothing happens, returns 0) or a file path (appended, created
 * 0640); sample in (0, 1]. Starts the writer thread. Call once before the workers start. 0, or -1 with err set.
 */
int cph_accesslog_open(const char *dest, double sample, cph_error_t *err);
/** Stops the writer thread after writing every line already recorded (call after the workers stopped). */
void cph_accesslog_close(void);
/** Records r's line (when the log is on and the request is sampled); now_ns: CLOCK_MONOTONIC of the response's end. */
void cph_accesslog_record(cph_req_t *r, uint64_t now_ns);
/** Lines dropped so far because a worker's ring was full (cephalo_dp_access_log_dropped_total). */
uint64_t cph_accesslog_dropped(void);
/** Appends s (len bytes) JSON-escaped (no quotes) to out (cap bytes); returns the bytes written, or cap + 1 if short. */
size_t cph_accesslog_escape(char *out, size_t cap, const char *s, size_t len);
/** Test hook: puts `line` (len bytes) into the calling thread's ring as the workers do; 0, or -1 (full: dropped). */
int cph_accesslog_push(const char *line, size_t len);
/** Test hook: 1 when a request of this status is to be logged under the sampling rate (uses the thread's PRNG). */
int cph_accesslog_sampled(int status);

#endif
