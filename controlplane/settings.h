/*
 * settings: the control plane's auth settings, set once by main() from flags before the database is opened and read
 * by snapbuild.c (the snapshot's "auth" section), token.c (issuing) and authapi.c. Immutable after start.
 */
#ifndef CPH_SETTINGS_H
#define CPH_SETTINGS_H

typedef struct st_cph_auth_settings_t {
    char issuer[257];       /* JWT iss; default "cephalo" */
    char audience[257];     /* JWT aud; "" = none */
    int leeway_s;           /* 0..300, default 30 */
    int max_token_bytes;    /* 256..65536, default 8192 */
    char header_prefix[33]; /* default "x-cephalo-" */
    char api[256];          /* the auth API base URL the data planes forward /auth/... to: "http://127.0.0.1:8002"; "" = none */
    int access_ttl_s;       /* 1..CPH_ACCESS_TOKEN_MAX_S, default 300 */
    int refresh_ttl_s;      /* default 14 days */
} cph_auth_settings_t;

/** The settings in force (defaults until cph_settings_set_auth). */
const cph_auth_settings_t *cph_settings_auth(void);
/** Replaces the settings; call before any other thread starts. */
void cph_settings_set_auth(const cph_auth_settings_t *s);
/** Fills s with the defaults. */
void cph_settings_auth_defaults(cph_auth_settings_t *s);

#endif
