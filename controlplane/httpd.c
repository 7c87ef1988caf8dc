/*
 * httpd: the libmicrohttpd setup both control-plane listeners use (see the header). The daemons run a thread per
 * connection: every handler may wait on the database lock or, for the admin API, on data planes (?wait=applied), and
 * the connection cap bounds the threads.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <openssl/crypto.h>
#include "proto/log.h"
#include "controlplane/httpd.h"

#define MODULE "cp/httpd"

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];

    (void)cls;
    vsnprintf(buf, sizeof(buf), fmt, ap);
    buf[strcspn(buf, "\n")] = '\0';
    cph_log_warn(MODULE, "microhttpd: %s", buf);
}

/* Parses "HOST:PORT" ("[v6]:PORT" too) into a sockaddr. Returns 0 or -1. */
static int parse_listen(const char *listen, struct sockaddr_storage *ss, int *v6)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    char *end;
    unsigned long port;
    size_t hlen;

    if (colon == NULL || (hlen = (size_t)(colon - listen)) == 0 || hlen >= sizeof(host))
        return -1;
    port = strtoul(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || port > 65535)
        return -1;
    memcpy(host, listen, hlen);
    host[hlen] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (host[0] == '[' && host[hlen - 1] == ']') {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        host[hlen - 1] = '\0';
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        *v6 = 1;
        return inet_pton(AF_INET6, host + 1, &a->sin6_addr) == 1 ? 0 : -1;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    *v6 = 0;
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

/*
 * Percent-decoding of the URL and the query arguments, as libmicrohttpd's own except that "%00" stays as written: a
 * decoded NUL would end the C string every handler reads, so "/app.js%00.html" would be served as "/app.js". Kept
 * literal, it is a '%' no path or name accepts. Returns the decoded length (decoding in place only shortens).
 */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    char *out = s;

    (void)cls, (void)conn;
    for (const char *in = s; *in != '\0'; ++in) {
        int hi, lo;
        if (*in == '%' && (hi = OPENSSL_hexchar2int((unsigned char)in[1])) >= 0 &&
            (lo = OPENSSL_hexchar2int((unsigned char)in[2])) >= 0 && (hi | lo) != 0) {
            *out++ = (char)(hi << 4 | lo);
            in += 2;
        } else {
            *out++ = *in;
        }
    }
    *out = '\0';
    return (size_t)(out - s);
}

struct MHD_Daemon *cph_httpd_start(const char *listen, const char *what, MHD_AccessHandlerCallback on_request, void *cls,
                                   MHD_RequestCompletedCallback on_completed, unsigned max_conns, unsigned timeout_s,
                                   cph_error_t *err)
{
    struct sockaddr_storage ss;
    struct MHD_Daemon *mhd;
    int v6 = 0;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;

    if (parse_listen(listen, &ss, &v6) != 0) {
        cph_error_set(err, "invalid", "", "bad %s listen address (want HOST:PORT)", what);
        return NULL;
    }
    mhd = MHD_start_daemon(flags | (v6 ? MHD_USE_IPv6 : 0), 0, NULL, NULL, on_request, cls, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
                           NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, max_conns,
                           MHD_OPTION_CONNECTION_TIMEOUT, timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                           MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_END);
    if (mhd == NULL)
        cph_error_set(err, "listen", "", "cannot listen on %s", listen);
    return mhd;
}
