-- 0002_identity: the identity model - systems, roles, groups, users, api keys, endpoint rules and their links.
--
-- Systems scope everything else: a role, a group or an api key belongs to exactly one system; a user is a member of
-- systems and holds roles and groups of those systems. The admin API speaks codes and names; the rows hold ids, so a
-- renamed system or role carries every reference along.
--
-- Foreign keys (PRAGMA foreign_keys is ON for every connection):
--   - ON DELETE RESTRICT where the referenced row is in use by something an admin configured: a system with roles,
--     groups, api keys or members; a role held by a group, a user or an api key; a group held by a user or an api
--     key. Deleting it is refused (the admin API answers 409); the admin removes the uses first.
--   - ON DELETE CASCADE from an owner to its own link rows: deleting a group, a user, an api key or an endpoint rule
--     deletes its links (group_roles, user_*, api_key_*, endpoint_*) with it - they mean nothing without their owner.
--     An endpoint rule is part of its service's definition: deleting the service deletes its rules (CASCADE).
--
-- Secrets: users.password_hash is an argon2id encoded hash ("$argon2id$v=19$m=...,t=...,p=...$salt$hash"); an api
-- key stores only its lookup prefix and the SHA-256 (64 lower-case hex) of its secret. Neither is ever returned by
-- the admin API nor written to the audit table.

CREATE TABLE systems (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    code       TEXT NOT NULL UNIQUE CHECK (length(code) BETWEEN 1 AND 64),
    name       TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE roles (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    system_id  INTEGER NOT NULL REFERENCES systems (id) ON DELETE RESTRICT,
    name       TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (system_id, name)
);

CREATE TABLE groups (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    system_id  INTEGER NOT NULL REFERENCES systems (id) ON DELETE RESTRICT,
    name       TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (system_id, name)
);

-- A group's roles (always of the group's own system, checked by the store).
CREATE TABLE group_roles (
    group_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    role_id  INTEGER NOT NULL REFERENCES roles (id) ON DELETE RESTRICT,
    PRIMARY KEY (group_id, role_id)
);
CREATE INDEX group_roles_role ON group_roles (role_id);

-- username and email are unique without regard to ASCII case, so "Alice" and "alice" cannot be two accounts.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE CHECK (length(username) BETWEEN 1 AND 128),
    email         TEXT UNIQUE COLLATE NOCASE CHECK (email IS NULL OR length(email) BETWEEN 3 AND 254),
    password_hash TEXT NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    superuser     INTEGER NOT NULL DEFAULT 0 CHECK (superuser IN (0, 1)),
    enabled       INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE TABLE user_systems (
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    system_id INTEGER NOT NULL REFERENCES systems (id) ON DELETE RESTRICT,
    PRIMARY KEY (user_id, system_id)
);
CREATE INDEX user_systems_system ON user_systems (system_id);

CREATE TABLE user_roles (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id INTEGER NOT NULL REFERENCES roles (id) ON DELETE RESTRICT,
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_role ON user_roles (role_id);

CREATE TABLE user_groups (
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE RESTRICT,
    PRIMARY KEY (user_id, group_id)
);
CREATE INDEX user_groups_group ON user_groups (group_id);

-- An api key is "<prefix>.<secret>": prefix (random, unique) finds the row, secret_sha256 checks the secret.
CREATE TABLE api_keys (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    system_id     INTEGER NOT NULL REFERENCES systems (id) ON DELETE RESTRICT,
    name          TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    prefix        TEXT NOT NULL UNIQUE CHECK (length(prefix) BETWEEN 8 AND 12),
    secret_sha256 TEXT NOT NULL CHECK (length(secret_sha256) = 64),
    expires_at    TEXT,
    revoked       INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    UNIQUE (system_id, name)
);

CREATE TABLE api_key_roles (
    api_key_id INTEGER NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    role_id    INTEGER NOT NULL REFERENCES roles (id) ON DELETE RESTRICT,
    PRIMARY KEY (api_key_id, role_id)
);
CREATE INDEX api_key_roles_role ON api_key_roles (role_id);

CREATE TABLE api_key_groups (
    api_key_id INTEGER NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    group_id   INTEGER NOT NULL REFERENCES groups (id) ON DELETE RESTRICT,
    PRIMARY KEY (api_key_id, group_id)
);
CREATE INDEX api_key_groups_group ON api_key_groups (group_id);

-- Endpoint rules: who may call (method, path pattern) of a service. method is "*" or one method; path is "/exact",
-- "/prefix/*" or a template with "{param}" segments, validated by the store. One rule per (service, method, path).
CREATE TABLE endpoints (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    service_id INTEGER NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    method     TEXT NOT NULL CHECK (length(method) BETWEEN 1 AND 7),
    path       TEXT NOT NULL CHECK (length(path) BETWEEN 1 AND 1024),
    public     INTEGER NOT NULL DEFAULT 0 CHECK (public IN (0, 1)),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (service_id, method, path)
);

CREATE TABLE endpoint_roles (
    endpoint_id INTEGER NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    role_id     INTEGER NOT NULL REFERENCES roles (id) ON DELETE RESTRICT,
    PRIMARY KEY (endpoint_id, role_id)
);
CREATE INDEX endpoint_roles_role ON endpoint_roles (role_id);

CREATE TABLE endpoint_groups (
    endpoint_id INTEGER NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    group_id    INTEGER NOT NULL REFERENCES groups (id) ON DELETE RESTRICT,
    PRIMARY KEY (endpoint_id, group_id)
);
CREATE INDEX endpoint_groups_group ON endpoint_groups (group_id);
