/*
 * redis_script: the GCRA script of the Redis rate-limit backend (docs/dataplane.md "Rate limiting"). One call decides
 * a whole stack of limits, all or nothing: every key is read and decided first, and only when all allow are they
 * written, so a request refused by one limit spends nothing in the others (Redis runs a script atomically).
 *
 * Each decision mirrors cph_gcra (core/ratelimit.h) on Redis's own clock (TIME), so data planes with skewed clocks
 * share one timeline. The TAT is stored in microseconds (a double written with 17 digits), not whole milliseconds:
 * an emission interval under 1 ms (over 1000 requests per second) must not round to zero. A double holds today's
 * time in microseconds to a quarter of one, so intervals under that (over ~4 million requests per second for one
 * key) are not enforced; the key still expires (PX at least 1 ms: 0 would be an error reply).
 *
 * The keys, the stored value and every rounding are those of the one-key script of earlier releases, so data planes of
 * both kinds sharing one Redis during a rolling upgrade decide on one state and never over-admit: the old script is
 * this one with a single key (tests/unit/dataplane/redis_test.c runs both on one key).
 */
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>
#include "proto/log.h"
#include "dataplane/core/redis_script.h"

#define MODULE "dp/core/redis_script"

/*
 * KEYS[i] with ARGV[3i-2..3i] = period_ms, rate, burst. Returns {0, remaining1, reset_ms1, ...} when all allow,
 * else {i, retry_after_ms, reset_ms} for the first refusing limit i (1-based), having written nothing.
 */
static const char SCRIPT[] = "if redis.replicate_commands then redis.replicate_commands() end\n"
                             "local t = redis.call('TIME')\n"
                             "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
                             "local tats, out = {}, {0}\n"
                             "for i = 1, #KEYS do\n"
                             "  local T = tonumber(ARGV[3 * i - 2]) * 1000 / tonumber(ARGV[3 * i - 1])\n"
                             "  local tau = tonumber(ARGV[3 * i]) * T\n"
                             "  local tat = tats[KEYS[i]] or tonumber(redis.call('GET', KEYS[i]) or '0') or 0\n"
                             "  if tat < now then tat = now end\n"
                             "  if tat - tau > now then\n"
                             "    return {i, math.ceil((tat - tau - now) / 1000), math.ceil((tat - now) / 1000)}\n"
                             "  end\n"
                             "  tat = tat + T\n"
                             "  tats[KEYS[i]] = tat\n"
                             "  out[#out + 1] = math.floor((now + tau - tat) / T) + 1\n"
                             "  out[#out + 1] = math.ceil((tat - now) / 1000)\n"
                             "end\n"
                             "for k, tat in pairs(tats) do\n"
                             "  local px = math.ceil((tat - now) / 1000)\n"
                             "  if px < 1 then px = 1 end\n"
                             "  redis.call('SET', k, string.format('%.17g', tat), 'PX', string.format('%.0f', px))\n"
                             "end\n"
                             "return out\n";

static char sha[41];
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;

static void compute_sha(void)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;

    if (EVP_Digest(SCRIPT, strlen(SCRIPT), md, &len, EVP_sha1(), NULL) != 1 || len != 20)
        cph_fatal(MODULE, "SHA-1 unavailable");
    for (unsigned i = 0; i < len; i++)
        snprintf(sha + 2 * i, 3, "%02x", md[i]);
}

const char *cph_redis_script_text(void)
{
    return SCRIPT;
}

const char *cph_redis_script_sha(void)
{
    pthread_once(&sha_once, compute_sha);
    return sha;
}

#define MAX_ARGS (3 + 4 * CPH_RATELIMIT_MAX_STACK)
#define U64_DIGITS 20

/* v in decimal at the end of buf[U64_DIGITS]; returns where it starts (no printf: it is most of a request's cost). */
static char *u64_dec(char *end, uint64_t v)
{
    char *p = end;

    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return p;
}

/* Appends "<mark><v>\r\n" (a RESP array or bulk length) at p; returns the end. */
static char *put_len(char *p, char mark, uint64_t v)
{
    char digits[U64_DIGITS], *d = u64_dec(digits + U64_DIGITS, v);
    size_t n = (size_t)(digits + U64_DIGITS - d);

    *p++ = mark;
    memcpy(p, d, n);
    p += n;
    *p++ = '\r', *p++ = '\n';
    return p;
}

size_t cph_redis_resp_bound(int argc, const size_t *argvlen)
{
    size_t total = 1 + U64_DIGITS + 2;

    for (int i = 0; i != argc; ++i)
        total += 1 + U64_DIGITS + 2 + argvlen[i] + 2;
    return total;
}

size_t cph_redis_resp_format(char *buf, int argc, const char *const *argv, const size_t *argvlen)
{
    char *p = put_len(buf, '*', (uint64_t)argc);

    for (int i = 0; i != argc; ++i) {
        p = put_len(p, '$', argvlen[i]);
        memcpy(p, argv[i], argvlen[i]);
        p += argvlen[i];
        *p++ = '\r', *p++ = '\n';
    }
    return (size_t)(p - buf);
}

size_t cph_redis_script_bound(size_t n, const size_t *key_lens)
{
    size_t total = 1 + U64_DIGITS + 2 + 3 * (1 + U64_DIGITS + 2) + 40 + 7 + 2 * 2; /* *argc, EVALSHA, sha, n */

    for (size_t i = 0; i != n; i++)
        total += 1 + U64_DIGITS + 2 + key_lens[i] + 2 + 3 * (1 + U64_DIGITS + 2 + U64_DIGITS + 2);
    return total;
}

size_t cph_redis_script_format(char *buf, size_t n, const char *const *keys, const size_t *key_lens,
                               const cph_ratelimit_spec_t *const *specs)
{
    const char *argv[MAX_ARGS];
    size_t argvlen[MAX_ARGS];
    char nums[1 + 3 * CPH_RATELIMIT_MAX_STACK][U64_DIGITS];
    int argc = 0;

    if (n == 0 || n > CPH_RATELIMIT_MAX_STACK)
        cph_fatal(MODULE, "a stack of %zu limits", n);
    argv[argc] = "EVALSHA", argvlen[argc++] = 7;
    argv[argc] = cph_redis_script_sha(), argvlen[argc++] = 40;
    argv[argc] = u64_dec(nums[0] + U64_DIGITS, n), argvlen[argc] = (size_t)(nums[0] + U64_DIGITS - argv[argc]), argc++;
    for (size_t i = 0; i != n; i++)
        argv[argc] = keys[i], argvlen[argc++] = key_lens[i];
    for (size_t i = 0; i != n; i++) {
        const uint64_t v[3] = {specs[i]->period_ms, specs[i]->rate, specs[i]->burst};
        for (size_t j = 0; j != 3; j++) {
            char *end = nums[1 + 3 * i + j] + U64_DIGITS;
            argv[argc] = u64_dec(end, v[j]), argvlen[argc] = (size_t)(end - argv[argc]), argc++;
        }
    }
    return cph_redis_resp_format(buf, argc, argv, argvlen);
}

static uint64_t non_negative(const redisReply *r)
{
    return r->integer > 0 ? (uint64_t)r->integer : 0;
}

int cph_redis_script_parse(const redisReply *r, size_t n, size_t *refused, cph_ratelimit_result_t *res)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0)
        return -1;
    for (size_t i = 0; i != r->elements; i++)
        if (r->element[i]->type != REDIS_REPLY_INTEGER)
            return -1;
    memset(res, 0, n * sizeof(*res));
    if (r->element[0]->integer == 0) {
        if (r->elements != 1 + 2 * n)
            return -1;
        for (size_t i = 0; i != n; i++)
            res[i] = (cph_ratelimit_result_t){1, non_negative(r->element[1 + 2 * i]), 0, non_negative(r->element[2 + 2 * i])};
        *refused = n;
        return 0;
    }
    if (r->element[0]->integer < 1 || (uint64_t)r->element[0]->integer > n || r->elements != 3)
        return -1;
    *refused = (size_t)r->element[0]->integer - 1;
    res[*refused] = (cph_ratelimit_result_t){0, 0, non_negative(r->element[1]), non_negative(r->element[2])};
    return 0;
}
