/*
 * openapi_test: the compiled-in OpenAPI document (controlplane/openapi.json) is valid and true to the router.
 *
 * - it is one JSON object without duplicate keys, "openapi" 3.0.x, with info.title, info.version and paths;
 * - every routed (resource, method) of cph_api_resources() is documented: the collection /api/v1/<name> with exactly
 *   its collection methods, and the items: /api/v1/<name>/{param} with the item methods, or - for the resources
 *   whose key is a fixed word or holds a '/' - the sub-paths listed in SUB_PATHS below, whose methods together are
 *   exactly the resource's item methods. SUB_PATHS is itself checked against the router (the resource exists, the
 *   methods are routed, a two-segment key only on a nested resource), so neither table can go stale unnoticed;
 * - nothing else is documented: every documented path is one of those (or /health, /metrics) and every operation's
 *   method is routed there;
 * - every "$ref" resolves inside the document; every operation has a unique operationId and a non-empty responses
 *   object keyed by status codes; every {param} of a path is declared as a path parameter of each of its operations;
 * - GET /api/v1/openapi.json (the handler) answers 200 with exactly this document.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jansson.h>
#include "controlplane/api.h"

extern const unsigned char cph_openapi_json[];
extern const size_t cph_openapi_json_len;

#define GET CPH_API_GET
#define POST CPH_API_POST
#define PUT CPH_API_PUT
#define DELETE CPH_API_DELETE
#define PATH_MAX_LEN 256

/* The item paths of the resources whose key is not a plain {id-or-name} (a "{}" segment is any path parameter). */
static const struct st_sub_path_t {
    const char *resource;
    const char *path;
    int methods;
} SUB_PATHS[] = {
    {"signing_keys", "/api/v1/signing_keys/{}", GET},
    {"signing_keys", "/api/v1/signing_keys/rotate", POST},
    {"authz", "/api/v1/authz/explain", POST},
    {"authz", "/api/v1/authz/shadow", GET},
    {"cache", "/api/v1/cache/purge", POST},
    {"health", "/api/v1/health/services", GET},
    {"integrations", "/api/v1/integrations/vault", GET},
    {"integrations", "/api/v1/integrations/consul", GET},
    {"integrations", "/api/v1/integrations/vault/paths", GET},
    {"admin", "/api/v1/admin/login", POST},
    {"admin", "/api/v1/admin/logout", POST},
    {"admin", "/api/v1/admin/me", GET},
    {"snapshots", "/api/v1/snapshots/{}", GET},
    {"snapshots", "/api/v1/snapshots/{}/diff", GET},
    {"snapshots", "/api/v1/snapshots/{}/rollback", POST},
};
#define NUM_SUB_PATHS (sizeof(SUB_PATHS) / sizeof(SUB_PATHS[0]))

/* Paths outside /api/v1 that api.c answers itself. */
static const struct st_sub_path_t OUTSIDE[] = {{NULL, "/health", GET}, {NULL, "/metrics", GET}};

static const char *const METHOD_NAMES[] = {"get", "post", "put", "delete"}; /* bit i = 1 << i, as CPH_API_* */

/* ---------------------------------------------------------------- helpers */

static json_t *load_doc(void)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)cph_openapi_json, cph_openapi_json_len, JSON_REJECT_DUPLICATES, &jerr);

    if (doc == NULL)
        fail_msg("controlplane/openapi.json: line %d: %s", jerr.line, jerr.text);
    assert_true(json_is_object(doc));
    return doc;
}

/* Copies path with every "{name}" segment written "{}". */
static void normalise(const char *path, char *out, size_t cap)
{
    size_t n = 0;

    for (const char *p = path; *p != '\0' && n + 3 < cap; ++p) {
        if (*p == '{') {
            const char *end = strchr(p, '}');
            assert_non_null(end);
            out[n++] = '{';
            out[n++] = '}';
            p = end;
        } else {
            out[n++] = *p;
        }
    }
    assert_true(n + 3 < cap);
    out[n] = '\0';
}

/* The documented path (any parameter names) equal to want ("{}" for a parameter), or NULL. */
static json_t *find_path(json_t *paths, const char *want, const char **name)
{
    const char *key;
    json_t *item;
    char norm[PATH_MAX_LEN];

    json_object_foreach(paths, key, item)
    {
        normalise(key, norm, sizeof(norm));
        if (strcmp(norm, want) == 0) {
            if (name != NULL)
                *name = key;
            return item;
        }
    }
    return NULL;
}

/* The CPH_API_* bits of the operations documented on a path item. */
static int documented_methods(const json_t *item)
{
    int bits = 0;

    for (int i = 0; i < 4; ++i)
        if (json_object_get(item, METHOD_NAMES[i]) != NULL)
            bits |= 1 << i;
    return bits;
}

static const cph_api_resource_info_t *find_resource(const char *name, size_t len)
{
    size_t n;
    const cph_api_resource_info_t *res = cph_api_resources(&n);

    for (size_t i = 0; i < n; ++i)
        if (strlen(res[i].name) == len && strncmp(res[i].name, name, len) == 0)
            return &res[i];
    return NULL;
}

static int has_sub_paths(const char *resource)
{
    for (size_t i = 0; i < NUM_SUB_PATHS; ++i)
        if (strcmp(SUB_PATHS[i].resource, resource) == 0)
            return 1;
    return 0;
}

/* Asserts that path is documented with exactly methods. */
static void expect_path(json_t *paths, const char *path, int methods)
{
    json_t *item = find_path(paths, path, NULL);

    if (item == NULL)
        fail_msg("%s is routed (methods 0x%x) but not documented", path, methods);
    if (documented_methods(item) != methods)
        fail_msg("%s: documented methods 0x%x, routed 0x%x", path, documented_methods(item), methods);
}

/* ---------------------------------------------------------------- the tests */

static void test_is_openapi3(void **state)
{
    json_t *doc = load_doc();
    const char *version = json_string_value(json_object_get(doc, "openapi"));
    json_t *info = json_object_get(doc, "info");

    (void)state;
    assert_non_null(version);
    assert_memory_equal(version, "3.0.", 4);
    assert_true(json_is_string(json_object_get(info, "title")));
    assert_true(json_is_string(json_object_get(info, "version")));
    assert_true(json_is_object(json_object_get(doc, "paths")));
    assert_true(json_object_size(json_object_get(doc, "paths")) > 0);
    assert_true(json_is_object(json_object_get(json_object_get(doc, "components"), "securitySchemes")));
    json_decref(doc);
}

/* The sub-path table agrees with the router. */
static void test_sub_paths_are_routed(void **state)
{
    (void)state;
    for (size_t i = 0; i < NUM_SUB_PATHS; ++i) {
        const struct st_sub_path_t *s = &SUB_PATHS[i];
        const cph_api_resource_info_t *r = find_resource(s->resource, strlen(s->resource));
        size_t prefix = strlen("/api/v1/") + strlen(s->resource) + 1;
        if (r == NULL)
            fail_msg("SUB_PATHS: %s is not a routed resource", s->resource);
        assert_true(strlen(s->path) > prefix);
        assert_memory_equal(s->path, "/api/v1/", 8);
        assert_memory_equal(s->path + 8, s->resource, strlen(s->resource));
        assert_int_equal(s->path[prefix - 1], '/');
        if ((s->methods & ~r->item_methods) != 0)
            fail_msg("SUB_PATHS: %s lists a method the router does not route on items", s->path);
        if (strchr(s->path + prefix, '/') != NULL && !r->nested)
            fail_msg("SUB_PATHS: %s has a two-segment key but %s is not nested", s->path, s->resource);
    }
}

/* Every routed (resource, method) has an operation. */
static void test_every_route_is_documented(void **state)
{
    json_t *doc = load_doc(), *paths = json_object_get(doc, "paths");
    const cph_api_resource_info_t *res;
    char path[PATH_MAX_LEN];
    size_t n;

    (void)state;
    res = cph_api_resources(&n);
    assert_true(n > 0);
    for (size_t i = 0; i < n; ++i) {
        snprintf(path, sizeof(path), "/api/v1/%s", res[i].name);
        if (res[i].collection_methods != 0)
            expect_path(paths, path, res[i].collection_methods);
        else if (find_path(paths, path, NULL) != NULL)
            fail_msg("%s is documented but nothing is routed on it", path);
        if (has_sub_paths(res[i].name)) {
            int all = 0;
            for (size_t j = 0; j < NUM_SUB_PATHS; ++j)
                if (strcmp(SUB_PATHS[j].resource, res[i].name) == 0) {
                    expect_path(paths, SUB_PATHS[j].path, SUB_PATHS[j].methods);
                    all |= SUB_PATHS[j].methods;
                }
            if (all != res[i].item_methods)
                fail_msg("%s: the sub-paths document methods 0x%x, items route 0x%x", res[i].name, all, res[i].item_methods);
        } else if (res[i].item_methods != 0) {
            snprintf(path, sizeof(path), "/api/v1/%s/{}", res[i].name);
            expect_path(paths, path, res[i].item_methods);
        }
    }
    for (size_t i = 0; i < sizeof(OUTSIDE) / sizeof(OUTSIDE[0]); ++i)
        expect_path(paths, OUTSIDE[i].path, OUTSIDE[i].methods);
    json_decref(doc);
}

/* The methods the router answers on a normalised documented path (collection, plain item, sub-path, outside); 0: none. */
static int routed_methods(const char *norm)
{
    const char *rest, *slash;
    const cph_api_resource_info_t *r;

    for (size_t i = 0; i < sizeof(OUTSIDE) / sizeof(OUTSIDE[0]); ++i)
        if (strcmp(norm, OUTSIDE[i].path) == 0)
            return OUTSIDE[i].methods;
    if (strncmp(norm, "/api/v1/", 8) != 0)
        return 0;
    rest = norm + 8;
    slash = strchr(rest, '/');
    if ((r = find_resource(rest, slash != NULL ? (size_t)(slash - rest) : strlen(rest))) == NULL)
        return 0;
    if (slash == NULL)
        return r->collection_methods;
    if (!has_sub_paths(r->name))
        return strcmp(slash, "/{}") == 0 ? r->item_methods : 0;
    for (size_t i = 0; i < NUM_SUB_PATHS; ++i)
        if (strcmp(SUB_PATHS[i].path, norm) == 0)
            return SUB_PATHS[i].methods;
    return 0;
}

/* Nothing is documented that the router does not answer. */
static void test_nothing_stale_is_documented(void **state)
{
    static const char *const PATH_ITEM_FIELDS[] = {"summary", "description", "parameters", "servers", NULL};
    json_t *doc = load_doc(), *paths = json_object_get(doc, "paths"), *item, *v;
    const char *path, *field;
    char norm[PATH_MAX_LEN];
    int methods;

    (void)state;
    json_object_foreach(paths, path, item)
    {
        normalise(path, norm, sizeof(norm));
        if ((methods = routed_methods(norm)) == 0)
            fail_msg("%s is documented but not routed", path);
        json_object_foreach(item, field, v)
        {
            int known = 0;
            for (size_t i = 0; PATH_ITEM_FIELDS[i] != NULL; ++i)
                known |= strcmp(field, PATH_ITEM_FIELDS[i]) == 0;
            for (int i = 0; i < 4; ++i)
                if (strcmp(field, METHOD_NAMES[i]) == 0) {
                    known = 1;
                    if ((methods & (1 << i)) == 0)
                        fail_msg("%s %s is documented but not routed", field, path);
                }
            if (!known)
                fail_msg("%s: \"%s\" is not an operation the router answers (or not a path item field)", path, field);
        }
    }
    json_decref(doc);
}

/* Resolves a local "$ref" ("#/a/b~1c") in doc, or NULL. */
static json_t *resolve(json_t *doc, const char *ref)
{
    char token[PATH_MAX_LEN];
    json_t *at = doc;
    const char *p;

    if (strncmp(ref, "#/", 2) != 0)
        return NULL;
    for (p = ref + 2; at != NULL && *p != '\0';) {
        size_t n = 0;
        for (; *p != '\0' && *p != '/' && n + 1 < sizeof(token); ++p) {
            if (p[0] == '~' && (p[1] == '0' || p[1] == '1'))
                token[n++] = *++p == '0' ? '~' : '/';
            else
                token[n++] = *p;
        }
        token[n] = '\0';
        at = json_object_get(at, token);
        if (*p == '/')
            ++p;
    }
    return at;
}

static void check_refs(json_t *doc, json_t *v, size_t *count)
{
    const char *key;
    json_t *item;
    size_t i;

    if (json_is_object(v)) {
        json_object_foreach(v, key, item)
        {
            if (strcmp(key, "$ref") == 0) {
                assert_true(json_is_string(item));
                if (resolve(doc, json_string_value(item)) == NULL)
                    fail_msg("\"$ref\": \"%s\" does not resolve", json_string_value(item));
                ++*count;
            } else {
                check_refs(doc, item, count);
            }
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, item) check_refs(doc, item, count);
    }
}

static void test_refs_resolve(void **state)
{
    json_t *doc = load_doc();
    size_t count = 0;

    (void)state;
    check_refs(doc, doc, &count);
    assert_true(count > 50); /* the walk reached the document's references */
    assert_null(resolve(doc, "#/components/schemas/NoSuchSchema"));
    json_decref(doc);
}

/* 1 when op (or its path item) declares the path parameter name. */
static int declares_param(json_t *doc, json_t *item, json_t *op, const char *name)
{
    json_t *lists[2] = {json_object_get(item, "parameters"), json_object_get(op, "parameters")}, *p;
    size_t i;

    for (int l = 0; l < 2; ++l)
        json_array_foreach(lists[l], i, p)
        {
            json_t *ref = json_object_get(p, "$ref");
            json_t *param = ref != NULL ? resolve(doc, json_string_value(ref)) : p;
            const char *in = json_string_value(json_object_get(param, "in"));
            const char *pname = json_string_value(json_object_get(param, "name"));
            if (in != NULL && pname != NULL && strcmp(in, "path") == 0 && strcmp(pname, name) == 0 &&
                json_is_true(json_object_get(param, "required")))
                return 1;
        }
    return 0;
}

static void check_operation(json_t *doc, const char *path, json_t *item, const char *method, json_t *op, json_t *ids)
{
    const char *id = json_string_value(json_object_get(op, "operationId")), *status;
    json_t *responses = json_object_get(op, "responses"), *r;
    char name[64];

    if (id == NULL || id[0] == '\0')
        fail_msg("%s %s has no operationId", method, path);
    if (json_object_get(ids, id) != NULL)
        fail_msg("operationId %s is used twice", id);
    json_object_set_new(ids, id, json_true());
    if (!json_is_object(responses) || json_object_size(responses) == 0)
        fail_msg("%s %s has no responses", method, path);
    json_object_foreach(responses, status, r)
    {
        if (strcmp(status, "default") != 0 && (strlen(status) != 3 || status[0] < '1' || status[0] > '5'))
            fail_msg("%s %s: response key %s is not a status", method, path, status);
        if (json_object_get(r, "$ref") == NULL && !json_is_string(json_object_get(r, "description")))
            fail_msg("%s %s: response %s has no description", method, path, status);
    }
    for (const char *p = strchr(path, '{'); p != NULL; p = strchr(p + 1, '{')) {
        const char *end = strchr(p, '}');
        assert_non_null(end);
        assert_true((size_t)(end - p) < sizeof(name));
        snprintf(name, sizeof(name), "%.*s", (int)(end - p - 1), p + 1);
        if (!declares_param(doc, item, op, name))
            fail_msg("%s %s does not declare its path parameter %s", method, path, name);
    }
}

static void test_operations_are_complete(void **state)
{
    json_t *doc = load_doc(), *ids = json_object(), *item;
    const char *path;
    size_t operations = 0;

    (void)state;
    json_object_foreach(json_object_get(doc, "paths"), path, item)
    {
        for (int i = 0; i < 4; ++i) {
            json_t *op = json_object_get(item, METHOD_NAMES[i]);
            if (op == NULL)
                continue;
            check_operation(doc, path, item, METHOD_NAMES[i], op, ids);
            ++operations;
        }
    }
    assert_int_equal(json_object_size(ids), operations);
    json_decref(ids);
    json_decref(doc);
}

/* The handler serves exactly the document. */
static void test_handler_serves_it(void **state)
{
    cph_api_req_t req = {.method = CPH_API_GET, .actor = "token:admin"};
    json_t *doc = load_doc();

    (void)state;
    cph_api_openapi(&req);
    assert_int_equal(req.status, 200);
    assert_non_null(req.resp);
    assert_true(json_equal(req.resp, doc));
    json_decref(req.resp);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_is_openapi3),
        cmocka_unit_test(test_sub_paths_are_routed),
        cmocka_unit_test(test_every_route_is_documented),
        cmocka_unit_test(test_nothing_stale_is_documented),
        cmocka_unit_test(test_refs_resolve),
        cmocka_unit_test(test_operations_are_complete),
        cmocka_unit_test(test_handler_serves_it),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
