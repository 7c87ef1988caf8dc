/*
 * balance: PLACEHOLDER (issue 6 round): plain round robin over every target, no breaker, no limits.
 */
#include <stdlib.h>
#include "proto/log.h"
#include "dataplane/core/balance.h"

#define MODULE "dp/core/balance"

struct st_cph_balance_worker_t {
    uint32_t next;
};

cph_balance_worker_t *cph_balance_worker_new(void)
{
    cph_balance_worker_t *bw = calloc(1, sizeof(*bw));
    if (bw == NULL)
        cph_fatal(MODULE, "out of memory");
    return bw;
}

void cph_balance_worker_free(cph_balance_worker_t *bw)
{
    free(bw);
}

int cph_balance_pick(cph_balance_worker_t *bw, const cph_service_t *svc, uint64_t hash, const uint64_t *tried,
                     uint64_t now_ns, cph_pick_t *out)
{
    (void)hash;
    (void)tried;
    (void)now_ns;
    if (svc->num_targets == 0)
        return -1;
    out->target = &svc->targets[bw->next++ % svc->num_targets];
    out->probe = 0;
    return 0;
}

uint64_t cph_balance_hash(const void *key, size_t len)
{
    (void)key;
    return len;
}

void cph_balance_end(const cph_service_t *svc, const cph_pick_t *pick, cph_outcome_t outcome, uint64_t now_ns)
{
    (void)svc;
    (void)pick;
    (void)outcome;
    (void)now_ns;
}

int cph_balance_breaker_state(const cph_target_state_t *st, uint64_t now_ns)
{
    (void)st;
    (void)now_ns;
    return 0;
}

int cph_balance_admit(const cph_service_t *svc)
{
    (void)svc;
    return 0;
}

void cph_balance_release(const cph_service_t *svc)
{
    (void)svc;
}

int cph_balance_connect_begin(const cph_service_t *svc)
{
    (void)svc;
    return 0;
}

void cph_balance_connect_end(const cph_service_t *svc)
{
    (void)svc;
}

int cph_balance_retry_begin(const cph_service_t *svc, uint32_t budget_percent, uint32_t min_concurrent)
{
    (void)svc;
    (void)budget_percent;
    (void)min_concurrent;
    return -1;
}

void cph_balance_retry_end(const cph_service_t *svc)
{
    (void)svc;
}
