/*
 * path: the one canonical form of a request path, shared by the data plane (router and upstream see what it returns)
 * and the schema validator (a route path must already be canonical).
 *
 * One pass over the input writes the output segment by segment: every byte, raw or percent-decoded (once), is
 * checked, then written raw when RFC 3986 allows it raw in a segment (unreserved, sub-delims, ':' and '@') or as an
 * upper-case %XX otherwise. Because '.' is unreserved it is always written raw, so a finished segment is a dot
 * segment exactly when its output is "." or "..", whatever mix of '.' and %2e spelled it; resolving it is then a
 * matter of moving the write position back. Empty segments are dropped as they end, which merges runs of '/'.
 *
 * Refused: anything a server or an upstream might read differently from us - an encoded '/' or '\', a raw '\',
 * control bytes (raw or encoded), ';' (raw or encoded: path parameters such as "/..;/" are read as dot segments by
 * some servlet containers) and broken escapes. The output is a fixed point: canonicalising it returns it unchanged.
 */
#include <stdint.h>
#include "proto/proto.h"

/* per byte: 0 = refused, 1 = written raw, 2 = written as %XX */
enum { REFUSE = 0, RAW = 1, ENCODE = 2 };

static unsigned char byte_class(unsigned char c)
{
    if (c < 0x20 || c == 0x7f || c == '\\' || c == ';' || c == '/')
        return REFUSE;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return RAW;
    switch (c) {
    case '-':
    case '.':
    case '_':
    case '~': /* unreserved */
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')': /* sub-delims (';' refused above) */
    case '*':
    case '+':
    case ',':
    case '=':
    case ':':
    case '@':
        return RAW;
    default:
        return ENCODE;
    }
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Ends the segment out[seg..*o): drops it when empty, "." or ".." (the latter also drops the segment before it,
 * never going above the root). On a separator a kept segment gets its '/'. Returns the start of the next segment.
 */
static size_t end_segment(char *out, size_t seg, size_t *o, int separator)
{
    size_t n = *o - seg;

    if (n == 1 && out[seg] == '.') {
        *o = seg;
    } else if (n == 2 && out[seg] == '.' && out[seg + 1] == '.') {
        *o = seg;
        if (seg > 1) {
            /* out[seg - 1] is the '/' ending the previous segment: go back to just after the '/' before it */
            size_t p = seg - 1;
            while (p > 0 && out[p - 1] != '/')
                --p;
            *o = p;
        }
    } else if (n != 0 && separator) {
        out[(*o)++] = '/';
    }
    return *o;
}

int cph_path_canonicalize(const char *path, size_t len, char *out, size_t *outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *in = (const unsigned char *)path;
    size_t o = 1, seg = 1;

    if (len == 0 || in[0] != '/')
        return -1;
    out[0] = '/';
    for (size_t i = 1; i < len; ++i) {
        unsigned char c = in[i];
        if (c == '/') {
            seg = end_segment(out, seg, &o, 1);
            continue;
        }
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= len) /* needs two more bytes */
                return -1;
            if ((hi = hexval(in[i + 1])) < 0 || (lo = hexval(in[i + 2])) < 0)
                return -1;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        switch (byte_class(c)) {
        case REFUSE:
            return -1;
        case RAW:
            out[o++] = (char)c;
            break;
        default:
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
            break;
        }
    }
    end_segment(out, seg, &o, 0);
    out[o] = '\0';
    *outlen = o;
    return 0;
}
