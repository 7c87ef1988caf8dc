-- 0010_vault_signing: a signing key may live in Vault (--vault-signing-path; controlplane/sync_vault.c).
--
-- Such a key's row holds its public half like any other key, but no private half: private_pem is NULL and `source`
-- says where the private key is ("vault:<path>@<version>"). The control plane keeps that private key in memory only,
-- read from Vault at start and at every new version (which is a normal rotation: the old key retires as usual), so
-- the database file never holds it. A key the control plane generated has private_pem and no source, as before.
-- A kid given with the Vault secret may be any 1-32 characters of [A-Za-z0-9._-]; generated ones stay 32 hex digits.
--
-- SQLite cannot relax a NOT NULL column in place: the table is rebuilt with the same rows, ids and index.

CREATE TABLE signing_keys_v10 (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kid          TEXT NOT NULL UNIQUE CHECK (length(kid) BETWEEN 1 AND 32),
    alg          TEXT NOT NULL CHECK (alg IN ('ES256', 'RS256')),
    public_pem   TEXT NOT NULL CHECK (public_pem LIKE '-----BEGIN PUBLIC KEY-----%'),
    private_pem  TEXT CHECK (private_pem IS NULL OR private_pem LIKE '-----BEGIN PRIVATE KEY-----%'),
    source       TEXT CHECK (source IS NULL OR (source LIKE 'vault:%' AND length(source) <= 300)),
    state        TEXT NOT NULL CHECK (state IN ('active', 'retiring', 'retired')),
    created_at   TEXT NOT NULL,
    rotated_at   TEXT,
    retire_after TEXT,
    CHECK ((state = 'active') = (rotated_at IS NULL AND retire_after IS NULL)),
    CHECK ((private_pem IS NULL) = (source IS NOT NULL))
);
INSERT INTO signing_keys_v10 (id, kid, alg, public_pem, private_pem, source, state, created_at, rotated_at, retire_after)
    SELECT id, kid, alg, public_pem, private_pem, NULL, state, created_at, rotated_at, retire_after FROM signing_keys;
DROP TABLE signing_keys;
ALTER TABLE signing_keys_v10 RENAME TO signing_keys;
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';
