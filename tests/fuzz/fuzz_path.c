/*
 * fuzz_path: the one path normaliser, cph_path_canonicalize (proto/path.c). The data plane runs it on every request
 * (filter/sanitize.c): the raw path is never routed; the router, the endpoint rules and the upstream all see only its
 * output, and a refusal is 400 bad_path.
 *
 * So the danger is a normaliser whose output names another resource than the one the raw path names: a raw path that
 * an RFC 3986 server would resolve into a denied subtree must not come out of the gateway as an allowed path. The
 * harness checks that with an independent reference (ref_canonicalize below: split on '/', decode each byte once,
 * refuse what the contract refuses, re-encode, then RFC 3986 5.2.4 dot-segment removal over the segment list, empty
 * segments merged) and with the real router and endpoint rules of a fixed snapshot.
 *
 * Input: the raw path (the request target without its query), any bytes.
 *
 * Properties (a violation traps):
 *   - output bounds: at most 3 * len bytes, NUL-terminated, starting with '/', no "//", no "." or ".." segment,
 *     every byte an unreserved / sub-delim / ':' / '@' or an upper-case %XX of a byte that needs escaping;
 *   - idempotent: normalise(normalise(x)) == normalise(x) (an upstream normalising again sees the same path);
 *   - agreement with the reference: both refuse, or both accept with the same bytes;
 *   - never allowed only after normalisation: when the gateway allows the normalised path (route found, anonymous
 *     request allowed by the endpoint rules or the route's default), the reference resolution of the raw path is
 *     allowed too; and a raw path without dot segments keeps its (decoded, non-empty) segments, so it stays in the
 *     subtree it names.
 */
#include <stdint.h>
#include "fuzz_util.h"
#include "dataplane/compile/authz.h"
#include "dataplane/compile/router.h"

static cph_snapshot_t *snap;

static const char body[] =
    "{\"services\":[{\"name\":\"s\",\"targets\":[{\"url\":\"http://127.0.0.1:9\"}],\"system\":\"shop\"}],"
    "\"routes\":["
    "{\"name\":\"admin\",\"service\":\"s\",\"paths\":[\"/admin\",\"/pub/internal/\"],\"default_access\":\"deny\"},"
    "{\"name\":\"api\",\"service\":\"s\",\"paths\":[\"/api\"],\"default_access\":\"authenticated\"},"
    "{\"name\":\"pub\",\"service\":\"s\",\"paths\":[\"/pub\",\"/a%20b\",\"/~user\"],\"default_access\":\"public\"}],"
    "\"endpoints\":["
    "{\"id\":1,\"service\":\"s\",\"method\":\"*\",\"path\":\"/api/open/*\",\"public\":true},"
    "{\"id\":2,\"service\":\"s\",\"method\":\"GET\",\"path\":\"/api/items/{id}\",\"public\":true},"
    "{\"id\":3,\"service\":\"s\",\"method\":\"*\",\"path\":\"/pub/secret/*\",\"roles\":[{\"system\":\"shop\",\"name\":\"admin\"}]},"
    "{\"id\":4,\"service\":\"s\",\"method\":\"*\",\"path\":\"/admin/health\",\"public\":true}]}";

/* ---------------------------------------------------------------- reference */

static int ref_hex(unsigned char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* RFC 3986: unreserved, sub-delims but ';', ':' and '@' are written raw in a segment. */
static int ref_raw(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("-._~!$&'()*+,=:@", c) != NULL);
}

static int ref_refused(unsigned char c)
{
    return c < 0x20 || c == 0x7f || c == '\\' || c == ';' || c == '/';
}

/* One raw segment (no '/') -> its canonical spelling in out; -1 when refused. */
static long ref_segment(const unsigned char *s, size_t len, char *out)
{
    long o = 0;

    for (size_t i = 0; i < len; ++i) {
        unsigned char c = s[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            if (ref_hex(s[i + 1]) < 0 || ref_hex(s[i + 2]) < 0)
                return -1;
            c = (unsigned char)(ref_hex(s[i + 1]) * 16 + ref_hex(s[i + 2]));
            i += 2;
        }
        if (ref_refused(c))
            return -1;
        if (ref_raw(c))
            out[o++] = (char)c;
        else
            o += sprintf(out + o, "%%%02X", c);
    }
    return o;
}

typedef struct st_seg_t {
    size_t off, len; /* in the reference's segment buffer */
} seg_t;

/* The reference canonical form into out (3 * len + 1 bytes); returns its length or -1. *dots: a dot segment was seen. */
static long ref_canonicalize(const unsigned char *p, size_t len, char *out, int *dots)
{
    char *segbuf = malloc(3 * len + 1);
    seg_t *stack = malloc(sizeof(*stack) * (len + 1));
    size_t depth = 0, sb = 0, start = 1;
    long o = -1;
    int trailing = 0;

    *dots = 0;
    if (len == 0 || p[0] != '/')
        goto Exit;
    for (size_t i = 1; i <= len; ++i) {
        if (i != len && p[i] != '/')
            continue;
        long n = ref_segment(p + start, i - start, segbuf + sb);
        int last = i == len;
        if (n < 0)
            goto Exit;
        trailing = 0;
        if (n == 0 || (n == 1 && segbuf[sb] == '.') || (n == 2 && segbuf[sb] == '.' && segbuf[sb + 1] == '.')) {
            if (n != 0)
                *dots = 1;
            if (n == 2 && depth != 0)
                --depth;
            trailing = last;
        } else {
            stack[depth++] = (seg_t){sb, (size_t)n};
            sb += (size_t)n;
        }
        start = i + 1;
    }
    o = 0;
    for (size_t d = 0; d != depth; ++d) {
        out[o++] = '/';
        memcpy(out + o, segbuf + stack[d].off, stack[d].len);
        o += (long)stack[d].len;
    }
    if (depth == 0 || trailing)
        out[o++] = '/';
    out[o] = '\0';
Exit:
    free(segbuf);
    free(stack);
    return o;
}

/* ---------------------------------------------------------------- decision */

/* Whether an anonymous GET of canonical path p is allowed by the fixed snapshot (route found and authz allows). */
static int allowed(const char *p, size_t len)
{
    cph_route_match_t m;

    if (cph_router_match(snap->router, "", 0, p, len, CPH_METHOD_GET, &m) != 200)
        return 0;
    h2o_iovec_t up = cph_router_upstream_path(&m, p, len);
    return cph_authz_decide(snap, m.route, CPH_METHOD_GET, up.base, up.len, NULL, NULL) == CPH_AUTHZ_ALLOW;
}

/* ---------------------------------------------------------------- properties */

static int valid_output_byte(const char *out, size_t i, size_t len)
{
    unsigned char c = (unsigned char)out[i];

    if (c == '/')
        return 1;
    if (c != '%')
        return ref_raw(c);
    /* an escape: two upper-case hex digits of a byte that needs escaping and is not refused */
    if (i + 2 >= len || !strchr("0123456789ABCDEF", out[i + 1]) || !strchr("0123456789ABCDEF", out[i + 2]) || out[i + 1] == 0 ||
        out[i + 2] == 0)
        return 0;
    c = (unsigned char)(ref_hex((unsigned char)out[i + 1]) * 16 + ref_hex((unsigned char)out[i + 2]));
    return !ref_raw(c) && !ref_refused(c);
}

static void check_shape(const char *out, size_t olen, size_t len)
{
    FUZZ_CHECK(olen <= 3 * len && out[olen] == '\0' && strlen(out) == olen && out[0] == '/');
    FUZZ_CHECK(strstr(out, "//") == NULL);
    for (size_t i = 0; i < olen; ++i) {
        FUZZ_CHECK(valid_output_byte(out, i, olen));
        if (out[i] == '%')
            i += 2;
        if (out[i] == '/' && out[i + 1] == '.') /* "/." or "/.." ending a segment */
            FUZZ_CHECK(
                !(out[i + 2] == '/' || out[i + 2] == '\0' || (out[i + 2] == '.' && (out[i + 3] == '/' || out[i + 3] == '\0'))));
    }
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
    char *out = malloc(3 * size + 1), *again = NULL, *ref = malloc(3 * size + 1);
    size_t olen = 0, alen = 0;
    int rc, dots;
    long rlen;

    rc = cph_path_canonicalize((const char *)data, size, out, &olen);
    rlen = ref_canonicalize(data, size, ref, &dots);
    FUZZ_CHECK((rc == 0) == (rlen >= 0));
    if (rc != 0)
        goto Exit;
    check_shape(out, olen, size);
    FUZZ_CHECK((size_t)rlen == olen && memcmp(ref, out, olen) == 0);
    again = malloc(3 * olen + 1);
    FUZZ_CHECK(cph_path_canonicalize(out, olen, again, &alen) == 0 && alen == olen && memcmp(again, out, olen) == 0);
    if (allowed(out, olen))
        FUZZ_CHECK(allowed(ref, (size_t)rlen));
    if (!dots) {
        /* no dot segment: the same non-empty segments, so the same subtree (the reference builds it that way; the
         * real output must agree segment for segment, which the byte comparison above already proves) */
        FUZZ_CHECK(allowed(out, olen) == allowed(ref, (size_t)rlen));
    }
Exit:
    free(out);
    free(again);
    free(ref);
    return 0;
}
