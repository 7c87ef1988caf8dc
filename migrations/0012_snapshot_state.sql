-- 0012_snapshot_state: every snapshots row also keeps the configuration rows it was built from, so that a rollback
-- restores the rows (controlplane/history.c), not only an old body that the next write would rebuild from today's rows.
--
-- state is {"format": 1, "tables": {"<table>": [{"<column>": value, ...}, ...]}} over the configuration tables only:
-- systems, roles, groups, group_roles, services, routes, endpoints, endpoint_roles, endpoint_groups and issuers, every
-- column, rows by primary key. Principals and credentials (users and their links, api keys and their links, refresh
-- tokens, revocations, signing keys, Vault secrets), admin_*, audit, snapshots and meta are never in it, so a rollback
-- can neither resurrect a revoked key or a deleted user nor bring back an old password.
--
-- Rows written before this migration have no state (NULL: not restorable) - except the current version, whose rows
-- are exactly today's: it gets its state here, so an upgraded database can at least go back to where it stood.

ALTER TABLE snapshots ADD COLUMN state TEXT CHECK (state IS NULL OR json_valid(state));

UPDATE snapshots SET state = json_object('format', 1, 'tables', json_object(
    'systems', json((SELECT json_group_array(json_object('id', id, 'code', code, 'name', name, 'created_at', created_at,
        'updated_at', updated_at)) FROM (SELECT * FROM systems ORDER BY id))),
    'roles', json((SELECT json_group_array(json_object('id', id, 'system_id', system_id, 'name', name,
        'created_at', created_at, 'updated_at', updated_at)) FROM (SELECT * FROM roles ORDER BY id))),
    'groups', json((SELECT json_group_array(json_object('id', id, 'system_id', system_id, 'name', name,
        'created_at', created_at, 'updated_at', updated_at)) FROM (SELECT * FROM groups ORDER BY id))),
    'group_roles', json((SELECT json_group_array(json_object('group_id', group_id, 'role_id', role_id))
        FROM (SELECT * FROM group_roles ORDER BY group_id, role_id))),
    'services', json((SELECT json_group_array(json_object('id', id, 'name', name, 'targets', targets,
        'timeout_ms', timeout_ms, 'created_at', created_at, 'updated_at', updated_at, 'system_id', system_id,
        'policies', policies, 'consul', consul, 'credentials', credentials)) FROM (SELECT * FROM services ORDER BY id))),
    'routes', json((SELECT json_group_array(json_object('id', id, 'name', name, 'service_id', service_id, 'paths', paths,
        'hosts', hosts, 'methods', methods, 'strip_prefix', strip_prefix, 'created_at', created_at,
        'updated_at', updated_at, 'default_access', default_access, 'policies', policies, 'kind', kind,
        'kind_config', kind_config)) FROM (SELECT * FROM routes ORDER BY id))),
    'endpoints', json((SELECT json_group_array(json_object('id', id, 'service_id', service_id, 'method', method,
        'path', path, 'public', public, 'created_at', created_at, 'updated_at', updated_at, 'shadow', shadow,
        'rate_limits', rate_limits)) FROM (SELECT * FROM endpoints ORDER BY id))),
    'endpoint_roles', json((SELECT json_group_array(json_object('endpoint_id', endpoint_id, 'role_id', role_id))
        FROM (SELECT * FROM endpoint_roles ORDER BY endpoint_id, role_id))),
    'endpoint_groups', json((SELECT json_group_array(json_object('endpoint_id', endpoint_id, 'group_id', group_id))
        FROM (SELECT * FROM endpoint_groups ORDER BY endpoint_id, group_id))),
    'issuers', json((SELECT json_group_array(json_object('id', id, 'name', name, 'issuer', issuer, 'jwks_url', jwks_url,
        'audience', audience, 'system_id', system_id, 'roles_claim', roles_claim, 'groups_claim', groups_claim,
        'refresh_s', refresh_s, 'jwks', jwks, 'fetched_at', fetched_at, 'last_error', last_error,
        'created_at', created_at, 'updated_at', updated_at)) FROM (SELECT * FROM issuers ORDER BY id)))))
WHERE version = (SELECT generation FROM meta WHERE id = 1);
