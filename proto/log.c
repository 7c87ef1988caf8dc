/*
 * log: the structured event log both daemons write to stderr.
 *
 * One JSON object per line, built in a stack buffer and written with a single write(2) so that lines from
 * different threads never interleave. Messages are formatted first, then JSON-escaped as a whole, so a value that
 * carries quotes or control bytes cannot break the line. The access log is a different stream (dataplane).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "proto/log.h"

static cph_log_level_t min_level = CPH_LOG_INFO;
static const char *level_names[] = {"debug", "info", "warn", "error"};

void cph_log_set_level(cph_log_level_t level)
{
    min_level = level;
}

/* Escapes src into dst (cap bytes), truncating on a character boundary; returns bytes written. */
static size_t json_escape(char *dst, size_t cap, const char *src)
{
    size_t o = 0;

    for (; *src != '\0'; ++src) {
        unsigned char c = (unsigned char)*src;
        char tmp[8];
        size_t n;
        if (c == '"' || c == '\\') {
            tmp[0] = '\\', tmp[1] = (char)c, n = 2;
        } else if (c < 0x20 || c == 0x7f) {
            n = (size_t)snprintf(tmp, sizeof(tmp), "\\u%04x", c);
        } else {
            tmp[0] = (char)c, n = 1;
        }
        if (o + n >= cap)
            break;
        memcpy(dst + o, tmp, n);
        o += n;
    }
    dst[o] = '\0';
    return o;
}

static void vlog(cph_log_level_t level, const char *module, const char *fmt, va_list ap)
{
    char msg[1024], esc[2048], line[2400], ts[40];
    struct timespec now;
    struct tm tm;
    int n;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    json_escape(esc, sizeof(esc), msg);
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    n = snprintf(line, sizeof(line), "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"module\":\"%s\",\"msg\":\"%s\"}\n", ts,
                 now.tv_nsec / 1000000, level_names[level], module, esc);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line)) {
        n = sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    if (write(2, line, (size_t)n) < 0) {
        /* nowhere left to report it */
    }
}

void cph_log(cph_log_level_t level, const char *module, const char *fmt, ...)
{
    va_list ap;

    if (level < min_level)
        return;
    va_start(ap, fmt);
    vlog(level, module, fmt, ap);
    va_end(ap);
}

void cph_fatal(const char *module, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(CPH_LOG_ERROR, module, fmt, ap);
    va_end(ap);
    abort();
}
