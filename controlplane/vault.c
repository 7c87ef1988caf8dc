/*
 * vault: the HTTP client for HashiCorp Vault's token, AppRole and KV v2 APIs (vault.h).
 *
 * Vault is a server we do not control and its answers carry our secrets, so both directions are guarded. Outgoing:
 * libcurl held by http_client.c to http/https, no redirect, a connect timeout and a per-call timeout, the token only in
 * the X-Vault-Token header (the header lines are wiped when freed, and so is every answer). Incoming: at most 1 MiB, strict JSON
 * with duplicate keys refused, every member we use checked for its documented type and range, a token refused unless
 * it can travel in a header, and values kept only when they are strings. Error texts are ours: an answer's bytes are
 * never copied into them, because an answer may be a secret and error texts reach logs and the admin API.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "controlplane/http_client.h"
#include "controlplane/vault.h"
#include "proto/log.h"

#define MODULE "cp/vault"
#define URL_MAX 1024
#define BUF_INIT CPH_HTTP_BUF_INIT(CPH_VAULT_BODY_MAX, 1) /* answers may hold a token or secret values */

static int fail(cph_vault_error_t *e, cph_integration_reason_t kind, long status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(cph_vault_error_t *e, cph_integration_reason_t kind, long status, const char *fmt, ...)
{
    va_list ap;

    e->kind = kind;
    e->status = status;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof(e->text), fmt, ap);
    va_end(ap);
    return -1;
}

/* ---------------------------------------------------------------- names */

static int name_char(int c)
{
    return isalnum(c) || c == '.' || c == '_' || c == '-';
}

int cph_vault_path_valid(const char *path)
{
    size_t len = path != NULL ? strlen(path) : 0, seg = 0;

    if (len == 0 || len > 256)
        return 0;
    for (size_t i = 0; i <= len; ++i) {
        if (i == len || path[i] == '/') {
            const char *s = path + i - seg;
            if (seg == 0 || (seg == 1 && s[0] == '.') || (seg == 2 && s[0] == '.' && s[1] == '.'))
                return 0;
            seg = 0;
        } else if (!name_char((unsigned char)path[i])) {
            return 0;
        } else {
            ++seg;
        }
    }
    return 1;
}

/* A secret's key a template can name: [A-Za-z0-9._-]{1,128}. */
static int key_valid(const char *key)
{
    size_t len = strlen(key);

    if (len == 0 || len > CPH_VAULT_KEY_MAX)
        return 0;
    for (size_t i = 0; i != len; ++i)
        if (!name_char((unsigned char)key[i]))
            return 0;
    return 1;
}

/* A token we can send back: 1..cap-1 visible ASCII bytes (no space, no CR/LF: it goes into a header). */
static int token_valid(const char *t, size_t cap)
{
    size_t len = strlen(t);

    if (len == 0 || len >= cap)
        return 0;
    for (size_t i = 0; i != len; ++i)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
            return 0;
    return 1;
}

int cph_vault_init(cph_vault_t *v, const char *addr, const char *mount, int timeout_ms)
{
    size_t len;

    memset(v, 0, sizeof(*v));
    if (addr == NULL || (strncmp(addr, "http://", 7) != 0 && strncmp(addr, "https://", 8) != 0) ||
        (len = strlen(addr)) >= sizeof(v->addr) || mount == NULL || strlen(mount) >= sizeof(v->mount) ||
        !cph_vault_path_valid(mount))
        return -1;
    memcpy(v->addr, addr, len + 1);
    while (len > 0 && v->addr[len - 1] == '/')
        v->addr[--len] = '\0';
    snprintf(v->mount, sizeof(v->mount), "%s", mount);
    v->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    return 0;
}

void cph_vault_forget(cph_vault_t *v)
{
    OPENSSL_cleanse(v->token, sizeof(v->token));
}

/* ---------------------------------------------------------------- classification */

int cph_vault_classify_transport(int curl_code, const char *what, cph_vault_error_t *e)
{
    switch ((CURLcode)curl_code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return fail(e, CPH_REASON_UNREACHABLE, 0, "%s: Vault is unreachable (%s)", what, curl_easy_strerror(curl_code));
    case CURLE_OPERATION_TIMEDOUT:
        return fail(e, CPH_REASON_TIMEOUT, 0, "%s: Vault did not answer in time", what);
    case CURLE_ABORTED_BY_CALLBACK:
        return fail(e, CPH_REASON_TIMEOUT, 0, "%s: stopped", what);
    case CURLE_FILESIZE_EXCEEDED:
    case CURLE_WRITE_ERROR:
        return fail(e, CPH_REASON_BAD_RESPONSE, 0, "%s: Vault's answer is over %d bytes", what, CPH_VAULT_BODY_MAX);
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_CONTENT_ENCODING:
        return fail(e, CPH_REASON_BAD_RESPONSE, 0, "%s: Vault's answer is not HTTP (%s)", what, curl_easy_strerror(curl_code));
    default:
        return fail(e, CPH_REASON_UNREACHABLE, 0, "%s: %s", what, curl_easy_strerror(curl_code));
    }
}

/* The answer as a JSON object, duplicate keys refused; NULL when it is not one. */
static json_t *load(const char *body, size_t len)
{
    json_error_t jerr;
    json_t *doc;

    if (body == NULL || len == 0 || len > CPH_VAULT_BODY_MAX)
        return NULL;
    doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc != NULL && !json_is_object(doc)) {
        json_decref(doc);
        doc = NULL;
    }
    return doc;
}

/* 1 when the answer is {"errors": [..., "Vault is sealed", ...]}. */
static int says_sealed(const char *body, size_t len)
{
    json_t *doc = load(body, len), *errors, *msg;
    int sealed = 0;
    size_t i;

    errors = json_object_get(doc, "errors");
    json_array_foreach(errors, i, msg) if (json_is_string(msg) && strcmp(json_string_value(msg), "Vault is sealed") == 0) sealed =
        1;
    json_decref(doc);
    return sealed;
}

int cph_vault_classify_status(long status, const char *body, size_t len, const char *what, cph_vault_error_t *e)
{
    if (status == 503 && says_sealed(body, len))
        return fail(e, CPH_REASON_SEALED, status, "%s: Vault is sealed", what);
    if (status == 401 || status == 403)
        return fail(e, CPH_REASON_FORBIDDEN, status, "%s: Vault refused the token (HTTP %ld)", what, status);
    if (status == 404)
        return fail(e, CPH_REASON_NOT_FOUND, status, "%s: not found in Vault", what);
    if (status >= 500 && status <= 599)
        return fail(e, CPH_REASON_SERVER_ERROR, status, "%s: Vault answered HTTP %ld", what, status);
    if (status == 429)
        return fail(e, CPH_REASON_SERVER_ERROR, status, "%s: Vault is rate limiting (HTTP 429)", what);
    return fail(e, CPH_REASON_BAD_RESPONSE, status, "%s: Vault answered HTTP %ld", what, status);
}

/* ---------------------------------------------------------------- parsers */

/* An integer member in [min, max]; a bigger one is max when clamp, else refused. */
static int get_int(const json_t *obj, const char *name, int64_t min, int64_t max, int clamp, int64_t *out)
{
    const json_t *v = json_object_get(obj, name);
    json_int_t n;

    if (!json_is_integer(v) || (n = json_integer_value(v)) < min || (n > max && !clamp))
        return -1;
    *out = n > max ? max : n;
    return 0;
}

int cph_vault_parse_auth(const char *body, size_t len, char *token, size_t token_cap, cph_vault_token_info_t *info,
                         cph_vault_error_t *e)
{
    json_t *doc = load(body, len), *auth = json_object_get(doc, "auth"), *tok, *ren;
    int ret = -1;

    tok = json_object_get(auth, "client_token");
    ren = json_object_get(auth, "renewable");
    if (!json_is_object(auth) || !json_is_string(tok) || !json_is_boolean(ren) ||
        get_int(auth, "lease_duration", 0, CPH_VAULT_TTL_MAX, 1, &info->ttl_s) != 0) {
        fail(e, CPH_REASON_BAD_RESPONSE, 200, "Vault's auth answer lacks auth.client_token, lease_duration or renewable");
        goto Exit;
    }
    if (token != NULL) {
        if (!token_valid(json_string_value(tok), token_cap)) {
            fail(e, CPH_REASON_BAD_RESPONSE, 200, "Vault's auth answer carries a token that cannot be sent back");
            goto Exit;
        }
        snprintf(token, token_cap, "%s", json_string_value(tok));
    }
    info->renewable = json_is_true(ren);
    ret = 0;
Exit:
    if (json_is_string(tok)) /* the token's copy in the parsed document */
        OPENSSL_cleanse((char *)json_string_value(tok), strlen(json_string_value(tok)));
    json_decref(doc);
    return ret;
}

/* Wipes data.id (lookup-self echoes the token there) before the document is freed. */
static void wipe_id(json_t *data)
{
    json_t *id = json_object_get(data, "id");

    if (json_is_string(id))
        OPENSSL_cleanse((char *)json_string_value(id), strlen(json_string_value(id)));
}

int cph_vault_parse_lookup(const char *body, size_t len, cph_vault_token_info_t *info, cph_vault_error_t *e)
{
    json_t *doc = load(body, len), *data = json_object_get(doc, "data"), *ren = json_object_get(data, "renewable");
    int ret = 0;

    if (!json_is_object(data) || get_int(data, "ttl", 0, CPH_VAULT_TTL_MAX, 1, &info->ttl_s) != 0)
        ret = fail(e, CPH_REASON_BAD_RESPONSE, 200, "Vault's token lookup answer lacks data.ttl");
    else if (ren != NULL && !json_is_boolean(ren) && !json_is_null(ren))
        ret = fail(e, CPH_REASON_BAD_RESPONSE, 200, "Vault's token lookup answer has a data.renewable that is not a boolean");
    else
        info->renewable = json_is_true(ren);
    wipe_id(data);
    json_decref(doc);
    return ret;
}

int cph_vault_parse_metadata(const char *body, size_t len, int64_t *version, cph_vault_error_t *e)
{
    json_t *doc = load(body, len);
    int ret = 0;

    if (get_int(json_object_get(doc, "data"), "current_version", 1, INT64_MAX, 0, version) != 0)
        ret = fail(e, CPH_REASON_BAD_RESPONSE, 200, "Vault's metadata answer lacks a positive data.current_version");
    json_decref(doc);
    return ret;
}

/* The string values of d whose keys a template can name, into a new object; -1 when a value is not a string. */
static json_t *string_values(json_t *d, cph_vault_error_t *e)
{
    json_t *out = json_object(), *val;
    const char *key;

    if (json_object_size(d) > CPH_VAULT_KEYS_MAX) {
        fail(e, CPH_REASON_BAD_RESPONSE, 200, "the secret has over %d keys", CPH_VAULT_KEYS_MAX);
        goto Fail;
    }
    json_object_foreach(d, key, val)
    {
        if (!json_is_string(val)) {
            fail(e, CPH_REASON_BAD_RESPONSE, 200, "the secret has a value that is not a string");
            goto Fail;
        }
        if (json_string_length(val) > CPH_VAULT_VALUE_MAX) {
            fail(e, CPH_REASON_BAD_RESPONSE, 200, "the secret has a value over %d bytes", CPH_VAULT_VALUE_MAX);
            goto Fail;
        }
        if (key_valid(key))
            json_object_set_new(out, key, json_stringn(json_string_value(val), json_string_length(val)));
    }
    return out;
Fail:
    json_decref(out);
    return NULL;
}

void cph_vault_wipe_values(json_t *data)
{
    const char *key;
    json_t *val;

    json_object_foreach(data, key, val) if (json_is_string(val))
        OPENSSL_cleanse((char *)json_string_value(val), json_string_length(val));
}

int cph_vault_parse_data(long status, const char *body, size_t len, int64_t *version, json_t **data, cph_vault_error_t *e)
{
    json_t *doc = load(body, len), *outer = json_object_get(doc, "data"), *inner = json_object_get(outer, "data");
    json_t *meta = json_object_get(outer, "metadata"), *del = json_object_get(meta, "deletion_time");
    int ret = -1;

    *data = NULL;
    if (!json_is_object(meta) || get_int(meta, "version", 1, INT64_MAX, 0, version) != 0) {
        if (status == 404) /* no secret at all: Vault's {"errors":[]} */
            fail(e, CPH_REASON_NOT_FOUND, status, "the secret is not in Vault");
        else
            fail(e, CPH_REASON_BAD_RESPONSE, status, "Vault's secret answer lacks data.metadata.version");
        goto Exit;
    }
    if (json_is_true(json_object_get(meta, "destroyed")) || (json_is_string(del) && json_string_length(del) != 0) ||
        (status == 404 && json_is_null(inner))) {
        fail(e, CPH_REASON_NOT_FOUND, status, "version %lld of the secret is deleted or destroyed", (long long)*version);
        goto Exit;
    }
    if (status != 200 || !json_is_object(inner)) {
        fail(e, CPH_REASON_BAD_RESPONSE, status, "Vault's secret answer lacks the data.data object");
        goto Exit;
    }
    if ((*data = string_values(inner, e)) != NULL)
        ret = 0;
Exit:
    if (json_is_object(inner))
        cph_vault_wipe_values(inner);
    json_decref(doc);
    return ret;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *cph_vault_parse_list(const char *body, size_t len, cph_vault_error_t *e)
{
    json_t *doc = load(body, len), *keys = json_object_get(json_object_get(doc, "data"), "keys"), *k, *out = NULL;
    const char *names[CPH_VAULT_KEYS_MAX];
    size_t i, n = json_array_size(keys);

    if (!json_is_array(keys) || n > CPH_VAULT_KEYS_MAX) {
        fail(e, CPH_REASON_BAD_RESPONSE, 200, "Vault's LIST answer lacks data.keys or has over %d of them", CPH_VAULT_KEYS_MAX);
        goto Exit;
    }
    json_array_foreach(keys, i, k)
    {
        const char *s = json_string_value(k);
        size_t slen = s != NULL ? strlen(s) : 0;
        char seg[CPH_VAULT_KEY_MAX + 1];
        if (slen == 0 || slen > CPH_VAULT_KEY_MAX) {
            fail(e, CPH_REASON_BAD_RESPONSE, 200, "Vault's LIST answer has a name that is not a path segment");
            goto Exit;
        }
        snprintf(seg, sizeof(seg), "%.*s", (int)(s[slen - 1] == '/' ? slen - 1 : slen), s);
        if (strchr(seg, '/') != NULL || !cph_vault_path_valid(seg)) {
            fail(e, CPH_REASON_BAD_RESPONSE, 200, "Vault's LIST answer has a name that is not a path segment");
            goto Exit;
        }
        names[i] = s;
    }
    qsort(names, n, sizeof(names[0]), cmp_str);
    out = json_array();
    for (i = 0; i != n; ++i)
        json_array_append_new(out, json_string(names[i]));
Exit:
    json_decref(doc);
    return out;
}

/* ---------------------------------------------------------------- transfers */

/*
 * One call: method on /v1/<api> with the token header (when v has one) and body (POST). Returns 0 with *status and
 * the answer in b (the caller frees it with cph_http_buf_free, which wipes it), or -1 with e classified from the
 * transport failure.
 */
static int call(const cph_vault_t *v, const char *method, const char *api, const char *body, const char *what, long *status,
                cph_http_buf_t *b, cph_vault_error_t *e)
{
    long connect_ms = v->timeout_ms < CPH_VAULT_CONNECT_TIMEOUT_MS ? v->timeout_ms : CPH_VAULT_CONNECT_TIMEOUT_MS;
    cph_http_opts_t o = {connect_ms, v->timeout_ms, v->stop, NULL};
    char url[URL_MAX];
    CURLcode rc;

    *status = 0;
    if ((size_t)snprintf(url, sizeof(url), "%s/v1/%s", v->addr, api) >= sizeof(url))
        return fail(e, CPH_REASON_BAD_RESPONSE, 0, "%s: the URL is too long", what);
    o.headers = cph_http_header_add(NULL, "X-Vault-Request", "true");
    if (v->token[0] != '\0')
        o.headers = cph_http_header_add(o.headers, "X-Vault-Token", v->token);
    if (body != NULL)
        o.headers = cph_http_header_add(o.headers, "Content-Type", "application/json");
    rc = cph_http_call(method, url, body, &o, status, b);
    cph_http_headers_free(o.headers);
    if (rc == CURLE_FAILED_INIT)
        return fail(e, CPH_REASON_UNREACHABLE, 0, "%s: cannot start an HTTP client", what);
    return rc != CURLE_OK ? cph_vault_classify_transport(rc, what, e) : 0;
}

/* call() that also turns any status but 200 (and, when accept_404, 404) into a classified failure. */
static int call_ok(const cph_vault_t *v, const char *method, const char *api, const char *body, const char *what, int accept_404,
                   long *status, cph_http_buf_t *b, cph_vault_error_t *e)
{
    if (call(v, method, api, body, what, status, b, e) != 0)
        return -1;
    if (*status == 200 || (accept_404 && *status == 404))
        return 0;
    cph_vault_classify_status(*status, b->data, b->len, what, e);
    cph_http_buf_free(b);
    return -1;
}

/* A parse failure's text prefixed with what was called. */
static int prefix(cph_vault_error_t *e, const char *what)
{
    char text[sizeof(e->text)];

    snprintf(text, sizeof(text), "%.110s: %.85s", what, e->text);
    memcpy(e->text, text, sizeof(text));
    return -1;
}

/* ---------------------------------------------------------------- the API */

int cph_vault_lookup_self(const cph_vault_t *v, cph_vault_token_info_t *info, cph_vault_error_t *e)
{
    const char *what = "looking up the token";
    cph_http_buf_t b = BUF_INIT;
    long status;
    int ret;

    if (call_ok(v, "GET", "auth/token/lookup-self", NULL, what, 0, &status, &b, e) != 0)
        return -1;
    ret = cph_vault_parse_lookup(b.data, b.len, info, e) != 0 ? prefix(e, what) : 0;
    cph_http_buf_free(&b);
    return ret;
}

int cph_vault_renew_self(const cph_vault_t *v, cph_vault_token_info_t *info, cph_vault_error_t *e)
{
    const char *what = "renewing the token";
    cph_http_buf_t b = BUF_INIT;
    long status;
    int ret;

    if (call_ok(v, "POST", "auth/token/renew-self", "{}", what, 0, &status, &b, e) != 0)
        return -1;
    ret = cph_vault_parse_auth(b.data, b.len, NULL, 0, info, e) != 0 ? prefix(e, what) : 0;
    cph_http_buf_free(&b);
    return ret;
}

int cph_vault_approle_login(cph_vault_t *v, const char *role_id, const char *secret_id, cph_vault_token_info_t *info,
                            cph_vault_error_t *e)
{
    const char *what = "AppRole login";
    json_t *req = json_pack("{s:s, s:s}", "role_id", role_id, "secret_id", secret_id);
    char *body = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL, token[sizeof(v->token)];
    cph_http_buf_t b = BUF_INIT;
    long status;
    int ret = -1;

    json_decref(req); /* role_id/secret_id copies in req are short-lived; the body is wiped below */
    if (body == NULL) {
        fail(e, CPH_REASON_BAD_RESPONSE, 0, "%s: the role id or secret id is not valid UTF-8", what);
        goto Exit;
    }
    cph_vault_forget(v); /* login is unauthenticated: never send an old token along */
    if (call_ok(v, "POST", "auth/approle/login", body, what, 0, &status, &b, e) != 0)
        goto Exit;
    if (cph_vault_parse_auth(b.data, b.len, token, sizeof(token), info, e) != 0) {
        prefix(e, what);
        goto Exit;
    }
    memcpy(v->token, token, sizeof(token));
    ret = 0;
Exit:
    OPENSSL_cleanse(token, sizeof(token));
    if (body != NULL)
        OPENSSL_cleanse(body, strlen(body));
    free(body);
    cph_http_buf_free(&b);
    return ret;
}

/* GET /v1/<mount>/<kind>/<path> after checking path; what (for errors) is doing + the path. 0, or -1 with e. */
static int kv_get(const cph_vault_t *v, const char *kind, const char *path, const char *doing, int accept_404, char *what,
                  size_t what_cap, long *status, cph_http_buf_t *b, cph_vault_error_t *e)
{
    char api[URL_MAX];

    snprintf(what, what_cap, "%s%s", doing, cph_vault_path_valid(path) ? path : "(invalid path)");
    if (!cph_vault_path_valid(path))
        return fail(e, CPH_REASON_NOT_FOUND, 0, "%s", what);
    snprintf(api, sizeof(api), "%s/%s/%s", v->mount, kind, path);
    return call_ok(v, "GET", api, NULL, what, accept_404, status, b, e);
}

int cph_vault_kv_version(const cph_vault_t *v, const char *path, int64_t *version, cph_vault_error_t *e)
{
    cph_http_buf_t b = BUF_INIT;
    char what[320];
    long status;
    int ret;

    if (kv_get(v, "metadata", path, "reading the metadata of ", 0, what, sizeof(what), &status, &b, e) != 0)
        return -1;
    ret = cph_vault_parse_metadata(b.data, b.len, version, e) != 0 ? prefix(e, what) : 0;
    cph_http_buf_free(&b);
    return ret;
}

int cph_vault_kv_read(const cph_vault_t *v, const char *path, int64_t *version, json_t **data, cph_vault_error_t *e)
{
    cph_http_buf_t b = BUF_INIT;
    char what[320];
    long status;
    int ret;

    *data = NULL;
    if (kv_get(v, "data", path, "reading ", 1, what, sizeof(what), &status, &b, e) != 0)
        return -1;
    ret = cph_vault_parse_data(status, b.data, b.len, version, data, e) != 0 ? prefix(e, what) : 0;
    cph_http_buf_free(&b);
    return ret;
}

json_t *cph_vault_kv_list(const cph_vault_t *v, const char *prefix_, cph_vault_error_t *e)
{
    char api[URL_MAX], folder[260];
    size_t len = prefix_ != NULL ? strlen(prefix_) : 0;
    const char *what = "listing secrets";
    cph_http_buf_t b = BUF_INIT;
    json_t *out;
    long status;

    if (len >= sizeof(folder) - 1) {
        fail(e, CPH_REASON_NOT_FOUND, 0, "%s: the prefix is too long", what);
        return NULL;
    }
    snprintf(folder, sizeof(folder), "%.*s", (int)(len > 0 && prefix_[len - 1] == '/' ? len - 1 : len), len > 0 ? prefix_ : "");
    if (folder[0] != '\0' && !cph_vault_path_valid(folder)) {
        fail(e, CPH_REASON_NOT_FOUND, 0, "%s: the prefix is not a valid path", what);
        return NULL;
    }
    snprintf(api, sizeof(api), "%s/metadata/%s%s", v->mount, folder, folder[0] != '\0' ? "/" : "");
    if (call_ok(v, "LIST", api, NULL, what, 0, &status, &b, e) != 0)
        return NULL;
    if ((out = cph_vault_parse_list(b.data, b.len, e)) == NULL)
        prefix(e, what);
    cph_http_buf_free(&b);
    return out;
}
