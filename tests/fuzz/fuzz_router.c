/*
 * fuzz_router: the route matcher (compile/router.c) as filter/router.c drives it: the Host header or :authority
 * normalised by cph_router_host_normalize, the method by cph_method_from, then cph_router_match on the canonical path
 * (and, to probe the matcher's own bounds, on the raw bytes too), then cph_router_upstream_path.
 *
 * The snapshot is compiled once: nested prefixes with and without a trailing '/', the root, a wildcard and an exact
 * host on the same prefix as a host-less route, method lists, strip_prefix, and names chosen so that the tie rules
 * (routes with hosts first, then by name) decide.
 *
 * Input: "<method>\n<host>\n<path>" (missing parts are empty).
 *
 * Properties (a violation traps): the result equals a brute-force reference over the routes' JSON (PROTOCOL.md
 * section 5: the longest matching prefix among routes whose hosts match; a prefix "/a" matches "/a" and "/a/...", a
 * prefix "/a/" everything below it; at that prefix the first route - hosts first, then by name - allowing the method
 * wins, else 405 with the union of the methods), status, route and allowed methods alike; the normalised host is
 * lower-case and within its buffer; the upstream path starts with '/' and is the path or a suffix of it.
 */
#include <stdint.h>
#include "fuzz_util.h"
#include "dataplane/compile/router.h"

#define MAX_HOST 256

static cph_snapshot_t *snap;

static const char body[] =
    "{\"services\":[{\"name\":\"s\",\"targets\":[{\"url\":\"http://127.0.0.1:9\"}]}],\"routes\":["
    "{\"name\":\"root\",\"service\":\"s\",\"paths\":[\"/\"],\"hosts\":[\"root.example\"]},"
    "{\"name\":\"a\",\"service\":\"s\",\"paths\":[\"/a\",\"/x/y/\"],\"methods\":[\"GET\",\"HEAD\"]},"
    "{\"name\":\"a-post\",\"service\":\"s\",\"paths\":[\"/a\"],\"methods\":[\"POST\"],\"strip_prefix\":true},"
    "{\"name\":\"a-slash\",\"service\":\"s\",\"paths\":[\"/a/\"],\"methods\":[\"PUT\",\"DELETE\"],\"strip_prefix\":true},"
    "{\"name\":\"ab\",\"service\":\"s\",\"paths\":[\"/a/b\",\"/a/b/c/d\"],\"strip_prefix\":true},"
    "{\"name\":\"ab-host\",\"service\":\"s\",\"paths\":[\"/a/b\"],\"hosts\":[\"*.example.com\",\"exact.test\"],"
    "\"methods\":[\"GET\"]},"
    "{\"name\":\"ab-host2\",\"service\":\"s\",\"paths\":[\"/a/b\"],\"hosts\":[\"api.test\",\"example.com\"]},"
    "{\"name\":\"deep\",\"service\":\"s\",\"paths\":[\"/a/b/c/\"],\"methods\":[\"OPTIONS\",\"TRACE\",\"CONNECT\",\"PATCH\"]},"
    "{\"name\":\"enc\",\"service\":\"s\",\"paths\":[\"/%C3%A9t%C3%A9\",\"/z\"],\"hosts\":[\"*.z.test\"]}]}";

typedef struct st_ref_route_t {
    const char *name;
    const char *paths[3];
    const char *hosts[3];
    uint32_t methods;
} ref_route_t;

/* The same routes, as the reference reads them, sorted by the tie rule (hosts first, then by name). */
static const ref_route_t refs[] = {
    {"ab-host", {"/a/b"}, {"*.example.com", "exact.test"}, CPH_METHOD_GET},
    {"ab-host2", {"/a/b"}, {"api.test", "example.com"}, CPH_METHOD_ANY},
    {"enc", {"/%C3%A9t%C3%A9", "/z"}, {"*.z.test"}, CPH_METHOD_ANY},
    {"root", {"/"}, {"root.example"}, CPH_METHOD_ANY},
    {"a", {"/a", "/x/y/"}, {NULL}, CPH_METHOD_GET | CPH_METHOD_HEAD},
    {"a-post", {"/a"}, {NULL}, CPH_METHOD_POST},
    {"a-slash", {"/a/"}, {NULL}, CPH_METHOD_PUT | CPH_METHOD_DELETE},
    {"ab", {"/a/b", "/a/b/c/d"}, {NULL}, CPH_METHOD_ANY},
    {"deep", {"/a/b/c/"}, {NULL}, CPH_METHOD_OPTIONS | CPH_METHOD_TRACE | CPH_METHOD_CONNECT | CPH_METHOD_PATCH},
};
#define NUM_REFS (sizeof(refs) / sizeof(refs[0]))

static int ref_prefix_matches(const char *prefix, const char *path, size_t len)
{
    size_t n = strlen(prefix);

    if (n > len || memcmp(prefix, path, n) != 0)
        return 0;
    return n == len || prefix[n - 1] == '/' || path[n] == '/';
}

static int ref_host_matches(const ref_route_t *r, const char *host, size_t len)
{
    if (r->hosts[0] == NULL)
        return 1;
    for (size_t i = 0; i != 3 && r->hosts[i] != NULL; ++i) {
        const char *h = r->hosts[i];
        size_t n = strlen(h);
        if (h[0] == '*' ? (len > n - 1 && memcmp(host + len - (n - 1), h + 1, n - 1) == 0) : (n == len && memcmp(h, host, n) == 0))
            return 1;
    }
    return 0;
}

/* Brute force: the longest prefix with a host-matching route, then the tie rule. */
static int ref_match(const char *host, size_t hlen, const char *path, size_t len, uint32_t method, const char **name,
                     size_t *prefix_len, uint32_t *allow)
{
    size_t best = 0;
    int found = 0;

    for (size_t i = 0; i != NUM_REFS; ++i)
        for (size_t p = 0; p != 3 && refs[i].paths[p] != NULL; ++p)
            if (ref_host_matches(&refs[i], host, hlen) && ref_prefix_matches(refs[i].paths[p], path, len) &&
                (!found || strlen(refs[i].paths[p]) > best))
                best = strlen(refs[i].paths[p]), found = 1;
    *name = NULL, *allow = 0, *prefix_len = best;
    if (!found)
        return 404;
    for (size_t i = 0; i != NUM_REFS; ++i)
        for (size_t p = 0; p != 3 && refs[i].paths[p] != NULL; ++p) {
            if (strlen(refs[i].paths[p]) != best || !ref_prefix_matches(refs[i].paths[p], path, len) ||
                !ref_host_matches(&refs[i], host, hlen))
                continue;
            if (refs[i].methods == CPH_METHOD_ANY || (refs[i].methods & method) != 0) {
                *name = refs[i].name;
                return 200;
            }
            if (*name == NULL)
                *name = refs[i].name;
            *allow |= refs[i].methods;
        }
    return 405;
}

static void check(const char *host, size_t hlen, const char *path, size_t len, uint32_t method)
{
    cph_route_match_t m;
    const char *name;
    size_t prefix_len;
    uint32_t allow;
    int st = cph_router_match(snap->router, host, hlen, path, len, method, &m);
    int want = len != 0 && path[0] == '/' ? ref_match(host, hlen, path, len, method, &name, &prefix_len, &allow) : 404;

    FUZZ_CHECK(st == want);
    if (st == 404)
        return;
    FUZZ_CHECK(m.route != NULL && strcmp(m.route->name, name) == 0);
    if (st == 405) {
        FUZZ_CHECK(m.allow == allow);
        return;
    }
    FUZZ_CHECK(m.prefix_len == prefix_len);
    h2o_iovec_t up = cph_router_upstream_path(&m, path, len);
    FUZZ_CHECK(up.len != 0 && up.base[0] == '/');
    if (m.route->strip_prefix)
        FUZZ_CHECK((up.base >= path && up.base + up.len == path + len) || up.len == 1);
    else
        FUZZ_CHECK(up.base == path && up.len == len);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    snap = fuzz_snapshot(body);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data, *nl1 = memchr(in, '\n', size), *nl2 = NULL;
    const char *method = in, *rawhost = "", *path = "";
    size_t mlen = size, rhlen = 0, plen = 0, hlen, clen;
    char host[MAX_HOST], *canon;
    uint32_t bit;

    if (nl1 != NULL) {
        mlen = (size_t)(nl1 - in);
        rawhost = nl1 + 1;
        nl2 = memchr(rawhost, '\n', size - mlen - 1);
        rhlen = nl2 != NULL ? (size_t)(nl2 - rawhost) : size - mlen - 1;
        if (nl2 != NULL)
            path = nl2 + 1, plen = size - (size_t)(path - in);
    }
    bit = cph_method_from(method, mlen);
    hlen = cph_router_host_normalize(rawhost, rhlen, host, sizeof(host));
    FUZZ_CHECK(hlen < sizeof(host) && (hlen == 0 || host[hlen] == '\0'));
    for (size_t i = 0; i != hlen; ++i)
        FUZZ_CHECK(!(host[i] >= 'A' && host[i] <= 'Z'));
    check(host, hlen, path, plen, bit); /* the matcher on any bytes */
    canon = malloc(3 * plen + 1);
    if (cph_path_canonicalize(path, plen, canon, &clen) == 0)
        check(host, hlen, canon, clen, bit); /* what filter/router.c really gives it */
    free(canon);
    return 0;
}
