/*
 * snapshot: build, share and free one compiled configuration.
 *
 * The control thread validates the body with the same proto/ validator the control plane ran before committing, then
 * lets each compile stage fill its part from one arena. Workers and in-flight requests hold references; the last
 * release frees the arena in one call (plus the OpenSSL keys of compile/auth.c, which live outside it), on whichever
 * thread drops it. Nothing but the refcount is written after the build, so readers need no synchronisation beyond
 * the message that handed them the pointer.
 */
#include <stdlib.h>
#include <string.h>
#include "proto/log.h"
#include "dataplane/compile/auth.h"
#include "dataplane/compile/compile.h"
#include "dataplane/core/snapshot.h"

#define MODULE "dp/core/snapshot"

static void snapshot_free(cph_snapshot_t *snap)
{
    cph_auth_dispose(snap->auth); /* the OpenSSL keys live outside the arena */
    cph_arena_dispose(&snap->arena);
    free(snap);
}

cph_snapshot_t *cph_snapshot_build(const json_t *body, const char *epoch, uint64_t version, const char *hash, const char *source,
                                   cph_error_t *err)
{
    cph_snapshot_t *snap;

    if (strlen(epoch) >= sizeof(snap->epoch)) {
        cph_error_set(err, "invalid", "", "epoch longer than %zu bytes", sizeof(snap->epoch) - 1);
        return NULL;
    }
    if (strlen(hash) >= sizeof(snap->hash)) {
        cph_error_set(err, "invalid", "", "hash longer than %zu bytes", sizeof(snap->hash) - 1);
        return NULL;
    }
    if (cph_snapshot_validate(body, err) != 0)
        return NULL;
    if ((snap = calloc(1, sizeof(*snap))) == NULL)
        cph_fatal(MODULE, "out of memory");
    atomic_init(&snap->refcnt, 1);
    cph_arena_init(&snap->arena);
    strcpy(snap->epoch, epoch);
    snap->version = version;
    strcpy(snap->hash, hash);
    snap->source = cph_arena_strdup(&snap->arena, source);
    if (cph_proxy_compile(snap, body, err) != 0 || cph_router_compile(snap, body, err) != 0 ||
        cph_auth_compile(snap, body, err) != 0 || cph_authz_compile(snap, body, err) != 0 ||
        cph_builtin_compile(snap, body, err) != 0 || cph_edge_compile(snap, body, err) != 0 ||
        cph_ratelimit_compile(snap, body, err) != 0 || cph_cache_compile(snap, body, err) != 0 ||
        cph_upstream_compile(snap, body, err) != 0 || cph_websocket_compile(snap, body, err) != 0 ||
        cph_pdf_compile(snap, body, err) != 0 || cph_aggregate_compile(snap, body, err) != 0) {
        snapshot_free(snap);
        return NULL;
    }
    return snap;
}

void cph_snapshot_retain(cph_snapshot_t *snap)
{
    atomic_fetch_add_explicit(&snap->refcnt, 1, memory_order_relaxed);
}

void cph_snapshot_release(cph_snapshot_t *snap)
{
    /* acq_rel: every thread's last reads of the snapshot happen before the free */
    if (atomic_fetch_sub_explicit(&snap->refcnt, 1, memory_order_acq_rel) == 1)
        snapshot_free(snap);
}
