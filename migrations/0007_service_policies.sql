-- 0007_service_policies: a service's upstream resilience policy (proto/PROTOCOL.md section 5, "service policies") -
-- load balancing, active health checks, passive outlier detection and the per-data-plane limits of its targets.
--
-- services.policies is the service's "policies" object as the admin API validated it (lb, health_check, outlier,
-- limits), stored whole as JSON and shipped in the snapshot as it is; '{}' - what every existing service gets - means
-- every default (round robin, no active check, the default outlier detection and limits), so adding the column
-- changes nothing a data plane does.
--
-- The field rules are the snapshot schema's (proto/schema*.c, cph_schema_validate_service_policies), checked on every
-- write before anything is stored.

ALTER TABLE services ADD COLUMN policies TEXT NOT NULL DEFAULT '{}'
    CHECK (json_valid(policies) AND json_type(policies) = 'object');
