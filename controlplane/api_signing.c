/*
 * api_signing: the signing keys (/api/v1/signing_keys) and the public JWKS (/api/v1/jwks).
 *
 * Signing keys are not ordinary CRUD entities: an admin never writes one, only asks for a rotation, and nothing may
 * replace or delete a key a token was signed with - so they have their own handler (list, get, POST .../rotate)
 * instead of a cph_store_ops_t with half its operations refusing. The key pair is generated before the write lock
 * is taken (RSA 2048 can take most of a second); the rotation itself goes through cph_db_write, so it is versioned
 * and audited like any write - with the public representation only. No answer ever holds a private key.
 */
#include <string.h>
#include <time.h>
#include "controlplane/api.h"
#include "controlplane/signing.h"

static void read_keys(cph_api_req_t *req)
{
    cph_error_t err;
    json_t *out;

    memset(&err, 0, sizeof(err));
    cph_db_lock(req->db);
    out = req->key != NULL ? cph_signing_get(req->db, req->key, time(NULL), &err) : cph_signing_list(req->db, time(NULL), &err);
    cph_db_unlock(req->db);
    if (out == NULL)
        cph_api_fail(req, &err);
    else
        cph_api_reply(req, 200, req->key != NULL ? out : json_pack("{s:o}", "data", out));
}

typedef struct st_rotation_t {
    const cph_signing_new_t *key;
    json_t *result;
} rotation_t;

static int on_rotate(cph_db_t *db, void *p, cph_db_change_t *change, cph_error_t *err)
{
    rotation_t *r = p;

    if (cph_signing_rotate(db, r->key, time(NULL), change, err) != 0)
        return -1;
    r->result = json_incref(change->after);
    return 0;
}

static void rotate(cph_api_req_t *req)
{
    cph_signing_new_t k;
    rotation_t r = {&k, NULL};
    cph_error_t err;
    const char *alg;
    uint64_t version;

    if (strcmp(req->key, "rotate") != 0) {
        cph_api_error(req, 404, "not_found", NULL, "no such action (POST /api/v1/signing_keys/rotate)");
        return;
    }
    if (cph_signing_rotation_alg(req->body, &alg, &err) != 0 || cph_signing_new(alg, &k, &err) != 0) {
        cph_api_fail(req, &err);
        return;
    }
    if (cph_db_write(req->db, req->actor, on_rotate, &r, &version, &err) != 0)
        cph_api_fail(req, &err);
    else
        cph_api_written(req, 201, json_pack("{s:O}", "signing_key", r.result), version);
    json_decref(r.result);
    cph_signing_new_clear(&k);
}

void cph_api_signing_keys(cph_api_req_t *req)
{
    if (req->method == CPH_API_POST)
        rotate(req);
    else
        read_keys(req);
}

void cph_api_jwks(cph_api_req_t *req)
{
    cph_error_t err;
    json_t *out;

    memset(&err, 0, sizeof(err));
    cph_db_lock(req->db);
    out = cph_signing_jwks(req->db, time(NULL), &err);
    cph_db_unlock(req->db);
    if (out == NULL)
        cph_api_fail(req, &err);
    else
        cph_api_reply(req, 200, out);
}
