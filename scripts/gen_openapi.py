#!/usr/bin/env python3
"""Generates controlplane/openapi.json, the admin API's OpenAPI 3 document (served at /api/v1/openapi.json).

    /usr/bin/python3 scripts/gen_openapi.py > controlplane/openapi.json   # then re-run cmake: it is compiled in

Edit the API here, never the JSON by hand. tests/unit/controlplane/openapi_test.c checks the result against the
router: every routed operation documented, nothing documented that is not routed, every $ref resolved.
"""
import json
import sys

REF = lambda name: {"$ref": "#/components/schemas/" + name}
RESP = lambda name: {"$ref": "#/components/responses/" + name}
PARAM = lambda name: {"$ref": "#/components/parameters/" + name}

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"]
NAME = {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$", "minLength": 1, "maxLength": 64}
CODE = {"type": "string", "pattern": "^[a-z0-9_-]{1,64}$", "minLength": 1, "maxLength": 64,
        "description": "a system code"}
TIME = {"type": "string", "format": "date-time", "description": "RFC 3339 UTC with milliseconds",
        "example": "2026-01-02T03:04:05.678Z"}
RO_ID = {"type": "integer", "format": "int64", "minimum": 1, "readOnly": True}
RO_TIME = dict(TIME, readOnly=True)
HEADER_NAME = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[a-z0-9!#$%&'*+.^_`|~-]{1,64}$",
               "description": "a lower-case RFC 9110 token"}
CIDR = {"type": "string", "description": "a canonical CIDR (no bit set after the prefix): 10.0.0.0/8, ::1, 2001:db8::/32",
        "example": "10.0.0.0/8"}
ORIGIN = {"type": "string", "maxLength": 255, "description": "a browser Origin: http(s)://host[:port], no path; or \"*\" alone",
          "example": "https://app.example.com"}


def integer(lo, hi, default=None, desc=None):
    s = {"type": "integer", "minimum": lo, "maximum": hi}
    if default is not None:
        s["default"] = default
    if desc:
        s["description"] = desc
    return s


def obj(props, required=None, desc=None, extra=False):
    s = {"type": "object", "properties": props, "additionalProperties": extra}
    if required:
        s["required"] = required
    if desc:
        s["description"] = desc
    return s


def arr(items, lo=None, hi=None, unique=False, desc=None):
    s = {"type": "array", "items": items}
    if lo is not None:
        s["minItems"] = lo
    if hi is not None:
        s["maxItems"] = hi
    if unique:
        s["uniqueItems"] = True
    if desc:
        s["description"] = desc
    return s


def nullable(s):
    s = dict(s)
    s["nullable"] = True
    return s


S = {}  # components/schemas

S["Error"] = obj({
    "error": {"type": "string", "example": "invalid",
              "description": "a machine-readable code: bad_json, invalid, unknown_field, missing_field, duplicate, "
                             "unknown_service, unknown_system, unknown_role, unknown_group (400); unauthorized, "
                             "invalid_credentials (401); forbidden, csrf (403); not_found (404); method_not_allowed "
                             "(405); conflict, not_restorable (409); payload_too_large (413); unsupported_media_type "
                             "(415); too_many_attempts (429); internal (500); no_snapshot, unavailable (503)"},
    "message": {"type": "string", "description": "for humans; never holds a secret, SQL text or a file path"},
    "path": {"type": "string", "description": "JSON pointer of the offending member, relative to the body sent "
                                                "(only when one member is at fault)", "example": "/targets/0/url"},
}, ["error", "message"], "Every 4xx/5xx answer of the admin API.")

S["AppliedDataplane"] = obj({
    "id": {"type": "string"},
    "status": {"type": "string", "enum": ["synced", "applying", "nacked", "disconnected"]},
    "version": {"type": "integer", "format": "int64"},
    "error": REF("DataplaneError"),
}, ["id", "status", "version"])
S["Applied"] = obj({
    "settled": {"type": "boolean", "description": "false when the 5 s passed before every connected data plane "
                                                  "acked or nacked the version (true with no data plane connected)"},
    "dataplanes": arr(REF("AppliedDataplane")),
}, ["settled", "dataplanes"], "Only with ?wait=applied.")
S["Written"] = obj({
    "version": {"type": "integer", "format": "int64", "description": "the configuration version this write made"},
    "applied": REF("Applied"),
}, ["version"], "The answer of a configuration write (a DELETE answers only this).")


def written(member, schema_name, desc=None):
    return {"allOf": [REF("Written"), obj({member: REF(schema_name)}, [member], desc)]}


def listing(schema_name):
    return obj({"data": arr(REF(schema_name))}, ["data"])


# ---------------------------------------------------------------- services
S["Target"] = obj({
    "url": {"type": "string", "maxLength": 255, "example": "http://10.0.0.1:8080",
            "description": "http://HOST:PORT[/]: an IPv4 address, [IPv6] or a DNS name; no path, query or user info"},
    "weight": integer(1, 1000, 1),
}, ["url"])
S["LoadBalancing"] = obj({
    "policy": {"type": "string", "enum": ["round_robin", "least_conn", "random", "consistent_hash"],
               "default": "round_robin"},
    "hash_on": {"type": "string", "nullable": True,
                "description": "required with consistent_hash, refused with any other policy: ip, principal or "
                               "header:<lower-case header name>"},
})
S["HealthCheck"] = obj({
    "path": {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": "^/",
             "description": "sent as written; printable ASCII without space or #"},
    "interval_ms": integer(100, 3600000, 5000),
    "timeout_ms": integer(1, 60000, 1000, "must be below interval_ms"),
    "healthy_threshold": integer(1, 100, 2),
    "unhealthy_threshold": integer(1, 100, 3),
    "expected_statuses": arr(integer(100, 599), 1, 32, True),
}, ["path"], "Active health checks (absent or null: none, every target counts healthy).")
S["Outlier"] = obj({
    "consecutive_failures": integer(0, 1000, 5, "0 = passive detection off"),
    "base_ejection_ms": integer(1, 3600000, 30000),
    "max_ejection_ms": integer(1, 86400000, 300000, "at least base_ejection_ms"),
    "max_ejection_percent": integer(0, 100, 50),
})
S["ServiceLimits"] = obj({
    "max_requests": integer(1, 1000000, 1024),
    "max_pending": integer(1, 1000000, 1024),
}, desc="Per data plane; over either: 503 upstream_overloaded.")
S["ServicePolicies"] = obj({
    "lb": REF("LoadBalancing"),
    "health_check": {"allOf": [REF("HealthCheck")], "nullable": True},
    "outlier": REF("Outlier"),
    "limits": REF("ServiceLimits"),
}, desc="The upstream resilience policy; stored and returned as sent (no default filled in). {} = every default.")
S["Consul"] = obj({
    "service": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"},
    "tag": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"},
}, ["service"], "Take the targets from Consul's passing instances (then targets must be absent or []).")
TEMPLATE = {"type": "string", "minLength": 1, "maxLength": 1024,
            "description": "printable ASCII with {{key}} placeholders replaced by the Vault secret's values"}
S["Credentials"] = obj({
    "vault_path": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$",
                   "description": "the secret's path under the KV mount"},
    "headers": {"type": "object", "minProperties": 1, "maxProperties": 8, "additionalProperties": TEMPLATE,
                "description": "header name (RFC 9110 token, stored lower-cased) -> template; not a header the "
                               "gateway writes or removes itself"},
    "basic": obj({"username": TEMPLATE, "password": TEMPLATE}, ["username", "password"],
                 "sent as Authorization: Basic; the username may not contain ':'"),
}, ["vault_path"], "Headers the data planes add to every upstream request, from a Vault KV v2 secret. Exactly one "
                   "of headers and basic.")
S["Service"] = obj({
    "id": RO_ID,
    "name": dict(NAME, description="unique among services"),
    "targets": arr(REF("Target"), 0, 256, desc="required unless consul is set (then absent or []; GET shows what "
                                                "Consul reported last)"),
    "timeout_ms": integer(1, 3600000, 60000, "upstream I/O timeout (504 on expiry)"),
    "system": dict(CODE, nullable=True, default=None,
                   description="the code of the system the service belongs to, or null (400 unknown_system)"),
    "policies": REF("ServicePolicies"),
    "consul": {"allOf": [REF("Consul")], "nullable": True, "description": "absent from GET when not set"},
    "credentials": {"allOf": [REF("Credentials")], "nullable": True, "description": "absent from GET when not set"},
    "created_at": RO_TIME,
    "updated_at": RO_TIME,
}, ["name"], "A service (a PUT replaces it whole). Field rules: proto/PROTOCOL.md section 5.")

# ---------------------------------------------------------------- routes
S["RateLimit"] = obj({
    "name": NAME,
    "key": {"type": "string", "description": "ip, principal, api_key, system, route or header:<name>",
            "example": "ip"},
    "rate": integer(1, 1000000000),
    "period_s": integer(1, 86400),
    "burst": integer(0, 1000000000, 0),
    "backend": {"type": "string", "enum": ["local", "redis"], "default": "local"},
    "on_error": {"type": "string", "enum": ["open", "closed"], "default": "open"},
    "headers": {"type": "boolean", "default": False},
}, ["name", "key", "rate", "period_s"])
S["Cors"] = obj({
    "origins": arr(ORIGIN, 1, 64, True),
    "methods": arr({"type": "string", "enum": METHODS}, 0, 16, True),
    "headers": arr(HEADER_NAME, 0, 64, True),
    "expose_headers": arr(HEADER_NAME, 0, 64, True),
    "credentials": {"type": "boolean", "default": False},
    "max_age_s": integer(0, 86400, 600),
}, ["origins"])
S["SecurityHeaders"] = obj({
    "hsts_max_age_s": integer(0, 63072000, 0),
    "hsts_subdomains": {"type": "boolean", "default": False},
    "content_type_options": {"type": "boolean", "default": False},
    "frame_options": {"type": "string", "enum": ["DENY", "SAMEORIGIN"], "nullable": True},
    "referrer_policy": {"type": "string", "nullable": True,
                        "enum": ["no-referrer", "no-referrer-when-downgrade", "same-origin", "origin", "strict-origin",
                                 "origin-when-cross-origin", "strict-origin-when-cross-origin", "unsafe-url"]},
})
S["RequestLimits"] = obj({
    "max_body_bytes": integer(0, 1073741824),
    "max_url_bytes": integer(256, 65536),
    "max_headers": integer(1, 1000),
    "max_header_bytes": integer(1024, 1048576),
}, desc="Absent members take the gateway's values.")
S["CachePolicy"] = obj({
    "ttl_s": integer(0, 31536000, 0),
    "max_ttl_s": integer(1, 31536000, 86400),
    "max_body_bytes": integer(1, 67108864, 1048576),
    "share_authenticated": {"type": "boolean", "default": False},
})
S["Timeouts"] = obj({
    "connect_ms": integer(1, 3600000, 5000),
    "first_byte_ms": integer(1, 3600000, desc="default: the service's timeout_ms"),
    "idle_ms": integer(1, 3600000, desc="default: the service's timeout_ms"),
    "total_ms": integer(0, 86400000, 0),
})
S["Retries"] = obj({
    "max": integer(0, 5, 1),
    "statuses": arr(integer(500, 599), 0, 8, True),
    "budget_percent": integer(0, 100, 20),
    "min_concurrent": integer(0, 1000, 3),
})
S["WebsocketPolicy"] = obj({
    "idle_timeout_ms": integer(1, 86400000, 300000),
    "max_lifetime_ms": integer(0, 604800000, 0),
    "max_per_client": integer(0, 100000, 0),
    "origins": arr(ORIGIN, 0, 64, True),
    "max_frame_bytes": integer(125, 67108864, 1048576),
    "close_on_token_expiry": {"type": "boolean", "default": False},
}, desc="Only on a proxy route.")
S["RoutePolicies"] = obj({
    "rate_limits": arr(REF("RateLimit"), 0, 8),
    "cors": REF("Cors"),
    "security_headers": REF("SecurityHeaders"),
    "limits": REF("RequestLimits"),
    "ip_allow": arr(CIDR, 0, 1024),
    "ip_deny": arr(CIDR, 0, 1024),
    "https_redirect": {"type": "boolean", "default": False},
    "cache": REF("CachePolicy"),
    "timeouts": REF("Timeouts"),
    "retries": REF("Retries"),
    "websocket": REF("WebsocketPolicy"),
}, desc="The route's traffic policy; stored and returned as sent. {} = no policy.")
S["PdfRoute"] = obj({
    "mode": {"type": "string", "enum": ["render", "source"], "default": "render"},
    "filename": {"type": "string", "pattern": "^[A-Za-z0-9._-]+\\.pdf$", "minLength": 5, "maxLength": 128,
                 "default": "document.pdf"},
    "max_input_bytes": integer(1, 16777216, 1048576),
    "max_output_bytes": integer(1024, 67108864, 20971520),
    "timeout_ms": integer(100, 300000, 30000),
    "defaults": obj({
        "page_size": {"type": "string", "enum": ["A3", "A4", "A5", "Letter", "Legal"], "default": "A4"},
        "orientation": {"type": "string", "enum": ["portrait", "landscape"], "default": "portrait"},
        "margins_mm": obj({k: integer(0, 100, 10) for k in ["top", "right", "bottom", "left"]}),
    }),
}, desc="Required on a pdf route, refused on any other.")
S["AggregateBackend"] = obj({
    "name": NAME,
    "service": dict(NAME, description="a service name (400 unknown_service)"),
    "method": {"type": "string", "enum": ["GET", "POST"], "default": "GET"},
    "path": {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": "^/",
             "description": "path template with {param} and {query.<name>} placeholders"},
    "key": dict(NAME, description="the member the backend's object goes under (not _errors); absent = merged at "
                                  "the top level"),
    "required": {"type": "boolean", "default": True},
}, ["name", "service", "path"])
S["AggregateRoute"] = obj({
    "deadline_ms": integer(1, 60000, 3000),
    "on_deadline": {"type": "string", "enum": ["partial", "error"], "default": "partial"},
    "pattern": {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": "^/",
                "description": "an endpoint pattern matched against the whole canonical path"},
    "backends": arr(REF("AggregateBackend"), 1, 16),
}, ["pattern", "backends"], "Required on an aggregate route, refused on any other.")
S["Route"] = obj({
    "id": RO_ID,
    "name": dict(NAME, description="unique among routes"),
    "service": dict(NAME, description="the service's name (400 unknown_service)"),
    "paths": arr({"type": "string", "minLength": 1, "maxLength": 1024, "pattern": "^/",
                  "description": "a canonical path prefix; not /auth nor under /auth/"}, 1, 64, True),
    "hosts": arr({"type": "string", "description": "a lower-case DNS name or *.name, no port"}, 0, 64),
    "methods": arr({"type": "string", "enum": METHODS}, 0, 16, True, "empty = any method"),
    "strip_prefix": {"type": "boolean", "default": False},
    "default_access": {"type": "string", "enum": ["public", "authenticated", "deny"], "default": "authenticated",
                       "description": "what a request no endpoint rule matches gets"},
    "policies": REF("RoutePolicies"),
    "kind": {"type": "string", "enum": ["proxy", "pdf", "aggregate"], "default": "proxy"},
    "pdf": REF("PdfRoute"),
    "aggregate": REF("AggregateRoute"),
    "created_at": RO_TIME,
    "updated_at": RO_TIME,
}, ["name", "service", "paths"], "A route (a PUT replaces it whole).")

# ---------------------------------------------------------------- identity
S["Ref"] = obj({"system": CODE, "name": NAME}, ["system", "name"], "A role or group of a system.")
S["System"] = obj({
    "id": RO_ID,
    "code": dict(CODE, description="unique (409 at /code); renaming carries everything scoped by it along"),
    "name": {"type": "string", "minLength": 1, "maxLength": 200, "description": "display name, no control character"},
    "created_at": RO_TIME,
    "updated_at": RO_TIME,
}, ["code", "name"])
S["Role"] = obj({
    "id": RO_ID,
    "system": dict(CODE, description="400 unknown_system"),
    "name": dict(NAME, description="unique within its system (409 at /name)"),
    "created_at": RO_TIME,
    "updated_at": RO_TIME,
}, ["system", "name"])
S["Group"] = obj({
    "id": RO_ID,
    "system": CODE,
    "name": dict(NAME, description="unique within its system (409 at /name)"),
    "roles": arr(NAME, 0, 256, True, "names of roles of the group's own system (400 unknown_role); returned sorted"),
    "created_at": RO_TIME,
    "updated_at": RO_TIME,
}, ["system", "name"])
S["User"] = obj({
    "id": RO_ID,
    "username": {"type": "string", "pattern": "^[A-Za-z0-9_.@+-]{1,128}$",
                 "description": "unique without regard to ASCII case (409 at /username)"},
    "email": {"type": "string", "nullable": True, "minLength": 3, "maxLength": 254, "default": None,
              "description": "local@domain, unique without regard to ASCII case (409 at /email)"},
    "password": {"type": "string", "writeOnly": True, "minLength": 8, "maxLength": 1024,
                 "description": "required on POST (400 missing_field); a PUT without it keeps the stored hash; "
                                "never returned"},
    "superuser": {"type": "boolean", "default": False},
    "enabled": {"type": "boolean", "default": True},
    "systems": arr(CODE, 0, 256, True, "the systems the user is a member of (400 unknown_system)"),
    "roles": arr(REF("Ref"), 0, 256, True, "each of a system in systems (400 invalid / unknown_role)"),
    "groups": arr(REF("Ref"), 0, 256, True, "each of a system in systems (400 invalid / unknown_group)"),
    "created_at": RO_TIME,
    "updated_at": RO_TIME,
}, ["username"], "Disabling, deleting, or changing superuser, systems, roles or groups revokes the user's tokens.")
S["ApiKey"] = obj({
    "id": RO_ID,
    "system": CODE,
    "name": dict(NAME, description="unique within its system (409 at /name)"),
    "prefix": {"type": "string", "readOnly": True, "pattern": "^[0-9a-f]{10}$"},
    "roles": arr(NAME, 0, 256, True, "role names of the key's system (400 unknown_role)"),
    "groups": arr(NAME, 0, 256, True, "group names of the key's system (400 unknown_group)"),
    "expires_at": {"type": "string", "format": "date-time", "nullable": True, "default": None,
                   "description": "any RFC 3339 date-time; returned in UTC with milliseconds"},
    "revoked": {"type": "boolean", "default": False},
    "created_at": RO_TIME,
    "updated_at": RO_TIME,
}, ["system", "name"])
S["ApiKeyCreated"] = {"allOf": [REF("ApiKey"), obj({
    "key": {"type": "string", "readOnly": True, "description": "<prefix>.<secret>: shown in this answer only"},
}, ["key"])]}
S["ApiKeyPatch"] = obj({k: v for k, v in S["ApiKey"]["properties"].items()},
                       desc="Merged over the stored key (absent members keep their values): {\"revoked\": true} "
                            "revokes it. A GET answer can be PUT back as it is.")
S["Endpoint"] = obj({
    "id": RO_ID,
    "service": dict(NAME, description="the service's name (400 unknown_service)"),
    "method": {"type": "string", "enum": ["*"] + METHODS, "default": "*"},
    "path": {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": "^/",
             "description": "exact (/items), prefix (/files/*) or template (/items/{id}) pattern, canonical; "
                            "(service, method, path) unique (409 at /path)"},
    "public": {"type": "boolean", "default": False, "description": "a public rule lists no roles or groups"},
    "shadow": {"type": "boolean", "default": False, "description": "evaluated and counted, never enforced"},
    "roles": arr(REF("Ref"), 0, 256, True),
    "groups": arr(REF("Ref"), 0, 256, True),
    "rate_limits": {"type": "array", "items": REF("RateLimit"), "maxItems": 8, "nullable": True, "default": None,
                    "description": "replace the route's limits when this enforced rule matched; null keeps the "
                                   "route's"},
    "created_at": RO_TIME,
    "updated_at": RO_TIME,
}, ["service", "path"], "An endpoint permission rule (addressed by id only).")
PRINTABLE256 = {"type": "string", "minLength": 1, "maxLength": 256, "description": "printable ASCII"}
S["Issuer"] = obj({
    "id": RO_ID,
    "name": dict(NAME, description="unique (409 at /name)"),
    "issuer": dict(PRINTABLE256, description="the tokens' iss, unique (409 at /issuer); not the control plane's own"),
    "jwks_url": {"type": "string", "maxLength": 2048, "format": "uri", "description": "http:// or https:// with a host"},
    "audience": dict(PRINTABLE256, nullable=True, default=None, description="null: aud not checked"),
    "system": dict(CODE, description="every principal of this issuer is in this system (400 unknown_system)"),
    "roles_claim": dict(PRINTABLE256, default="roles", description="top-level claim or dotted path"),
    "groups_claim": dict(PRINTABLE256, default="groups"),
    "refresh_s": integer(1, 86400, 300, "at least --jwks-min-refresh-s (default 30)"),
    "keys": {"type": "integer", "readOnly": True, "description": "how many keys are stored"},
    "fetched_at": dict(TIME, nullable=True, readOnly=True),
    "last_error": {"type": "string", "nullable": True, "readOnly": True},
    "created_at": RO_TIME,
    "updated_at": RO_TIME,
}, ["name", "issuer", "jwks_url", "system"], "An external token issuer (at most 16; 409 beyond).")

# ---------------------------------------------------------------- data planes, snapshot, signing
S["DataplaneError"] = obj({
    "code": {"type": "string", "nullable": True},
    "path": {"type": "string", "nullable": True},
    "message": {"type": "string", "nullable": True},
    "version": {"type": "integer", "format": "int64", "description": "the version it refused"},
}, desc="The data plane's last NACK.", extra=True)
S["Dataplane"] = obj({
    "id": {"type": "string"},
    "hostname": {"type": "string"},
    "software": {"type": "string"},
    "pid": {"type": "integer"},
    "connected": {"type": "boolean"},
    "last_seen": dict(TIME, nullable=True),
    "status": {"type": "string", "enum": ["synced", "applying", "nacked", "disconnected"]},
    "applied": obj({
        "epoch": {"type": "string"}, "version": {"type": "integer", "format": "int64"}, "hash": {"type": "string"},
        "source": {"type": "string"}, "at": dict(TIME, nullable=True)}),
    "last_error": {"allOf": [REF("DataplaneError")], "nullable": True},
    "traffic": dict(obj({
        "requests_total": {"type": "integer", "format": "int64", "minimum": 0},
        "4xx_total": {"type": "integer", "format": "int64", "minimum": 0},
        "5xx_total": {"type": "integer", "format": "int64", "minimum": 0},
        "requests_per_s": {"type": "number", "minimum": 0},
        "4xx_per_s": {"type": "number", "minimum": 0},
        "5xx_per_s": {"type": "number", "minimum": 0},
    }, desc="from the data plane's pings: answered since it started, and rates over about the last 10 s"), nullable=True),
}, ["id", "status", "connected"])
S["SnapshotInfo"] = obj({
    "epoch": {"type": "string"},
    "version": {"type": "integer", "format": "int64"},
    "hash": {"type": "string"},
    "schema": {"type": "integer"},
    "body": {"type": "object", "description": "only with ?body=1: the canonical body, injected credential values "
                                              "shown as \"(redacted)\" (hash is the real body's)"},
}, ["epoch", "version", "hash", "schema"])
S["Jwk"] = obj({
    "kty": {"type": "string", "enum": ["EC", "RSA"]},
    "crv": {"type": "string", "enum": ["P-256"]},
    "x": {"type": "string"}, "y": {"type": "string"}, "n": {"type": "string"}, "e": {"type": "string"},
    "kid": {"type": "string"},
    "alg": {"type": "string", "enum": ["ES256", "RS256"]},
    "use": {"type": "string", "enum": ["sig"]},
}, ["kty", "kid", "alg", "use"], "A public JWK (never a private member).")
S["Jwks"] = obj({"keys": arr(REF("Jwk"))}, ["keys"])
S["SigningKey"] = obj({
    "id": RO_ID,
    "kid": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
    "alg": {"type": "string", "enum": ["ES256", "RS256"]},
    "state": {"type": "string", "enum": ["active", "retiring", "retired"]},
    "created_at": TIME,
    "rotated_at": dict(TIME, nullable=True),
    "retire_after": dict(TIME, nullable=True),
    "jwk": REF("Jwk"),
}, ["id", "kid", "alg", "state", "jwk"], "The private key is never returned.", extra=True)
S["RotateRequest"] = obj({"alg": {"type": "string", "enum": ["ES256", "RS256"], "default": "ES256"}})

# ---------------------------------------------------------------- tools
S["ExplainRequest"] = obj({
    "method": {"type": "string", "minLength": 1, "maxLength": 32, "description": "an HTTP method token, case-sensitive"},
    "path": {"type": "string", "minLength": 1, "maxLength": 8192, "pattern": "^/",
             "description": "a query is allowed and ignored for matching"},
    "host": {"type": "string", "maxLength": 255},
    "token": {"type": "string", "minLength": 1, "maxLength": 65536, "description": "a bearer JWT"},
    "api_key": {"type": "string", "minLength": 1, "maxLength": 1024, "description": "<prefix>.<secret>"},
    "user": {"type": "string", "minLength": 1, "maxLength": 256,
             "description": "a username or user id (404 not_found at /user when unknown)"},
    "system": dict(CODE, description="with user only: the system logged in to (400 unknown_system)"),
}, ["method", "path"], "At most one of token, api_key, user.")
S["ExplainRule"] = obj({
    "id": {"type": "integer", "format": "int64"},
    "method": {"type": "string"},
    "path": {"type": "string"},
    "public": {"type": "boolean"},
    "kind": {"type": "string", "enum": ["exact", "template", "prefix"]},
}, ["id", "method", "path", "public", "kind"])
S["ExplainResponse"] = obj({
    "version": {"type": "integer", "format": "int64"},
    "decision": {"type": "string", "nullable": True,
                 "enum": ["allow", "unauthenticated", "forbidden", "not_found", "method_not_allowed", "bad_path"]},
    "status": {"type": "integer", "nullable": True, "enum": [200, 400, 401, 403, 404, 405]},
    "allow": {"type": "string", "description": "with method_not_allowed: the Allow header"},
    "canonical_path": {"type": "string", "nullable": True},
    "route": {"type": "string", "nullable": True},
    "service": {"type": "string", "nullable": True},
    "service_system": {"type": "string", "nullable": True},
    "upstream_path": {"type": "string", "nullable": True},
    "principal": {"nullable": True, **obj({
        "kind": {"type": "string", "enum": ["user", "api_key"]},
        "id": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
        "name": {"type": "string"},
        "system": {"type": "string"},
        "roles": arr({"type": "string"}),
        "effective_roles": arr({"type": "string"}),
        "groups": arr({"type": "string"}),
        "superuser": {"type": "boolean"},
    })},
    "credential": {"nullable": True, **obj({"valid": {"type": "boolean"}, "reason": {"type": "string"}})},
    "rule": {"allOf": [REF("ExplainRule")], "nullable": True},
    "default_access": {"type": "string", "enum": ["public", "authenticated", "deny"]},
    "reason": {"type": "string", "nullable": True},
    "granted_by": {"type": "string", "nullable": True},
    "shadow": {"nullable": True, **obj({
        "rule": REF("ExplainRule"),
        "decision": {"type": "string", "enum": ["allow", "unauthenticated", "forbidden"]},
        "reason": {"type": "string"},
        "granted_by": {"type": "string", "nullable": True},
    })},
    "chain": arr({"type": "string"}, desc="one human line per stage; for reading, not for parsing"),
}, ["version", "decision", "status", "chain"])
S["ShadowStats"] = obj({"endpoints": arr(obj({
    "id": {"type": "integer", "format": "int64"},
    "would_allow": {"type": "integer", "format": "int64"},
    "would_deny": {"type": "integer", "format": "int64"},
}, ["id", "would_allow", "would_deny"]))}, ["endpoints"])
S["PurgeRequest"] = obj({
    "route": dict(NAME, description="a route name (404 not_found at /route when none has it)"),
    "prefix": {"type": "string", "nullable": True, "minLength": 1, "maxLength": 1024, "pattern": "^/",
               "description": "a canonical upstream path prefix; absent or null = every entry of the route"},
}, ["route"])
S["PurgeResponse"] = obj({"purged_on": {"type": "integer", "description": "connected data planes it was queued to"}},
                         ["purged_on"])
S["HealthSummary"] = obj({
    "status": {"type": "string", "enum": ["ok", "degraded"]},
    "problems": arr({"type": "string"}),
    "version": {"type": "integer", "format": "int64"},
    "dataplanes": obj({
        "latest_version": {"type": "integer", "format": "int64"},
        "connected": {"type": "integer"},
        "max_lag": {"type": "integer"},
        "items": arr(obj({
            "id": {"type": "string"}, "connected": {"type": "boolean"},
            "status": {"type": "string", "enum": ["synced", "applying", "nacked", "disconnected"]},
            "version": {"type": "integer", "format": "int64"}, "lag": {"type": "integer"},
            "last_seen": dict(TIME, nullable=True)}, extra=True)),
    }, extra=True),
    "integrations": obj({"vault": REF("IntegrationState"), "consul": REF("IntegrationState")}, extra=True),
}, ["status", "problems", "version", "dataplanes", "integrations"], extra=True)
S["IntegrationState"] = obj({
    "state": {"type": "string", "enum": ["disabled", "starting", "ok", "degraded"]},
    "reason": {"type": "string", "nullable": True, "description": "\"<kind>: <text>\", kind one of sealed, "
                                                                  "unreachable, timeout, forbidden, not_found, "
                                                                  "bad_response, server_error"},
    "since": dict(TIME, nullable=True),
    "last_success": dict(TIME, nullable=True),
    "errors_total": {"type": "integer"},
    "syncs_total": {"type": "integer"},
}, ["state", "reason"], extra=True)
S["HealthTarget"] = obj({
    "url": {"type": "string"}, "weight": {"type": "integer"},
    "health": {"type": "string", "enum": ["healthy", "unhealthy", "unchecked"]},
    "breaker": {"type": "string", "enum": ["closed", "open", "half_open"]},
    "active": {"type": "integer"}, "ejections": {"type": "integer"},
    "last_check": {"nullable": True, **obj({"at": TIME, "status": {"type": "integer", "nullable": True},
                                            "error": {"type": "string", "nullable": True},
                                            "duration_ms": {"type": "integer"}}, extra=True)},
}, extra=True)
S["HealthServices"] = obj({"dataplanes": arr(obj({
    "dp_id": {"type": "string"},
    "received_at": dict(TIME, nullable=True),
    "services": arr(obj({"name": {"type": "string"}, "health_check": {"type": "boolean"},
                         "targets": arr(REF("HealthTarget"))}, extra=True)),
}, ["dp_id", "received_at", "services"]))}, ["dataplanes"])
S["VaultIntegration"] = {"allOf": [REF("IntegrationState"), obj({
    "addr": {"type": "string", "nullable": True}, "kv_mount": {"type": "string"}, "poll_s": {"type": "integer"},
    "auth": {"type": "string"}, "signing_path": {"type": "string", "nullable": True},
    "token_renewable": {"type": "boolean"}, "token_expires_at": dict(TIME, nullable=True),
    "secrets": arr(obj({"path": {"type": "string"}, "version": {"type": "integer"},
                        "keys": arr({"type": "string"}, desc="key names, never values"),
                        "fetched_at": dict(TIME, nullable=True)}, extra=True)),
}, extra=True)]}
S["ConsulIntegration"] = {"allOf": [REF("IntegrationState"), obj({
    "addr": {"type": "string", "nullable": True}, "datacenter": {"type": "string", "nullable": True},
    "wait_s": {"type": "integer"}, "acl_token": {"type": "boolean", "description": "whether one is set"},
    "services": arr(obj({"name": {"type": "string"}, "consul_service": {"type": "string"},
                         "tag": {"type": "string", "nullable": True}, "index": {"type": "integer"},
                         "targets": arr(REF("Target")), "last_change": dict(TIME, nullable=True),
                         "state": {"type": "string"}, "reason": {"type": "string", "nullable": True}}, extra=True)),
}, extra=True)]}
S["Integrations"] = obj({"vault": REF("VaultIntegration"), "consul": REF("ConsulIntegration")},
                        ["vault", "consul"])
S["VaultPaths"] = obj({"prefix": {"type": "string"},
                       "keys": arr({"type": "string"}, desc="names; one ending in / is a folder")},
                      ["prefix", "keys"])

# ---------------------------------------------------------------- admin accounts, tokens (controlplane/api_admin.c)
ROLE = {"type": "string", "enum": ["owner", "editor", "viewer"]}
ACCOUNT_NAME = {"type": "string", "pattern": "^[A-Za-z0-9._@-]{1,64}$", "minLength": 1, "maxLength": 64}
ADMIN_SYSTEMS = arr(CODE, 0, 64, desc="system codes of existing systems (400 invalid at /systems/<i> otherwise; a "
                                      "repeated code counts once): an editor's scope")
S["LoginRequest"] = obj({"name": {"type": "string", "maxLength": 256},
                         "password": {"type": "string", "maxLength": 1024}},
                        ["name", "password"])
S["LoginResponse"] = obj({
    "name": ACCOUNT_NAME, "role": ROLE, "systems": arr(CODE, desc="an editor's scope (system codes)"),
    "csrf_token": {"type": "string", "description": "send it as X-CSRF-Token on every POST, PUT and DELETE"},
}, ["name", "role", "systems", "csrf_token"])
S["Me"] = obj({
    "name": {"type": "string", "description": "the account's name, or the token's"},
    "role": ROLE, "systems": arr(CODE),
    "via": {"type": "string", "enum": ["session", "token"]},
    "csrf_token": {"type": "string", "description": "only via a session"},
}, ["name", "role", "systems", "via"])
S["AdminAccount"] = obj({
    "id": RO_ID,
    "name": dict(ACCOUNT_NAME, description="unique (409 at /name); cannot be changed"),
    "password": {"type": "string", "writeOnly": True, "minLength": 12, "maxLength": 1024,
                 "description": "never returned (nor its hash)"},
    "role": ROLE,
    "systems": ADMIN_SYSTEMS,
    "disabled": {"type": "boolean", "default": False},
    "created_at": RO_TIME, "updated_at": RO_TIME,
    "last_login_at": dict(RO_TIME, nullable=True),
}, ["name", "password", "role"], "An admin account (owner only).")
S["AdminAccountPatch"] = obj({
    "name": dict(ACCOUNT_NAME, description="optional; must be the account's own name (an account cannot be renamed)"),
    "password": S["AdminAccount"]["properties"]["password"],
    "role": ROLE,
    "systems": ADMIN_SYSTEMS,
    "disabled": {"type": "boolean"},
}, desc="Any of password, role, systems, disabled (absent members keep their values). A password change, disabling "
        "or a role change ends the account's sessions and revokes its tokens; the last enabled owner cannot be "
        "disabled or demoted (409).")
S["Deleted"] = obj({"deleted": {"type": "string", "description": "the name of what was deleted"}}, ["deleted"])
S["AdminToken"] = obj({
    "id": RO_ID,
    "name": dict(ACCOUNT_NAME, description="unique (409 at /name)"),
    "prefix": {"type": "string", "nullable": True, "readOnly": True,
               "description": "the token's first 8 characters, for display (null for the bootstrap token)"},
    "role": ROLE,
    "systems": arr(CODE),
    "account": {"type": "string", "nullable": True, "readOnly": True,
                "description": "the account that created it (null: the bootstrap token, or created by a token)"},
    "created_at": RO_TIME,
    "last_used_at": dict(RO_TIME, nullable=True),
    "expires_at": {"type": "string", "format": "date-time", "nullable": True, "readOnly": True,
                   "description": "RFC 3339 UTC to the second; null = never"},
}, ["id", "name", "prefix", "role", "systems", "account", "created_at", "last_used_at", "expires_at"])
S["AdminTokenRequest"] = obj({
    "name": dict(ACCOUNT_NAME, description="unique (409 at /name)"),
    "role": dict(ROLE, description="default: the caller's; higher than the caller's is 403 forbidden at /role"),
    "systems": arr(CODE, 0, 64, desc="default: an editor's own scope; outside the caller's scope is 403 forbidden "
                                     "at /systems"),
    "expires_in_s": {"type": "integer", "minimum": 60, "maximum": 315360000, "nullable": True,
                     "description": "absent or null = never expires"},
}, ["name"])
S["AdminTokenCreated"] = {"allOf": [REF("AdminToken"), obj({
    "token": {"type": "string", "readOnly": True, "pattern": "^[0-9a-f]{64}$",
              "description": "shown in this answer only; only its SHA-256 is stored"}}, ["token"], extra=True)]}

# ---------------------------------------------------------------- audit, history (contract section 3)
S["Change"] = obj({
    "op": {"type": "string", "enum": ["add", "remove", "replace"]},
    "path": {"type": "string", "description": "JSON pointer; an array of named objects (by name, else id, kid, prefix, "
                                              "code) is matched by that member and indexed in the \"to\" value (in "
                                              "\"from\" for a remove), other arrays by position"},
    "from": {"description": "the old value (replace, remove)"},
    "to": {"description": "the new value (add, replace)"},
}, ["op", "path"])
S["AuditEntry"] = obj({
    "id": {"type": "integer", "format": "int64"},
    "at": TIME,
    "actor": {"type": "string", "example": "account:alice",
              "description": "account:<name>, token:<name>, or system, sync, consul, vault"},
    "action": {"type": "string", "example": "update",
               "description": "create, update, delete, rotate, purge, rollback, rebuild, login, login_failed, logout, ..."},
    "entity_type": {"type": "string", "example": "route"},
    "entity_id": {"type": "string", "nullable": True, "description": "the entity's id, as text"},
    "version": {"type": "integer", "format": "int64", "description": "the configuration version after the change "
                                                                     "(the current one for a write that is not "
                                                                     "configuration)"},
    "before": {"description": "the API representation before (null on create; never a password, hash or key)"},
    "after": {"description": "the API representation after (null on delete)"},
    "changes": arr(REF("Change"), desc="the diff of before -> after"),
    "changes_truncated": {"type": "boolean", "description": "present (true) when the diff stopped after 5000 changes"},
}, ["id", "at", "actor", "action", "entity_type", "entity_id", "version", "before", "after", "changes"])
S["AuditPage"] = obj({
    "items": arr(REF("AuditEntry"), desc="newest first"),
    "next": {"type": "integer", "format": "int64", "nullable": True,
             "description": "pass as ?before= for the next page; null on the last"},
}, ["items", "next"])
S["SnapshotSummary"] = obj({
    "version": {"type": "integer", "format": "int64"},
    "hash": {"type": "string"},
    "author": {"type": "string", "nullable": True, "description": "the actor of the write"},
    "created_at": TIME,
    "summary": {"type": "string", "example": "update route api",
                "description": "from the version's audit rows: \"<action> <entity type> <name>\", \"rollback to "
                               "version N\", \"N changes\", or empty"},
    "restorable": {"type": "boolean", "description": "false for versions stored before their state was kept"},
}, ["version", "hash", "author", "created_at", "summary", "restorable"])
S["SnapshotPage"] = obj({
    "items": arr(REF("SnapshotSummary"), desc="newest first"),
    "next": {"type": "integer", "format": "int64", "nullable": True,
             "description": "pass as ?before= for the next page; null on the last"},
}, ["items", "next"])
S["SnapshotVersion"] = {"allOf": [REF("SnapshotSummary"), obj({
    "body": {"type": "object", "description": "the snapshot body, credential values redacted"}}, ["body"], extra=True)]}
S["SnapshotDiff"] = obj({
    "from": {"type": "integer", "format": "int64"},
    "to": {"type": "integer", "format": "int64"},
    "changes": arr(REF("Change"), desc="over the redacted bodies"),
    "truncated": {"type": "boolean", "description": "the diff stopped after 5000 changes"},
}, ["from", "to", "changes", "truncated"])
S["RollbackResult"] = {"allOf": [REF("Written"), obj({
    "rolled_back_to": {"type": "integer", "format": "int64"},
    "hash": {"type": "string", "description": "the new version's snapshot hash"},
    "same_body": {"type": "boolean", "description": "the new body is the old version's (true unless principals "
                                                    "changed since)"},
}, ["rolled_back_to", "hash", "same_body"], extra=True)]}
S["EmptyObject"] = {"type": "object", "description": "{} (members are ignored)"}

# ---------------------------------------------------------------- responses, parameters
ERR = {"application/json": {"schema": REF("Error")}}
RESPONSES = {
    "BadRequest": {"description": "bad_json, invalid, unknown_field, missing_field, duplicate, unknown_service, "
                                  "unknown_system, unknown_role or unknown_group (path names the member)",
                   "content": ERR},
    "Unauthorized": {"description": "no valid admin token or session (unauthorized)",
                     "headers": {"WWW-Authenticate": {"schema": {"type": "string", "example": "Bearer"}}},
                     "content": ERR},
    "Forbidden": {"description": "forbidden: the admin role or system scope does not allow it; csrf: a session's "
                                 "mutating request without the right X-CSRF-Token (or from another Origin)",
                  "content": ERR},
    "NotFound": {"description": "not_found", "content": ERR},
    "Conflict": {"description": "conflict: a unique name is taken, or the object is in use", "content": ERR},
    "PayloadTooLarge": {"description": "payload_too_large: the body is over 1 MiB", "content": ERR},
    "UnsupportedMediaType": {"description": "unsupported_media_type: the body must be application/json",
                             "content": ERR},
    "Internal": {"description": "internal", "content": ERR},
}
PARAMETERS = {
    "Wait": {"name": "wait", "in": "query", "required": False,
             "description": "applied: answer only once every connected data plane acked or nacked the new version "
                            "(at most 5 s); adds \"applied\"",
             "schema": {"type": "string", "enum": ["applied"]}},
    "Key": {"name": "key", "in": "path", "required": True,
            "description": "the id, or the name (a key of digits only is tried as an id first)",
            "schema": {"type": "string"}},
    "ScopedKey": {"name": "key", "in": "path", "required": True,
                  "description": "the id, or <system code>:<name>", "schema": {"type": "string"},
                  "example": "billing:reader"},
    "AccountKey": {"name": "key", "in": "path", "required": True, "description": "the account's name or id",
                   "schema": {"type": "string"}},
    "Version": {"name": "version", "in": "path", "required": True, "description": "a snapshot version",
                "schema": {"type": "integer", "format": "int64", "minimum": 1}},
    "Id": {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "format": "int64", "minimum": 1}},
    "Limit500": {"name": "limit", "in": "query", "required": False, "description": "page size",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
    "Before": {"name": "before", "in": "query", "required": False,
               "description": "only older than this (the previous page's next)",
               "schema": {"type": "integer", "format": "int64", "minimum": 1}},
}

READ_SEC = [{"bearerToken": []}, {"sessionCookie": []}]
WRITE_SEC = [{"bearerToken": []}, {"sessionCookie": [], "csrfToken": []}]

paths = {}
op_ids = set()


def op(path, method, op_id, tag, summary, ok, role, body=None, errors=(), params=(), desc=None, security=None):
    assert op_id not in op_ids, op_id
    op_ids.add(op_id)
    o = {"operationId": op_id, "tags": [tag], "summary": summary}
    if desc:
        o["description"] = desc
    o["x-cephalo-role"] = role
    if params:
        o["parameters"] = list(params)
    if body is not None:
        o["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    mutating = method in ("post", "put", "delete")
    o["security"] = security if security is not None else (WRITE_SEC if mutating else READ_SEC)
    r = dict(ok)
    errs = list(errors)
    if o["security"]:
        errs += ["401", "403"]
    if body is not None:
        errs += ["400", "413", "415"]
    if path != "/health":
        errs.append("500")
    names = {"400": "BadRequest", "401": "Unauthorized", "403": "Forbidden", "404": "NotFound", "409": "Conflict",
             "413": "PayloadTooLarge", "415": "UnsupportedMediaType", "500": "Internal"}
    for e in sorted(set(errs)):
        if e not in r:
            r[e] = RESP(names[e])
    o["responses"] = r
    paths.setdefault(path, {})[method] = o


def ok(status, schema, desc="OK", headers=None):
    r = {"description": desc, "content": {"application/json": {"schema": schema}}}
    if headers:
        r["headers"] = headers
    return {str(status): r}


def crud(res, tag, single, schema, key_param="Key", put_schema=None, create_schema=None, role_write="editor (scoped)",
         role_post=None, role_delete=None, notes=None, extra_errors_write=("409",), sort=None):
    col = "/api/v1/" + res
    item = col + "/{key}"
    notes = notes or {}
    op(col, "get", "list_" + res, tag, "List " + res.replace("_", " "), ok(200, listing(schema)), "viewer",
       desc=("Sorted by " + sort + ".") if sort else None)
    op(col, "post", "create_" + single, tag, "Create a " + single.replace("_", " "),
       ok(201, written(single, create_schema or schema), "Created"), role_post or role_write, body=REF(schema),
       errors=list(extra_errors_write), params=[PARAM("Wait")], desc=notes.get("post"))
    op(item, "get", "get_" + single, tag, "Get a " + single.replace("_", " "), ok(200, REF(schema)), "viewer",
       errors=["404"], params=[PARAM(key_param)])
    op(item, "put", "replace_" + single if put_schema is None else "update_" + single, tag,
       ("Update" if put_schema else "Replace") + " a " + single.replace("_", " "),
       ok(200, written(single, schema)), role_write, body=REF(put_schema or schema),
       errors=["404"] + list(extra_errors_write), params=[PARAM(key_param), PARAM("Wait")], desc=notes.get("put"))
    op(item, "delete", "delete_" + single, tag, "Delete a " + single.replace("_", " "), ok(200, REF("Written")),
       role_delete or role_write, errors=["404", "409"], params=[PARAM(key_param), PARAM("Wait")],
       desc=notes.get("delete"))


# /health and /metrics (outside /api/v1)
op("/health", "get", "health", "meta", "Liveness of the control plane (no authentication)",
   ok(200, obj({"status": {"type": "string", "enum": ["ok"]}}, ["status"]), "Up"), "none", security=[])
op("/metrics", "get", "metrics", "meta", "The control plane's Prometheus metrics",
   {"200": {"description": "Prometheus text format 0.0.4",
            "content": {"text/plain; version=0.0.4; charset=utf-8": {"schema": {"type": "string"}}}}},
   "any", security=READ_SEC)

crud("services", "services", "service", "Service", sort="name",
     notes={"put": "Full replace; renaming is allowed (409 onto an existing name).",
            "delete": "409 while routes (or an aggregate route's backend) use it; its endpoint rules are deleted."})
crud("routes", "routes", "route", "Route", sort="name")
crud("systems", "identity", "system", "System", sort="code", role_write="editor (scoped)", role_post="owner", role_delete="owner",
     notes={"delete": "409 while services, roles, groups, api keys, issuers or user memberships use it."})
crud("roles", "identity", "role", "Role", sort="system code, then name", key_param="ScopedKey",
     notes={"delete": "409 while a group, user, api key or endpoint rule holds it."})
crud("groups", "identity", "group", "Group", sort="system code, then name", key_param="ScopedKey",
     notes={"delete": "409 while a user, api key or endpoint rule holds it."})
crud("users", "identity", "user", "User", sort="username",
     notes={"post": "Needs a password (400 missing_field at /password)."})
crud("api_keys", "identity", "api_key", "ApiKey", sort="system code, then name", key_param="ScopedKey", put_schema="ApiKeyPatch",
     create_schema="ApiKeyCreated",
     notes={"post": "The answer shows the key (<prefix>.<secret>) once; it is never returned again.",
            "put": "Merges the body over the stored key."})
crud("endpoints", "endpoints", "endpoint", "Endpoint", sort="service name, path, method, id")
crud("issuers", "identity", "issuer", "Issuer", sort="name")
# endpoints are addressed by id only
for m in ("get", "put", "delete"):
    paths["/api/v1/endpoints/{key}"][m]["parameters"][0] = PARAM("Id")
paths["/api/v1/endpoints/{id}"] = paths.pop("/api/v1/endpoints/{key}")

op("/api/v1/dataplanes", "get", "list_dataplanes", "dataplanes", "The data planes and what they applied",
   ok(200, listing("Dataplane")), "viewer")
op("/api/v1/snapshot", "get", "get_snapshot", "snapshots", "The current snapshot's identity (and body)",
   ok(200, REF("SnapshotInfo")), "viewer",
   params=[{"name": "body", "in": "query", "required": False, "description": "1 (or true) adds the redacted body",
            "schema": {"type": "string", "enum": ["1", "true"]}}])
op("/api/v1/signing_keys", "get", "list_signing_keys", "signing", "The signing keys, newest first",
   ok(200, listing("SigningKey")), "viewer")
op("/api/v1/signing_keys/{key}", "get", "get_signing_key", "signing", "One signing key by id or kid",
   ok(200, REF("SigningKey")), "viewer", errors=["404"],
   params=[{"name": "key", "in": "path", "required": True, "schema": {"type": "string"},
            "description": "the id or the kid"}])
op("/api/v1/signing_keys/rotate", "post", "rotate_signing_key", "signing", "Rotate: a new active key",
   ok(201, written("signing_key", "SigningKey"), "Created"), "owner", body=REF("RotateRequest"),
   params=[PARAM("Wait")], desc="The previous active key turns retiring for the longest access-token lifetime.")
op("/api/v1/jwks", "get", "get_jwks", "signing", "The public keys that verify tokens (active, then retiring)",
   ok(200, REF("Jwks")), "viewer")
op("/api/v1/authz/explain", "post", "explain", "authz", "What a data plane would decide for one request, and why",
   ok(200, REF("ExplainResponse")), "viewer", body=REF("ExplainRequest"), errors=["404"],
   desc="Writes nothing. 404 not_found at /user for an unknown user; 503 no_snapshot before the first snapshot.")
paths["/api/v1/authz/explain"]["post"]["responses"]["503"] = {"description": "no_snapshot", "content": ERR}
op("/api/v1/authz/shadow", "get", "shadow_stats", "authz", "Shadow-rule counters summed over connected data planes",
   ok(200, REF("ShadowStats")), "viewer")
op("/api/v1/cache/purge", "post", "purge_cache", "cache", "Drop a route's cached responses on every data plane",
   ok(202, REF("PurgeResponse"), "Accepted: queued to the connected data planes"), "editor (scoped)",
   body=REF("PurgeRequest"), errors=["404"], desc="Not a configuration write: no version, ?wait has no effect.")
op("/api/v1/health", "get", "health_summary", "health", "Summary of data planes and integrations",
   ok(200, REF("HealthSummary")), "viewer")
op("/api/v1/health/services", "get", "health_services", "health", "Upstream health as each data plane reports it",
   ok(200, REF("HealthServices")), "viewer",
   params=[{"name": "service", "in": "query", "required": False, "schema": NAME,
            "description": "keep only this service"}])
op("/api/v1/integrations", "get", "get_integrations", "integrations", "State of the Vault and Consul integrations",
   ok(200, REF("Integrations")), "viewer")
op("/api/v1/integrations/vault", "get", "get_vault_integration", "integrations", "State of the Vault integration",
   ok(200, REF("VaultIntegration")), "viewer")
op("/api/v1/integrations/consul", "get", "get_consul_integration", "integrations", "State of the Consul integration",
   ok(200, REF("ConsulIntegration")), "viewer")
op("/api/v1/integrations/vault/paths", "get", "list_vault_paths", "integrations", "LIST a folder of Vault's KV mount",
   ok(200, REF("VaultPaths")), "owner", errors=["400", "404"],
   params=[{"name": "prefix", "in": "query", "required": False, "schema": {"type": "string", "maxLength": 256},
            "description": "segments of [A-Za-z0-9._-] joined by /, one trailing / allowed; empty = the root"}],
   desc="404 when nothing is under the prefix; 503 unavailable when Vault is not configured or fails.")
paths["/api/v1/integrations/vault/paths"]["get"]["responses"]["503"] = {"description": "unavailable", "content": ERR}

# admin session
COOKIE_HDR = {"Set-Cookie": {"description": "cephalo_session=<64 hex>; Path=/; HttpOnly; SameSite=Strict[; Secure] "
                                            "(logout: an empty value with Max-Age=0)",
                             "schema": {"type": "string"}}}
op("/api/v1/admin/login", "post", "admin_login", "admin", "Log in with an admin account: a session cookie",
   ok(200, REF("LoginResponse"), "Logged in", COOKIE_HDR), "none", body=REF("LoginRequest"), security=[],
   desc="Wrong name or password, or a disabled account: 401 invalid_credentials (same answer and timing). "
        "Rate-limited per client IP and per name: 429 too_many_attempts with Retry-After. A request with an Origin "
        "header of another host is 403 csrf.")
login = paths["/api/v1/admin/login"]["post"]["responses"]
login["401"] = {"description": "invalid_credentials", "content": ERR}
login["403"] = {"description": "csrf: the Origin is not this host", "content": ERR}
login["429"] = {"description": "too_many_attempts",
                "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}, "content": ERR}
op("/api/v1/admin/logout", "post", "admin_logout", "admin", "End the session (the cookie expires)",
   {"200": {"description": "Logged out", "headers": COOKIE_HDR,
            "content": {"application/json": {"schema": obj({"logged_out": {"type": "boolean", "enum": [True]}},
                                                               ["logged_out"])}}}},
   "any", body=REF("EmptyObject"),
   desc="Only for a session: a bearer token caller gets 400 invalid (revoke a token with DELETE "
        "/api/v1/admin_tokens/{id}).")
op("/api/v1/admin/me", "get", "admin_me", "admin", "Who is calling", ok(200, REF("Me")), "any")

DATA = lambda name: obj({"data": arr(REF(name))}, ["data"])  # the list answer of the admin account resources
# admin accounts (owner only)
op("/api/v1/admin_accounts", "get", "list_admin_accounts", "admin", "List admin accounts (sorted by name)",
   ok(200, DATA("AdminAccount")), "owner")
op("/api/v1/admin_accounts", "post", "create_admin_account", "admin", "Create an admin account",
   ok(201, REF("AdminAccount"), "Created"), "owner", body=REF("AdminAccount"), errors=["409"],
   desc="Not a configuration write (no version, no ?wait); audited (entity admin_account).")
op("/api/v1/admin_accounts/{key}", "get", "get_admin_account", "admin", "Get an admin account",
   ok(200, REF("AdminAccount")), "owner", errors=["404"], params=[PARAM("AccountKey")])
op("/api/v1/admin_accounts/{key}", "put", "update_admin_account", "admin", "Update an admin account",
   ok(200, REF("AdminAccount")), "owner", body=REF("AdminAccountPatch"), errors=["404", "409"],
   params=[PARAM("AccountKey")])
op("/api/v1/admin_accounts/{key}", "delete", "delete_admin_account", "admin", "Delete an admin account",
   ok(200, REF("Deleted")), "owner", errors=["404", "409"], params=[PARAM("AccountKey")],
   desc="Ends its sessions and revokes its tokens; the last enabled owner cannot be deleted (409).")
# admin tokens
op("/api/v1/admin_tokens", "get", "list_admin_tokens", "admin",
   "List admin tokens (an owner: all; others: their account's and the one in use)", ok(200, DATA("AdminToken")),
   "any")
op("/api/v1/admin_tokens", "post", "create_admin_token", "admin", "Create an admin API token",
   ok(201, REF("AdminTokenCreated"), "Created"), "any", body=REF("AdminTokenRequest"), errors=["409"],
   desc="The token is shown once. A caller may only create a token with a role up to its own and systems within its "
        "own scope (403 forbidden). Not a configuration write; audited (entity admin_token).")
op("/api/v1/admin_tokens/{id}", "get", "get_admin_token", "admin", "Get an admin token",
   ok(200, REF("AdminToken")), "any", errors=["404"], params=[PARAM("Id")],
   desc="A token the caller may not see is 404.")
op("/api/v1/admin_tokens/{id}", "delete", "delete_admin_token", "admin", "Revoke an admin token",
   ok(200, REF("Deleted")), "any", errors=["404"], params=[PARAM("Id")],
   desc="Its own (its account's) tokens, or any for an owner; another is 404.")

# audit and history
FILTER = lambda name, desc, example=None: dict({"name": name, "in": "query", "required": False, "description": desc,
                                                "schema": {"type": "string", "minLength": 1, "maxLength": 256}},
                                               **({"example": example} if example else {}))
op("/api/v1/audit", "get", "list_audit", "history", "The audit log, newest first, filtered",
   ok(200, REF("AuditPage")), "viewer", errors=["400"], params=[
       FILTER("actor", "exact actor", "account:alice"),
       FILTER("action", "exact action", "update"),
       FILTER("entity_type", "exact entity type", "route"),
       FILTER("entity_id", "exact entity id", "12"),
       {"name": "version", "in": "query", "required": False, "description": "the configuration version",
        "schema": {"type": "integer", "format": "int64", "minimum": 0}},
       {"name": "since", "in": "query", "required": False, "description": "at or after this RFC 3339 UTC time (a "
        "prefix such as 2026-01-02 works)", "schema": {"type": "string"}, "example": "2026-01-02T03:04:05Z"},
       {"name": "until", "in": "query", "required": False, "description": "before this RFC 3339 UTC time",
        "schema": {"type": "string"}},
       dict(PARAMETERS["Limit500"], schema={"type": "integer", "minimum": 1, "maximum": 500, "default": 100}),
       PARAM("Before")],
   desc="Every filter is optional and exact; a bad value is 400 invalid with path /<parameter>.")
op("/api/v1/audit/{id}", "get", "get_audit_entry", "history", "One audit row", ok(200, REF("AuditEntry")), "viewer",
   errors=["400", "404"], params=[PARAM("Id")])
op("/api/v1/snapshots", "get", "list_snapshots", "history", "The snapshot history, newest first",
   ok(200, REF("SnapshotPage")), "viewer", errors=["400"],
   params=[dict(PARAMETERS["Limit500"], schema={"type": "integer", "minimum": 1, "maximum": 500, "default": 50}),
           PARAM("Before")])
op("/api/v1/snapshots/{version}", "get", "get_snapshot_version", "history", "One version (body redacted)",
   ok(200, REF("SnapshotVersion")), "viewer", errors=["400", "404"], params=[PARAM("Version")])
op("/api/v1/snapshots/{version}/diff", "get", "diff_snapshots", "history", "Diff of two versions",
   ok(200, REF("SnapshotDiff")), "viewer", errors=["400", "404"],
   params=[PARAM("Version"), {"name": "to", "in": "query", "required": False,
                              "description": "the other version (default: the current one); unknown: 404 at /to",
                              "schema": {"type": "integer", "format": "int64", "minimum": 1}}])
op("/api/v1/snapshots/{version}/rollback", "post", "rollback_snapshot", "history",
   "Restore the configuration of a version (as a new version)", ok(200, REF("RollbackResult")), "owner",
   body=REF("EmptyObject"), errors=["404", "409"], params=[PARAM("Version"), PARAM("Wait")],
   desc="Restores the configuration rows (systems, roles, groups, services, routes, endpoint rules, issuers) to that "
        "version's state, by diff; users, api keys, credentials, signing keys and admin accounts are never touched. "
        "409 not_restorable for a version stored before its state was kept; 409 conflict when a principal holds "
        "something the old state lacks.")
op("/api/v1/openapi.json", "get", "get_openapi", "meta", "This document",
   ok(200, {"type": "object", "description": "OpenAPI 3.0.3"}), "viewer")

doc = {
    "openapi": "3.0.3",
    "info": {
        "title": "Cephalo admin API",
        "version": "1",
        "description": (
            "The control plane's admin API (docs/admin-api.md). JSON in, JSON out. Every /api/ path needs an admin "
            "bearer token or an admin session cookie; a session's POST, PUT and DELETE also need the X-CSRF-Token "
            "the login answered. Checks happen in this order: authentication (401), path (404), method (405 with "
            "Allow), Content-Type of a POST/PUT (415), a declared Content-Length over 1 MiB (413), the body "
            "(400 bad_json: invalid JSON, a duplicate key; 400 invalid: not an object, a string holding \\u0000), "
            "the admin role (403), then the handler. Objects are addressed by id or name (systems by code, users "
            "by username, roles, groups and api keys by <system>:<name>, endpoint rules by id). id, created_at and "
            "updated_at are read-only. Every configuration write answers the new \"version\"; with ?wait=applied "
            "it also waits (at most 5 s) for the data planes. HEAD is answered like GET. x-cephalo-role gives the "
            "least admin role an operation needs (editor (scoped): an editor only for its systems).")},
    "tags": [{"name": t} for t in ["meta", "services", "routes", "endpoints", "identity", "dataplanes", "snapshots",
                                    "signing", "authz", "cache", "health", "integrations", "admin", "history"]],
    "security": READ_SEC,
    "paths": {p: {m: dict(o, responses=dict(sorted(o["responses"].items()))) for m, o in item.items()}
              for p, item in sorted(paths.items())},
    "components": {
        "securitySchemes": {
            "bearerToken": {"type": "http", "scheme": "bearer",
                            "description": "an admin API token (CEPHALO_ADMIN_TOKEN, or from /api/v1/admin_tokens)"},
            "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "cephalo_session",
                              "description": "set by POST /api/v1/admin/login"},
            "csrfToken": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token",
                          "description": "the login's csrf_token; required with the session cookie on POST, PUT and "
                                         "DELETE (403 csrf otherwise, also when Origin is not this host)"},
        },
        "parameters": PARAMETERS,
        "responses": RESPONSES,
        "schemas": dict(sorted(S.items())),
    },
}
json.dump(doc, sys.stdout, indent=1, ensure_ascii=True)
sys.stdout.write("\n")
