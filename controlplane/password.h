/*
 * password: argon2id hashing of user passwords (libargon2), for the users store now and the login API later.
 */
#ifndef CPH_PASSWORD_H
#define CPH_PASSWORD_H

#include <stddef.h>
#include "proto/proto.h"

#define CPH_PASSWORD_MIN 8    /* bytes */
#define CPH_PASSWORD_MAX 1024 /* bytes: bounds the work an attacker can ask the hash for */
#define CPH_PASSWORD_T_COST 3 /* passes */
#define CPH_PASSWORD_M_COST_KIB (64 * 1024)
#define CPH_PASSWORD_PARALLELISM 1
#define CPH_PASSWORD_CONCURRENT 2 /* hashes running at once, process-wide: 2 x 64 MiB at most */

/**
 * Checks a password's length (CPH_PASSWORD_MIN..MAX bytes, no NUL) and hashes it with argon2id and a fresh 16-byte
 * salt from OpenSSL's RAND_bytes. Returns a new (malloc'd) encoded hash "$argon2id$v=19$m=65536,t=3,p=1$...", or
 * NULL with err {invalid} at path (length) or {internal}. Blocks while CPH_PASSWORD_CONCURRENT hashes are running.
 * Never logs the password.
 */
char *cph_password_hash(const char *password, size_t len, const char *path, cph_error_t *err);
/** Returns 1 if password matches encoded (an argon2id encoded hash), 0 otherwise (including a malformed hash). */
int cph_password_verify(const char *encoded, const char *password, size_t len);

#endif
