/*
 * metrics_fixture: a control thread state and a server of two workers (never started), attached to each other in a
 * fresh temp dir, so a test can add to the workers' counters and read cph_status_metrics. Include it in the test file.
 */
#ifndef CPH_TEST_METRICS_FIXTURE_H
#define CPH_TEST_METRICS_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include "dataplane/core/control.h"
#include "dataplane/core/server.h"

/* dir: a mkdtemp template ("/tmp/cph-<tag>-XXXXXX"), filled in. */
static inline void metrics_fixture_init(cph_control_t *c, cph_server_t *srv, char *dir)
{
    cph_server_config_t cfg = {.listen = "127.0.0.1:0", .num_workers = 2};
    cph_error_t err;

    assert_non_null(mkdtemp(dir));
    assert_int_equal(cph_control_init(c, dir, &err), 0);
    assert_int_equal(cph_server_init(srv, &cfg, &c->notify, &err), 0);
    cph_control_attach(c, srv);
}

static inline void metrics_fixture_dispose(cph_control_t *c, cph_server_t *srv, const char *dir)
{
    char cmd[160];

    cph_server_dispose(srv);
    cph_control_dispose(c);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

#endif
