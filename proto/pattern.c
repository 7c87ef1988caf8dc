/*
 * pattern: the syntax of an endpoint rule's path pattern, shared by the control plane's store (what an admin may
 * write) and the snapshot schema (what a data plane accepts), so both sides agree on what a pattern is.
 *
 * A pattern is one of three kinds: exact ("/orders"), template ("/orders/{id}": a "{name}" segment stands for one
 * path segment) and prefix ("/orders/" followed by a last segment "*", which stands for everything below); a
 * template may end in a "*" segment too. The data plane picks the most specific rule, so a pattern must mean exactly one
 * thing: its literal parts must already be in the canonical form the data plane matches requests in
 * (cph_path_canonicalize), or "/a/../admin" or "/a%2fb" could be written as a rule that looks like it protects
 * something it does not. The check replaces every parameter by a plain segment and drops the final "*", then asks
 * the canonicaliser whether the result is a fixed point.
 */
#include <string.h>
#include "proto/proto.h"

#define PARAM_NAME_MAX 32

/* "{name}" with name [A-Za-z_][A-Za-z0-9_]{0,31}. */
static int is_param(const char *seg, size_t len)
{
    if (len < 3 || len - 2 > PARAM_NAME_MAX || seg[0] != '{' || seg[len - 1] != '}')
        return 0;
    for (size_t i = 1; i != len - 1; ++i) {
        char c = seg[i];
        int letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!letter && !(i > 1 && c >= '0' && c <= '9'))
            return 0;
    }
    return 1;
}

/* Has the parameter seg[0..len) already appeared among the first n of names? */
static int param_seen(const char *const *names, const size_t *lens, size_t n, const char *seg, size_t len)
{
    for (size_t i = 0; i != n; ++i)
        if (lens[i] == len && memcmp(names[i], seg, len) == 0)
            return 1;
    return 0;
}

/*
 * Walks the segments of pattern (len bytes, starting with '/') and writes into sub the path the canonical check
 * sees: a parameter becomes "p", a final "*" segment disappears (leaving "/a/"), literal segments are copied.
 */
static int substitute(const char *pattern, size_t len, char *sub, size_t *sublen, const char *path, cph_error_t *err)
{
    const char *names[CPH_ENDPOINT_PATTERN_PARAMS_MAX], *p = pattern, *end = pattern + len;
    size_t lens[CPH_ENDPOINT_PATTERN_PARAMS_MAX], nparams = 0, n = 0;

    while (p != end) { /* p is at a '/' */
        const char *seg = ++p, *slash = memchr(seg, '/', (size_t)(end - seg));
        size_t seglen = (size_t)((slash != NULL ? slash : end) - seg);
        sub[n++] = '/';
        if (seglen == 1 && seg[0] == '*') {
            if (slash != NULL)
                return cph_error_set(err, "invalid", path, "'*' may only be the last segment of a path pattern");
        } else if (is_param(seg, seglen)) {
            if (param_seen(names, lens, nparams, seg, seglen))
                return cph_error_set(err, "invalid", path, "the parameter %.*s is used twice", (int)seglen, seg);
            if (nparams == CPH_ENDPOINT_PATTERN_PARAMS_MAX)
                return cph_error_set(err, "invalid", path, "a path pattern has at most %d parameters",
                                     CPH_ENDPOINT_PATTERN_PARAMS_MAX);
            names[nparams] = seg, lens[nparams++] = seglen;
            sub[n++] = 'p';
        } else if (memchr(seg, '{', seglen) != NULL || memchr(seg, '}', seglen) != NULL || memchr(seg, '*', seglen) != NULL) {
            return cph_error_set(err, "invalid", path,
                                 "'{name}' (name [A-Za-z_][A-Za-z0-9_]{0,31}) and '*' must be whole segments ('*' only the last)");
        } else {
            memcpy(sub + n, seg, seglen);
            n += seglen;
        }
        p = seg + seglen;
    }
    sub[n] = '\0';
    *sublen = n;
    return 0;
}

int cph_endpoint_pattern_check(const char *pattern, const char *path, cph_error_t *err)
{
    char sub[CPH_ENDPOINT_PATTERN_MAX + 1], canon[3 * CPH_ENDPOINT_PATTERN_MAX + 1];
    size_t len = pattern != NULL ? strnlen(pattern, CPH_ENDPOINT_PATTERN_MAX + 1) : 0, sublen = 0, canonlen = 0;

    if (len == 0 || len > CPH_ENDPOINT_PATTERN_MAX || pattern[0] != '/')
        return cph_error_set(err, "invalid", path, "a path pattern starts with '/' and has at most %d bytes",
                             CPH_ENDPOINT_PATTERN_MAX);
    if (substitute(pattern, len, sub, &sublen, path, err) != 0)
        return -1;
    if (cph_path_canonicalize(sub, sublen, canon, &canonlen) != 0 || canonlen != sublen || memcmp(canon, sub, sublen) != 0)
        return cph_error_set(err, "invalid", path,
                             "the path pattern is not canonical (dot segments, '//', ';', needless or encoded '/' escapes, "
                             "control bytes)");
    return 0;
}
