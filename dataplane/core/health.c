/*
 * health: PLACEHOLDER (issue 6 round): no active checks yet.
 */
#include "dataplane/core/health.h"

void cph_health_start(void)
{
}

void cph_health_stop(void)
{
}

void cph_health_configure(const cph_snapshot_t *snap)
{
    (void)snap;
}

json_t *cph_health_report(const cph_snapshot_t *snap)
{
    (void)snap;
    return json_pack("{s:[]}", "services");
}
