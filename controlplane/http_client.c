/*
 * http_client: the libcurl plumbing shared by the control plane's outgoing clients (http_client.h).
 *
 * Three clients call servers we do not control - an identity provider's JWKS URL, Vault, Consul - and all three must
 * be held the same way, so the options live here once: a protocol allow-list instead of libcurl's defaults, no
 * redirect (a redirect could carry a token's request elsewhere), timeouts, a size cap enforced both from the
 * Content-Length (CURLOPT_MAXFILESIZE_LARGE) and while the bytes arrive (the write callback, for chunked answers),
 * and a stop flag checked by the progress callback, which libcurl calls about once a second even while idle.
 * Each caller keeps what is its own: the URL, the headers, how a status or a failure is classified.
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "controlplane/http_client.h"
#include "proto/log.h"

#define MODULE "cp/http_client"
#define GROW_MIN 4096

/* Makes room for need bytes (+ the NUL): doubling, so a 1 MiB answer costs a few copies, each old block wiped. */
static void reserve(cph_http_buf_t *b, size_t need)
{
    size_t alloc = b->alloc != 0 ? b->alloc : GROW_MIN;
    char *grown;

    if (need + 1 <= b->alloc)
        return;
    while (alloc < need + 1)
        alloc *= 2;
    if (alloc > b->max + 1)
        alloc = b->max + 1;
    if ((grown = malloc(alloc)) == NULL)
        cph_fatal(MODULE, "out of memory");
    if (b->data != NULL) { /* not realloc: the old block may hold a secret and must be wiped before it is freed */
        memcpy(grown, b->data, b->len);
        if (b->wipe)
            OPENSSL_cleanse(b->data, b->len);
        free(b->data);
    }
    b->data = grown;
    b->alloc = alloc;
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    cph_http_buf_t *b = ud;
    size_t n = size * nmemb;

    if (n > b->max - b->len) {
        b->too_big = 1;
        return 0; /* aborts the transfer (CURLE_WRITE_ERROR) */
    }
    reserve(b, b->len + n);
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return atomic_load((atomic_int *)ud) ? 1 : 0;
}

void cph_http_setup(CURL *c, const char *url, const cph_http_opts_t *o, cph_http_buf_t *b)
{
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)b->max);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "cephalo-controlplane");
    if (o->headers != NULL)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, o->headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    if (o->stop != NULL) {
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, o->stop);
    }
}

CURLcode cph_http_call(const char *method, const char *url, const char *body, const cph_http_opts_t *o, long *status,
                       cph_http_buf_t *b)
{
    CURL *c = curl_easy_init();
    CURLcode rc;

    *status = 0;
    if (c == NULL)
        return CURLE_FAILED_INIT;
    cph_http_setup(c, url, o, b);
    if (body != NULL || strcmp(method, "POST") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body != NULL ? body : "");
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(c);
    if (b->too_big)
        rc = CURLE_FILESIZE_EXCEEDED;
    if (rc != CURLE_OK)
        cph_http_buf_free(b);
    return rc;
}

void cph_http_buf_free(cph_http_buf_t *b)
{
    if (b->data != NULL && b->wipe)
        OPENSSL_cleanse(b->data, b->len);
    free(b->data);
    b->data = NULL, b->len = 0, b->alloc = 0, b->too_big = 0;
}

struct curl_slist *cph_http_header_add(struct curl_slist *list, const char *name, const char *value)
{
    size_t len = strlen(name) + strlen(value) + 3;
    struct curl_slist *out;
    char *line;

    if ((line = malloc(len)) == NULL)
        cph_fatal(MODULE, "out of memory");
    snprintf(line, len, "%s: %s", name, value);
    out = curl_slist_append(list, line);
    OPENSSL_cleanse(line, len);
    free(line);
    if (out == NULL)
        cph_fatal(MODULE, "out of memory");
    return out;
}

void cph_http_headers_free(struct curl_slist *list)
{
    for (struct curl_slist *l = list; l != NULL; l = l->next)
        if (l->data != NULL)
            OPENSSL_cleanse(l->data, strlen(l->data));
    curl_slist_free_all(list);
}

int cph_http_global_init(cph_error_t *err)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return cph_error_set(err, "internal", "", "cannot initialise libcurl");
    return 0;
}

void cph_http_global_cleanup(void)
{
    curl_global_cleanup();
}
