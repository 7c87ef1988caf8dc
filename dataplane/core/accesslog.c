/*
 * accesslog: the data plane's access log. A worker formats its request's line on the stack (no malloc) and copies
 * it into its own ring (1 MiB, single producer: the worker; single consumer: the writer thread; head and tail are
 * atomics). A full ring drops the line and counts it. The writer thread wakes every 20 ms, drains every ring with
 * write(2) and ignores write errors (a full disk loses lines, never blocks a worker). cph_accesslog_close() drains
 * once more after the workers stopped, so SIGTERM's drain flushes every recorded line.
 * The worker's ring is created on its first line (one allocation per thread) and registered under a mutex.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "proto/log.h"
#include "dataplane/core/accesslog.h"
#include "dataplane/core/clientip.h"
#include "dataplane/core/snapshot.h"

#define MODULE "dp/core/accesslog"
#define RING_SIZE (1u << 20)
#define MAX_RINGS 512
#define LINE_MAX_BYTES 4096

typedef struct st_ring_t {
    _Atomic uint64_t head; /* bytes produced (worker) */
    _Atomic uint64_t tail; /* bytes consumed (writer) */
    char buf[RING_SIZE];
} ring_t;

int cph_accesslog_enabled;
static int log_fd = -1;
static uint64_t sample_threshold = UINT64_MAX; /* a request is sampled when its random draw <= this */
static _Atomic uint64_t dropped;
static pthread_mutex_t rings_mutex = PTHREAD_MUTEX_INITIALIZER;
static ring_t *rings[MAX_RINGS];
static _Atomic size_t num_rings;
static pthread_t writer;
static _Atomic int writer_stop;
static int writer_running;
static _Thread_local ring_t *my_ring;
static _Thread_local uint64_t my_rand;
static _Thread_local int64_t my_wall_offset_ns; /* CLOCK_REALTIME - CLOCK_MONOTONIC, read once per thread */

static ring_t *ring_get(void)
{
    if (my_ring != NULL)
        return my_ring;
    pthread_mutex_lock(&rings_mutex);
    size_t n = atomic_load(&num_rings);
    if (n < MAX_RINGS && (rings[n] = calloc(1, sizeof(ring_t))) != NULL) {
        my_ring = rings[n];
        atomic_store(&num_rings, n + 1);
    }
    pthread_mutex_unlock(&rings_mutex);
    return my_ring;
}

int cph_accesslog_push(const char *line, size_t len)
{
    ring_t *g = ring_get();
    if (g == NULL || len > RING_SIZE)
        goto Drop;
    uint64_t head = atomic_load_explicit(&g->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&g->tail, memory_order_acquire);
    if (RING_SIZE - (head - tail) < len)
        goto Drop;
    size_t at = head % RING_SIZE, first = RING_SIZE - at < len ? RING_SIZE - at : len;
    memcpy(g->buf + at, line, first);
    memcpy(g->buf, line + first, len - first);
    atomic_store_explicit(&g->head, head + len, memory_order_release);
    return 0;
Drop:
    atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
    return -1;
}

uint64_t cph_accesslog_dropped(void)
{
    return atomic_load_explicit(&dropped, memory_order_relaxed);
}

static void write_all(const char *p, size_t len)
{
    while (len != 0) {
        ssize_t n = write(log_fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* disk full, closed pipe: the lines are lost, the workers go on */
        p += n, len -= (size_t)n;
    }
}

/* Writes out what each ring holds; returns the bytes written. */
static size_t drain_rings(void)
{
    size_t total = 0, n = atomic_load(&num_rings);
    for (size_t i = 0; i != n; ++i) {
        ring_t *g = rings[i];
        uint64_t tail = atomic_load_explicit(&g->tail, memory_order_relaxed);
        uint64_t head = atomic_load_explicit(&g->head, memory_order_acquire);
        if (head == tail)
            continue;
        size_t len = (size_t)(head - tail), at = tail % RING_SIZE, first = RING_SIZE - at < len ? RING_SIZE - at : len;
        if (log_fd >= 0) {
            write_all(g->buf + at, first);
            write_all(g->buf, len - first);
        }
        atomic_store_explicit(&g->tail, head, memory_order_release);
        total += len;
    }
    return total;
}

static void *writer_main(void *arg)
{
    (void)arg;
    struct timespec nap = {0, 20 * 1000 * 1000};
    while (!atomic_load(&writer_stop)) {
        drain_rings();
        nanosleep(&nap, NULL);
    }
    drain_rings();
    return NULL;
}

int cph_accesslog_open(const char *dest, double sample, cph_error_t *err)
{
    if (dest == NULL || strcmp(dest, "off") == 0 || dest[0] == '\0')
        return 0;
    if (!(sample > 0 && sample <= 1))
        return cph_error_set(err, "invalid", "access-log-sample", "--access-log-sample must be in (0, 1]");
    sample_threshold = sample >= 1 ? UINT64_MAX : (uint64_t)(sample * 18446744073709551616.0);
    if (strcmp(dest, "stdout") == 0)
        log_fd = STDOUT_FILENO;
    else if ((log_fd = open(dest, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640)) < 0)
        return cph_error_set(err, "io", "access-log", "cannot open %s: %s", dest, strerror(errno));
    atomic_store(&writer_stop, 0);
    if (pthread_create(&writer, NULL, writer_main, NULL) != 0) {
        if (log_fd != STDOUT_FILENO)
            close(log_fd);
        log_fd = -1;
        return cph_error_set(err, "internal", "access-log", "cannot start the access log writer");
    }
    writer_running = 1;
    cph_accesslog_enabled = 1;
    return 0;
}

void cph_accesslog_close(void)
{
    if (writer_running) {
        atomic_store(&writer_stop, 1);
        pthread_join(writer, NULL);
        writer_running = 0;
    }
    drain_rings();
    cph_accesslog_enabled = 0;
    if (log_fd > STDOUT_FILENO)
        close(log_fd);
    log_fd = -1;
    pthread_mutex_lock(&rings_mutex);
    for (size_t i = 0; i != atomic_load(&num_rings); ++i)
        free(rings[i]), rings[i] = NULL;
    atomic_store(&num_rings, 0);
    pthread_mutex_unlock(&rings_mutex);
    my_ring = NULL; /* other threads are gone by now */
}

static uint64_t next_rand(void)
{
    if (my_rand == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        my_rand = (((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)(uintptr_t)&my_rand ^ (uint64_t)ts.tv_sec) | 1;
    }
    my_rand ^= my_rand << 13, my_rand ^= my_rand >> 7, my_rand ^= my_rand << 17; /* xorshift64 */
    return my_rand;
}

int cph_accesslog_sampled(int status)
{
    if (status >= 500 || status == 429 || sample_threshold == UINT64_MAX)
        return 1;
    return next_rand() <= sample_threshold;
}

/* 1 for a byte JSON must escape or the line keeps out: control bytes, '"', '\\' and every non-ASCII byte. */
static const uint8_t escaped[256] = {
    [0x00 ... 0x1f] = 1,
    ['"'] = 1,
    ['\\'] = 1,
    [0x7f ... 0xff] = 1,
};

size_t cph_accesslog_escape(char *out, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, i = 0;

    while (i != len) {
        size_t run = i;
        while (run != len && !escaped[(unsigned char)s[run]])
            ++run;
        if (run - i > cap - o) /* a run of plain bytes, copied at once */
            return cap + 1;
        memcpy(out + o, s + i, run - i), o += run - i, i = run;
        if (i == len)
            break;
        unsigned char c = (unsigned char)s[i++];
        int pair = c == '"' || c == '\\';
        if ((pair ? 2 : 6) > cap - o)
            return cap + 1;
        if (pair) {
            out[o++] = '\\', out[o++] = (char)c;
        } else { /* the line stays valid UTF-8 */
            memcpy(out + o, "\\u00", 4), out[o + 4] = hex[c >> 4], out[o + 5] = hex[c & 15], o += 6;
        }
    }
    return o;
}

typedef struct st_line_t {
    char buf[LINE_MAX_BYTES];
    size_t len;
    int overflow;
} line_t;

static void put_raw(line_t *l, const char *s, size_t n)
{
    if (l->overflow || l->len + n > sizeof(l->buf)) {
        l->overflow = 1;
        return;
    }
    memcpy(l->buf + l->len, s, n), l->len += n;
}

#define PUT_LIT(l, s) put_raw((l), (s), sizeof(s) - 1)

static void put_str(line_t *l, const char *key, size_t key_len, const char *s, size_t n)
{
    put_raw(l, key, key_len);
    if (s == NULL) {
        put_raw(l, "null", 4);
        return;
    }
    put_raw(l, "\"", 1);
    size_t w = l->overflow ? 0 : cph_accesslog_escape(l->buf + l->len, sizeof(l->buf) - l->len, s, n);
    if (w > sizeof(l->buf) - l->len)
        l->overflow = 1;
    else
        l->len += w;
    put_raw(l, "\"", 1);
}

/* A key (a string literal) and a string value, escaped; NULL is written null. */
#define PUT_STR(l, key, s, n) put_str((l), (key), sizeof(key) - 1, (s), (n))

/* v in decimal (no printf: formatting was most of a log line's cost). */
static void put_u64(line_t *l, uint64_t v)
{
    char digits[20], *p = digits + sizeof(digits);

    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    put_raw(l, p, (size_t)(digits + sizeof(digits) - p));
}

/* n at least `width` digits wide, zero-padded (n < 10^width or it is written whole). */
static void put_padded(line_t *l, uint64_t n, int width)
{
    char digits[20];

    for (int i = width - 1; i >= 0; --i, n /= 10)
        digits[i] = (char)('0' + n % 10);
    if (n != 0)
        put_u64(l, n);
    put_raw(l, digits, (size_t)width);
}

/* A duration in nanoseconds as milliseconds with three decimals, rounded to the nearest microsecond ("1.234"). */
static void put_ms(line_t *l, uint64_t ns)
{
    uint64_t us = (ns + 500) / 1000;

    put_u64(l, us / 1000);
    put_raw(l, ".", 1);
    put_padded(l, us % 1000, 3);
}

/* time, request_id, trace_id, client_ip, method, path: the request's identity. */
/* The "time" member: the date and time to the second are formatted once a second per thread. */
static void put_time(line_t *l, uint64_t wall_ns)
{
    static _Thread_local time_t cached_sec = -1;
    static _Thread_local char when[24];
    static _Thread_local size_t when_len;
    time_t sec = (time_t)(wall_ns / 1000000000);

    if (sec != cached_sec) {
        struct tm tm;
        gmtime_r(&sec, &tm);
        when_len = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        cached_sec = sec;
    }
    PUT_LIT(l, "{\"time\":\"");
    put_raw(l, when, when_len);
    put_raw(l, ".", 1);
    put_padded(l, wall_ns / 1000000 % 1000, 3);
    PUT_LIT(l, "Z\"");
}

static void put_head(line_t *l, cph_req_t *r, uint64_t now_ns)
{
    h2o_req_t *req = r->req;
    if (my_wall_offset_ns == 0) {
        struct timespec mono, wall;
        clock_gettime(CLOCK_MONOTONIC, &mono), clock_gettime(CLOCK_REALTIME, &wall);
        my_wall_offset_ns = ((int64_t)wall.tv_sec - mono.tv_sec) * 1000000000 + (wall.tv_nsec - mono.tv_nsec);
    }
    put_time(l, now_ns + (uint64_t)my_wall_offset_ns);
    PUT_STR(l, ",\"request_id\":", r->request_id.base, r->request_id.len);
    PUT_STR(l, ",\"trace_id\":", r->traceparent.len >= 35 ? r->traceparent.base + 3 : NULL, 32);
    struct sockaddr_storage ss;
    char ip[64];
    if (cph_client_ip(r, &ss) == 0) {
        size_t iplen = cph_client_ip_format(&ss, ip, sizeof(ip));
        PUT_STR(l, ",\"client_ip\":", ip, iplen);
    } else {
        PUT_STR(l, ",\"client_ip\":", NULL, 0);
    }
    PUT_STR(l, ",\"method\":", req->method.base, req->method.len);
    if (r->path.base != NULL)
        PUT_STR(l, ",\"path\":", r->path.base, r->path.len);
    else /* not sanitized (rejected early): the raw path, cut at its query */
        PUT_STR(l, ",\"path\":", req->path_normalized.base, req->path_normalized.len);
}

static int64_t begin_wall_ns(h2o_req_t *req)
{
    return (int64_t)req->timestamps.request_begin_at.tv_sec * 1000000000 + req->timestamps.request_begin_at.tv_usec * 1000;
}

void cph_accesslog_record(cph_req_t *r, uint64_t now_ns)
{
    h2o_req_t *req = r->req;
    int status = req->res.status;
    if (!cph_accesslog_sampled(status))
        return;
    line_t l;
    l.len = 0, l.overflow = 0;
    put_head(&l, r, now_ns);
    const cph_route_t *route = r->route;
    PUT_STR(&l, ",\"route\":", route != NULL ? route->name : NULL, route != NULL ? strlen(route->name) : 0);
    const char *svc = route != NULL && route->service != NULL ? route->service->name : NULL;
    PUT_STR(&l, ",\"service\":", svc, svc != NULL ? strlen(svc) : 0);
    PUT_STR(&l, ",\"target\":", r->target != NULL ? r->target->authority.base : NULL,
            r->target != NULL ? r->target->authority.len : 0);
    int64_t dur = (int64_t)(now_ns + (uint64_t)my_wall_offset_ns) - begin_wall_ns(req);
    if (dur < 0 || req->timestamps.request_begin_at.tv_sec == 0)
        dur = 0;
    PUT_LIT(&l, ",\"status\":");
    put_u64(&l, (uint64_t)(status > 0 ? status : 0));
    PUT_LIT(&l, ",\"bytes_in\":");
    put_u64(&l, req->entity.base != NULL ? req->entity.len : 0);
    PUT_LIT(&l, ",\"bytes_out\":");
    put_u64(&l, req->bytes_sent);
    PUT_LIT(&l, ",\"duration_ms\":");
    put_ms(&l, (uint64_t)dur);
    if (r->target != NULL || r->upstream_ns != 0) {
        PUT_LIT(&l, ",\"upstream_ms\":");
        put_ms(&l, r->upstream_ns);
    } else {
        PUT_LIT(&l, ",\"upstream_ms\":null");
    }
    if (req->version >= 0x200)
        PUT_LIT(&l, ",\"protocol\":\"HTTP/2\"");
    else if (req->version == 0x100)
        PUT_LIT(&l, ",\"protocol\":\"HTTP/1.0\"");
    else
        PUT_LIT(&l, ",\"protocol\":\"HTTP/1.1\"");
    if (req->scheme == &H2O_URL_SCHEME_HTTPS)
        PUT_LIT(&l, ",\"tls\":true");
    else
        PUT_LIT(&l, ",\"tls\":false");
    if (r->principal.kind == CPH_PRINCIPAL_NONE) {
        PUT_LIT(&l, ",\"principal\":null}\n");
    } else {
        PUT_LIT(&l, ",\"principal\":{\"kind\":");
        if (r->principal.kind == CPH_PRINCIPAL_USER)
            PUT_LIT(&l, "\"user\"");
        else
            PUT_LIT(&l, "\"api_key\"");
        PUT_STR(&l, ",\"id\":", r->principal.id.base, r->principal.id.len);
        PUT_LIT(&l, "}}\n");
    }
    if (l.overflow) {
        atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
        return;
    }
    cph_accesslog_push(l.buf, l.len);
}
