-- 0008_integrations: Vault secrets and Consul discovery (issue 7; docs/admin-api.md, proto/PROTOCOL.md section 5).
--
-- services.consul is NULL for a service with static targets, else the {"service", "tag"?} object the admin API
-- validated: its targets are then written by the Consul sync thread only (cph_store_service_set_discovered).
-- services.credentials is NULL for none, else the admin form {"vault_path", "headers"|"basic"} with its templates:
-- never a secret value. The snapshot build resolves the templates from vault_secrets.
--
-- vault_secrets holds the last version of each Vault KV v2 secret a service refers to, written by the Vault sync
-- thread only, so that a control plane restarted while Vault is down still builds the same snapshot. The values are
-- secrets: the database file is created 0600 (db.c), and they leave it only for the snapshot body.
-- Existing services get NULL in both columns, which changes nothing in their snapshot.

ALTER TABLE services ADD COLUMN consul TEXT NULL
    CHECK (consul IS NULL OR (json_valid(consul) AND json_type(consul) = 'object'));
ALTER TABLE services ADD COLUMN credentials TEXT NULL
    CHECK (credentials IS NULL OR (json_valid(credentials) AND json_type(credentials) = 'object'));

CREATE TABLE vault_secrets (
    path TEXT PRIMARY KEY CHECK (length(path) BETWEEN 1 AND 256),
    version INTEGER NOT NULL CHECK (version >= 0),
    data TEXT NOT NULL CHECK (json_valid(data) AND json_type(data) = 'object'),
    fetched_at TEXT NOT NULL
);

-- A CHECK cannot hold a subquery: every value of data must be a string, enforced here.
CREATE TRIGGER vault_secrets_strings_insert BEFORE INSERT ON vault_secrets
WHEN EXISTS (SELECT 1 FROM json_each(NEW.data) WHERE type <> 'text')
BEGIN
    SELECT RAISE(ABORT, 'vault_secrets.data holds only string values');
END;

CREATE TRIGGER vault_secrets_strings_update BEFORE UPDATE OF data ON vault_secrets
WHEN EXISTS (SELECT 1 FROM json_each(NEW.data) WHERE type <> 'text')
BEGIN
    SELECT RAISE(ABORT, 'vault_secrets.data holds only string values');
END;
