/*
 * schema_kind: a route's kind (PROTOCOL.md section 5, "route kinds"). "proxy" (the default, also when "kind" is
 * absent) forwards to the route's service; "pdf" renders to PDF (its "pdf" object, proto/schema_pdf.c); "aggregate"
 * fans out to several services (its "aggregate" object, proto/schema_aggregate.c). A route carries the configuration
 * object of its own kind and no other, so a body never holds configuration that nothing reads; websocket tunnelling
 * is a proxy route's business only.
 */
#include <string.h>
#include "proto/proto.h"
#include "proto/schema_internal.h"

#define MODULE "proto/schema_kind"

static const char *const kind_values[] = {"proxy", "pdf", "aggregate", NULL};
#define KIND_PDF 1
#define KIND_AGGREGATE 2

/* The member the kind k wants (NULL for proxy). */
static const char *config_member(size_t k)
{
    return k == KIND_PDF ? "pdf" : k == KIND_AGGREGATE ? "aggregate" : NULL;
}

int cph_schema_route_check_kind(const json_t *route, const char *base, cph_error_t *err)
{
    static const char *const members[] = {"pdf", "aggregate"};
    const json_t *cfg, *policies;
    size_t kind;
    char p[256], pp[256];

    if (cph_schema_check_enum_member(route, base, "kind", 0, kind_values, &kind, err) != 0)
        return -1;
    if (kind == SIZE_MAX)
        kind = 0;
    for (size_t i = 0; i != sizeof(members) / sizeof(members[0]); ++i) {
        const char *want = config_member(kind);
        if (json_object_get(route, members[i]) != NULL && (want == NULL || strcmp(want, members[i]) != 0))
            return cph_error_set(err, "invalid", cph_schema_at_key(p, base, members[i]),
                                 "\"%s\" belongs to a route of kind \"%s\" only", members[i], members[i]);
    }
    policies = json_object_get(route, "policies");
    if (kind != 0 && json_object_get(policies, "websocket") != NULL)
        return cph_error_set(err, "invalid", cph_schema_at_key(p, cph_schema_at_key(pp, base, "policies"), "websocket"),
                             "only a route of kind \"proxy\" can tunnel websockets");
    if (kind == 0)
        return 0;
    if (cph_schema_get_member(route, base, config_member(kind), JSON_OBJECT, 1, &cfg, err) != 0)
        return -1;
    cph_schema_at_key(p, base, config_member(kind));
    return kind == KIND_PDF ? cph_schema_pdf_check(cfg, p, err) : cph_schema_aggregate_check(cfg, p, err);
}
