/*
 * fuzz_snapshot: the data plane's side of the control-plane stream - the frame reader, the message checker and, for
 * a snapshot message, the schema validator, the canonical hash and the compile of every stage (cph_snapshot_build),
 * which is what the control thread runs on bytes from the socket (core/cpclient.c, core/control.c).
 *
 * Input: byte 0 picks the mode, the rest is the stream. Odd mode: the rest is one JSON payload and the harness writes
 * the 4-byte length in front of it (libFuzzer cannot keep a length prefix in step with the bytes it mutates, so this
 * is how the JSON side gets deep coverage); even mode: the rest is raw stream bytes, length prefixes included. Either
 * way the bytes are fed in chunks of 1 + (mode >> 1) bytes, as a socket would deliver them. The hash check is skipped
 * (any sender can compute a hash: it names a body, it does not authenticate it); the harness computes it instead.
 *
 * Properties (a violation traps):
 *   - after the reader failed once it keeps failing (PROTOCOL.md section 1);
 *   - every error is well formed (a code, NUL-terminated fields, a JSON pointer path);
 *   - a body the validator accepts has a canonical form and a hash (no float slipped through), and its canonical text
 *     parses back to an equal body;
 *   - a built snapshot routes its own first route path (the router agrees with what was compiled).
 */
#include <stdint.h>
#include "fuzz_util.h"
#include "dataplane/compile/router.h"

#define MAX_FRAME (4u * 1024 * 1024)

static void check_body(const json_t *msg)
{
    const json_t *body = json_object_get(msg, "body");
    cph_error_t err;
    char hash[CPH_HASH_SIZE], *canon;
    json_t *back;
    cph_snapshot_t *snap;

    memset(&err, 0, sizeof(err));
    if (cph_snapshot_validate(body, &err) != 0) {
        if (fuzz_verbose())
            fprintf(stderr, "fuzz: body refused: %s at %s: %s\n", err.code, err.path, err.msg);
        FUZZ_CHECK(fuzz_error_ok(&err));
        return;
    }
    FUZZ_CHECK(cph_snapshot_hash(body, hash) == 0);
    FUZZ_CHECK((canon = cph_json_canonical(body)) != NULL);
    FUZZ_CHECK((back = json_loads(canon, JSON_REJECT_DUPLICATES, NULL)) != NULL);
    FUZZ_CHECK(json_equal(back, (json_t *)body));
    json_decref(back);
    free(canon);
    if ((snap = cph_snapshot_build(body, "0123456789abcdef0123456789abcdef", 1, hash, "cp", &err)) == NULL) {
        if (fuzz_verbose())
            fprintf(stderr, "fuzz: body does not compile: %s at %s: %s\n", err.code, err.path, err.msg);
        FUZZ_CHECK(fuzz_error_ok(&err));
        return;
    }
    if (fuzz_verbose())
        fprintf(stderr, "fuzz: built %zu routes\n", snap->num_routes);
    for (size_t i = 0; i != snap->num_routes; ++i) {
        const cph_route_t *r = &snap->routes[i];
        cph_route_match_t m;
        /* host-restricted routes may lose a same-prefix tie to nothing: only check unrestricted, any-method ones */
        if (r->num_hosts == 0 && r->methods == CPH_METHOD_ANY && r->num_paths != 0)
            FUZZ_CHECK(cph_router_match(snap->router, "", 0, r->paths[0].base, r->paths[0].len, CPH_METHOD_GET, &m) == 200);
    }
    cph_snapshot_release(snap);
}

static void handle(const json_t *msg)
{
    cph_error_t err;
    cph_applied_t applied;

    memset(&err, 0, sizeof(err));
    if (cph_msg_check(msg, &err) != 0) {
        FUZZ_CHECK(fuzz_error_ok(&err));
        return;
    }
    switch (cph_msg_type(msg)) {
    case CPH_MSG_HELLO:
    case CPH_MSG_NACK:
        (void)cph_applied_from_json(json_object_get(msg, "applied"), &applied);
        break;
    case CPH_MSG_SNAPSHOT:
        check_body(msg);
        break;
    default:
        break;
    }
}

/* Feeds len bytes in chunks and handles every frame; returns -1 once the reader failed. */
static int feed(cph_frame_reader_t *r, const uint8_t *data, size_t len, size_t chunk)
{
    cph_error_t err;
    json_t *msg;
    int rc = 0;

    for (size_t off = 0; off < len || len == 0; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        cph_frame_reader_feed(r, data + off, n);
        memset(&err, 0, sizeof(err));
        while ((rc = cph_frame_reader_next(r, &msg, &err)) == 1) {
            handle(msg);
            json_decref(msg);
        }
        if (rc < 0) {
            FUZZ_CHECK(fuzz_error_ok(&err));
            FUZZ_CHECK(cph_frame_reader_next(r, &msg, &err) == -1); /* unusable from now on */
            return -1;
        }
        if (len == 0)
            break;
    }
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cph_frame_reader_t r;
    uint8_t mode, head[4];
    size_t chunk;

    if (size < 1)
        return 0;
    mode = data[0], ++data, --size;
    chunk = 1 + (size_t)(mode >> 1);
    if (mode & 1)
        chunk = chunk * 64; /* whole JSON payloads are long: socket-sized chunks */
    cph_frame_reader_init(&r, MAX_FRAME);
    if (mode & 1) {
        head[0] = (uint8_t)(size >> 24), head[1] = (uint8_t)(size >> 16), head[2] = (uint8_t)(size >> 8), head[3] = (uint8_t)size;
        if (feed(&r, head, sizeof(head), sizeof(head)) == 0)
            feed(&r, data, size, chunk);
    } else {
        feed(&r, data, size, chunk);
    }
    cph_frame_reader_dispose(&r);
    return 0;
}
