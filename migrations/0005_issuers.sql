-- 0005_issuers: optional external token issuers (an OIDC provider such as Keycloak or Auth0) whose JWTs the data
-- planes accept besides the control plane's own (controlplane/store_issuer.c, controlplane/sync_jwks.c).
--
-- An issuer is its "iss" value, the URL of its JWKS document, an optional audience, the system every principal it
-- vouches for belongs to (ON DELETE RESTRICT, like every reference to a system), the claims its role and group
-- names are read from, and how often its keys are fetched (refresh_s seconds). The control plane's JWKS thread fills
-- jwks with the last-known-good public keys, already converted to the snapshot's key form (a JSON array sorted by
-- kid; NULL until the first successful fetch); fetched_at is the time of that fetch and last_error what went wrong
-- with the latest attempt (NULL after a success). Only jwks reaches the snapshot; the other two are for the admin.
CREATE TABLE issuers (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    issuer       TEXT NOT NULL UNIQUE,
    jwks_url     TEXT NOT NULL,
    audience     TEXT,
    system_id    INTEGER NOT NULL REFERENCES systems (id) ON DELETE RESTRICT,
    roles_claim  TEXT NOT NULL DEFAULT 'roles',
    groups_claim TEXT NOT NULL DEFAULT 'groups',
    refresh_s    INTEGER NOT NULL DEFAULT 300 CHECK (refresh_s BETWEEN 1 AND 86400),
    jwks         TEXT CHECK (jwks IS NULL OR json_valid(jwks)),
    fetched_at   TEXT,
    last_error   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX issuers_system ON issuers (system_id);
