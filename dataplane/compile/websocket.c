/*
 * compile/websocket: routes' policies.websocket. PLACEHOLDER (issue 6 round): no route tunnels websockets.
 */
#include "dataplane/compile/compile.h"

int cph_websocket_compile(cph_snapshot_t *snap, const json_t *body, cph_error_t *err)
{
    (void)body;
    (void)err;
    snap->ws_drain_grace_ms = 30000;
    return 0;
}
