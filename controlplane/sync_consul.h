/*
 * sync_consul: the control plane's thread that keeps the targets of every service discovered through Consul (a
 * service with a "consul" member, store_service.h) equal to Consul's healthy instances, with one blocking query per
 * service, so a change in Consul reaches the data planes in a new snapshot within about a second.
 */
#ifndef CPH_SYNC_CONSUL_H
#define CPH_SYNC_CONSUL_H

#include <jansson.h>
#include "controlplane/db.h"
#include "controlplane/integrations.h"

typedef struct st_cph_sync_consul_t cph_sync_consul_t;

/**
 * Starts the thread on db (borrowed; it must outlive the thread) with the Consul settings of s (copied: consul_addr,
 * consul_token, consul_datacenter, consul_wait_s; consul_addr must be set). Every second it reads the services that
 * take their targets from Consul and keeps one blocking query per service (GET /v1/health/service/<service>
 * ?passing=true[&tag=][&dc=]&index=&wait=) running on one libcurl multi handle, at most one request per service per
 * second, backing off 1 s doubling to 30 s after a failure. A changed set of healthy instances is written through
 * cph_db_write as actor "consul" (a new snapshot version); a failure keeps the stored targets and reports the
 * integration degraded (cph_integration_fail), a success reports it ok. Returns NULL with err filled when the thread
 * cannot start.
 */
cph_sync_consul_t *cph_sync_consul_start(cph_db_t *db, const cph_integration_settings_t *s, cph_error_t *err);
/** Stops the thread (requests in flight are aborted within a second) and frees c (NULL is fine). */
void cph_sync_consul_stop(cph_sync_consul_t *c);

#endif
