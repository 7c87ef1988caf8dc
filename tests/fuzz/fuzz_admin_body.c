/*
 * fuzz_admin_body: the validation the control plane runs on an admin API POST / PUT body, before anything reaches
 * SQLite or a data plane: the body parse of api.c (1 MiB cap, duplicate keys refused, NUL allowed by the parser and
 * then refused by a walk - mirrored here, since api.c keeps it static), then the entity's normaliser
 * (cph_store_<entity>_normalize: services, routes, endpoints, systems, roles, groups, users, API keys, issuers), the
 * cache purge body (cph_api_cache_check_purge) and the signing-key rotation body (cph_signing_rotation_alg).
 *
 * Input: byte 0 picks the entity (modulo the table below), the rest is the HTTP body. A user's string "password" is
 * dropped before the normaliser: hashing it is 0.1 s of argon2id per input and runs only after every check passed.
 *
 * Properties (a violation traps):
 *   - a refusal has a well-formed error (code, NUL-terminated fields, a JSON pointer path): it becomes the 400 body;
 *   - an accepted body normalises to an object with no string holding a NUL and no real anywhere (what api.c's
 *     depth-limited NUL walk lets through must not reach the database; a real would break the snapshot hash);
 *   - the normalised object is accepted again and normalises to itself (a GET answer can be PUT back unchanged), for
 *     the entities whose normal form is a valid request (not users or API keys, which gain server-side members).
 */
#include <stdint.h>
#include "fuzz_util.h"
#include "controlplane/api.h"
#include "controlplane/api_cache.h"
#include "controlplane/signing.h"
#include "controlplane/store.h"
#include "controlplane/store_api_key.h"
#include "controlplane/store_endpoint.h"
#include "controlplane/store_group.h"
#include "controlplane/store_issuer.h"
#include "controlplane/store_role.h"
#include "controlplane/store_route.h"
#include "controlplane/store_service.h"
#include "controlplane/store_system.h"
#include "controlplane/store_user.h"

typedef struct st_entity_t {
    const cph_store_ops_t *ops; /* NULL: one of the two special bodies */
    int put_back;               /* the normal form is itself a valid request that normalises to itself */
} entity_t;

static const entity_t entities[] = {
    {&cph_store_service_ops, 1}, {&cph_store_route_ops, 1}, {&cph_store_endpoint_ops, 1}, {&cph_store_system_ops, 1},
    {&cph_store_role_ops, 1},    {&cph_store_group_ops, 1}, {&cph_store_user_ops, 0},     {&cph_store_api_key_ops, 0},
    {&cph_store_issuer_ops, 1},  {NULL, 0} /* purge */,     {NULL, 1} /* rotation */,
};
#define NUM_ENTITIES (sizeof(entities) / sizeof(entities[0]))

/* api.c find_nul(), as it stands: strings with a NUL are refused, but the walk stops below depth 64. */
static int api_find_nul(const json_t *v, int depth)
{
    const char *k;
    json_t *item;
    size_t i;

    if (json_is_string(v))
        return json_string_length(v) != strlen(json_string_value(v));
    if (depth > 64)
        return 0;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, item)
        {
            if (api_find_nul(item, depth + 1))
                return 1;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, item)
        {
            if (api_find_nul(item, depth + 1))
                return 1;
        }
    }
    return 0;
}

static void special(size_t which, const json_t *body)
{
    cph_error_t err;
    const char *a = NULL, *b = NULL;
    int rc;

    memset(&err, 0, sizeof(err));
    rc = which == NUM_ENTITIES - 2 ? cph_api_cache_check_purge(body, &a, &b, &err) : cph_signing_rotation_alg(body, &a, &err);
    if (rc != 0)
        FUZZ_CHECK(fuzz_error_ok(&err));
    else if (which == NUM_ENTITIES - 2)
        FUZZ_CHECK(a != NULL && strlen(a) != 0 && (b == NULL || b[0] == '/'));
    else
        FUZZ_CHECK(a != NULL && (strcmp(a, "ES256") == 0 || strcmp(a, "RS256") == 0));
}

static void normalize(const entity_t *e, json_t *body)
{
    cph_error_t err;
    json_t *out, *again, *pw = json_object_get(body, "password");

    memset(&err, 0, sizeof(err));
    if (e->ops == &cph_store_user_ops && json_is_string(pw))
        json_object_del(body, "password");
    if ((out = e->ops->normalize(body, &err)) == NULL) {
        if (fuzz_verbose())
            fprintf(stderr, "fuzz: %s refused: %s at %s: %s\n", e->ops->entity, err.code, err.path, err.msg);
        FUZZ_CHECK(fuzz_error_ok(&err));
        return;
    }
    if (fuzz_verbose())
        fprintf(stderr, "fuzz: %s accepted\n", e->ops->entity);
    FUZZ_CHECK(json_is_object(out));
    FUZZ_CHECK(!fuzz_json_has_nul_or_real(out));
    if (e->put_back) {
        memset(&err, 0, sizeof(err));
        again = e->ops->normalize(out, &err);
        if (again == NULL)
            fprintf(stderr, "fuzz: the normal form of a %s is refused: %s at %s: %s\n", e->ops->entity, err.code, err.path,
                    err.msg);
        FUZZ_CHECK(again != NULL);
        FUZZ_CHECK(json_equal(again, out));
        json_decref(again);
    }
    json_decref(out);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t which;
    json_t *body;

    if (size < 1 || size - 1 > CPH_API_BODY_MAX)
        return 0; /* 413 before any parsing */
    which = data[0] % NUM_ENTITIES;
    body = json_loadb((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    if (body == NULL || !json_is_object(body) || api_find_nul(body, 0))
        goto Exit; /* 400 bad_json / invalid before the resource runs */
    if (entities[which].ops == NULL)
        special(which, body);
    else
        normalize(&entities[which], body);
Exit:
    json_decref(body);
    return 0;
}
