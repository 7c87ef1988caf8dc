/*
 * text: a growable, NUL-terminated text buffer on the heap for the Prometheus exposition (core/status.c, core/stats.c),
 * written off the hot path with printf-style appends.
 */
#ifndef CPH_CORE_TEXT_H
#define CPH_CORE_TEXT_H

#include <stddef.h>

typedef struct st_cph_text_t {
    char *buf; /* malloc'd, always NUL-terminated; handed to the caller, who frees it */
    size_t len;
    size_t cap;
} cph_text_t;

/** Starts an empty text with room for cap bytes (at least 1). Out of memory aborts. */
void cph_text_init(cph_text_t *t, size_t cap);

/** Appends the formatted text, growing the buffer as needed. Out of memory or a format error aborts. */
__attribute__((format(printf, 2, 3))) void cph_text_printf(cph_text_t *t, const char *fmt, ...);

#endif
