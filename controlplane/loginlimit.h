/*
 * loginlimit: the login failure limiter of the auth API (docs/access.md section 6) - at most
 * account_max failures per account and ip_max per client IP within window_s; past that, logins are refused (429)
 * without a password check until the oldest counted failure leaves the window.
 *
 * In memory only (a restart forgets), thread-safe (one mutex), and bounded: each table holds at most `capacity`
 * keys, the least recently touched is evicted first. Keys are stored as SHA-256 digests, so no username stays in
 * memory.
 */
#ifndef CPH_LOGINLIMIT_H
#define CPH_LOGINLIMIT_H

#include <stddef.h>
#include <stdint.h>

#define CPH_LOGINLIMIT_ACCOUNT_MAX 5
#define CPH_LOGINLIMIT_IP_MAX 20
#define CPH_LOGINLIMIT_WINDOW_S (15 * 60)
#define CPH_LOGINLIMIT_CAPACITY 16384 /* keys per table: about 5 MiB in all */

typedef struct st_cph_loginlimit_t cph_loginlimit_t;

typedef struct st_cph_loginlimit_config_t {
    unsigned account_max; /* failures per account within window_s */
    unsigned ip_max;      /* failures per IP within window_s */
    int64_t window_s;
    size_t capacity; /* keys per table */
} cph_loginlimit_config_t;

/** The contract's values: 5 per account, 20 per IP, 15 minutes, CPH_LOGINLIMIT_CAPACITY. */
void cph_loginlimit_defaults(cph_loginlimit_config_t *c);
/** A new limiter (every count zero). Aborts when out of memory; the counts must be >= 1, capacity >= 1. */
cph_loginlimit_t *cph_loginlimit_new(const cph_loginlimit_config_t *c);
/** Frees l (NULL is fine). */
void cph_loginlimit_free(cph_loginlimit_t *l);
/**
 * Whether a login from ip for account (either may be NULL: not counted) may be tried at now (unix seconds): 0 when
 * it may, else the seconds until it may (>= 1), the longer of the two waits. account is compared as given (the
 * caller lower-cases it).
 */
int64_t cph_loginlimit_check(cph_loginlimit_t *l, const char *ip, const char *account, int64_t now);
/** Counts a failed login for ip and account (either may be NULL). */
void cph_loginlimit_fail(cph_loginlimit_t *l, const char *ip, const char *account, int64_t now);
/** Forgets the failures of account (a successful login); the IP's count stays. */
void cph_loginlimit_success(cph_loginlimit_t *l, const char *account);
/** The number of keys held (accounts + IPs), for tests. */
size_t cph_loginlimit_size(cph_loginlimit_t *l);

#endif
