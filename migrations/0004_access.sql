-- 0004_access: what the data planes need to enforce access (docs/access.md section 1) - a
-- service's system, a route's default access, shadow endpoint rules, the deny list of revoked tokens, and the refresh
-- tokens of the auth API.
--
-- Added columns keep every existing row meaning what it meant: a service is in no system (NULL: the decision skips
-- the system check), a route answers "authenticated" where no endpoint rule matches, and every rule is enforced
-- (shadow 0). services.system_id is ON DELETE RESTRICT like every other reference to a system: deleting a system a
-- service belongs to is refused (the admin API answers 409).
--
-- revocations is the deny list shipped as the snapshot's "revoked" section (controlplane/store_revocation.c):
--   kind 'user':  subject = the user id in decimal, until_or_before = "before": that user's tokens with iat <= it are
--                 refused (written when a user is disabled, deleted, or its superuser flag, systems, roles or groups
--                 change); it has no foreign key, so it outlives a deleted user until it is pruned;
--   kind 'token': subject = an access token's jti, until_or_before = its exp (logout, refresh-token reuse).
-- Entries are pruned by every write once no token they could match can still be valid. Times are unix seconds here,
-- as in the tokens they are compared with.
--
-- refresh_tokens belong to the auth API (controlplane/authapi.c and its store): only the SHA-256 (64 lower-case hex)
-- of a refresh token is stored; family groups the tokens one login produced through rotation, so reuse can revoke
-- them all; access_jti is the jti of the access token issued with it. Times are unix seconds.

ALTER TABLE services ADD COLUMN system_id INTEGER REFERENCES systems (id) ON DELETE RESTRICT;
CREATE INDEX services_system ON services (system_id);

ALTER TABLE routes ADD COLUMN default_access TEXT NOT NULL DEFAULT 'authenticated'
    CHECK (default_access IN ('public', 'authenticated', 'deny'));

ALTER TABLE endpoints ADD COLUMN shadow INTEGER NOT NULL DEFAULT 0 CHECK (shadow IN (0, 1));

CREATE TABLE revocations (
    kind            TEXT NOT NULL CHECK (kind IN ('user', 'token')),
    subject         TEXT NOT NULL CHECK (length(subject) BETWEEN 1 AND 128),
    until_or_before INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (kind, subject)
);

CREATE TABLE refresh_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    family       TEXT NOT NULL,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    system_id    INTEGER NOT NULL REFERENCES systems (id) ON DELETE CASCADE,
    token_sha256 TEXT NOT NULL UNIQUE CHECK (length(token_sha256) = 64),
    access_jti   TEXT,
    issued_at    INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_system ON refresh_tokens (system_id);
