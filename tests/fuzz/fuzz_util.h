/*
 * fuzz_util: what the harnesses of tests/fuzz/ share - the property check that aborts the run (libFuzzer then saves
 * the input as a crash), a snapshot compiled once from a JSON literal, and quiet logs. Header-only, so each harness
 * stays one file plus replay_main.c or libFuzzer.
 */
#ifndef CPH_FUZZ_UTIL_H
#define CPH_FUZZ_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "proto/log.h"
#include "proto/proto.h"
#include "dataplane/core/snapshot.h"

/* A violated property: say which, then trap so that libFuzzer (or ctest) reports the input. */
#define FUZZ_CHECK(cond)                                                                                                           \
    do {                                                                                                                           \
        if (!(cond)) {                                                                                                             \
            fprintf(stderr, "fuzz: property violated: %s (%s:%d)\n", #cond, __FILE__, __LINE__);                                   \
            __builtin_trap();                                                                                                      \
        }                                                                                                                          \
    } while (0)

/* The harness's own setup went wrong (not a finding): abort loudly. */
#define FUZZ_SETUP(cond, ...)                                                                                                      \
    do {                                                                                                                           \
        if (!(cond)) {                                                                                                             \
            fprintf(stderr, "fuzz setup: " __VA_ARGS__);                                                                           \
            fputc('\n', stderr);                                                                                                   \
            abort();                                                                                                               \
        }                                                                                                                          \
    } while (0)

/* Only errors reach stderr: a compile warning per input would drown the fuzzer's own output. */
static inline void fuzz_quiet(void)
{
    cph_log_set_level(CPH_LOG_ERROR);
}

/* CEPHALO_FUZZ_VERBOSE=1: harnesses say what became of each input (for curating seeds; never while fuzzing). */
static inline int fuzz_verbose(void)
{
    static int v = -1;

    if (v < 0)
        v = getenv("CEPHALO_FUZZ_VERBOSE") != NULL;
    return v;
}

/* A snapshot of body (JSON text) that must build (the harness's fixed configuration). */
static inline cph_snapshot_t *fuzz_snapshot(const char *text)
{
    json_error_t jerr;
    json_t *body = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    cph_error_t err;
    cph_snapshot_t *snap;

    memset(&err, 0, sizeof(err));
    FUZZ_SETUP(body != NULL, "bad fixture JSON: %s (line %d)", jerr.text, jerr.line);
    snap = cph_snapshot_build(body, "0123456789abcdef0123456789abcdef", 1, "sha256:fuzz", "cp", &err);
    FUZZ_SETUP(snap != NULL, "fixture does not build: %s at %s: %s", err.code, err.path, err.msg);
    json_decref(body);
    return snap;
}

/* An error as the code fills it: NUL-terminated fields, a code, and a JSON pointer ("" or starting with '/'). */
static inline int fuzz_error_ok(const cph_error_t *err)
{
    return memchr(err->code, '\0', sizeof(err->code)) != NULL && memchr(err->path, '\0', sizeof(err->path)) != NULL &&
           memchr(err->msg, '\0', sizeof(err->msg)) != NULL && err->code[0] != '\0' &&
           (err->path[0] == '\0' || err->path[0] == '/');
}

/* Whether v holds, at any depth, a string with a NUL byte or a real (what must never be stored or sent). */
static inline int fuzz_json_has_nul_or_real(const json_t *v)
{
    const char *k;
    json_t *item;
    size_t i;

    if (json_is_string(v))
        return json_string_length(v) != strlen(json_string_value(v));
    if (json_is_real(v))
        return 1;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, item)
        {
            if (fuzz_json_has_nul_or_real(item))
                return 1;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, item)
        {
            if (fuzz_json_has_nul_or_real(item))
                return 1;
        }
    }
    return 0;
}

#endif
