/*
 * redis_reply: hiredis replies turned into cph_redis_reply_t (core/redis.h), the copy a callback borrows after
 * core/redis.c has let hiredis free the original.
 */
#ifndef CPH_REDIS_REPLY_H
#define CPH_REDIS_REPLY_H

#include <hiredis/hiredis.h>
#include "dataplane/core/redis.h"

/** A deep copy of r (not an error reply, nor one holding an error: see cph_redis_reply_has_error). Never NULL. */
cph_redis_reply_t *cph_redis_reply_copy(const redisReply *r);

/** Frees a copy and everything in it; NULL is a no-op. */
void cph_redis_reply_free(cph_redis_reply_t *r);

/** 1 when r is an error reply or an array holding one at any depth (a failed command inside EXEC or a script). */
int cph_redis_reply_has_error(const redisReply *r);

#endif
