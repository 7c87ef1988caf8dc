/*
 * snapbuild_credentials: a service's "credentials" in the snapshot body (proto/PROTOCOL.md section 5, "service
 * credentials") - the admin form's templates resolved with the Vault secret the Vault sync thread stored.
 *
 * The control plane resolves, the data plane only sets headers: so a data plane never talks to Vault, and every
 * secret problem is decided here, once, into a form the data plane cannot misread - either the header values, or an
 * "error" text that makes the service answer 503 credentials_unavailable instead of calling its upstream without
 * them. The error texts are ours and name the path, a key or a header, never a value. "source" (vault:<path>@<version>)
 * makes a new secret version change the body even when the values did not, and tells a redacted body's reader which
 * version is in force.
 *
 * The resolved values are secrets, so the body holds secrets: the snapshot history is in the 0600 database, and the
 * one admin view of a body (GET /api/v1/snapshot?body=1) goes through cph_snapbuild_redact.
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "controlplane/integrations.h"
#include "controlplane/service_integrations.h"
#include "controlplane/snapbuild.h"
#include "controlplane/store_secret.h"
#include "proto/log.h"

#define MODULE "cp/snapbuild_credentials"
#define VALUE_MAX 8192 /* PROTOCOL.md: a header value's bytes */
#define ERROR_MAX 256

/* One template being resolved: the secret's data, the value built so far, why it failed. */
typedef struct st_resolve_t {
    const json_t *data;
    char *buf;
    size_t len, cap;
    char error[ERROR_MAX];
} resolve_t;

static void resolve_clear(resolve_t *r)
{
    if (r->buf != NULL)
        OPENSSL_cleanse(r->buf, r->cap);
    free(r->buf);
    r->buf = NULL;
    r->len = r->cap = 0;
}

static void append(resolve_t *r, const char *s, size_t n)
{
    if (r->len + n + 1 > r->cap) {
        size_t cap = (r->len + n + 1) * 2;
        char *nb = malloc(cap);
        if (nb == NULL)
            cph_fatal(MODULE, "out of memory");
        size_t len = r->len;
        if (r->buf != NULL)
            memcpy(nb, r->buf, len);
        resolve_clear(r);
        r->buf = nb;
        r->cap = cap;
        r->len = len;
    }
    memcpy(r->buf + r->len, s, n);
    r->len += n;
    r->buf[r->len] = '\0';
}

/* A byte a header value may hold (PROTOCOL.md): visible ASCII, space, tab, obs-text. */
static int value_byte(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* A part of the template: a literal is copied, a key replaced by its value, which must be header-safe. */
static int on_part(void *ud, int is_key, const char *text, size_t len)
{
    resolve_t *r = ud;
    const json_t *v;
    char key[CPH_CREDENTIALS_KEY_MAX + 1];

    if (!is_key) {
        append(r, text, len);
        return 0;
    }
    memcpy(key, text, len); /* the walker checked 1..128 bytes of [A-Za-z0-9._-] */
    key[len] = '\0';
    if (!json_is_string(v = json_object_get(r->data, key))) {
        snprintf(r->error, sizeof(r->error), "the secret has no key \"%s\"", key);
        return -1;
    }
    for (size_t i = 0; i != json_string_length(v); ++i)
        if (!value_byte((unsigned char)json_string_value(v)[i])) {
            snprintf(r->error, sizeof(r->error), "the value of key \"%s\" cannot be sent in a header", key);
            return -1;
        }
    append(r, json_string_value(v), json_string_length(v));
    return 0;
}

/* Resolves template into r->buf; -1 with r->error set. */
static int resolve(resolve_t *r, const json_t *tmpl)
{
    const char *why;

    resolve_clear(r);
    append(r, "", 0);
    if (cph_service_template_walk(json_string_value(tmpl), json_string_length(tmpl), on_part, r, &why) == 0)
        return 0;
    if (why != NULL) /* the admin API refuses these: a hand-edited row */
        snprintf(r->error, sizeof(r->error), "the stored template is malformed");
    return -1;
}

/* Appends {"name", "value"} with the resolved r->buf, or fails when the whole value is no valid header value. */
static int add_header(json_t *headers, const char *name, resolve_t *r)
{
    if (r->len == 0 || r->len > VALUE_MAX || r->buf[0] == ' ' || r->buf[0] == '\t' || r->buf[r->len - 1] == ' ' ||
        r->buf[r->len - 1] == '\t') {
        snprintf(r->error, sizeof(r->error),
                 "the value of header \"%s\" built from the secret is empty, longer than %d bytes or begins or ends with a space",
                 name, VALUE_MAX);
        return -1;
    }
    if (json_array_append_new(headers, json_pack("{s:s, s:s%}", "name", name, "value", r->buf, r->len)) != 0) {
        /* the parts are ASCII or came from JSON strings, so this is not expected: refuse rather than abort */
        snprintf(r->error, sizeof(r->error), "the value of header \"%s\" built from the secret is not valid UTF-8", name);
        return -1;
    }
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The "headers" form: every header's template resolved, by name. */
static int resolve_headers(const json_t *templates, resolve_t *r, json_t *headers)
{
    const char *names[CPH_CREDENTIALS_HEADERS_MAX], *name;
    size_t n = 0;
    json_t *tmpl;

    json_object_foreach((json_t *)templates, name, tmpl)
    {
        if (n == CPH_CREDENTIALS_HEADERS_MAX)
            break;
        names[n++] = name;
    }
    qsort(names, n, sizeof(*names), by_name);
    for (size_t i = 0; i != n; ++i)
        if (resolve(r, json_object_get(templates, names[i])) != 0 || add_header(headers, names[i], r) != 0)
            return -1;
    return 0;
}

/* The "basic" form: authorization: Basic base64(username ":" password). */
static int resolve_basic(const json_t *basic, resolve_t *r, json_t *headers)
{
    resolve_t pair = {0};
    unsigned char *b64;
    int ret = -1, n;

    if (resolve(r, json_object_get(basic, "username")) != 0)
        return -1;
    if (memchr(r->buf, ':', r->len) != NULL) {
        snprintf(r->error, sizeof(r->error), "the basic authentication username built from the secret contains ':'");
        return -1;
    }
    append(&pair, r->buf, r->len);
    append(&pair, ":", 1);
    if (resolve(r, json_object_get(basic, "password")) != 0)
        goto Exit;
    append(&pair, r->buf, r->len);
    if (pair.len > (VALUE_MAX - 6) / 4 * 3) {
        snprintf(r->error, sizeof(r->error), "the basic authentication username and password are too long for a header");
        goto Exit;
    }
    if ((b64 = malloc(4 * ((pair.len + 2) / 3) + 1)) == NULL)
        cph_fatal(MODULE, "out of memory");
    n = EVP_EncodeBlock(b64, (const unsigned char *)pair.buf, (int)pair.len);
    resolve_clear(r);
    append(r, "Basic ", 6);
    append(r, (const char *)b64, (size_t)n);
    OPENSSL_cleanse(b64, (size_t)n);
    free(b64);
    ret = add_header(headers, "authorization", r);
Exit:
    resolve_clear(&pair);
    return ret;
}

/*
 * The snapshot form of one service's admin credentials: {"source", "headers"} or {"source", "error"}. A new object,
 * or NULL with err {internal} when the database fails.
 */
static json_t *resolve_service(cph_db_t *db, const json_t *creds, cph_error_t *err)
{
    const char *path = json_string_value(json_object_get(creds, "vault_path"));
    json_t *secret = NULL, *out, *headers;
    resolve_t r = {0};
    char source[300];
    int rc;

    snprintf(source, sizeof(source), "vault:%s", path != NULL ? path : "");
    if (cph_integration_settings()->vault_addr[0] == '\0')
        return json_pack("{s:s, s:s}", "source", source, "error", "Vault is not configured");
    if ((secret = cph_store_secret_get(db, source + 6, err)) == NULL)
        return strcmp(err->code, "not_found") == 0 ? json_pack("{s:s, s:s}", "source", source, "error", err->msg) : NULL;
    snprintf(source, sizeof(source), "vault:%s@%lld", path, (long long)json_integer_value(json_object_get(secret, "version")));
    r.data = json_object_get(secret, "data");
    headers = json_array();
    if (json_object_get(creds, "basic") != NULL)
        rc = resolve_basic(json_object_get(creds, "basic"), &r, headers);
    else
        rc = resolve_headers(json_object_get(creds, "headers"), &r, headers);
    if (rc == 0)
        out = json_pack("{s:s, s:o}", "source", source, "headers", headers);
    else {
        json_decref(headers);
        out = json_pack("{s:s, s:s}", "source", source, "error", r.error);
    }
    resolve_clear(&r);
    json_decref(secret);
    return out;
}

int cph_snapbuild_credentials(cph_db_t *db, json_t *services, cph_error_t *err)
{
    json_t *svc, *resolved;
    size_t i;

    json_array_foreach(services, i, svc)
    {
        const json_t *creds = json_object_get(svc, "credentials");
        json_object_del(svc, "consul");
        if (creds == NULL)
            continue;
        if ((resolved = resolve_service(db, creds, err)) == NULL)
            return -1;
        json_object_set_new(svc, "credentials", resolved);
    }
    return 0;
}

json_t *cph_snapbuild_redact(const json_t *body)
{
    json_t *copy = json_deep_copy(body), *svc, *h;
    size_t i, j;

    if (copy == NULL)
        cph_fatal(MODULE, "out of memory");
    json_array_foreach(json_object_get(copy, "services"), i, svc)
    {
        json_array_foreach(json_object_get(json_object_get(svc, "credentials"), "headers"), j, h)
        {
            if (json_is_object(h) && json_object_get(h, "value") != NULL)
                json_object_set_new(h, "value", json_string("(redacted)"));
        }
    }
    return copy;
}
