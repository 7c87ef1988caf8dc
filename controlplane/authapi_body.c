/*
 * authapi_body: the login, refresh and logout bodies (authapi_body.h).
 */
#include <stdio.h>
#include <string.h>
#include "controlplane/authapi_body.h"
#include "controlplane/password.h"

/* A string member of 1..max bytes: *out set, or NULL when absent and optional; -1 with msg otherwise (never the value). */
static int get_string(const json_t *body, const char *member, size_t max, int required, const char **out, char *msg)
{
    json_t *v = json_object_get(body, member);

    *out = NULL;
    if (v == NULL && !required)
        return 0;
    if (v == NULL) {
        snprintf(msg, CPH_AUTHAPI_MSG_MAX, "\"%s\" is required", member);
    } else if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max) {
        snprintf(msg, CPH_AUTHAPI_MSG_MAX, "\"%s\" must be a string of 1 to %zu bytes", member, max);
    } else {
        *out = json_string_value(v);
        return 0;
    }
    return -1;
}

/* -1 with msg when body has a member outside allowed (NULL-terminated). */
static int check_members(const json_t *body, const char *const *allowed, char *msg)
{
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)body, k, v)
    {
        size_t i = 0;
        while (allowed[i] != NULL && strcmp(allowed[i], k) != 0)
            ++i;
        if (allowed[i] == NULL) {
            snprintf(msg, CPH_AUTHAPI_MSG_MAX, "unknown member in the body");
            return -1;
        }
    }
    return 0;
}

static int read_login(cph_authapi_body_t *b, char *msg)
{
    static const char *const ALLOWED[] = {"username", "email", "password", "system", NULL};

    if (check_members(b->root, ALLOWED, msg) != 0 ||
        get_string(b->root, "username", CPH_AUTHAPI_USERNAME_MAX, 0, &b->username, msg) != 0 ||
        get_string(b->root, "email", CPH_AUTHAPI_EMAIL_MAX, 0, &b->email, msg) != 0 ||
        get_string(b->root, "password", CPH_PASSWORD_MAX, 1, &b->password, msg) != 0 ||
        get_string(b->root, "system", CPH_AUTHAPI_SYSTEM_MAX, 1, &b->system, msg) != 0)
        return -1;
    if ((b->username == NULL) == (b->email == NULL)) {
        snprintf(msg, CPH_AUTHAPI_MSG_MAX, "exactly one of \"username\" and \"email\" is required");
        return -1;
    }
    return 0;
}

static int read_token(cph_authapi_body_t *b, int required, char *msg)
{
    static const char *const ALLOWED[] = {"refresh_token", NULL};

    return check_members(b->root, ALLOWED, msg) != 0 ||
                   get_string(b->root, "refresh_token", CPH_AUTHAPI_REFRESH_MAX, required, &b->refresh_token, msg) != 0
               ? -1
               : 0;
}

int cph_authapi_body_read(cph_authapi_route_t route, const char *buf, size_t len, cph_authapi_body_t *out, char *msg)
{
    int ret;

    memset(out, 0, sizeof(*out));
    if (len == 0 && route == CPH_AUTHAPI_LOGOUT)
        return 0;
    out->root = json_loadb(buf != NULL ? buf : "", len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(out->root)) {
        snprintf(msg, CPH_AUTHAPI_MSG_MAX, "the body must be a JSON object (without duplicate keys)");
        ret = -1;
    } else if (route == CPH_AUTHAPI_LOGIN) {
        ret = read_login(out, msg);
    } else {
        ret = read_token(out, route == CPH_AUTHAPI_REFRESH, msg);
    }
    if (ret != 0)
        cph_authapi_body_clear(out);
    return ret;
}

void cph_authapi_body_clear(cph_authapi_body_t *out)
{
    json_decref(out->root);
    memset(out, 0, sizeof(*out));
}
