/*
 * error: the one error record both planes hand to humans (admin 4xx bodies, NACK text, protocol `error` frames).
 *
 * A cph_error_t carries a machine code, a JSON pointer (RFC 6901) into the offending document and one sentence.
 * Everything here writes into fixed-size buffers and truncates instead of failing, so that reporting an error can
 * never itself fail or allocate; a pointer token that does not fit is left out whole, so a truncated pointer still
 * names an ancestor of the offending value.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "proto/proto.h"

#define MODULE "proto/error"

int cph_error_set(cph_error_t *err, const char *code, const char *path, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return -1;
    snprintf(err->code, sizeof(err->code), "%s", code != NULL ? code : "");
    snprintf(err->path, sizeof(err->path), "%s", path != NULL ? path : "");
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return -1;
}

void cph_jsonptr_append(char *buf, size_t cap, const char *token)
{
    size_t len, need = 1;
    const char *t;

    if (buf == NULL || cap == 0)
        return;
    len = strnlen(buf, cap);
    if (len == cap) { /* not terminated: make it so rather than overrun */
        buf[cap - 1] = '\0';
        return;
    }
    for (t = token; t != NULL && *t != '\0'; ++t)
        need += (*t == '~' || *t == '/') ? 2 : 1;
    /* all or nothing: a pointer that does not fit stays a valid pointer to an ancestor of the value */
    if (len + need + 1 > cap)
        return;
    buf[len++] = '/';
    for (t = token; t != NULL && *t != '\0'; ++t) {
        if (*t == '~' || *t == '/') {
            buf[len++] = '~';
            buf[len++] = *t == '~' ? '0' : '1';
        } else {
            buf[len++] = *t;
        }
    }
    buf[len] = '\0';
}

void cph_jsonptr_append_index(char *buf, size_t cap, size_t index)
{
    char tmp[24];

    snprintf(tmp, sizeof(tmp), "%zu", index);
    cph_jsonptr_append(buf, cap, tmp);
}
