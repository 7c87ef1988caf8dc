-- 0009_route_kinds: what a route does once a request has passed its policies (proto/PROTOCOL.md section 5, "route
-- kinds") - forward to its service ('proxy', what every existing route is), render to PDF ('pdf') or fan out to
-- several services and merge their answers ('aggregate').
--
-- routes.kind_config is the configuration object of the route's kind as the admin API validated it (the snapshot's
-- "pdf" or "aggregate" member), stored whole as JSON and shipped as it is; NULL for a proxy route, and only for one.
--
-- The field rules are the snapshot schema's (proto/schema_kind.c, schema_pdf.c, schema_aggregate.c), checked on
-- every write before anything is stored. An aggregate route names the services of its backends; deleting or renaming
-- one of them is refused by the snapshot check that every write runs (400 unknown_service at the backend).

ALTER TABLE routes ADD COLUMN kind TEXT NOT NULL DEFAULT 'proxy' CHECK (kind IN ('proxy', 'pdf', 'aggregate'));

ALTER TABLE routes ADD COLUMN kind_config TEXT
    CHECK ((kind = 'proxy') = (kind_config IS NULL)
           AND (kind_config IS NULL OR (json_valid(kind_config) AND json_type(kind_config) = 'object')));
