/*
 * fuzz_auth_body: the bodies of POST /auth/login, /auth/refresh and /auth/logout as the control plane reads them
 * before any database or password work (cph_authapi_body_read, controlplane/authapi_body.c): JSON with duplicate keys
 * refused, no member but the route's, strings within their byte ranges.
 *
 * Input: byte 0 picks the route (modulo 3: login, refresh, logout), the rest is the HTTP body.
 *
 * Properties (a violation traps):
 *   - an accepted body has what its route needs: login exactly one of username and email, a password and a system;
 *     refresh a refresh token; every string within its range and free of NUL bytes (it becomes a SQL parameter, a
 *     log key, an argon2 input);
 *   - a refusal leaves nothing behind and its message (the 400 body) is one of the fixed texts, quoting at most a
 *     member name of the route: a password or a token is never echoed back.
 */
#include <stdint.h>
#include "fuzz_util.h"
#include "controlplane/authapi_body.h"
#include "controlplane/password.h"

static int string_ok(const char *s, size_t max)
{
    return s == NULL || (s[0] != '\0' && strlen(s) <= max);
}

/* The message quotes nothing but one of the member names the routes know. */
static int message_ok(const char *msg)
{
    static const char *const NAMES[] = {"\"username\"", "\"email\"", "\"password\"", "\"system\"", "\"refresh_token\"", NULL};
    size_t len = strnlen(msg, CPH_AUTHAPI_MSG_MAX);

    if (len == 0 || len == CPH_AUTHAPI_MSG_MAX)
        return 0;
    if (strcmp(msg, "unknown member in the body") == 0 ||
        strcmp(msg, "the body must be a JSON object (without duplicate keys)") == 0 ||
        strcmp(msg, "exactly one of \"username\" and \"email\" is required") == 0)
        return 1;
    for (size_t i = 0; NAMES[i] != NULL; ++i) {
        size_t n = strlen(NAMES[i]);
        if (strncmp(msg, NAMES[i], n) == 0 &&
            (strcmp(msg + n, " is required") == 0 || strncmp(msg + n, " must be a string of 1 to ", 26) == 0))
            return 1;
    }
    return 0;
}

static void check_accepted(cph_authapi_route_t route, const cph_authapi_body_t *b)
{
    FUZZ_CHECK(string_ok(b->username, CPH_AUTHAPI_USERNAME_MAX) && string_ok(b->email, CPH_AUTHAPI_EMAIL_MAX) &&
               string_ok(b->password, CPH_PASSWORD_MAX) && string_ok(b->system, CPH_AUTHAPI_SYSTEM_MAX) &&
               string_ok(b->refresh_token, CPH_AUTHAPI_REFRESH_MAX));
    FUZZ_CHECK(b->root == NULL || !fuzz_json_has_nul_or_real(json_object_get(b->root, "password")));
    switch (route) {
    case CPH_AUTHAPI_LOGIN:
        FUZZ_CHECK((b->username == NULL) != (b->email == NULL) && b->password != NULL && b->system != NULL);
        FUZZ_CHECK(b->refresh_token == NULL);
        break;
    case CPH_AUTHAPI_REFRESH:
        FUZZ_CHECK(b->refresh_token != NULL && b->username == NULL && b->password == NULL);
        break;
    case CPH_AUTHAPI_LOGOUT:
        FUZZ_CHECK(b->username == NULL && b->password == NULL && b->email == NULL && b->system == NULL);
        break;
    }
    /* strings hold no NUL: their JSON length is their C length */
    for (const char *const *m = (const char *const[]){"username", "email", "password", "system", "refresh_token", NULL}; *m != NULL;
         ++m) {
        json_t *v = b->root != NULL ? json_object_get(b->root, *m) : NULL;
        FUZZ_CHECK(v == NULL || (json_is_string(v) && json_string_length(v) == strlen(json_string_value(v))));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cph_authapi_body_t b;
    cph_authapi_route_t route;
    char msg[CPH_AUTHAPI_MSG_MAX];

    if (size == 0)
        return 0;
    fuzz_quiet();
    route = (cph_authapi_route_t)(data[0] % 3);
    memset(msg, 0, sizeof(msg));
    if (cph_authapi_body_read(route, (const char *)data + 1, size - 1, &b, msg) == 0) {
        if (fuzz_verbose())
            fprintf(stderr, "route %d: accepted\n", (int)route);
        check_accepted(route, &b);
        cph_authapi_body_clear(&b);
        FUZZ_CHECK(b.root == NULL && b.password == NULL);
    } else {
        if (fuzz_verbose())
            fprintf(stderr, "route %d: %s\n", (int)route, msg);
        FUZZ_CHECK(message_ok(msg));
        FUZZ_CHECK(b.root == NULL && b.username == NULL && b.email == NULL && b.password == NULL && b.system == NULL &&
                   b.refresh_token == NULL);
    }
    return 0;
}
