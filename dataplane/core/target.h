/*
 * target: process-lifetime state of an upstream target and of a service, shared by every worker of the data plane.
 *
 * A registry keyed by (service name, target authority) hands out one cph_target_state_t per pair, and one
 * cph_service_state_t per service name. Entries are never freed, so a target that stays in the configuration keeps
 * its health, breaker and in-flight count across snapshot swaps, and a pointer taken by an in-flight request stays
 * valid whatever the control thread does. Every field is an atomic: workers, the health thread and the status
 * listener read and write them without locks.
 */
#ifndef CPH_TARGET_H
#define CPH_TARGET_H

#include <stdatomic.h>
#include <stdint.h>

/** Active health of a target (core/health.c). A service without health_check leaves its targets UNCHECKED. */
enum { CPH_HEALTH_UNCHECKED = 0, CPH_HEALTH_HEALTHY, CPH_HEALTH_UNHEALTHY };

typedef struct st_cph_target_state_t {
    _Atomic uint32_t active;               /* requests in flight to it, all workers (least_conn, random) */
    _Atomic int health;                    /* CPH_HEALTH_* */
    /* passive outlier detection / breaker (core/balance.c) */
    _Atomic uint32_t consecutive_failures;
    _Atomic uint64_t ejected_until_ns;     /* 0: closed; now < it: open; now >= it (non-zero): half-open */
    _Atomic uint32_t ejections;            /* times ejected (drives the growing ejection time) */
    _Atomic uint64_t ejections_total;      /* for metrics and the health report */
    _Atomic int probing;                   /* half-open: the one probe request is in flight */
    _Atomic uint64_t closed_at_ns;         /* when the breaker last closed (decays the ejection multiplier), 0 = never */
    /* active checks (core/health.c), for the report */
    _Atomic uint32_t check_successes, check_failures; /* consecutive, toward the thresholds */
    _Atomic uint64_t last_check_ms;        /* wall clock ms of the last completed check, 0 = none */
    _Atomic int last_check_status;         /* HTTP status of the last check, 0 = no response */
    _Atomic uint32_t last_check_duration_ms;
    _Atomic int last_check_error;          /* 0 or a CPH_CHECK_ERR_* of core/health.h */
    const char *service;                   /* registry key, owned by the registry */
    const char *authority;
} cph_target_state_t;

typedef struct st_cph_service_state_t {
    _Atomic uint32_t active_requests; /* admitted by cph_balance_admit, not yet released */
    _Atomic uint32_t pending_connects;
    _Atomic uint32_t active_retries;
    const char *name;
} cph_service_state_t;

/** The state of (service, authority "host:port"), created on first sight. Thread-safe; never NULL (fatal on OOM). */
cph_target_state_t *cph_target_state_get(const char *service, const char *authority);
/** The state of a service, created on first sight. Thread-safe; never NULL. */
cph_service_state_t *cph_service_state_get(const char *service);
/** Called by whoever changes a target's health or breaker state: bumps the generation the health report follows. */
void cph_target_state_changed(void);
/** Bumped on every such change: the DP sends its health report to the CP when it moved (at most once per second). */
uint64_t cph_target_generation(void);

#endif
