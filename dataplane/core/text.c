/*
 * text: the growable text buffer behind the metrics exposition (core/text.h). Both the status listener and the PDF
 * metrics build Prometheus text by many small printf appends; one builder keeps the growth rule (double past the need)
 * and the out-of-memory policy (abort) in one place.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "proto/log.h"
#include "dataplane/core/text.h"

#define MODULE "dp/core/text"

void cph_text_init(cph_text_t *t, size_t cap)
{
    if (cap == 0)
        cap = 1;
    if ((t->buf = malloc(cap)) == NULL)
        cph_fatal(MODULE, "out of memory");
    t->buf[0] = '\0';
    t->len = 0;
    t->cap = cap;
}

void cph_text_printf(cph_text_t *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            cph_fatal(MODULE, "vsnprintf failed");
        if ((size_t)n < t->cap - t->len)
            break;
        t->cap = (t->cap + (size_t)n + 1) * 2;
        if ((t->buf = realloc(t->buf, t->cap)) == NULL)
            cph_fatal(MODULE, "out of memory");
    }
    t->len += (size_t)n;
}
