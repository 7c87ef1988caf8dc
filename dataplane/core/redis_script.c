/*
 * redis_script: the GCRA script of the Redis rate-limit backend (docs/dataplane.md "Rate limiting"). One call decides
 * a batch of requests (the ones a worker read in one pass of its loop), one after the other, each for its whole stack
 * of limits, all or nothing: a request's keys are decided first, and written only when all allow, so a request refused
 * by one limit spends nothing in the others (Redis runs a script atomically). The batch is the same as the requests'
 * calls made back to back: a key shared by several requests is read once, each request sees what the ones before it
 * charged, and every key charged is written once at the end.
 *
 * Each decision mirrors cph_gcra (core/ratelimit.h) on Redis's own clock (TIME, once per batch), so data planes with
 * skewed clocks share one timeline. The TAT is stored in microseconds (a double written with 17 digits), not whole
 * milliseconds: an emission interval under 1 ms (over 1000 requests per second) must not round to zero. A double holds
 * today's time in microseconds to a quarter of one, so intervals under that (over ~4 million requests per second for
 * one key) are not enforced; the key still expires (PX at least 1 ms: 0 would be an error reply).
 *
 * The keys, the stored value and every rounding are those of the one-key script of earlier releases, so data planes of
 * both kinds sharing one Redis during a rolling upgrade decide on one state and never over-admit
 * (tests/unit/dataplane/redis_stack_test.c runs both on one key).
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
 * KEYS: every request's keys, request after request. ARGV: the number of requests, then for each its number of limits
 * n and n times period_ms, rate, burst. Returns, request after request, {0, remaining1, reset_ms1, ...} when all of its
 * limits allow, else {i, retry_after_ms, reset_ms} for its first refusing limit i (1-based), having charged nothing.
 */
static const char SCRIPT[] = "if redis.replicate_commands then redis.replicate_commands() end\n"
                             "local t = redis.call('TIME')\n"
                             "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
                             "local tats, dirty, out, a, k = {}, {}, {}, 2, 0\n"
                             "for r = 1, tonumber(ARGV[1]) do\n"
                             "  local n = tonumber(ARGV[a])\n"
                             "  a = a + 1\n"
                             "  local new, res, refused = {}, {0}, false\n"
                             "  for i = 1, n do\n"
                             "    local key = KEYS[k + i]\n"
                             "    local T = tonumber(ARGV[a]) * 1000 / tonumber(ARGV[a + 1])\n"
                             "    local tau = tonumber(ARGV[a + 2]) * T\n"
                             "    a = a + 3\n"
                             "    if not refused then\n"
                             "      local tat = new[key] or tats[key]\n"
                             "      if tat == nil then\n"
                             "        tat = tonumber(redis.call('GET', key) or '0') or 0\n"
                             "        tats[key] = tat\n"
                             "      end\n"
                             "      if tat < now then tat = now end\n"
                             "      if tat - tau > now then\n"
                             "        refused = true\n"
                             "        res = {i, math.ceil((tat - tau - now) / 1000), math.ceil((tat - now) / 1000)}\n"
                             "      else\n"
                             "        tat = tat + T\n"
                             "        new[key] = tat\n"
                             "        res[#res + 1] = math.floor((now + tau - tat) / T) + 1\n"
                             "        res[#res + 1] = math.ceil((tat - now) / 1000)\n"
                             "      end\n"
                             "    end\n"
                             "  end\n"
                             "  k = k + n\n"
                             "  if not refused then\n"
                             "    for key, tat in pairs(new) do\n"
                             "      tats[key] = tat\n"
                             "      dirty[key] = true\n"
                             "    end\n"
                             "  end\n"
                             "  for j = 1, #res do out[#out + 1] = res[j] end\n"
                             "end\n"
                             "for key in pairs(dirty) do\n"
                             "  local px = math.ceil((tats[key] - now) / 1000)\n"
                             "  if px < 1 then px = 1 end\n"
                             "  redis.call('SET', key, string.format('%.17g', tats[key]), 'PX', string.format('%.0f', px))\n"
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

#define NUM_BULK (1 + U64_DIGITS + 2 + U64_DIGITS + 2) /* $<len>\r\n<digits>\r\n */

/* Appends one bulk string at p; returns the end. */
static char *put_bulk(char *p, const char *bytes, size_t len)
{
    p = put_len(p, '$', len);
    memcpy(p, bytes, len);
    p += len;
    *p++ = '\r', *p++ = '\n';
    return p;
}

static char *put_num(char *p, uint64_t v)
{
    char digits[U64_DIGITS], *d = u64_dec(digits + U64_DIGITS, v);

    return put_bulk(p, d, (size_t)(digits + U64_DIGITS - d));
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

    for (int i = 0; i != argc; ++i)
        p = put_bulk(p, argv[i], argvlen[i]);
    return (size_t)(p - buf);
}

size_t cph_redis_script_bound(const cph_redis_stack_t *stacks, size_t m)
{
    size_t total = 5 * NUM_BULK + 7 + 40; /* *argc, EVALSHA, the SHA, numkeys, the number of requests */

    for (size_t r = 0; r != m; r++) {
        total += NUM_BULK + 3 * NUM_BULK * stacks[r].n;
        for (size_t i = 0; i != stacks[r].n; i++)
            total += 1 + U64_DIGITS + 2 + stacks[r].keys[i].len + 2;
    }
    return total;
}

size_t cph_redis_script_format(char *buf, const cph_redis_stack_t *stacks, size_t m)
{
    uint64_t num_keys = 0, argc;
    char *p = buf;

    if (m == 0)
        cph_fatal(MODULE, "an empty batch");
    for (size_t r = 0; r != m; r++) {
        if (stacks[r].n == 0 || stacks[r].n > CPH_RATELIMIT_MAX_STACK)
            cph_fatal(MODULE, "a stack of %zu limits", stacks[r].n);
        num_keys += stacks[r].n;
    }
    argc = 3 + num_keys + 1 + m + 3 * num_keys;
    p = put_len(p, '*', argc);
    p = put_bulk(p, "EVALSHA", 7);
    p = put_bulk(p, cph_redis_script_sha(), 40);
    p = put_num(p, num_keys);
    for (size_t r = 0; r != m; r++)
        for (size_t i = 0; i != stacks[r].n; i++)
            p = put_bulk(p, stacks[r].keys[i].base, stacks[r].keys[i].len);
    p = put_num(p, m);
    for (size_t r = 0; r != m; r++) {
        p = put_num(p, stacks[r].n);
        for (size_t i = 0; i != stacks[r].n; i++) {
            p = put_num(p, stacks[r].specs[i].period_ms);
            p = put_num(p, stacks[r].specs[i].rate);
            p = put_num(p, stacks[r].specs[i].burst);
        }
    }
    return (size_t)(p - buf);
}

static uint64_t non_negative(const redisReply *r)
{
    return r->integer > 0 ? (uint64_t)r->integer : 0;
}

/* r->element[pos] as a non-negative count, or -1 when it is missing or not an integer. */
static int element(const redisReply *r, size_t pos, uint64_t *v)
{
    if (pos >= r->elements || r->element[pos]->type != REDIS_REPLY_INTEGER)
        return -1;
    *v = non_negative(r->element[pos]);
    return 0;
}

int cph_redis_script_parse(const redisReply *r, size_t *pos, size_t n, size_t *refused, cph_ratelimit_result_t *res)
{
    uint64_t first, a, b;

    if (r->type != REDIS_REPLY_ARRAY || element(r, *pos, &first) != 0 || r->element[*pos]->integer < 0)
        return -1;
    memset(res, 0, n * sizeof(*res));
    if (first == 0) {
        for (size_t i = 0; i != n; i++) {
            if (element(r, *pos + 1 + 2 * i, &a) != 0 || element(r, *pos + 2 + 2 * i, &b) != 0)
                return -1;
            res[i] = (cph_ratelimit_result_t){1, a, 0, b};
        }
        *refused = n;
        *pos += 1 + 2 * n;
        return 0;
    }
    if (first > n || element(r, *pos + 1, &a) != 0 || element(r, *pos + 2, &b) != 0)
        return -1;
    *refused = (size_t)first - 1;
    res[*refused] = (cph_ratelimit_result_t){0, 0, a, b};
    *pos += 3;
    return 0;
}
