/*
 * redis_reply: the deep copy of a hiredis reply that core/redis.c lends to a callback (cph_redis_command's answers).
 * The reply is parsed as it arrives but the callback runs at the end of the loop's pass, after hiredis's reply tree is
 * gone, and callers never see hiredis's types; the copy is freed when the callback returns.
 */
#include <stdlib.h>
#include <string.h>
#include "proto/log.h"
#include "dataplane/core/redis_reply.h"

#define MODULE "dp/core/redis_reply"

_Static_assert(CPH_REDIS_REPLY_STRING == REDIS_REPLY_STRING && CPH_REDIS_REPLY_ARRAY == REDIS_REPLY_ARRAY &&
                   CPH_REDIS_REPLY_INTEGER == REDIS_REPLY_INTEGER && CPH_REDIS_REPLY_NIL == REDIS_REPLY_NIL &&
                   CPH_REDIS_REPLY_STATUS == REDIS_REPLY_STATUS,
               "cph_redis_reply_type_t mirrors hiredis");

cph_redis_reply_t *cph_redis_reply_copy(const redisReply *r)
{
    cph_redis_reply_t *c = calloc(1, sizeof(*c));

    if (c == NULL)
        cph_fatal(MODULE, "out of memory");
    c->type = (cph_redis_reply_type_t)r->type;
    c->integer = r->integer;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) {
        if ((c->str = malloc(r->len + 1)) == NULL)
            cph_fatal(MODULE, "out of memory");
        memcpy(c->str, r->str, r->len);
        c->str[r->len] = '\0';
        c->len = r->len;
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements != 0) {
        if ((c->element = calloc(r->elements, sizeof(*c->element))) == NULL)
            cph_fatal(MODULE, "out of memory");
        for (c->elements = 0; c->elements != r->elements; c->elements++)
            c->element[c->elements] = cph_redis_reply_copy(r->element[c->elements]);
    }
    return c;
}

void cph_redis_reply_free(cph_redis_reply_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i != r->elements; i++)
        cph_redis_reply_free(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}

int cph_redis_reply_has_error(const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR)
        return 1;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i != r->elements; i++)
        if (cph_redis_reply_has_error(r->element[i]))
            return 1;
    return 0;
}
