/*
 * settings: the process-wide auth settings (settings.h). Written once by main() before the admin and auth listeners
 * start, read-only afterwards, so readers need no lock.
 */
#include <string.h>
#include "controlplane/settings.h"

static cph_auth_settings_t current;
static int initialised;

void cph_settings_auth_defaults(cph_auth_settings_t *s)
{
    memset(s, 0, sizeof(*s));
    strcpy(s->issuer, "cephalo");
    s->leeway_s = 30;
    s->max_token_bytes = 8192;
    strcpy(s->header_prefix, "x-cephalo-");
    s->access_ttl_s = 300;
    s->refresh_ttl_s = 14 * 24 * 3600;
}

const cph_auth_settings_t *cph_settings_auth(void)
{
    if (!initialised) {
        cph_settings_auth_defaults(&current);
        initialised = 1;
    }
    return &current;
}

void cph_settings_set_auth(const cph_auth_settings_t *s)
{
    current = *s;
    initialised = 1;
}
