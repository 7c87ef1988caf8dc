/*
 * snap_fixture: a snapshot compiled from a JSON literal for the compile tests of one stage (cache_test.c,
 * edge_test.c, websocket_test.c): services and routes compile first (a failure there fails the test), then the stage
 * under test, whose result the test checks. Header-only so each test executable stays one file plus what it tests.
 */
#ifndef CPH_TEST_SNAP_FIXTURE_H
#define CPH_TEST_SNAP_FIXTURE_H

#include <string.h>
#include <jansson.h>
#include "dataplane/compile/compile.h"

typedef struct st_snapfx_t {
    cph_snapshot_t snap;
    json_t *body;
} snapfx_t;

/* One service "s" whose target nobody listens on, and a route of it. */
#define SERVICES "\"services\":[{\"name\":\"s\",\"targets\":[{\"url\":\"http://127.0.0.1:9\"}]}]"
#define ROUTE(name, path, policies) "{\"name\":\"" name "\",\"service\":\"s\",\"paths\":[\"" path "\"]" policies "}"

typedef int (*snapfx_stage_fn)(cph_snapshot_t *snap, const json_t *body, cph_error_t *err);

/* Compiles json's services and routes into f, then stage; returns stage's result (err filled on -1). */
static inline int snapfx_build(snapfx_t *f, const char *json, snapfx_stage_fn stage, cph_error_t *err)
{
    json_error_t jerr;

    memset(f, 0, sizeof(*f));
    memset(err, 0, sizeof(*err));
    if ((f->body = json_loads(json, JSON_REJECT_DUPLICATES, &jerr)) == NULL)
        fail_msg("bad test JSON: %s", jerr.text);
    cph_arena_init(&f->snap.arena);
    if (cph_proxy_compile(&f->snap, f->body, err) != 0 || cph_router_compile(&f->snap, f->body, err) != 0)
        fail_msg("compile failed: %s at %s: %s", err->code, err->path, err->msg);
    return stage(&f->snap, f->body, err);
}

static inline void snapfx_destroy(snapfx_t *f)
{
    cph_arena_dispose(&f->snap.arena);
    json_decref(f->body);
}

#endif
