-- 0006_policies: traffic policies (proto/PROTOCOL.md section 5) - a route's edge and rate-limit
-- policies and an endpoint rule's own rate limits.
--
-- routes.policies is the route's "policies" object as the admin API normalised it (rate_limits, cors,
-- security_headers, limits, ip_allow, ip_deny, https_redirect), stored whole as JSON and shipped as it is; '{}' - what
-- every existing route gets - means no policy, so adding the column changes nothing a data plane does.
--
-- endpoints.rate_limits is a rule's own list of rate limits (a JSON array) that replaces its route's rate_limits for
-- the requests the (enforced) rule matched; NULL - every existing rule - means "inherit the route's", and '[]' means
-- "no limit for this endpoint". It is written to the snapshot only when not NULL.
--
-- The field rules are the snapshot schema's (proto/schema.c), checked on every write before anything is stored.

ALTER TABLE routes ADD COLUMN policies TEXT NOT NULL DEFAULT '{}'
    CHECK (json_valid(policies) AND json_type(policies) = 'object');

ALTER TABLE endpoints ADD COLUMN rate_limits TEXT
    CHECK (rate_limits IS NULL OR (json_valid(rate_limits) AND json_type(rate_limits) = 'array'));
