-- Admin accounts (argon2id passwords), their browser sessions and role-carrying admin API tokens (issue 8).
--
-- An account has one role: owner (everything), editor (writes within its systems, admin_account_systems) or viewer
-- (reads). A session stores only the sha256 of its cookie value and the CSRF token mutating requests must echo; it
-- ends 12 h after login or 30 min after its last use. Admin tokens gain a role, an optional owning account (NULL for
-- the bootstrap token "admin", which stays owner), a display prefix, last use, an optional expiry and their systems.
-- None of this is configuration: writes here do not bump the version, though each is audited.

CREATE TABLE admin_accounts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64 AND name NOT GLOB '*[^A-Za-z0-9._@-]*'),
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    last_login_at TEXT
);

CREATE TABLE admin_account_systems (
    account_id INTEGER NOT NULL REFERENCES admin_accounts (id) ON DELETE CASCADE,
    system_id  INTEGER NOT NULL REFERENCES systems (id) ON DELETE CASCADE,
    PRIMARY KEY (account_id, system_id)
);

CREATE TABLE admin_sessions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256       TEXT NOT NULL UNIQUE CHECK (length(sha256) = 64),
    account_id   INTEGER NOT NULL REFERENCES admin_accounts (id) ON DELETE CASCADE,
    csrf         TEXT NOT NULL CHECK (length(csrf) = 64),
    created_at   INTEGER NOT NULL, -- unix seconds
    expires_at   INTEGER NOT NULL, -- absolute end: created_at + 12 h
    last_seen_at INTEGER NOT NULL  -- idle end: last_seen_at + 30 min
);
CREATE INDEX admin_sessions_account ON admin_sessions (account_id);

ALTER TABLE admin_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'owner' CHECK (role IN ('owner', 'editor', 'viewer'));
ALTER TABLE admin_tokens ADD COLUMN account_id INTEGER REFERENCES admin_accounts (id) ON DELETE CASCADE;
ALTER TABLE admin_tokens ADD COLUMN prefix TEXT;
ALTER TABLE admin_tokens ADD COLUMN last_used_at TEXT;
ALTER TABLE admin_tokens ADD COLUMN expires_at INTEGER; -- unix seconds, NULL = never
CREATE INDEX admin_tokens_account ON admin_tokens (account_id);

CREATE TABLE admin_token_systems (
    token_id  INTEGER NOT NULL REFERENCES admin_tokens (id) ON DELETE CASCADE,
    system_id INTEGER NOT NULL REFERENCES systems (id) ON DELETE CASCADE,
    PRIMARY KEY (token_id, system_id)
);
