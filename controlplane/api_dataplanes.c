/*
 * api_dataplanes: GET /api/v1/dataplanes - the status rows the data-plane server keeps per dp_id (dpserver.c).
 */
#include "controlplane/api.h"

#define MODULE "cp/api/dataplanes"

void cph_api_dataplanes(cph_api_req_t *req)
{
    json_t *list = req->dps != NULL ? cph_dpserver_list(req->dps) : json_array();

    cph_api_reply(req, 200, json_pack("{s:o}", "data", list != NULL ? list : json_array()));
}
