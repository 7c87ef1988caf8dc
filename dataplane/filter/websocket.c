/*
 * filter/websocket: PLACEHOLDER (issue 6 round): passes every request on.
 */
#include "dataplane/core/websocket.h"
#include "dataplane/filter/filter.h"

int cph_websocket_on_req(cph_req_t *r)
{
    (void)r;
    return CPH_NEXT;
}

void cph_websocket_worker_init(cph_worker_t *w)
{
    w->websocket = NULL;
}

void cph_websocket_worker_dispose(cph_worker_t *w)
{
    (void)w;
}

void cph_websocket_on_swap(cph_worker_t *w, cph_snapshot_t *snap)
{
    (void)w;
    (void)snap;
}

size_t cph_websocket_count(cph_worker_t *w)
{
    (void)w;
    return 0;
}
