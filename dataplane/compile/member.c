/*
 * compile/member: reading one member of a validated snapshot object, defensively. The schema (proto/) checked the
 * body before any compile step runs; these checks only turn a validator gap into a NACK instead of a bad snapshot.
 */
#include <stdio.h>
#include "dataplane/compile/compile.h"

int cph_compile_u64(const json_t *obj, const char *name, uint64_t lo, uint64_t hi, uint64_t dflt, uint64_t *out, const char *at,
                    cph_error_t *err)
{
    const json_t *v = json_object_get(obj, name);
    char path[160];

    if (v == NULL || json_is_null(v)) {
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) < lo ||
        (uint64_t)json_integer_value(v) > hi) {
        snprintf(path, sizeof(path), "%s/%s", at, name);
        return cph_error_set(err, "invalid", path, "%s must be an integer in %llu..%llu", name, (unsigned long long)lo,
                             (unsigned long long)hi);
    }
    *out = (uint64_t)json_integer_value(v);
    return 0;
}
