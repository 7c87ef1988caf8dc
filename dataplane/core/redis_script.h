/*
 * redis_script: the Lua GCRA script behind `backend: redis` rate limits (core/redis.c sends it): its text and SHA-1,
 * the EVALSHA command for a stack of limits (and any command in RESP), and the parsing of its reply. Pure
 * functions, any thread.
 */
#ifndef CPH_REDIS_SCRIPT_H
#define CPH_REDIS_SCRIPT_H

#include <stddef.h>
#include <hiredis/hiredis.h>
#include "dataplane/core/h2o_abi.h"
#include "dataplane/core/ratelimit.h"

/** The script's Lua source (SCRIPT LOAD). */
const char *cph_redis_script_text(void);

/** The script's SHA-1, 40 lowercase hex digits (what SCRIPT LOAD answers and EVALSHA names). Thread-safe. */
const char *cph_redis_script_sha(void);

/** One request's stack of n limits in a batch: limit i has key keys[i] and spec specs[i]. */
typedef struct st_cph_redis_stack_t {
    size_t n;
    const h2o_iovec_t *keys;
    const cph_ratelimit_spec_t *specs;
} cph_redis_stack_t;

/** At least the length cph_redis_script_format writes for these m stacks. */
size_t cph_redis_script_bound(const cph_redis_stack_t *stacks, size_t m);

/**
 * Writes the EVALSHA deciding m (>= 1) requests, stacks[0] first, into buf (cph_redis_script_bound bytes at least) in
 * RESP: "EVALSHA <sha> <keys> key... m n1 period_ms rate burst ... n2 ..."; returns its length. A stack of 0 or more
 * than CPH_RATELIMIT_MAX_STACK limits, or no stack, is fatal.
 */
size_t cph_redis_script_format(char *buf, const cph_redis_stack_t *stacks, size_t m);

/** At least the length cph_redis_resp_format writes for argc arguments of argvlen[i] bytes. */
size_t cph_redis_resp_bound(int argc, const size_t *argvlen);

/**
 * Writes a command (argc binary-safe arguments) into buf (cph_redis_resp_bound bytes at least) as an array of bulk
 * strings, the bytes redisFormatCommandArgv gives without its printf per argument; returns the length.
 */
size_t cph_redis_resp_format(char *buf, int argc, const char *const *argv, const size_t *argvlen);

/**
 * Reads one request's answer (a stack of n limits) in the script's reply, from element *pos: returns 0, moves *pos past
 * it and sets *refused to n when every limit allowed (res[0..n-1] filled: allowed, remaining, reset_ms) or to the
 * index of the refusing limit (res[*refused] filled: retry_after_ms, reset_ms; the others zeroed: nothing was charged).
 * Returns -1 for anything else (an error reply, a malformed or short array). The caller checks that the last request's
 * answer ends the array.
 */
int cph_redis_script_parse(const redisReply *r, size_t *pos, size_t n, size_t *refused, cph_ratelimit_result_t *res);

#endif
