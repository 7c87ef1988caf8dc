-- 0001_init: the control plane's first schema.
--
-- Applied once, inside one transaction, by controlplane/db.c, which records it in schema_migrations with the
-- file's sha256 and refuses to start if the file later changes. Later migrations add tables (systems, users, roles,
-- groups, endpoints, api_keys...) in new files; never edit this one.
--
-- Times are RFC 3339 UTC strings with milliseconds ('2026-01-02T03:04:05.678Z'), so they sort as text.

CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    applied_at TEXT NOT NULL
);

-- One row: the database's identity. epoch is random (32 lower-case hex), generation is the config version bumped by
-- every admin write in the same transaction.
CREATE TABLE meta (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    epoch      TEXT NOT NULL CHECK (length(epoch) = 32),
    generation INTEGER NOT NULL CHECK (generation >= 0)
);
INSERT INTO meta (id, epoch, generation) VALUES (1, lower(hex(randomblob(16))), 0);

-- Upstream services. targets is the schema-v1 JSON array [{"url","weight"}], stored with defaults filled in.
CREATE TABLE services (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL UNIQUE,
    targets    TEXT NOT NULL CHECK (json_valid(targets) AND json_type(targets) = 'array'),
    timeout_ms INTEGER NOT NULL CHECK (timeout_ms BETWEEN 1 AND 3600000),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Routes point at a service by id, so renaming a service carries its routes along, and a service in use cannot be
-- deleted (the admin API answers 409).
CREATE TABLE routes (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL UNIQUE,
    service_id   INTEGER NOT NULL REFERENCES services (id) ON DELETE RESTRICT,
    paths        TEXT NOT NULL CHECK (json_valid(paths) AND json_type(paths) = 'array'),
    hosts        TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(hosts) AND json_type(hosts) = 'array'),
    methods      TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(methods) AND json_type(methods) = 'array'),
    strip_prefix INTEGER NOT NULL DEFAULT 0 CHECK (strip_prefix IN (0, 1)),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX routes_service_id ON routes (service_id);

-- Admin bearer tokens: only the sha256 (64 lower-case hex) of a token is ever stored.
CREATE TABLE admin_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL UNIQUE,
    sha256     TEXT NOT NULL CHECK (length(sha256) = 64),
    created_at TEXT NOT NULL
);

-- Every admin write: who, what, the object before and after (JSON or NULL), and the config version it produced.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id   TEXT,
    before      TEXT CHECK (before IS NULL OR json_valid(before)),
    after       TEXT CHECK (after IS NULL OR json_valid(after)),
    version     INTEGER NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX audit_version ON audit (version);

-- Snapshot history: one canonical body per config version (for diff and rollback; a rollback is a new version
-- carrying an old body).
CREATE TABLE snapshots (
    version    INTEGER PRIMARY KEY,
    hash       TEXT NOT NULL,
    body       TEXT NOT NULL CHECK (json_valid(body)),
    author     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
