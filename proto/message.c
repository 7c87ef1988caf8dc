/*
 * message: the nine protocol messages (PROTOCOL.md section 3) - their builders and the checker a receiver runs on
 * every frame before it trusts a single field.
 *
 * The checker is table-driven: one row per message type listing its required fields and their JSON types, so the
 * table is the executable form of the table in PROTOCOL.md. Extra fields are ignored (forward compatibility); a
 * missing field, a wrong JSON type or a negative integer makes the message bad. Builders never fail: out of memory
 * aborts, and a NULL string is sent as "".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "proto/log.h"
#include "proto/proto.h"

#define MODULE "proto/message"

#define DP_ID_MAX_CHARS 128
/* Longest epoch and hash a message may carry: what cph_applied_t holds, so a copy is never silently cut. */
#define EPOCH_MAX (sizeof(((cph_applied_t *)0)->epoch) - 1)
#define HASH_MAX (sizeof(((cph_applied_t *)0)->hash) - 1)
#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

typedef enum en_field_kind_t {
    F_STR,     /* any string */
    F_EPOCH,   /* a string that fits cph_applied_t.epoch */
    F_HASH,    /* a string that fits cph_applied_t.hash */
    F_DP_ID,   /* a string of 1..128 characters */
    F_UINT,    /* a non-negative JSON integer */
    F_BOOL,    /* true or false */
    F_OBJECT,  /* any object (the snapshot body, validated later by the schema) */
    F_APPLIED, /* {epoch, version, hash, source} */
    F_ERROR,   /* {code, path, message} */
    F_NAME,    /* a route name: 1..CPH_PURGE_ROUTE_MAX bytes of [A-Za-z0-9._-] */
    F_PREFIX,  /* null, or 1..CPH_PURGE_PREFIX_MAX bytes starting with '/', no control byte */
} field_kind_t;

typedef struct st_field_t {
    const char *name;
    field_kind_t kind;
} field_t;

static const field_t hello_fields[] = {{"dp_id", F_DP_ID},  {"hostname", F_STR},    {"pid", F_UINT},
                                       {"software", F_STR}, {"applied", F_APPLIED}, {NULL, F_STR}};
static const field_t welcome_fields[] = {{"epoch", F_EPOCH}, {"heartbeat_ms", F_UINT}, {NULL, F_STR}};
static const field_t snapshot_fields[] = {{"epoch", F_EPOCH}, {"version", F_UINT}, {"hash", F_HASH},
                                          {"schema", F_UINT}, {"body", F_OBJECT},  {NULL, F_STR}};
static const field_t ack_fields[] = {
    {"version", F_UINT}, {"hash", F_HASH}, {"apply_ms", F_UINT}, {"persisted", F_BOOL}, {NULL, F_STR}};
static const field_t nack_fields[] = {
    {"version", F_UINT}, {"hash", F_HASH}, {"applied", F_APPLIED}, {"error", F_ERROR}, {NULL, F_STR}};
static const field_t seq_fields[] = {{"seq", F_UINT}, {NULL, F_STR}};
static const field_t error_fields[] = {{"code", F_STR}, {"message", F_STR}, {NULL, F_STR}};
static const field_t purge_fields[] = {{"route", F_NAME}, {"prefix", F_PREFIX}, {NULL, F_STR}};

static const struct {
    const char *name;
    cph_msg_type_t type;
    const field_t *fields;
} messages[] = {
    {"hello", CPH_MSG_HELLO, hello_fields},
    {"welcome", CPH_MSG_WELCOME, welcome_fields},
    {"snapshot", CPH_MSG_SNAPSHOT, snapshot_fields},
    {"ack", CPH_MSG_ACK, ack_fields},
    {"nack", CPH_MSG_NACK, nack_fields},
    {"ping", CPH_MSG_PING, seq_fields},
    {"pong", CPH_MSG_PONG, seq_fields},
    {"error", CPH_MSG_ERROR, error_fields},
    {"purge", CPH_MSG_PURGE, purge_fields},
};

#define NUM_MESSAGES (sizeof(messages) / sizeof(messages[0]))

cph_msg_type_t cph_msg_type(const json_t *msg)
{
    const char *type = json_string_value(json_object_get(msg, "type"));
    size_t i;

    if (type == NULL)
        return CPH_MSG_UNKNOWN;
    for (i = 0; i != NUM_MESSAGES; ++i)
        if (strcmp(type, messages[i].name) == 0)
            return messages[i].type;
    return CPH_MSG_UNKNOWN;
}

/* Counts UTF-8 characters (jansson guarantees valid UTF-8): every byte that is not a continuation byte. */
static size_t utf8_chars(const char *s, size_t len)
{
    size_t i, n = 0;

    for (i = 0; i != len; ++i)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            ++n;
    return n;
}

static const char *child(char *buf, size_t cap, const char *base, const char *key)
{
    snprintf(buf, cap, "%s", base);
    cph_jsonptr_append(buf, cap, key);
    return buf;
}

static int check_str(const json_t *obj, const char *base, const char *key, size_t max_len, cph_error_t *err)
{
    const json_t *v = json_object_get(obj, key);
    char p[256];

    if (v == NULL)
        return cph_error_set(err, "missing_field", child(p, sizeof(p), base, key), "\"%s\" is required", key);
    if (!json_is_string(v))
        return cph_error_set(err, "invalid", child(p, sizeof(p), base, key), "\"%s\" must be a string", key);
    if (json_string_length(v) > max_len)
        return cph_error_set(err, "invalid", child(p, sizeof(p), base, key), "\"%s\" is longer than %zu bytes", key, max_len);
    return 0;
}

static int check_uint(const json_t *obj, const char *base, const char *key, cph_error_t *err)
{
    const json_t *v = json_object_get(obj, key);
    char p[256];

    if (v == NULL)
        return cph_error_set(err, "missing_field", child(p, sizeof(p), base, key), "\"%s\" is required", key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return cph_error_set(err, "invalid", child(p, sizeof(p), base, key), "\"%s\" must be a non-negative integer", key);
    return 0;
}

static int check_applied(const json_t *v, const char *at, cph_error_t *err)
{
    const char *source;
    char p[256];

    if (!json_is_object(v))
        return cph_error_set(err, "invalid", at, "\"applied\" must be an object");
    if (check_str(v, at, "epoch", EPOCH_MAX, err) != 0 || check_uint(v, at, "version", err) != 0 ||
        check_str(v, at, "hash", HASH_MAX, err) != 0 || check_str(v, at, "source", SIZE_MAX, err) != 0)
        return -1;
    source = json_string_value(json_object_get(v, "source"));
    if (strcmp(source, "none") == 0) {
        if (json_string_length(json_object_get(v, "epoch")) != 0 || json_string_length(json_object_get(v, "hash")) != 0 ||
            json_integer_value(json_object_get(v, "version")) != 0)
            return cph_error_set(err, "invalid", at, "with source \"none\", epoch and hash must be \"\" and version 0");
    } else if (strcmp(source, "disk") != 0 && strcmp(source, "cp") != 0) {
        return cph_error_set(err, "invalid", child(p, sizeof(p), at, "source"), "\"source\" must be \"disk\", \"cp\" or \"none\"");
    }
    return 0;
}

/* A route name as the snapshot schema spells it (proto/schema.c): 1-64 bytes of [A-Za-z0-9._-]. */
static int check_name(const json_t *v, const char *at, const char *key, cph_error_t *err)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);

    if (s == NULL)
        return cph_error_set(err, "invalid", at, "\"%s\" must be a string", key);
    if (len == 0 || len > CPH_PURGE_ROUTE_MAX || strspn(s, NAME_CHARS) != len)
        return cph_error_set(err, "invalid", at, "\"%s\" must be 1 to %d bytes of [A-Za-z0-9._-]", key, CPH_PURGE_ROUTE_MAX);
    return 0;
}

/* null, or a path prefix: 1-1024 bytes, the first '/', no NUL or other control byte (it is compared byte-wise). */
static int check_prefix(const json_t *v, const char *at, const char *key, cph_error_t *err)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);

    if (json_is_null(v))
        return 0;
    if (s == NULL)
        return cph_error_set(err, "invalid", at, "\"%s\" must be a string or null", key);
    if (len == 0 || len > CPH_PURGE_PREFIX_MAX || s[0] != '/')
        return cph_error_set(err, "invalid", at, "\"%s\" must be 1 to %d bytes starting with '/'", key, CPH_PURGE_PREFIX_MAX);
    for (size_t i = 0; i != len; ++i)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return cph_error_set(err, "invalid", at, "\"%s\" must not hold a control byte", key);
    return 0;
}

static int check_field(const json_t *msg, const field_t *f, cph_error_t *err)
{
    const json_t *v = json_object_get(msg, f->name);
    char p[256];

    child(p, sizeof(p), "", f->name);
    if (v == NULL)
        return cph_error_set(err, "missing_field", p, "\"%s\" is required", f->name);
    switch (f->kind) {
    case F_STR:
        return check_str(msg, "", f->name, SIZE_MAX, err);
    case F_EPOCH:
        return check_str(msg, "", f->name, EPOCH_MAX, err);
    case F_HASH:
        return check_str(msg, "", f->name, HASH_MAX, err);
    case F_DP_ID:
        if (check_str(msg, "", f->name, SIZE_MAX, err) != 0)
            return -1;
        if (json_string_length(v) == 0 || utf8_chars(json_string_value(v), json_string_length(v)) > DP_ID_MAX_CHARS)
            return cph_error_set(err, "invalid", p, "\"%s\" must be 1 to %d characters", f->name, DP_ID_MAX_CHARS);
        return 0;
    case F_UINT:
        return check_uint(msg, "", f->name, err);
    case F_BOOL:
        return json_is_boolean(v) ? 0 : cph_error_set(err, "invalid", p, "\"%s\" must be a boolean", f->name);
    case F_OBJECT:
        return json_is_object(v) ? 0 : cph_error_set(err, "invalid", p, "\"%s\" must be an object", f->name);
    case F_APPLIED:
        return check_applied(v, p, err);
    case F_ERROR:
        if (!json_is_object(v))
            return cph_error_set(err, "invalid", p, "\"%s\" must be an object", f->name);
        if (check_str(v, p, "code", SIZE_MAX, err) != 0 || check_str(v, p, "path", SIZE_MAX, err) != 0 ||
            check_str(v, p, "message", SIZE_MAX, err) != 0)
            return -1;
        return 0;
    case F_NAME:
        return check_name(v, p, f->name, err);
    case F_PREFIX:
        return check_prefix(v, p, f->name, err);
    }
    return cph_error_set(err, "invalid", p, "unexpected field kind");
}

int cph_msg_check(const json_t *msg, cph_error_t *err)
{
    const char *type;
    const field_t *f;
    size_t i;

    if (!json_is_object(msg))
        return cph_error_set(err, "bad_frame", "", "a message must be an object");
    if ((type = json_string_value(json_object_get(msg, "type"))) == NULL)
        return cph_error_set(err, "bad_frame", "/type", "a message must have a string \"type\"");
    for (i = 0; i != NUM_MESSAGES; ++i) {
        if (strcmp(type, messages[i].name) != 0)
            continue;
        for (f = messages[i].fields; f->name != NULL; ++f)
            if (check_field(msg, f, err) != 0)
                return -1;
        return 0;
    }
    return 0; /* an unknown type is ignored by receivers, so it is not an error */
}

/* ---------------------------------------------------------------- builders */

static json_t *checked(json_t *v)
{
    if (v == NULL)
        cph_fatal(MODULE, "out of memory building a message");
    return v;
}

/*
 * A JSON string from bytes that may not be valid UTF-8 (a hostname, or an error message that vsnprintf cut in the
 * middle of a character): invalid bytes become '?', so a builder never fails on its input. NULL becomes "".
 */
static json_t *str(const char *s)
{
    json_t *v;
    char *copy;
    size_t i, len;

    if (s == NULL)
        s = "";
    if ((v = json_string(s)) != NULL)
        return v;
    len = strlen(s);
    if ((copy = strdup(s)) == NULL)
        cph_fatal(MODULE, "out of memory");
    for (i = 0; i != len; ++i)
        if ((unsigned char)copy[i] >= 0x80)
            copy[i] = '?';
    v = checked(json_string(copy));
    free(copy);
    return v;
}

static json_t *applied_to_json(const cph_applied_t *a)
{
    if (a == NULL || a->source[0] == '\0' || strcmp(a->source, "none") == 0)
        return checked(json_pack("{s:s, s:I, s:s, s:s}", "epoch", "", "version", (json_int_t)0, "hash", "", "source", "none"));
    return checked(json_pack("{s:o, s:I, s:o, s:o}", "epoch", str(a->epoch), "version", (json_int_t)a->version, "hash",
                             str(a->hash), "source", str(a->source)));
}

json_t *cph_msg_hello(const char *dp_id, const char *hostname, long pid, const char *software, const cph_applied_t *applied)
{
    return checked(json_pack("{s:s, s:o, s:o, s:I, s:o, s:o}", "type", "hello", "dp_id", str(dp_id), "hostname", str(hostname),
                             "pid", (json_int_t)pid, "software", str(software), "applied", applied_to_json(applied)));
}

json_t *cph_msg_welcome(const char *epoch, uint64_t heartbeat_ms)
{
    return checked(json_pack("{s:s, s:o, s:I}", "type", "welcome", "epoch", str(epoch), "heartbeat_ms", (json_int_t)heartbeat_ms));
}

json_t *cph_msg_snapshot(const char *epoch, uint64_t version, const char *hash, json_t *body)
{
    return checked(json_pack("{s:s, s:o, s:I, s:o, s:i, s:O}", "type", "snapshot", "epoch", str(epoch), "version",
                             (json_int_t)version, "hash", str(hash), "schema", CPH_SCHEMA_VERSION, "body", body));
}

json_t *cph_msg_ack(uint64_t version, const char *hash, uint64_t apply_ms, int persisted)
{
    return checked(json_pack("{s:s, s:I, s:o, s:I, s:b}", "type", "ack", "version", (json_int_t)version, "hash", str(hash),
                             "apply_ms", (json_int_t)apply_ms, "persisted", persisted));
}

json_t *cph_msg_nack(uint64_t version, const char *hash, const cph_applied_t *applied, const cph_error_t *error)
{
    json_t *e = error != NULL
                    ? json_pack("{s:o, s:o, s:o}", "code", str(error->code), "path", str(error->path), "message", str(error->msg))
                    : json_pack("{s:s, s:s, s:s}", "code", "internal", "path", "", "message", "");

    return checked(json_pack("{s:s, s:I, s:o, s:o, s:o}", "type", "nack", "version", (json_int_t)version, "hash", str(hash),
                             "applied", applied_to_json(applied), "error", checked(e)));
}

json_t *cph_msg_ping(uint64_t seq)
{
    return checked(json_pack("{s:s, s:I}", "type", "ping", "seq", (json_int_t)seq));
}

json_t *cph_msg_pong(uint64_t seq)
{
    return checked(json_pack("{s:s, s:I}", "type", "pong", "seq", (json_int_t)seq));
}

json_t *cph_msg_error(const char *code, const char *message)
{
    return checked(json_pack("{s:s, s:o, s:o}", "type", "error", "code", str(code), "message", str(message)));
}

json_t *cph_msg_purge(const char *route, const char *prefix)
{
    return checked(
        json_pack("{s:s, s:o, s:o}", "type", "purge", "route", str(route), "prefix", prefix != NULL ? str(prefix) : json_null()));
}

int cph_applied_from_json(const json_t *obj, cph_applied_t *out)
{
    if (check_applied(obj, "/applied", NULL) != 0)
        return -1;
    memset(out, 0, sizeof(*out));
    snprintf(out->epoch, sizeof(out->epoch), "%s", json_string_value(json_object_get(obj, "epoch")));
    out->version = (uint64_t)json_integer_value(json_object_get(obj, "version"));
    snprintf(out->hash, sizeof(out->hash), "%s", json_string_value(json_object_get(obj, "hash")));
    snprintf(out->source, sizeof(out->source), "%s", json_string_value(json_object_get(obj, "source")));
    return 0;
}
