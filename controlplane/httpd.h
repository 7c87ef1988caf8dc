/*
 * httpd: what the control plane's two libmicrohttpd daemons share - the admin API (api.c) and the auth API
 * (authapi.c): reading a "HOST:PORT" listen address and starting a thread-per-connection daemon that logs through
 * proto/log.c.
 */
#ifndef CPH_HTTPD_H
#define CPH_HTTPD_H

#include <microhttpd.h>
#include "proto/proto.h"

/**
 * Starts a daemon on listen ("HOST:PORT"; HOST an IPv4 address, "localhost" or "[IPv6]") with a thread per connection,
 * at most max_conns connections each closed after timeout_s idle, on_request / on_completed with cls. `what` names
 * the listener in errors ("admin", "auth"). Returns the daemon, or NULL with err {invalid} (bad address) or {listen}.
 */
struct MHD_Daemon *cph_httpd_start(const char *listen, const char *what, MHD_AccessHandlerCallback on_request, void *cls,
                                   MHD_RequestCompletedCallback on_completed, unsigned max_conns, unsigned timeout_s,
                                   cph_error_t *err);

#endif
