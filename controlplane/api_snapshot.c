/*
 * api_snapshot: GET /api/v1/snapshot - the identity of the current snapshot (epoch, version, hash, schema), and with
 * ?body=1 its canonical body as stored in the snapshot history and pushed to the data planes - except the values of
 * the services' injected credential headers, which are secrets: they are shown as "(redacted)" (cph_snapbuild_redact;
 * the hash is still the real body's, and each credentials' "source" says which Vault version is in force).
 */
#include <string.h>
#include "controlplane/api.h"
#include "controlplane/snapbuild.h"

#define MODULE "cp/api/snapshot"

void cph_api_snapshot(cph_api_req_t *req)
{
    const char *body = cph_api_query(req, "body");
    int with_body = body != NULL && (strcmp(body, "1") == 0 || strcmp(body, "true") == 0);
    json_t *snap = cph_db_current_snapshot(req->db, with_body);

    if (snap == NULL) {
        cph_api_error(req, 500, "internal", NULL, "internal error");
        return;
    }
    if (json_object_get(snap, "body") != NULL)
        json_object_set_new(snap, "body", cph_snapbuild_redact(json_object_get(snap, "body")));
    cph_api_reply(req, 200, snap);
}
