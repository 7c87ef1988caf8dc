/*
 * ui: the admin web page's static files (ui.h), served from one directory by the admin listener.
 *
 * Only what the page is made of: a path of [A-Za-z0-9._/-] whose segments do not start with '.', at most 255 bytes,
 * naming a regular file of at most 4 MiB under the directory after every symlink is resolved (realpath must stay
 * inside). Anything else is a JSON 404, a method other than GET/HEAD a 405. Every answer carries the strict
 * Content-Security-Policy (no inline script or style, nothing from another origin, no framing), nosniff, DENY,
 * no-referrer, and no-cache (the page has no build step: a reload must see a changed file).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "controlplane/metrics.h"
#include "controlplane/ui.h"
#include "proto/log.h"

#define MODULE "cp/ui"
#define PATH_MAX_BYTES 255
#define FILE_MAX_BYTES (4 * 1024 * 1024)

#define CSP                                                                                                                        \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; "       \
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

static char ui_dir[PATH_MAX]; /* resolved; "" = no page */

void cph_ui_set_dir(const char *dir)
{
    ui_dir[0] = '\0';
    if (dir == NULL || dir[0] == '\0')
        return;
    if (realpath(dir, ui_dir) == NULL) {
        cph_log_warn(MODULE, "no admin page: cannot open %s (%s)", dir, strerror(errno));
        ui_dir[0] = '\0';
    }
}

/* 1 when url may name a file of the page: see the top of the file. */
static int path_ok(const char *url)
{
    size_t len = strlen(url);

    if (url[0] != '/' || len > PATH_MAX_BYTES)
        return 0;
    for (const char *p = url; *p != '\0'; ++p) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
              c == '/'))
            return 0;
        if (c == '/' && (p[1] == '/' || p[1] == '.'))
            return 0; /* an empty segment, a dot-file, "." or ".." */
    }
    return 1;
}

static const char *content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } TYPES[] = {{".html", "text/html; charset=utf-8"},
                 {".js", "text/javascript; charset=utf-8"},
                 {".css", "text/css; charset=utf-8"},
                 {".json", "application/json"},
                 {".svg", "image/svg+xml"},
                 {".png", "image/png"},
                 {".ico", "image/x-icon"},
                 {".txt", "text/plain; charset=utf-8"}};
    const char *dot = strrchr(path, '.');

    for (size_t i = 0; dot != NULL && i != sizeof(TYPES) / sizeof(TYPES[0]); ++i)
        if (strcmp(dot, TYPES[i].ext) == 0)
            return TYPES[i].type;
    return NULL; /* a type we do not serve */
}

/* Reads the file url names into *body; returns its Content-Type, or NULL (not found, not allowed, too large). */
static const char *load(const char *url, char **body, size_t *len)
{
    char path[PATH_MAX], real[PATH_MAX];
    const char *type;
    struct stat st;
    size_t dlen = strlen(ui_dir);
    int fd;

    if (ui_dir[0] == '\0' || !path_ok(url))
        return NULL;
    if (snprintf(path, sizeof(path), "%s%s", ui_dir, strcmp(url, "/") == 0 ? "/index.html" : url) >= (int)sizeof(path))
        return NULL;
    if ((type = content_type(path)) == NULL || realpath(path, real) == NULL || strncmp(real, ui_dir, dlen) != 0 ||
        real[dlen] != '/')
        return NULL;
    if ((fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
        return NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > FILE_MAX_BYTES ||
        (*body = malloc((size_t)st.st_size + 1)) == NULL) {
        close(fd);
        return NULL;
    }
    *len = 0;
    while (*len < (size_t)st.st_size) {
        ssize_t n = read(fd, *body + *len, (size_t)st.st_size - *len);
        if (n <= 0)
            break;
        *len += (size_t)n;
    }
    close(fd);
    return type;
}

static enum MHD_Result answer(struct MHD_Connection *conn, const char *method, unsigned status, const char *type, char *body,
                              size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret;

    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Content-Security-Policy", CSP);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Cross-Origin-Opener-Policy", "same-origin");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    if (status == 405)
        MHD_add_response_header(r, "Allow", "GET, HEAD");
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    cph_metrics_count_admin(method, status);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, const char *method, unsigned status, const char *code,
                                  const char *message)
{
    char *body = NULL;
    int n = asprintf(&body, "{\"error\":\"%s\",\"message\":\"%s\"}", code, message);

    if (n < 0)
        cph_fatal(MODULE, "out of memory");
    return answer(conn, method, status, "application/json", body, (size_t)n);
}

enum MHD_Result cph_ui_answer(struct MHD_Connection *conn, const char *url, const char *method)
{
    char *body = NULL;
    size_t len = 0;
    const char *type;

    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_error(conn, method, 405, "method_not_allowed", "method not allowed");
    if ((type = load(url, &body, &len)) == NULL)
        return send_error(conn, method, 404, "not_found", "no such resource");
    return answer(conn, method, 200, type, body, len);
}
