/*
 * vault_test: the Vault client (controlplane/vault.c) - its parsers on real answers (the shapes HashiCorp documents
 * for KV v2, AppRole and the token endpoints) and on hostile ones, its classification of failures into the reason
 * kinds, its path checks, and real transfers against a one-shot HTTP server in this process: the token only in the
 * X-Vault-Token header, the LIST method, sealed / 403 / refused / hanging / oversized answers. And the signing key
 * kept in Vault (signing.c): a PEM becomes a key of the right alg and kid, its row holds no private half, and
 * signing works only while the private half is held in memory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include "db_fixture.h"
#include "controlplane/signing.h"
#include "controlplane/vault.h"
#include "http_fixture.h"

#define ENV(data)                                                                                                                  \
    "{\"request_id\":\"6f0ab8a5-54c3-b3b8-4b5e-7b2d3c1e9a11\",\"lease_id\":\"\",\"renewable\":false,"                              \
    "\"lease_duration\":0,\"data\":" data ",\"wrap_info\":null,\"warnings\":null,\"auth\":null}"
#define META(v, del, destroyed)                                                                                                    \
    "{\"created_time\":\"2018-03-22T02:24:06.945319214Z\",\"custom_metadata\":null,\"deletion_time\":\"" del                       \
    "\",\"destroyed\":" destroyed ",\"version\":" v "}"

static int parse_data(long status, const char *body, int64_t *version, json_t **data, cph_vault_error_t *e)
{
    return cph_vault_parse_data(status, body, strlen(body), version, data, e);
}

/* ---------------------------------------------------------------- parsers */

static void test_data_real(void **state)
{
    const char *ok =
        ENV("{\"data\":{\"token\":\"s3cr3t\",\"api_key\":\"k-1\",\"bad key\":\"x\"},\"metadata\":" META("2", "", "false") "}");
    const char *deleted = ENV("{\"data\":null,\"metadata\":" META("3", "2018-03-22T02:36:43.986212308Z", "false") "}");
    const char *destroyed = ENV("{\"data\":null,\"metadata\":" META("4", "", "true") "}");
    cph_vault_error_t e;
    int64_t version = 0;
    json_t *data = NULL;

    (void)state;
    assert_int_equal(parse_data(200, ok, &version, &data, &e), 0);
    assert_int_equal(version, 2);
    assert_string_equal(json_string_value(json_object_get(data, "token")), "s3cr3t");
    assert_string_equal(json_string_value(json_object_get(data, "api_key")), "k-1");
    assert_null(json_object_get(data, "bad key")); /* no template can name it */
    assert_int_equal(json_object_size(data), 2);
    json_decref(data);

    assert_int_equal(parse_data(404, deleted, &version, &data, &e), -1);
    assert_int_equal(e.kind, CPH_REASON_NOT_FOUND);
    assert_int_equal(version, 3);
    assert_null(data);
    assert_int_equal(parse_data(404, destroyed, &version, &data, &e), -1);
    assert_int_equal(e.kind, CPH_REASON_NOT_FOUND);
    assert_int_equal(version, 4);
    assert_int_equal(parse_data(404, "{\"errors\":[]}", &version, &data, &e), -1); /* no such secret */
    assert_int_equal(e.kind, CPH_REASON_NOT_FOUND);
}

static void test_data_hostile(void **state)
{
    static const char *bad[] = {
        "",
        "null",
        "[]",
        "{\"data\":{}}",
        ENV("{\"data\":{\"token\":\"x\"}}"),                                                 /* no metadata */
        ENV("{\"data\":{\"token\":\"x\"},\"metadata\":" META("0", "", "false") "}"),         /* version 0 */
        ENV("{\"data\":{\"token\":\"x\"},\"metadata\":" META("-2", "", "false") "}"),        /* negative */
        ENV("{\"data\":{\"token\":\"x\"},\"metadata\":" META("\"2\"", "", "false") "}"),     /* string version */
        ENV("{\"data\":{\"token\":\"x\"},\"metadata\":" META("2.5", "", "false") "}"),       /* real */
        ENV("{\"data\":{\"token\":1},\"metadata\":" META("2", "", "false") "}"),             /* a number value */
        ENV("{\"data\":{\"token\":{\"a\":\"b\"}},\"metadata\":" META("2", "", "false") "}"), /* an object value */
        ENV("{\"data\":{\"token\":null},\"metadata\":" META("2", "", "false") "}"),          /* null value */
        ENV("{\"data\":\"token\",\"metadata\":" META("2", "", "false") "}"),                 /* data not object */
        ENV("{\"data\":{\"t\":\"a\",\"t\":\"b\"},\"metadata\":" META("2", "", "false") "}"), /* duplicate key */
        ENV("{\"data\":{\"t\":\"a\\u0000b\"},\"metadata\":" META("2", "", "false") "}"),     /* NUL in value */
        ENV("{\"data\":{\"t\":\"a\"},\"metadata\":" META("2", "", "false") "}") "garbage",   /* trailing bytes */
        "{\"data\":{\"data\":{\"t\":\"\xff\"},\"metadata\":" META("2", "", "false") "}}",    /* not UTF-8 */
    };
    cph_vault_error_t e;
    int64_t version;
    json_t *data;

    (void)state;
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        data = (json_t *)1;
        assert_int_equal(parse_data(200, bad[i], &version, &data, &e), -1);
        assert_int_equal(e.kind, CPH_REASON_BAD_RESPONSE);
        assert_null(data);
        assert_null(strstr(e.text, "x\"")); /* no answer bytes in the text */
    }
    /* a 200 carrying a deleted version is still a deleted version */
    assert_int_equal(
        parse_data(200, ENV("{\"data\":null,\"metadata\":" META("2", "2020-01-01T00:00:00Z", "false") "}"), &version, &data, &e),
        -1);
    assert_int_equal(e.kind, CPH_REASON_NOT_FOUND);
}

static void test_data_limits(void **state)
{
    size_t cap = CPH_VAULT_KEYS_MAX + 2, len = 0;
    char *body = malloc(cap * 32 + 512);
    cph_vault_error_t e;
    int64_t version;
    json_t *data;

    (void)state;
    len += (size_t)sprintf(body, "{\"data\":{\"data\":{");
    for (size_t i = 0; i != cap; ++i)
        len += (size_t)sprintf(body + len, "%s\"k%zu\":\"v\"", i ? "," : "", i);
    sprintf(body + len, "},\"metadata\":" META("1", "", "false") "}}");
    assert_int_equal(parse_data(200, body, &version, &data, &e), -1);
    assert_int_equal(e.kind, CPH_REASON_BAD_RESPONSE);
    free(body);

    body = malloc(CPH_VAULT_VALUE_MAX + 512);
    len = (size_t)sprintf(body, "{\"data\":{\"data\":{\"k\":\"");
    memset(body + len, 'a', CPH_VAULT_VALUE_MAX + 1);
    sprintf(body + len + CPH_VAULT_VALUE_MAX + 1, "\"},\"metadata\":" META("1", "", "false") "}}");
    assert_int_equal(parse_data(200, body, &version, &data, &e), -1);
    free(body);
}

static void test_auth(void **state)
{
    const char *login = "{\"request_id\":\"1\",\"lease_id\":\"\",\"renewable\":false,\"lease_duration\":0,\"data\":null,"
                        "\"wrap_info\":null,\"warnings\":null,\"auth\":{\"renewable\":true,\"lease_duration\":1200,"
                        "\"metadata\":{\"role_name\":\"cephalo\"},\"policies\":[\"default\"],\"accessor\":\"fd6c9a00\","
                        "\"client_token\":\"hvs.5b1a0318-679c-9ec2-f3c7\"}}";
    static const char *bad[] = {
        "{\"auth\":null}",
        "{\"auth\":{\"client_token\":\"t\",\"renewable\":true}}",
        "{\"auth\":{\"client_token\":\"t\",\"renewable\":\"yes\",\"lease_duration\":1}}",
        "{\"auth\":{\"client_token\":\"t\",\"renewable\":true,\"lease_duration\":-1}}",
        "{\"auth\":{\"client_token\":\"t\",\"renewable\":true,\"lease_duration\":1.5}}",
        "{\"auth\":{\"client_token\":5,\"renewable\":true,\"lease_duration\":1}}",
        "{\"auth\":{\"client_token\":\"\",\"renewable\":true,\"lease_duration\":1}}",
        "{\"auth\":{\"client_token\":\"t\\r\\nX-Evil: 1\",\"renewable\":true,\"lease_duration\":1}}", /* header split */
        "{\"auth\":{\"client_token\":\"a b\",\"renewable\":true,\"lease_duration\":1}}",
        "{\"auth\":{\"client_token\":\"t\u00e9\",\"renewable\":true,\"lease_duration\":1}}",
    };
    cph_vault_token_info_t info;
    cph_vault_error_t e;
    char token[64];

    (void)state;
    assert_int_equal(cph_vault_parse_auth(login, strlen(login), token, sizeof(token), &info, &e), 0);
    assert_string_equal(token, "hvs.5b1a0318-679c-9ec2-f3c7");
    assert_int_equal(info.ttl_s, 1200);
    assert_true(info.renewable);
    assert_int_equal(cph_vault_parse_auth(login, strlen(login), token, 8, &info, &e), -1); /* too long to hold */
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        assert_int_equal(cph_vault_parse_auth(bad[i], strlen(bad[i]), token, sizeof(token), &info, &e), -1);
        assert_int_equal(e.kind, CPH_REASON_BAD_RESPONSE);
    }
    /* a huge lease is clamped, not refused */
    const char *big = "{\"auth\":{\"client_token\":\"t\",\"renewable\":false,\"lease_duration\":99999999999}}";
    assert_int_equal(cph_vault_parse_auth(big, strlen(big), NULL, 0, &info, &e), 0);
    assert_int_equal(info.ttl_s, CPH_VAULT_TTL_MAX);
    assert_false(info.renewable);
}

static void test_lookup_metadata_list(void **state)
{
    const char *lookup = ENV("{\"accessor\":\"8609694a\",\"creation_time\":1523979354,\"creation_ttl\":2764800,"
                             "\"display_name\":\"ldap2-tesla\",\"entity_id\":\"7d2e3179\",\"expire_time\":"
                             "\"2018-05-19T11:35:54.466476215-04:00\",\"explicit_max_ttl\":0,\"id\":\"cf64a70f\","
                             "\"issue_time\":\"2018-04-17T11:35:54.466476078-04:00\",\"meta\":{\"username\":\"tesla\"},"
                             "\"num_uses\":0,\"orphan\":true,\"path\":\"auth/ldap2/login/tesla\",\"policies\":"
                             "[\"default\"],\"renewable\":true,\"ttl\":2764790}");
    const char *root = ENV("{\"id\":\"root\",\"policies\":[\"root\"],\"renewable\":false,\"ttl\":0,\"expire_time\":null}");
    const char *meta = ENV("{\"cas_required\":false,\"created_time\":\"2018-03-22T02:24:06.945319214Z\","
                           "\"current_version\":3,\"custom_metadata\":{\"foo\":\"abc\"},\"delete_version_after\":\"3h25m19s\","
                           "\"max_versions\":0,\"oldest_version\":0,\"updated_time\":\"2018-03-22T02:36:43.986212308Z\","
                           "\"versions\":{\"1\":{\"created_time\":\"2018-03-22T02:24:06.945319214Z\",\"deletion_time\":"
                           "\"\",\"destroyed\":false}}}");
    const char *list = ENV("{\"keys\":[\"orders\",\"billing/\",\"users\"]}");
    cph_vault_token_info_t info;
    cph_vault_error_t e;
    int64_t version;
    json_t *keys;

    (void)state;
    assert_int_equal(cph_vault_parse_lookup(lookup, strlen(lookup), &info, &e), 0);
    assert_int_equal(info.ttl_s, 2764790);
    assert_true(info.renewable);
    assert_int_equal(cph_vault_parse_lookup(root, strlen(root), &info, &e), 0);
    assert_int_equal(info.ttl_s, 0);
    assert_false(info.renewable);
    assert_int_equal(cph_vault_parse_lookup("{\"data\":{\"ttl\":\"1\"}}", 20, &info, &e), -1);

    assert_int_equal(cph_vault_parse_metadata(meta, strlen(meta), &version, &e), 0);
    assert_int_equal(version, 3);
    assert_int_equal(cph_vault_parse_metadata("{\"data\":{\"current_version\":0}}", 31, &version, &e), -1);
    assert_int_equal(cph_vault_parse_metadata("{\"data\":{}}", 11, &version, &e), -1);
    assert_int_equal(e.kind, CPH_REASON_BAD_RESPONSE);

    assert_non_null(keys = cph_vault_parse_list(list, strlen(list), &e));
    assert_int_equal(json_array_size(keys), 3);
    assert_string_equal(json_string_value(json_array_get(keys, 0)), "billing/");
    assert_string_equal(json_string_value(json_array_get(keys, 2)), "users");
    json_decref(keys);
    static const char *bad_lists[] = {"{\"data\":{\"keys\":\"a\"}}",       "{\"data\":{\"keys\":[1]}}",
                                      "{\"data\":{\"keys\":[\"../x\"]}}",  "{\"data\":{\"keys\":[\"a/b\"]}}",
                                      "{\"data\":{\"keys\":[\"\"]}}",      "{\"data\":{\"keys\":[\"/\"]}}",
                                      "{\"data\":{\"keys\":[\"a\\nb\"]}}", "{\"data\":{}}"};
    for (size_t i = 0; i != sizeof(bad_lists) / sizeof(bad_lists[0]); ++i)
        assert_null(cph_vault_parse_list(bad_lists[i], strlen(bad_lists[i]), &e));
}

/* ---------------------------------------------------------------- classification and names */

static void test_classify(void **state)
{
    const char *sealed = "{\"errors\":[\"Vault is sealed\"]}";
    cph_vault_error_t e;

    (void)state;
    assert_int_equal(cph_vault_classify_status(503, sealed, strlen(sealed), "x", &e), -1);
    assert_int_equal(e.kind, CPH_REASON_SEALED);
    assert_int_equal(e.status, 503);
    cph_vault_classify_status(503, "{\"errors\":[\"local node not active\"]}", 37, "x", &e);
    assert_int_equal(e.kind, CPH_REASON_SERVER_ERROR);
    cph_vault_classify_status(503, "Vault is sealed", 15, "x", &e); /* not JSON: not Vault's sealed answer */
    assert_int_equal(e.kind, CPH_REASON_SERVER_ERROR);
    cph_vault_classify_status(403, "{\"errors\":[\"permission denied\"]}", 32, "x", &e);
    assert_int_equal(e.kind, CPH_REASON_FORBIDDEN);
    cph_vault_classify_status(401, NULL, 0, "x", &e);
    assert_int_equal(e.kind, CPH_REASON_FORBIDDEN);
    cph_vault_classify_status(404, "{\"errors\":[]}", 13, "x", &e);
    assert_int_equal(e.kind, CPH_REASON_NOT_FOUND);
    cph_vault_classify_status(500, NULL, 0, "x", &e);
    assert_int_equal(e.kind, CPH_REASON_SERVER_ERROR);
    cph_vault_classify_status(400, "{\"errors\":[\"s3cr3t-in-error\"]}", 30, "x", &e);
    assert_int_equal(e.kind, CPH_REASON_BAD_RESPONSE);
    assert_null(strstr(e.text, "s3cr3t"));
    cph_vault_classify_status(302, NULL, 0, "x", &e);
    assert_int_equal(e.kind, CPH_REASON_BAD_RESPONSE);

    cph_vault_classify_transport(CURLE_COULDNT_CONNECT, "x", &e);
    assert_int_equal(e.kind, CPH_REASON_UNREACHABLE);
    cph_vault_classify_transport(CURLE_COULDNT_RESOLVE_HOST, "x", &e);
    assert_int_equal(e.kind, CPH_REASON_UNREACHABLE);
    cph_vault_classify_transport(CURLE_OPERATION_TIMEDOUT, "x", &e);
    assert_int_equal(e.kind, CPH_REASON_TIMEOUT);
    cph_vault_classify_transport(CURLE_FILESIZE_EXCEEDED, "x", &e);
    assert_int_equal(e.kind, CPH_REASON_BAD_RESPONSE);
}

static void test_names(void **state)
{
    cph_vault_t v;
    char long_path[300];

    (void)state;
    assert_true(cph_vault_path_valid("services/orders"));
    assert_true(cph_vault_path_valid("a.b-c_d/e"));
    assert_false(cph_vault_path_valid(""));
    assert_false(cph_vault_path_valid("/a"));
    assert_false(cph_vault_path_valid("a/"));
    assert_false(cph_vault_path_valid("a//b"));
    assert_false(cph_vault_path_valid("a/../b"));
    assert_false(cph_vault_path_valid("./a"));
    assert_false(cph_vault_path_valid("a/b?x=1"));
    assert_false(cph_vault_path_valid("a%2f"));
    assert_false(cph_vault_path_valid("a b"));
    memset(long_path, 'a', 257);
    long_path[257] = '\0';
    assert_false(cph_vault_path_valid(long_path));

    assert_int_equal(cph_vault_init(&v, "http://127.0.0.1:8200/", "secret", 1000), 0);
    assert_string_equal(v.addr, "http://127.0.0.1:8200");
    assert_int_equal(cph_vault_init(&v, "ftp://x", "secret", 1000), -1);
    assert_int_equal(cph_vault_init(&v, "http://x", "../sys", 1000), -1);
}

static void test_wipe_values(void **state)
{
    json_t *d = json_pack("{s:s, s:s, s:i, s:n}", "token", "s3cr3t-value", "api_key", "k", "n", 7, "z");
    const char *token = json_string_value(json_object_get(d, "token"));
    const char zeros[12] = {0};

    (void)state;
    cph_vault_wipe_values(d);
    assert_memory_equal(token, zeros, sizeof(zeros)); /* the bytes, not a new value: no copy is left behind */
    assert_int_equal(json_string_value(json_object_get(d, "api_key"))[0], '\0');
    assert_int_equal(json_integer_value(json_object_get(d, "n")), 7);
    assert_int_equal(json_object_size(d), 4);
    cph_vault_wipe_values(NULL);
    json_decref(d);
}

/* ---------------------------------------------------------------- real transfers */

#define HANG_MS 3000 /* a server that never answers holds the connection longer than the client's timeout */

static char *http_answer(int status, const char *body)
{
    char *out = malloc(strlen(body) + 200);

    sprintf(out, "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s", status,
            strlen(body), body);
    return out;
}

static void client(cph_vault_t *v, int port, int timeout_ms)
{
    char addr[64];

    snprintf(addr, sizeof(addr), "http://127.0.0.1:%d", port);
    assert_int_equal(cph_vault_init(v, addr, "secret", timeout_ms), 0);
    snprintf(v->token, sizeof(v->token), "hvs.TOKEN-1234");
}

static void test_transfer_read_and_list(void **state)
{
    char *ans = http_answer(200, ENV("{\"data\":{\"token\":\"s3cr3t\"},\"metadata\":" META("7", "", "false") "}"));
    char *list = http_answer(200, ENV("{\"keys\":[\"b\",\"a/\"]}"));
    cph_vault_error_t e;
    int64_t version;
    json_t *data, *keys;
    server_t s;
    cph_vault_t v;

    (void)state;
    server_start(&s, ans, strlen(ans), HANG_MS);
    client(&v, s.port, 2000);
    assert_int_equal(cph_vault_kv_read(&v, "services/orders", &version, &data, &e), 0);
    server_stop(&s);
    assert_int_equal(version, 7);
    assert_string_equal(json_string_value(json_object_get(data, "token")), "s3cr3t");
    json_decref(data);
    assert_non_null(strstr(s.request, "GET /v1/secret/data/services/orders HTTP/1.1\r\n"));
    assert_non_null(strstr(s.request, "\r\nX-Vault-Token: hvs.TOKEN-1234\r\n"));
    assert_null(strstr(strstr(s.request, "TOKEN-1234") + 1, "TOKEN-1234")); /* once: in the header only */
    assert_null(strstr(s.request, "/v1/secret/data/services/orders?"));

    server_start(&s, list, strlen(list), HANG_MS);
    client(&v, s.port, 2000);
    assert_non_null(keys = cph_vault_kv_list(&v, "services/", &e));
    server_stop(&s);
    assert_non_null(strstr(s.request, "LIST /v1/secret/metadata/services/ HTTP/1.1\r\n"));
    assert_string_equal(json_string_value(json_array_get(keys, 0)), "a/");
    json_decref(keys);
    assert_null(cph_vault_kv_list(&v, "../sys", &e));
    assert_int_equal(cph_vault_kv_read(&v, "a/../b", &version, &data, &e), -1);
    cph_vault_forget(&v);
    assert_int_equal(v.token[0], '\0');
    free(ans);
    free(list);
}

static void test_transfer_login(void **state)
{
    char *ans = http_answer(200, "{\"auth\":{\"client_token\":\"hvs.NEW\",\"lease_duration\":60,\"renewable\":true}}");
    cph_vault_token_info_t info;
    cph_vault_error_t e;
    server_t s;
    cph_vault_t v;

    (void)state;
    server_start(&s, ans, strlen(ans), HANG_MS);
    client(&v, s.port, 2000);
    assert_int_equal(cph_vault_approle_login(&v, "role-1", "secret-1", &info, &e), 0);
    server_stop(&s);
    assert_string_equal(v.token, "hvs.NEW");
    assert_int_equal(info.ttl_s, 60);
    assert_non_null(strstr(s.request, "POST /v1/auth/approle/login HTTP/1.1\r\n"));
    assert_null(strstr(s.request, "X-Vault-Token")); /* login never sends the old token */
    assert_non_null(strstr(s.request, "\"secret_id\":\"secret-1\""));
    free(ans);
}

static void test_transfer_failures(void **state)
{
    char *sealed = http_answer(503, "{\"errors\":[\"Vault is sealed\"]}");
    char *denied = http_answer(403, "{\"errors\":[\"permission denied\"]}");
    char *big = malloc(CPH_VAULT_BODY_MAX + 300);
    cph_vault_error_t e;
    int64_t version;
    server_t s;
    cph_vault_t v;
    int port;

    (void)state;
    server_start(&s, sealed, strlen(sealed), HANG_MS);
    client(&v, s.port, 2000);
    assert_int_equal(cph_vault_kv_version(&v, "a", &version, &e), -1);
    server_stop(&s);
    assert_int_equal(e.kind, CPH_REASON_SEALED);

    server_start(&s, denied, strlen(denied), HANG_MS);
    client(&v, s.port, 2000);
    assert_int_equal(cph_vault_kv_version(&v, "a", &version, &e), -1);
    server_stop(&s);
    assert_int_equal(e.kind, CPH_REASON_FORBIDDEN);
    assert_null(strstr(e.text, "TOKEN"));

    size_t len = (size_t)sprintf(big, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", CPH_VAULT_BODY_MAX + 10);
    memset(big + len, ' ', CPH_VAULT_BODY_MAX + 10);
    server_start(&s, big, len + CPH_VAULT_BODY_MAX + 10, HANG_MS);
    client(&v, s.port, 2000);
    assert_int_equal(cph_vault_kv_version(&v, "a", &version, &e), -1);
    server_stop(&s);
    assert_int_equal(e.kind, CPH_REASON_BAD_RESPONSE);

    server_start(&s, NULL, 0, HANG_MS); /* hangs */
    client(&v, s.port, 500);
    assert_int_equal(cph_vault_kv_version(&v, "a", &version, &e), -1);
    assert_int_equal(e.kind, CPH_REASON_TIMEOUT);
    server_stop(&s);
    port = s.port; /* closed now */
    client(&v, port, 500);
    assert_int_equal(cph_vault_kv_version(&v, "a", &version, &e), -1);
    assert_int_equal(e.kind, CPH_REASON_UNREACHABLE);
    free(sealed);
    free(denied);
    free(big);
}

/* ---------------------------------------------------------------- the signing key from Vault */

/* A new key's PKCS#8 PEM (malloc'ed). */
static char *pem_of(EVP_PKEY *pkey)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data = NULL, *out;
    long len;

    assert_int_equal(PEM_write_bio_PrivateKey(b, pkey, NULL, NULL, 0, NULL, NULL), 1);
    len = BIO_get_mem_data(b, &data);
    out = strndup(data, (size_t)len);
    BIO_free(b);
    EVP_PKEY_free(pkey);
    return out;
}

static void test_signing_from_pem(void **state)
{
    char *ec = pem_of(EVP_EC_gen("P-256")), *p384 = pem_of(EVP_EC_gen("P-384"));
    char *rsa = pem_of(EVP_RSA_gen(2048)), *rsa1k = pem_of(EVP_RSA_gen(1024));
    cph_signing_new_t k, k2;
    cph_error_t err;

    (void)state;
    assert_int_equal(cph_signing_from_pem(ec, NULL, "vault:keys/jwt@1", &k, &err), 0);
    assert_string_equal(k.alg, "ES256");
    assert_string_equal(k.source, "vault:keys/jwt@1");
    assert_int_equal(strlen(k.kid), 32); /* derived from the public key: the same key, the same kid */
    assert_int_equal(cph_signing_from_pem(ec, NULL, "vault:keys/jwt@2", &k2, &err), 0);
    assert_string_equal(k.kid, k2.kid);
    assert_non_null(strstr(k.public_pem, "BEGIN PUBLIC KEY"));
    assert_non_null(strstr(k.private_pem, "BEGIN PRIVATE KEY"));
    cph_signing_new_clear(&k);
    cph_signing_new_clear(&k2);
    assert_int_equal(cph_signing_from_pem(rsa, "rsa-key.1", "vault:k@1", &k, &err), 0);
    assert_string_equal(k.alg, "RS256");
    assert_string_equal(k.kid, "rsa-key.1");
    cph_signing_new_clear(&k);

    static const char *bad_kids[] = {"", "a b", "a/b", "0123456789abcdef0123456789abcdef0"};
    for (size_t i = 0; i != sizeof(bad_kids) / sizeof(bad_kids[0]); ++i) {
        assert_int_equal(cph_signing_from_pem(ec, bad_kids[i], "vault:k@1", &k, &err), -1);
        assert_string_equal(err.path, "/kid");
    }
    const char *bad[] = {p384, rsa1k, "", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a pem"};
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        assert_int_equal(cph_signing_from_pem(bad[i], NULL, "vault:k@1", &k, &err), -1);
        assert_string_equal(err.code, "invalid");
        assert_null(strstr(err.msg, "BEGIN"));
        assert_null(k.private_pem);
    }
    free(ec), free(p384), free(rsa), free(rsa1k);
}

static int on_rotate(cph_db_t *db, void *ctx, cph_db_change_t *change, cph_error_t *err)
{
    return cph_signing_rotate(db, ctx, time(NULL), change, err);
}

static void test_signing_held(void **state)
{
    fixture_t *fx = *state;
    char *pem = pem_of(EVP_EC_gen("P-256")), source[64];
    cph_signing_new_t k, active;
    cph_error_t err;
    uint64_t version;
    sqlite3_stmt *st;

    assert_int_equal(cph_signing_ensure(fx->db, &err), 0); /* the control plane's own key first */
    assert_int_equal(cph_signing_from_pem(pem, "vault-1", "vault:keys/jwt@3", &k, &err), 0);
    assert_int_equal(cph_db_write(fx->db, "vault", on_rotate, &k, &version, &err), 0);
    cph_signing_new_clear(&k);

    cph_db_lock(fx->db);
    assert_int_equal(cph_signing_active_source(fx->db, source, sizeof(source), &err), 0);
    assert_string_equal(source, "vault:keys/jwt@3");
    assert_int_equal(sqlite3_prepare_v2(cph_db_handle(fx->db),
                                        "SELECT private_pem IS NULL, state FROM signing_keys WHERE kid = 'vault-1'", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1); /* never stored */
    assert_string_equal((const char *)sqlite3_column_text(st, 1), "active");
    sqlite3_finalize(st);

    /* not held (a restart): signing is unavailable, not broken */
    assert_int_equal(cph_signing_active(fx->db, &active, &err), -1);
    assert_string_equal(err.code, "unavailable");
    cph_signing_hold("vault:keys/jwt@2", pem); /* another version's key is not this one's */
    assert_int_equal(cph_signing_active(fx->db, &active, &err), -1);
    cph_signing_hold("vault:keys/jwt@3", pem);
    assert_int_equal(cph_signing_active(fx->db, &active, &err), 0);
    assert_string_equal(active.kid, "vault-1");
    assert_string_equal(active.source, "vault:keys/jwt@3");
    assert_non_null(strstr(active.private_pem, "BEGIN PRIVATE KEY"));
    cph_signing_new_clear(&active);
    cph_signing_hold(NULL, NULL);
    assert_int_equal(cph_signing_active(fx->db, &active, &err), -1);
    cph_db_unlock(fx->db);
    free(pem);
}

static int db_setup(void **state)
{
    return db_fixture_setup(state, "vault-test");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_real),
        cmocka_unit_test(test_data_hostile),
        cmocka_unit_test(test_data_limits),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_lookup_metadata_list),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_wipe_values),
        cmocka_unit_test(test_transfer_read_and_list),
        cmocka_unit_test(test_transfer_login),
        cmocka_unit_test(test_transfer_failures),
        cmocka_unit_test(test_signing_from_pem),
        cmocka_unit_test_setup_teardown(test_signing_held, db_setup, teardown),
    };
    int ret;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    ret = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return ret;
}
