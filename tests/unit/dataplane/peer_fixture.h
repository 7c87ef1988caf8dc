/*
 * peer_fixture: the client connection of a request built by hand in a unit test (proxy_head_test.c,
 * credentials_test.c, fetch_test.c): h2o asks the connection for its peer, and these tests want one fixed client
 * address, 10.1.2.3, to find it again in X-Forwarded-For and the identity headers. Header-only so each test
 * executable stays one file plus what it tests.
 */
#ifndef CPH_TEST_PEER_FIXTURE_H
#define CPH_TEST_PEER_FIXTURE_H

#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include "dataplane/core/h2o_abi.h"

#define PEER_FIXTURE_ADDR "10.1.2.3"

static socklen_t peer_fixture_get_peername(h2o_conn_t *conn, struct sockaddr *sa)
{
    struct sockaddr_in *sin = (void *)sa;

    (void)conn;
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    inet_pton(AF_INET, PEER_FIXTURE_ADDR, &sin->sin_addr);
    return sizeof(*sin);
}

/* The callbacks of a connection whose peer is PEER_FIXTURE_ADDR (conn.callbacks = &callbacks). */
static const h2o_conn_callbacks_t callbacks = {.get_peername = peer_fixture_get_peername};

#endif
