/*
 * send_fixture: replaces libh2o's h2o_send_inline for stage tests, so an answer a filter gives (an error JSON, a
 * 204, a redirect) ends in sent_status / sent_body instead of on a connection. Include it once, in the test file.
 */
#ifndef CPH_TEST_SEND_FIXTURE_H
#define CPH_TEST_SEND_FIXTURE_H

#include <string.h>
#include "dataplane/core/h2o_abi.h"

static int sent_status;
static char sent_body[4096];

void h2o_send_inline(h2o_req_t *req, const char *body, size_t len)
{
    sent_status = req->res.status;
    assert_true(len < sizeof(sent_body));
    memcpy(sent_body, body, len);
    sent_body[len] = '\0';
}

#endif
