/*
 * redis_script: the Lua GCRA script behind `backend: redis` rate limits (core/redis.c sends it): its text and SHA-1,
 * the EVALSHA command for a stack of limits (and any command in RESP), and the parsing of its reply. Pure
 * functions, any thread.
 */
#ifndef CPH_REDIS_SCRIPT_H
#define CPH_REDIS_SCRIPT_H

#include <stddef.h>
#include <hiredis/hiredis.h>
#include "dataplane/core/ratelimit.h"

/** The script's Lua source (SCRIPT LOAD). */
const char *cph_redis_script_text(void);

/** The script's SHA-1, 40 lowercase hex digits (what SCRIPT LOAD answers and EVALSHA names). Thread-safe. */
const char *cph_redis_script_sha(void);

/** At least the length cph_redis_script_format writes for a stack of n limits whose keys are key_lens[i] bytes. */
size_t cph_redis_script_bound(size_t n, const size_t *key_lens);

/**
 * Writes "EVALSHA <sha> n key1..keyn period_ms1 rate1 burst1 ..." for a stack of n (1..CPH_RATELIMIT_MAX_STACK, else
 * fatal) limits into buf (cph_redis_script_bound bytes at least), in RESP; returns its length.
 */
size_t cph_redis_script_format(char *buf, size_t n, const char *const *keys, const size_t *key_lens,
                               const cph_ratelimit_spec_t *const *specs);

/** At least the length cph_redis_resp_format writes for argc arguments of argvlen[i] bytes. */
size_t cph_redis_resp_bound(int argc, const size_t *argvlen);

/**
 * Writes a command (argc binary-safe arguments) into buf (cph_redis_resp_bound bytes at least) as an array of bulk
 * strings, the bytes redisFormatCommandArgv gives without its printf per argument; returns the length.
 */
size_t cph_redis_resp_format(char *buf, int argc, const char *const *argv, const size_t *argvlen);

/**
 * Reads the script's reply for a stack of n limits: returns 0 and sets *refused to n when every limit allowed (res[0..n-1]
 * filled: allowed, remaining, reset_ms) or to the index of the refusing limit (res[*refused] filled: retry_after_ms,
 * reset_ms; the others zeroed: nothing was charged). Returns -1 for any other reply (an error, a malformed array).
 */
int cph_redis_script_parse(const redisReply *r, size_t n, size_t *refused, cph_ratelimit_result_t *res);

#endif
