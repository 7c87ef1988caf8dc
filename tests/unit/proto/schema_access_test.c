/*
 * schema_access_test: the access members of the snapshot schema (PROTOCOL.md section 5: service "system", route
 * "default_access", top-level "auth", "groups", "endpoints", "api_keys", "revoked"). Every rule accepted and refused
 * with the exact code and JSON pointer, hostile values (reals, nulls, wrong types, bad hex, caps plus one), the
 * uniqueness rules at the later occurrence, and the validation order between members.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "proto/proto.h"
#include "schema_cases.h"

#define SERVICES "\"services\":[{\"name\":\"orders\",\"targets\":[]},{\"name\":\"billing\",\"targets\":[]}],\"routes\":[]"
#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* Every case as extra top-level members of a body with two services. */
#define RUN(cases) run_body_cases(SERVICES, cases, NUM_CASES(cases))

/* Validates the service on its own (pointer relative to it) and as /services/0 of a body. */
static void check_service(json_t *svc, const char *text, const char *code, const char *path)
{
    json_t *body = json_pack("{s:[O], s:[]}", "services", svc, "routes");
    cph_error_t err;

    memset(&err, 0, sizeof(err));
    expect_under(cph_schema_validate_service(svc, &err), &err, "service", text, code, "", path);
    check_body(body, text, code, "/services/0", path);
    json_decref(body);
}

/* ---------------------------------------------------------------- service system, route default_access */

static void test_service_system(void **state)
{
    static const case_t cases[] = {
        {"{\"name\":\"a\",\"targets\":[]}", NULL, NULL},
        {"{\"name\":\"a\",\"targets\":[],\"system\":null}", NULL, NULL},
        {"{\"name\":\"a\",\"targets\":[],\"system\":\"shop\"}", NULL, NULL},
        {"{\"name\":\"a\",\"targets\":[],\"system\":\"a-b_0\"}", NULL, NULL},
        {"{\"name\":\"a\",\"targets\":[],\"system\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}", NULL,
         NULL},
        {"{\"name\":\"a\",\"targets\":[],\"system\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
         "invalid", "/system"},
        {"{\"name\":\"a\",\"targets\":[],\"system\":\"\"}", "invalid", "/system"},
        {"{\"name\":\"a\",\"targets\":[],\"system\":\"Shop\"}", "invalid", "/system"},
        {"{\"name\":\"a\",\"targets\":[],\"system\":\"a.b\"}", "invalid", "/system"},
        {"{\"name\":\"a\",\"targets\":[],\"system\":\"a\\u0000b\"}", "invalid", "/system"},
        {"{\"name\":\"a\",\"targets\":[],\"system\":1}", "invalid", "/system"},
        {"{\"name\":\"a\",\"targets\":[],\"system\":1.5}", "invalid", "/system"},
        {"{\"name\":\"a\",\"targets\":[],\"system\":[]}", "invalid", "/system"},
        /* members in table order: a bad timeout_ms before a bad system */
        {"{\"name\":\"a\",\"targets\":[],\"system\":\"X\",\"timeout_ms\":0}", "invalid", "/timeout_ms"},
    };
    (void)state;
    RUN_CASES(cases, check_service);
}

#define R(extra) "{\"name\":\"r\",\"service\":\"orders\",\"paths\":[\"/api\"]" extra "}"

static void test_route_default_access(void **state)
{
    static const case_t cases[] = {
        {R(""), NULL, NULL},
        {R(",\"default_access\":\"public\""), NULL, NULL},
        {R(",\"default_access\":\"authenticated\""), NULL, NULL},
        {R(",\"default_access\":\"deny\""), NULL, NULL},
        {R(",\"default_access\":\"Public\""), "invalid", "/default_access"},
        {R(",\"default_access\":\"\""), "invalid", "/default_access"},
        {R(",\"default_access\":\"allow\""), "invalid", "/default_access"},
        {R(",\"default_access\":\"deny \""), "invalid", "/default_access"},
        {R(",\"default_access\":null"), "invalid", "/default_access"},
        {R(",\"default_access\":1"), "invalid", "/default_access"},
        {R(",\"default_access\":true"), "invalid", "/default_access"},
        {R(",\"default_access\":\"deny\",\"strip_prefix\":1"), "invalid", "/strip_prefix"},
        {R(",\"default_acces\":\"deny\""), "unknown_field", "/default_acces"},
    };
    (void)state;
    RUN_CASES(cases, check_route);
}

/* ---------------------------------------------------------------- auth */

#define A(members) "\"auth\":{" members "}"

static void test_auth(void **state)
{
    static const case_t cases[] = {
        {"", NULL, NULL},
        {A(""), NULL, NULL},
        {A("\"issuer\":\"cephalo\",\"audience\":null,\"leeway_s\":30,\"max_token_bytes\":8192,\"header_prefix\":\"x-cephalo-\","
           "\"api\":null"),
         NULL, NULL},
        {A("\"issuer\":\"https://id.example/ realm\",\"audience\":\"gw\",\"api\":\"http://127.0.0.1:8002\""), NULL, NULL},
        {A("\"api\":\"http://[::1]:8002/\""), NULL, NULL},
        {"\"auth\":null", "invalid", "/auth"},
        {"\"auth\":[]", "invalid", "/auth"},
        {A("\"issuer\":\"a\",\"secret\":\"x\""), "unknown_field", "/auth/secret"},
        {A("\"issuer\":\"\""), "invalid", "/auth/issuer"},
        {A("\"issuer\":null"), "invalid", "/auth/issuer"},
        {A("\"issuer\":7"), "invalid", "/auth/issuer"},
        {A("\"issuer\":\"a\\tb\""), "invalid", "/auth/issuer"},
        {A("\"issuer\":\"caf\\u00e9\""), "invalid", "/auth/issuer"},
        {A("\"issuer\":\"a\\u0000\""), "invalid", "/auth/issuer"},
        {A("\"audience\":\"\""), "invalid", "/auth/audience"},
        {A("\"audience\":[\"a\"]"), "invalid", "/auth/audience"},
        {A("\"audience\":\"a\\u007f\""), "invalid", "/auth/audience"},
        {A("\"leeway_s\":0"), NULL, NULL},
        {A("\"leeway_s\":300"), NULL, NULL},
        {A("\"leeway_s\":301"), "invalid", "/auth/leeway_s"},
        {A("\"leeway_s\":-1"), "invalid", "/auth/leeway_s"},
        {A("\"leeway_s\":30.0"), "invalid", "/auth/leeway_s"},
        {A("\"leeway_s\":\"30\""), "invalid", "/auth/leeway_s"},
        {A("\"leeway_s\":null"), "invalid", "/auth/leeway_s"},
        {A("\"max_token_bytes\":256"), NULL, NULL},
        {A("\"max_token_bytes\":65536"), NULL, NULL},
        {A("\"max_token_bytes\":255"), "invalid", "/auth/max_token_bytes"},
        {A("\"max_token_bytes\":65537"), "invalid", "/auth/max_token_bytes"},
        {A("\"max_token_bytes\":8e3"), "invalid", "/auth/max_token_bytes"},
        {A("\"header_prefix\":\"x-\""), NULL, NULL},
        {A("\"header_prefix\":\"a0-b-\""), NULL, NULL},
        {A("\"header_prefix\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-\""), NULL, NULL},
        {A("\"header_prefix\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-\""), "invalid", "/auth/header_prefix"},
        {A("\"header_prefix\":\"-\""), "invalid", "/auth/header_prefix"},
        {A("\"header_prefix\":\"x-cephalo\""), "invalid", "/auth/header_prefix"},
        {A("\"header_prefix\":\"X-Cephalo-\""), "invalid", "/auth/header_prefix"},
        {A("\"header_prefix\":\"x_c-\""), "invalid", "/auth/header_prefix"},
        {A("\"header_prefix\":\"x c-\""), "invalid", "/auth/header_prefix"},
        {A("\"header_prefix\":null"), "invalid", "/auth/header_prefix"},
        {A("\"api\":\"https://127.0.0.1:8002\""), "invalid", "/auth/api"},
        {A("\"api\":\"http://127.0.0.1\""), "invalid", "/auth/api"},
        {A("\"api\":\"http://127.0.0.1:8002/auth\""), "invalid", "/auth/api"},
        {A("\"api\":\"http://u@h:1\""), "invalid", "/auth/api"},
        {A("\"api\":\"\""), "invalid", "/auth/api"},
        {A("\"api\":8002"), "invalid", "/auth/api"},
        /* table order: issuer before leeway_s before api, whatever the document order */
        {A("\"api\":1,\"leeway_s\":-1,\"issuer\":\"\""), "invalid", "/auth/issuer"},
        {A("\"api\":1,\"leeway_s\":-1"), "invalid", "/auth/leeway_s"},
    };
    (void)state;
    RUN(cases);
}

/* ---------------------------------------------------------------- groups */

#define G(items) "\"groups\":[" items "]"

static void test_groups(void **state)
{
    static const case_t cases[] = {
        {G(""), NULL, NULL},
        {G("{\"system\":\"shop\",\"name\":\"staff\",\"roles\":[\"reader\",\"writer\"]}"), NULL, NULL},
        {G("{\"system\":\"shop\",\"name\":\"staff\"}"), NULL, NULL},
        {G("{\"system\":\"shop\",\"name\":\"staff\",\"roles\":[]}"), NULL, NULL},
        /* the same name in two systems */
        {G("{\"system\":\"shop\",\"name\":\"staff\"},{\"system\":\"hr\",\"name\":\"staff\"}"), NULL, NULL},
        {"\"groups\":null", "invalid", "/groups"},
        {"\"groups\":{}", "invalid", "/groups"},
        {G("null"), "invalid", "/groups/0"},
        {G("\"staff\""), "invalid", "/groups/0"},
        {G("{\"system\":\"shop\",\"name\":\"staff\",\"members\":[]}"), "unknown_field", "/groups/0/members"},
        {G("{\"name\":\"staff\"}"), "missing_field", "/groups/0/system"},
        {G("{\"system\":\"shop\"}"), "missing_field", "/groups/0/name"},
        {G("{\"system\":null,\"name\":\"staff\"}"), "invalid", "/groups/0/system"},
        {G("{\"system\":\"Shop\",\"name\":\"staff\"}"), "invalid", "/groups/0/system"},
        {G("{\"system\":\"shop\",\"name\":\"st aff\"}"), "invalid", "/groups/0/name"},
        {G("{\"system\":\"shop\",\"name\":\"\"}"), "invalid", "/groups/0/name"},
        {G("{\"system\":\"shop\",\"name\":\"staff\",\"roles\":null}"), "invalid", "/groups/0/roles"},
        {G("{\"system\":\"shop\",\"name\":\"staff\",\"roles\":[\"a\",1]}"), "invalid", "/groups/0/roles/1"},
        {G("{\"system\":\"shop\",\"name\":\"staff\",\"roles\":[\"a\",\"b/c\"]}"), "invalid", "/groups/0/roles/1"},
        {G("{\"system\":\"shop\",\"name\":\"staff\",\"roles\":[\"a\",\"b\",\"a\"]}"), "duplicate", "/groups/0/roles/2"},
        {G("{\"system\":\"shop\",\"name\":\"staff\"},{\"system\":\"hr\",\"name\":\"x\"},{\"system\":\"shop\",\"name\":\"staff\"}"),
         "duplicate", "/groups/2/name"},
        /* names are case-sensitive */
        {G("{\"system\":\"shop\",\"name\":\"staff\"},{\"system\":\"shop\",\"name\":\"Staff\"}"), NULL, NULL},
    };
    (void)state;
    RUN(cases);
}

/* ---------------------------------------------------------------- endpoints */

#define E(members) "\"endpoints\":[{" members "}]"
#define EB "\"id\":1,\"service\":\"orders\",\"method\":\"GET\","
#define EP(path) E(EB "\"path\":\"" path "\"")

static void test_endpoints(void **state)
{
    static const case_t cases[] = {
        {"\"endpoints\":[]", NULL, NULL},
        {E("\"id\":7,\"service\":\"orders\",\"method\":\"GET\",\"path\":\"/orders/{id}\",\"public\":false,\"shadow\":false,"
           "\"roles\":[{\"system\":\"shop\",\"name\":\"reader\"}],\"groups\":[{\"system\":\"shop\",\"name\":\"staff\"}]"),
         NULL, NULL},
        {E(EB "\"path\":\"/a/*\",\"public\":true,\"roles\":[],\"groups\":[]"), NULL, NULL},
        {E("\"id\":1,\"service\":\"orders\",\"method\":\"*\",\"path\":\"/*\",\"shadow\":true"), NULL, NULL},
        {E("\"id\":9223372036854775807,\"service\":\"billing\",\"method\":\"TRACE\",\"path\":\"/\""), NULL, NULL},
        {"\"endpoints\":null", "invalid", "/endpoints"},
        {"\"endpoints\":[null]", "invalid", "/endpoints/0"},
        {"\"endpoints\":[[]]", "invalid", "/endpoints/0"},
        {E(EB "\"path\":\"/a\",\"enforce\":true"), "unknown_field", "/endpoints/0/enforce"},
        {E("\"service\":\"orders\",\"method\":\"GET\",\"path\":\"/a\""), "missing_field", "/endpoints/0/id"},
        {E("\"id\":0,\"service\":\"orders\",\"method\":\"GET\",\"path\":\"/a\""), "invalid", "/endpoints/0/id"},
        {E("\"id\":-3,\"service\":\"orders\",\"method\":\"GET\",\"path\":\"/a\""), "invalid", "/endpoints/0/id"},
        {E("\"id\":1.0,\"service\":\"orders\",\"method\":\"GET\",\"path\":\"/a\""), "invalid", "/endpoints/0/id"},
        {E("\"id\":\"1\",\"service\":\"orders\",\"method\":\"GET\",\"path\":\"/a\""), "invalid", "/endpoints/0/id"},
        {E("\"id\":null,\"service\":\"orders\",\"method\":\"GET\",\"path\":\"/a\""), "invalid", "/endpoints/0/id"},
        {E("\"id\":1,\"method\":\"GET\",\"path\":\"/a\""), "missing_field", "/endpoints/0/service"},
        {E("\"id\":1,\"service\":\"or ders\",\"method\":\"GET\",\"path\":\"/a\""), "invalid", "/endpoints/0/service"},
        {E("\"id\":1,\"service\":\"nope\",\"method\":\"GET\",\"path\":\"/a\""), "unknown_service", "/endpoints/0/service"},
        {E("\"id\":1,\"service\":\"Orders\",\"method\":\"GET\",\"path\":\"/a\""), "unknown_service", "/endpoints/0/service"},
        {E("\"id\":1,\"service\":\"orders\",\"path\":\"/a\""), "missing_field", "/endpoints/0/method"},
        {E("\"id\":1,\"service\":\"orders\",\"method\":\"get\",\"path\":\"/a\""), "invalid", "/endpoints/0/method"},
        {E("\"id\":1,\"service\":\"orders\",\"method\":\"\",\"path\":\"/a\""), "invalid", "/endpoints/0/method"},
        {E("\"id\":1,\"service\":\"orders\",\"method\":\"**\",\"path\":\"/a\""), "invalid", "/endpoints/0/method"},
        {E("\"id\":1,\"service\":\"orders\",\"method\":\"GET \",\"path\":\"/a\""), "invalid", "/endpoints/0/method"},
        {E("\"id\":1,\"service\":\"orders\",\"method\":[\"GET\"],\"path\":\"/a\""), "invalid", "/endpoints/0/method"},
        {E("\"id\":1,\"service\":\"orders\",\"method\":\"GET\""), "missing_field", "/endpoints/0/path"},
        {E(EB "\"path\":null"), "invalid", "/endpoints/0/path"},
        {E(EB "\"path\":\"/a\\u0000b\""), "invalid", "/endpoints/0/path"},
        {EP("/a/../b"), "invalid", "/endpoints/0/path"},
        {EP("/a//b"), "invalid", "/endpoints/0/path"},
        {EP("/a/%2Fb"), "invalid", "/endpoints/0/path"},
        {EP("/a;b"), "invalid", "/endpoints/0/path"},
        {EP("/{bad-name}"), "invalid", "/endpoints/0/path"},
        {EP("/*/a"), "invalid", "/endpoints/0/path"},
        {EP("/{id"), "invalid", "/endpoints/0/path"},
        {EP("/id}"), "invalid", "/endpoints/0/path"},
        {EP("a"), "invalid", "/endpoints/0/path"},
        {EP("/auth/x"), NULL, NULL}, /* upstream paths: /auth is only reserved for route paths */
        {E(EB "\"path\":\"/a\",\"public\":1"), "invalid", "/endpoints/0/public"},
        {E(EB "\"path\":\"/a\",\"public\":null"), "invalid", "/endpoints/0/public"},
        {E(EB "\"path\":\"/a\",\"shadow\":\"false\""), "invalid", "/endpoints/0/shadow"},
        {E(EB "\"path\":\"/a\",\"roles\":{}"), "invalid", "/endpoints/0/roles"},
        {E(EB "\"path\":\"/a\",\"roles\":[\"reader\"]"), "invalid", "/endpoints/0/roles/0"},
        {E(EB "\"path\":\"/a\",\"roles\":[{\"system\":\"shop\"}]"), "missing_field", "/endpoints/0/roles/0/name"},
        {E(EB "\"path\":\"/a\",\"roles\":[{\"name\":\"r\"}]"), "missing_field", "/endpoints/0/roles/0/system"},
        {E(EB "\"path\":\"/a\",\"roles\":[{\"system\":\"shop\",\"name\":\"r\",\"x\":1}]"), "unknown_field",
         "/endpoints/0/roles/0/x"},
        {E(EB "\"path\":\"/a\",\"roles\":[{\"system\":\"SHOP\",\"name\":\"r\"}]"), "invalid", "/endpoints/0/roles/0/system"},
        {E(EB "\"path\":\"/a\",\"groups\":[{\"system\":\"shop\",\"name\":\"\"}]"), "invalid", "/endpoints/0/groups/0/name"},
        {E(EB "\"path\":\"/a\",\"roles\":[{\"system\":\"shop\",\"name\":\"r\"},{\"system\":\"hr\",\"name\":\"r\"},"
              "{\"system\":\"shop\",\"name\":\"r\"}]"),
         "duplicate", "/endpoints/0/roles/2"},
        {E(EB "\"path\":\"/a\",\"groups\":[{\"system\":\"shop\",\"name\":\"g\"},{\"system\":\"shop\",\"name\":\"g\"}]"),
         "duplicate", "/endpoints/0/groups/1"},
        /* a role and a group may share a name */
        {E(EB "\"path\":\"/a\",\"roles\":[{\"system\":\"s\",\"name\":\"x\"}],\"groups\":[{\"system\":\"s\",\"name\":\"x\"}]"), NULL,
         NULL},
        /* public rules list no roles and no groups */
        {E(EB "\"path\":\"/a\",\"public\":true,\"roles\":[{\"system\":\"s\",\"name\":\"r\"}]"), "invalid", "/endpoints/0/roles"},
        {E(EB "\"path\":\"/a\",\"public\":true,\"groups\":[{\"system\":\"s\",\"name\":\"g\"}]"), "invalid", "/endpoints/0/groups"},
        {E(EB "\"path\":\"/a\",\"public\":false,\"roles\":[{\"system\":\"s\",\"name\":\"r\"}]"), NULL, NULL},
    };
    (void)state;
    RUN(cases);
}

static void test_endpoint_uniqueness(void **state)
{
    static const case_t cases[] = {
        {"\"endpoints\":[{\"id\":1,\"service\":\"orders\",\"method\":\"GET\",\"path\":\"/a\"},"
         "{\"id\":2,\"service\":\"orders\",\"method\":\"*\",\"path\":\"/a\"},"
         "{\"id\":3,\"service\":\"billing\",\"method\":\"GET\",\"path\":\"/a\"},"
         "{\"id\":4,\"service\":\"orders\",\"method\":\"GET\",\"path\":\"/a/\"},"
         "{\"id\":5,\"service\":\"orders\",\"method\":\"GET\",\"path\":\"/a/*\"}]",
         NULL, NULL},
        {"\"endpoints\":[{\"id\":1,\"service\":\"orders\",\"method\":\"GET\",\"path\":\"/a\"},"
         "{\"id\":2,\"service\":\"orders\",\"method\":\"GET\",\"path\":\"/b\"},"
         "{\"id\":1,\"service\":\"orders\",\"method\":\"GET\",\"path\":\"/c\"}]",
         "duplicate", "/endpoints/2/id"},
        {"\"endpoints\":[{\"id\":1,\"service\":\"orders\",\"method\":\"GET\",\"path\":\"/a\"},"
         "{\"id\":2,\"service\":\"orders\",\"method\":\"GET\",\"path\":\"/b\"},"
         "{\"id\":3,\"service\":\"orders\",\"method\":\"GET\",\"path\":\"/a\"}]",
         "duplicate", "/endpoints/2/path"},
        /* a shadow rule is still a rule: the same (service, method, path) twice is refused */
        {"\"endpoints\":[{\"id\":1,\"service\":\"orders\",\"method\":\"*\",\"path\":\"/{id}\"},"
         "{\"id\":2,\"service\":\"orders\",\"method\":\"*\",\"path\":\"/{id}\",\"shadow\":true}]",
         "duplicate", "/endpoints/1/path"},
        /* the element is checked before its id, the id before its service, the service before the triple */
        {"\"endpoints\":[{\"id\":1,\"service\":\"orders\",\"method\":\"GET\",\"path\":\"/a\"},"
         "{\"id\":1,\"service\":\"orders\",\"method\":\"GET\",\"path\":\"/a/..\"}]",
         "invalid", "/endpoints/1/path"},
        {"\"endpoints\":[{\"id\":1,\"service\":\"orders\",\"method\":\"GET\",\"path\":\"/a\"},"
         "{\"id\":1,\"service\":\"nope\",\"method\":\"GET\",\"path\":\"/a\"}]",
         "duplicate", "/endpoints/1/id"},
        {"\"endpoints\":[{\"id\":1,\"service\":\"orders\",\"method\":\"GET\",\"path\":\"/a\"},"
         "{\"id\":2,\"service\":\"nope\",\"method\":\"GET\",\"path\":\"/a\"}]",
         "unknown_service", "/endpoints/1/service"},
    };
    (void)state;
    RUN(cases);
}

/* ---------------------------------------------------------------- api_keys */

#define K(members) "\"api_keys\":[{" members "}]"
#define KB "\"id\":3,\"prefix\":\"0a1b2c3d4e\",\"secret_sha256\":\"" SHA "\",\"system\":\"shop\""

static void test_api_keys(void **state)
{
    static const case_t cases[] = {
        {"\"api_keys\":[]", NULL, NULL},
        {K(KB), NULL, NULL},
        {K(KB ",\"roles\":[\"r\"],\"groups\":[\"g\"],\"expires_at\":1795000000"), NULL, NULL},
        {K(KB ",\"expires_at\":null"), NULL, NULL},
        {K(KB ",\"expires_at\":0"), NULL, NULL},
        {K(KB ",\"expires_at\":253402300799"), NULL, NULL},
        {K("\"id\":3,\"prefix\":\"01234567\",\"secret_sha256\":\"" SHA "\",\"system\":\"shop\""), NULL, NULL},
        {K("\"id\":3,\"prefix\":\"0123456789ab\",\"secret_sha256\":\"" SHA "\",\"system\":\"shop\""), NULL, NULL},
        {"\"api_keys\":null", "invalid", "/api_keys"},
        {"\"api_keys\":[\"0a1b2c3d4e.secret\"]", "invalid", "/api_keys/0"},
        {K(KB ",\"secret\":\"s\""), "unknown_field", "/api_keys/0/secret"},
        {K(KB ",\"revoked\":false"), "unknown_field", "/api_keys/0/revoked"},
        {K("\"prefix\":\"0a1b2c3d4e\""), "missing_field", "/api_keys/0/id"},
        {K("\"id\":0,\"prefix\":\"0a1b2c3d4e\""), "invalid", "/api_keys/0/id"},
        {K("\"id\":3.5,\"prefix\":\"0a1b2c3d4e\""), "invalid", "/api_keys/0/id"},
        {K("\"id\":3"), "missing_field", "/api_keys/0/prefix"},
        {K("\"id\":3,\"prefix\":\"0123456\""), "invalid", "/api_keys/0/prefix"},
        {K("\"id\":3,\"prefix\":\"0123456789abc\""), "invalid", "/api_keys/0/prefix"},
        {K("\"id\":3,\"prefix\":\"0A1B2C3D4E\""), "invalid", "/api_keys/0/prefix"},
        {K("\"id\":3,\"prefix\":\"0a1b2c3d4g\""), "invalid", "/api_keys/0/prefix"},
        {K("\"id\":3,\"prefix\":\"0a1b2c3d.e\""), "invalid", "/api_keys/0/prefix"},
        {K("\"id\":3,\"prefix\":null"), "invalid", "/api_keys/0/prefix"},
        {K("\"id\":3,\"prefix\":12345678"), "invalid", "/api_keys/0/prefix"},
        {K("\"id\":3,\"prefix\":\"0a1b2c3d4e\""), "missing_field", "/api_keys/0/secret_sha256"},
        {K("\"id\":3,\"prefix\":\"0a1b2c3d4e\",\"secret_sha256\":\"" SHA "0\""), "invalid", "/api_keys/0/secret_sha256"},
        {K("\"id\":3,\"prefix\":\"0a1b2c3d4e\",\"secret_sha256\":"
           "\"123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\""),
         "invalid", "/api_keys/0/secret_sha256"},
        {K("\"id\":3,\"prefix\":\"0a1b2c3d4e\",\"secret_sha256\":"
           "\"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\""),
         "invalid", "/api_keys/0/secret_sha256"},
        {K("\"id\":3,\"prefix\":\"0a1b2c3d4e\",\"secret_sha256\":"
           "\"z123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\""),
         "invalid", "/api_keys/0/secret_sha256"},
        {K("\"id\":3,\"prefix\":\"0a1b2c3d4e\",\"secret_sha256\":\"\""), "invalid", "/api_keys/0/secret_sha256"},
        {K("\"id\":3,\"prefix\":\"0a1b2c3d4e\",\"secret_sha256\":\"" SHA "\""), "missing_field", "/api_keys/0/system"},
        {K("\"id\":3,\"prefix\":\"0a1b2c3d4e\",\"secret_sha256\":\"" SHA "\",\"system\":null"), "invalid", "/api_keys/0/system"},
        {K(KB ",\"roles\":\"r\""), "invalid", "/api_keys/0/roles"},
        {K(KB ",\"roles\":[\"r\",\"r\"]"), "duplicate", "/api_keys/0/roles/1"},
        {K(KB ",\"roles\":[{\"system\":\"shop\",\"name\":\"r\"}]"), "invalid", "/api_keys/0/roles/0"},
        {K(KB ",\"groups\":[\"g\",\"\"]"), "invalid", "/api_keys/0/groups/1"},
        {K(KB ",\"groups\":[\"g\",\"h\",\"g\"]"), "duplicate", "/api_keys/0/groups/2"},
        {K(KB ",\"roles\":[\"x\"],\"groups\":[\"x\"]"), NULL, NULL},
        {K(KB ",\"expires_at\":-1"), "invalid", "/api_keys/0/expires_at"},
        {K(KB ",\"expires_at\":253402300800"), "invalid", "/api_keys/0/expires_at"},
        {K(KB ",\"expires_at\":1795000000.0"), "invalid", "/api_keys/0/expires_at"},
        {K(KB ",\"expires_at\":\"1795000000\""), "invalid", "/api_keys/0/expires_at"},
        {K(KB ",\"expires_at\":false"), "invalid", "/api_keys/0/expires_at"},
        /* uniqueness: ids, then prefixes, at the later key */
        {"\"api_keys\":[{\"id\":1,\"prefix\":\"aaaaaaaa\",\"secret_sha256\":\"" SHA "\",\"system\":\"s\"},"
         "{\"id\":1,\"prefix\":\"bbbbbbbb\",\"secret_sha256\":\"" SHA "\",\"system\":\"s\"}]",
         "duplicate", "/api_keys/1/id"},
        {"\"api_keys\":[{\"id\":1,\"prefix\":\"aaaaaaaa\",\"secret_sha256\":\"" SHA "\",\"system\":\"s\"},"
         "{\"id\":2,\"prefix\":\"bbbbbbbb\",\"secret_sha256\":\"" SHA "\",\"system\":\"s\"},"
         "{\"id\":3,\"prefix\":\"aaaaaaaa\",\"secret_sha256\":\"" SHA "\",\"system\":\"t\"}]",
         "duplicate", "/api_keys/2/prefix"},
        /* a prefix and a longer one starting with it are different prefixes */
        {"\"api_keys\":[{\"id\":1,\"prefix\":\"aaaaaaaa\",\"secret_sha256\":\"" SHA "\",\"system\":\"s\"},"
         "{\"id\":2,\"prefix\":\"aaaaaaaaa\",\"secret_sha256\":\"" SHA "\",\"system\":\"s\"}]",
         NULL, NULL},
    };
    (void)state;
    RUN(cases);
}

/* ---------------------------------------------------------------- revoked */

static void test_revoked(void **state)
{
    static const case_t cases[] = {
        {"\"revoked\":{}", NULL, NULL},
        {"\"revoked\":{\"users\":[],\"tokens\":[]}", NULL, NULL},
        {"\"revoked\":{\"users\":[{\"id\":5,\"before\":1795000000},{\"id\":6,\"before\":0}],"
         "\"tokens\":[{\"jti\":\"0123456789abcdef0123456789abcdef\",\"exp\":1795000000},{\"jti\":\"A-_z\",\"exp\":1}]}",
         NULL, NULL},
        {"\"revoked\":null", "invalid", "/revoked"},
        {"\"revoked\":[]", "invalid", "/revoked"},
        {"\"revoked\":{\"users\":[],\"keys\":[]}", "unknown_field", "/revoked/keys"},
        {"\"revoked\":{\"users\":null}", "invalid", "/revoked/users"},
        {"\"revoked\":{\"users\":[5]}", "invalid", "/revoked/users/0"},
        {"\"revoked\":{\"users\":[{\"id\":5}]}", "missing_field", "/revoked/users/0/before"},
        {"\"revoked\":{\"users\":[{\"before\":5}]}", "missing_field", "/revoked/users/0/id"},
        {"\"revoked\":{\"users\":[{\"id\":5,\"before\":1,\"reason\":\"x\"}]}", "unknown_field", "/revoked/users/0/reason"},
        {"\"revoked\":{\"users\":[{\"id\":0,\"before\":1}]}", "invalid", "/revoked/users/0/id"},
        {"\"revoked\":{\"users\":[{\"id\":\"5\",\"before\":1}]}", "invalid", "/revoked/users/0/id"},
        {"\"revoked\":{\"users\":[{\"id\":5,\"before\":null}]}", "invalid", "/revoked/users/0/before"},
        {"\"revoked\":{\"users\":[{\"id\":5,\"before\":1e9}]}", "invalid", "/revoked/users/0/before"},
        {"\"revoked\":{\"users\":[{\"id\":5,\"before\":-1}]}", "invalid", "/revoked/users/0/before"},
        {"\"revoked\":{\"users\":[{\"id\":5,\"before\":1},{\"id\":6,\"before\":1},{\"id\":5,\"before\":2}]}", "duplicate",
         "/revoked/users/2/id"},
        {"\"revoked\":{\"tokens\":{}}", "invalid", "/revoked/tokens"},
        {"\"revoked\":{\"tokens\":[{\"jti\":\"a\"}]}", "missing_field", "/revoked/tokens/0/exp"},
        {"\"revoked\":{\"tokens\":[{\"exp\":1}]}", "missing_field", "/revoked/tokens/0/jti"},
        {"\"revoked\":{\"tokens\":[{\"jti\":\"\",\"exp\":1}]}", "invalid", "/revoked/tokens/0/jti"},
        {"\"revoked\":{\"tokens\":[{\"jti\":\"a.b\",\"exp\":1}]}", "invalid", "/revoked/tokens/0/jti"},
        {"\"revoked\":{\"tokens\":[{\"jti\":\"a b\",\"exp\":1}]}", "invalid", "/revoked/tokens/0/jti"},
        {"\"revoked\":{\"tokens\":[{\"jti\":\"a\\u0000\",\"exp\":1}]}", "invalid", "/revoked/tokens/0/jti"},
        {"\"revoked\":{\"tokens\":[{\"jti\":7,\"exp\":1}]}", "invalid", "/revoked/tokens/0/jti"},
        {"\"revoked\":{\"tokens\":[{\"jti\":\"a\",\"exp\":2.0}]}", "invalid", "/revoked/tokens/0/exp"},
        {"\"revoked\":{\"tokens\":[{\"jti\":\"a\",\"exp\":253402300800}]}", "invalid", "/revoked/tokens/0/exp"},
        {"\"revoked\":{\"tokens\":[{\"jti\":\"a\",\"exp\":1},{\"jti\":\"A\",\"exp\":1},{\"jti\":\"a\",\"exp\":9}]}", "duplicate",
         "/revoked/tokens/2/jti"},
        /* users (cap and elements) before tokens */
        {"\"revoked\":{\"tokens\":null,\"users\":[{\"id\":0,\"before\":1}]}", "invalid", "/revoked/users/0/id"},
    };
    (void)state;
    RUN(cases);
}

static void test_jti_length(void **state)
{
    char jti[130];
    json_t *body;
    cph_error_t err;

    (void)state;
    memset(jti, 'a', 128);
    jti[128] = '\0';
    body = json_pack("{s:[], s:[], s:{s:[{s:s, s:i}]}}", "services", "routes", "revoked", "tokens", "jti", jti, "exp", 1);
    if (cph_snapshot_validate(body, &err) != 0)
        fail_msg("%s", err.msg);
    json_decref(body);
    jti[128] = 'a', jti[129] = '\0';
    body = json_pack("{s:[], s:[], s:{s:[{s:s, s:i}]}}", "services", "routes", "revoked", "tokens", "jti", jti, "exp", 1);
    assert_int_equal(cph_snapshot_validate(body, &err), -1);
    assert_string_equal(err.path, "/revoked/tokens/0/jti");
    json_decref(body);
}

static void test_text_length(void **state)
{
    char text[258];
    json_t *body;
    cph_error_t err;

    (void)state;
    memset(text, ' ', 256);
    text[256] = '\0';
    body = json_pack("{s:[], s:[], s:{s:s}}", "services", "routes", "auth", "issuer", text);
    if (cph_snapshot_validate(body, &err) != 0)
        fail_msg("%s", err.msg);
    json_decref(body);
    text[256] = ' ', text[257] = '\0';
    body = json_pack("{s:[], s:[], s:{s:s}}", "services", "routes", "auth", "audience", text);
    assert_int_equal(cph_snapshot_validate(body, &err), -1);
    assert_string_equal(err.path, "/auth/audience");
    json_decref(body);
}

/* ---------------------------------------------------------------- order */

static void test_order(void **state)
{
    static const case_t cases[] = {
        {"\"bogus\":1,\"auth\":null", "unknown_field", "/bogus"},
        {"\"groups\":1.5", "invalid", "/groups"},
        {"\"auth\":2.5", "invalid", "/auth"},
        {"\"auth\":{\"a/b~\":1}", "unknown_field", "/auth/a~1b~0"},
        /* the top level first: every member's type and cap before any element */
        {"\"revoked\":[],\"auth\":{\"issuer\":\"\"}", "invalid", "/revoked"},
        {"\"groups\":[1],\"endpoints\":{}", "invalid", "/endpoints"},
        {"\"endpoints\":[1],\"keys\":{}", "invalid", "/keys"},
        /* then the elements: auth, groups, endpoints, api_keys, revoked */
        {"\"revoked\":{\"x\":1},\"api_keys\":[1],\"endpoints\":[1],\"groups\":[1],\"auth\":{\"x\":1}", "unknown_field", "/auth/x"},
        {"\"revoked\":{\"x\":1},\"api_keys\":[1],\"endpoints\":[1],\"groups\":[1]", "invalid", "/groups/0"},
        {"\"revoked\":{\"x\":1},\"api_keys\":[1],\"endpoints\":[1]", "invalid", "/endpoints/0"},
        {"\"revoked\":{\"x\":1},\"api_keys\":[1]", "invalid", "/api_keys/0"},
        {"\"revoked\":{\"x\":1}", "unknown_field", "/revoked/x"},
        /* keys are checked before the access members */
        {"\"keys\":[1],\"auth\":{\"x\":1}", "invalid", "/keys/0"},
        /* an older body without any access member, and one with all of them empty */
        {"", NULL, NULL},
        {"\"auth\":{},\"groups\":[],\"endpoints\":[],\"api_keys\":[],\"revoked\":{\"users\":[],\"tokens\":[]}", NULL, NULL},
    };
    (void)state;
    RUN(cases);
}

/* The services and routes are checked before the access members. */
static void test_order_services_first(void **state)
{
    json_t *b = parse("{\"services\":[{\"name\":\"a\",\"targets\":[],\"system\":\"A\"}],\"routes\":[],\"auth\":{\"x\":1}}");
    cph_error_t err;

    (void)state;
    assert_int_equal(cph_snapshot_validate(b, &err), -1);
    assert_string_equal(err.path, "/services/0/system");
    json_decref(b);
    b = parse("{\"services\":[],\"routes\":[],\"endpoints\":[{\"id\":1,\"service\":\"a\",\"method\":\"GET\",\"path\":\"/\"}]}");
    assert_int_equal(cph_snapshot_validate(b, &err), -1);
    assert_string_equal(err.code, "unknown_service");
    assert_string_equal(err.path, "/endpoints/0/service");
    json_decref(b);
}

/* ---------------------------------------------------------------- caps */

/* {"services":[orders],"routes":[], key: value} validated; expects code at path (NULL: valid). */
static void expect_member(const char *key, json_t *value, const char *code, const char *path)
{
    json_t *b = json_pack("{s:[{s:s, s:[]}], s:[], s:o}", "services", "name", "orders", "targets", "routes", key, value);
    cph_error_t err;

    assert_non_null(b);
    memset(&err, 0, sizeof(err));
    if (code == NULL) {
        if (cph_snapshot_validate(b, &err) != 0)
            fail_msg("%s: expected valid, got %s at %s: %s", key, err.code, err.path, err.msg);
    } else {
        assert_int_equal(cph_snapshot_validate(b, &err), -1);
        assert_string_equal(err.code, code);
        assert_string_equal(err.path, path);
    }
    json_decref(b);
}

static json_t *nulls(size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; i != n; ++i)
        json_array_append_new(a, json_null());
    return a;
}

static void test_top_caps(void **state)
{
    (void)state;
    /* one over the cap is refused at the array, before any (here invalid) element is looked at */
    expect_member("groups", nulls(65537), "invalid", "/groups");
    expect_member("endpoints", nulls(65537), "invalid", "/endpoints");
    expect_member("api_keys", nulls(65537), "invalid", "/api_keys");
    expect_member("revoked", json_pack("{s:o}", "users", nulls(65537)), "invalid", "/revoked/users");
    expect_member("revoked", json_pack("{s:o}", "tokens", nulls(65537)), "invalid", "/revoked/tokens");
    expect_member("groups", nulls(65536), "invalid", "/groups/0");
}

static void test_full_lists(void **state)
{
    json_t *endpoints = json_array(), *keys = json_array(), *groups = json_array(), *users = json_array(), *tokens = json_array();
    char buf[64];

    (void)state;
    for (size_t i = 0; i != 65536; ++i) {
        snprintf(buf, sizeof(buf), "/p/%zu/{id}/*", i);
        json_array_append_new(endpoints, json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)i + 1, "service", "orders", "method",
                                                   "GET", "path", buf));
        snprintf(buf, sizeof(buf), "%08zx", i);
        json_array_append_new(keys, json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)i + 1, "prefix", buf, "secret_sha256", SHA,
                                              "system", "shop"));
        snprintf(buf, sizeof(buf), "g%zu", i);
        json_array_append_new(groups, json_pack("{s:s, s:s}", "system", "shop", "name", buf));
        json_array_append_new(users, json_pack("{s:I, s:i}", "id", (json_int_t)i + 1, "before", 1));
        snprintf(buf, sizeof(buf), "t%zu", i);
        json_array_append_new(tokens, json_pack("{s:s, s:i}", "jti", buf, "exp", 1));
    }
    expect_member("endpoints", json_incref(endpoints), NULL, NULL);
    expect_member("api_keys", json_incref(keys), NULL, NULL);
    expect_member("groups", json_incref(groups), NULL, NULL);
    expect_member("revoked", json_pack("{s:O, s:O}", "users", users, "tokens", tokens), NULL, NULL);
    /* the last of 65536 repeating the first */
    json_object_set_new(json_array_get(endpoints, 65535), "path", json_string("/p/0/{id}/*"));
    expect_member("endpoints", json_incref(endpoints), "duplicate", "/endpoints/65535/path");
    json_object_set_new(json_array_get(keys, 65535), "prefix", json_string("00000000"));
    expect_member("api_keys", json_incref(keys), "duplicate", "/api_keys/65535/prefix");
    json_object_set_new(json_array_get(tokens, 65535), "jti", json_string("t0"));
    expect_member("revoked", json_pack("{s:O}", "tokens", tokens), "duplicate", "/revoked/tokens/65535/jti");
    json_decref(endpoints), json_decref(keys), json_decref(groups), json_decref(users), json_decref(tokens);
}

/* n names "r0".."r<n-1>", or n {system, name} objects. */
static json_t *names(size_t n, int refs)
{
    json_t *a = json_array();
    char buf[32];

    for (size_t i = 0; i != n; ++i) {
        snprintf(buf, sizeof(buf), "r%zu", i);
        json_array_append_new(a, refs ? json_pack("{s:s, s:s}", "system", "shop", "name", buf) : json_string(buf));
    }
    return a;
}

static void test_inner_caps(void **state)
{
    (void)state;
    expect_member("groups", json_pack("[{s:s, s:s, s:o}]", "system", "s", "name", "g", "roles", names(1024, 0)), NULL, NULL);
    expect_member("groups", json_pack("[{s:s, s:s, s:o}]", "system", "s", "name", "g", "roles", names(1025, 0)), "invalid",
                  "/groups/0/roles");
    expect_member("endpoints",
                  json_pack("[{s:i, s:s, s:s, s:s, s:o, s:o}]", "id", 1, "service", "orders", "method", "GET", "path", "/", "roles",
                            names(256, 1), "groups", names(256, 1)),
                  NULL, NULL);
    expect_member("endpoints",
                  json_pack("[{s:i, s:s, s:s, s:s, s:o}]", "id", 1, "service", "orders", "method", "GET", "path", "/", "roles",
                            names(257, 1)),
                  "invalid", "/endpoints/0/roles");
    expect_member("endpoints",
                  json_pack("[{s:i, s:s, s:s, s:s, s:o}]", "id", 1, "service", "orders", "method", "GET", "path", "/", "groups",
                            names(257, 1)),
                  "invalid", "/endpoints/0/groups");
    expect_member("api_keys",
                  json_pack("[{s:i, s:s, s:s, s:s, s:o, s:o}]", "id", 1, "prefix", "abcdef01", "secret_sha256", SHA, "system", "s",
                            "roles", names(256, 0), "groups", names(256, 0)),
                  NULL, NULL);
    expect_member("api_keys",
                  json_pack("[{s:i, s:s, s:s, s:s, s:o}]", "id", 1, "prefix", "abcdef01", "secret_sha256", SHA, "system", "s",
                            "roles", names(257, 0)),
                  "invalid", "/api_keys/0/roles");
    expect_member("api_keys",
                  json_pack("[{s:i, s:s, s:s, s:s, s:o}]", "id", 1, "prefix", "abcdef01", "secret_sha256", SHA, "system", "s",
                            "groups", names(257, 0)),
                  "invalid", "/api_keys/0/groups");
}

/* A pattern over 1024 bytes inside a body. */
static void test_long_pattern(void **state)
{
    char path[1100];

    (void)state;
    path[0] = '/';
    memset(path + 1, 'a', 1023);
    path[1024] = '\0';
    expect_member("endpoints", json_pack("[{s:i, s:s, s:s, s:s}]", "id", 1, "service", "orders", "method", "GET", "path", path),
                  NULL, NULL);
    path[1024] = 'a', path[1025] = '\0';
    expect_member("endpoints", json_pack("[{s:i, s:s, s:s, s:s}]", "id", 1, "service", "orders", "method", "GET", "path", path),
                  "invalid", "/endpoints/0/path");
}

/* Nothing secret in an error message: the key prefix, the hash and the jti are reported by pointer only. */
static void test_no_secret_in_message(void **state)
{
    json_t *b = parse("{\"services\":[],\"routes\":[],\"api_keys\":["
                      "{\"id\":1,\"prefix\":\"abcdef01\",\"secret_sha256\":\"" SHA "\",\"system\":\"s\"},"
                      "{\"id\":2,\"prefix\":\"abcdef01\",\"secret_sha256\":\"" SHA "\",\"system\":\"s\"}]}");
    cph_error_t err;

    (void)state;
    assert_int_equal(cph_snapshot_validate(b, &err), -1);
    assert_string_equal(err.path, "/api_keys/1/prefix");
    assert_null(strstr(err.msg, "abcdef01"));
    json_decref(b);
    b = parse("{\"services\":[],\"routes\":[],\"api_keys\":[{\"id\":1,\"prefix\":\"abcdef01\",\"secret_sha256\":\"" SHA "X\","
              "\"system\":\"s\"}]}");
    assert_int_equal(cph_snapshot_validate(b, &err), -1);
    assert_null(strstr(err.msg, "0123456789abcdef"));
    json_decref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_service_system),
        cmocka_unit_test(test_route_default_access),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_groups),
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test(test_endpoint_uniqueness),
        cmocka_unit_test(test_api_keys),
        cmocka_unit_test(test_revoked),
        cmocka_unit_test(test_jti_length),
        cmocka_unit_test(test_text_length),
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_order_services_first),
        cmocka_unit_test(test_top_caps),
        cmocka_unit_test(test_full_lists),
        cmocka_unit_test(test_inner_caps),
        cmocka_unit_test(test_long_pattern),
        cmocka_unit_test(test_no_secret_in_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
