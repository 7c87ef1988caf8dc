/*
 * persist: atomic snapshot files, in the manner of Redis' rdbSave (tmp file, fsync, rename, fsync the directory).
 *
 * The previous snapshot.json is hard-linked to snapshot.prev.json before the new one is renamed over it, so at every
 * instant snapshot.json is either the old or the new file, never missing nor partial, and a crash at any point boots
 * from a complete file. Reading back trusts nothing: size cap, duplicate keys, identity types, the hash recomputed from
 * the body and the schema validator all have to agree before a file is used.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "proto/log.h"
#include "dataplane/core/persist.h"

#define MODULE "dp/core/persist"
#define MAX_FILE_SIZE CPH_FRAME_MAX_DEFAULT

static void join(char *out, size_t cap, const char *dir, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

int cph_persist_ensure_dir(const char *dir, cph_error_t *err)
{
    char buf[PATH_MAX];
    struct stat st;

    if (strlen(dir) == 0 || strlen(dir) >= sizeof(buf))
        return cph_error_set(err, "invalid", "", "bad state directory path");
    strcpy(buf, dir);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return cph_error_set(err, "io", "", "cannot create %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return cph_error_set(err, "io", "", "cannot create %s: %s", buf, strerror(errno));
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return cph_error_set(err, "io", "", "%s is not a directory", buf);
    if ((st.st_mode & 077) != 0) {
        cph_log_warn(MODULE, "state directory %s was mode %o: narrowing it to 0700", buf, (unsigned)(st.st_mode & 0777));
        if (chmod(buf, 0700) != 0)
            return cph_error_set(err, "io", "", "cannot chmod %s: %s", buf, strerror(errno));
    }
    return 0;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len != 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), ret;

    if (fd == -1)
        return -1;
    ret = fsync(fd);
    close(fd);
    return ret;
}

static char *serialise(const char *epoch, uint64_t version, const char *hash, const json_t *body)
{
    json_t *doc = json_pack("{s:s, s:I, s:s, s:i, s:O}", "epoch", epoch, "version", (json_int_t)version, "hash", hash, "schema",
                            CPH_SCHEMA_VERSION, "body", (json_t *)body);
    char *text;

    if (doc == NULL)
        return NULL;
    text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    return text;
}

int cph_persist_write(const char *dir, const char *epoch, uint64_t version, const char *hash, const json_t *body, int keep_prev,
                      cph_error_t *err)
{
    char tmp[PATH_MAX], cur[PATH_MAX], prev[PATH_MAX];
    char *text = NULL;
    int fd = -1, ret = -1;

    join(tmp, sizeof(tmp), dir, CPH_PERSIST_TMP);
    join(cur, sizeof(cur), dir, CPH_PERSIST_FILE);
    join(prev, sizeof(prev), dir, CPH_PERSIST_PREV);
    if ((text = serialise(epoch, version, hash, body)) == NULL) {
        cph_error_set(err, "invalid", "", "snapshot cannot be serialised");
        goto Exit;
    }
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600)) == -1 || fchmod(fd, 0600) != 0 ||
        write_all(fd, text, strlen(text)) != 0 || fsync(fd) != 0) {
        cph_error_set(err, "io", "", "cannot write %s: %s", tmp, strerror(errno));
        goto Exit;
    }
    close(fd);
    fd = -1;
    if (keep_prev) {
        if (unlink(prev) != 0 && errno != ENOENT) {
            cph_error_set(err, "io", "", "cannot replace %s: %s", prev, strerror(errno));
            goto Exit;
        }
        if (link(cur, prev) != 0) {
            if (errno != ENOENT) {
                cph_error_set(err, "io", "", "cannot keep %s as %s: %s", cur, prev, strerror(errno));
                goto Exit;
            }
        } else if (chmod(prev, 0600) != 0) { /* a file not written by us (hand-made, older release) */
            cph_error_set(err, "io", "", "cannot chmod %s: %s", prev, strerror(errno));
            goto Exit;
        }
    }
    if (rename(tmp, cur) != 0) {
        cph_error_set(err, "io", "", "cannot rename %s: %s", tmp, strerror(errno));
        goto Exit;
    }
    if (fsync_dir(dir) != 0) {
        cph_error_set(err, "io", "", "cannot fsync %s: %s", dir, strerror(errno));
        goto Exit;
    }
    ret = 0;
Exit:
    if (fd != -1)
        close(fd);
    if (ret != 0)
        unlink(tmp);
    free(text);
    return ret;
}

static int read_identity(const json_t *doc, cph_persisted_t *out, cph_error_t *err)
{
    const json_t *epoch = json_object_get(doc, "epoch"), *version = json_object_get(doc, "version");
    const json_t *hash = json_object_get(doc, "hash"), *schema = json_object_get(doc, "schema");

    if (!json_is_string(epoch) || json_string_length(epoch) >= sizeof(out->epoch))
        return cph_error_set(err, "invalid", "/epoch", "epoch must be a string of at most 64 bytes");
    if (!json_is_integer(version) || json_integer_value(version) < 0)
        return cph_error_set(err, "invalid", "/version", "version must be a non-negative integer");
    if (!json_is_string(hash) || json_string_length(hash) >= sizeof(out->hash))
        return cph_error_set(err, "invalid", "/hash", "hash must be a string of at most 71 bytes");
    if (!json_is_integer(schema) || json_integer_value(schema) != CPH_SCHEMA_VERSION)
        return cph_error_set(err, "invalid", "/schema", "schema must be %d", CPH_SCHEMA_VERSION);
    if (!json_is_object(json_object_get(doc, "body")))
        return cph_error_set(err, "invalid", "/body", "body must be an object");
    strcpy(out->epoch, json_string_value(epoch));
    out->version = (uint64_t)json_integer_value(version);
    strcpy(out->hash, json_string_value(hash));
    return 0;
}

static json_t *load_json(const char *path, cph_error_t *err)
{
    struct stat st;
    json_error_t jerr;
    json_t *doc;
    FILE *fp = fopen(path, "re");

    if (fp == NULL) {
        cph_error_set(err, errno == ENOENT ? "not_found" : "io", "", "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_FILE_SIZE) {
        cph_error_set(err, "invalid", "", "%s is not a regular file of at most %u bytes", path, MAX_FILE_SIZE);
        fclose(fp);
        return NULL;
    }
    doc = json_loadf(fp, JSON_REJECT_DUPLICATES, &jerr);
    fclose(fp);
    if (doc == NULL)
        cph_error_set(err, "invalid_json", "", "%s: invalid JSON at line %d", path, jerr.line);
    else if (!json_is_object(doc)) {
        cph_error_set(err, "invalid", "", "%s: not a JSON object", path);
        json_decref(doc);
        doc = NULL;
    }
    return doc;
}

int cph_persist_load_file(const char *path, cph_persisted_t *out, cph_error_t *err)
{
    char computed[CPH_HASH_SIZE];
    json_t *doc;
    int ret = -1;

    memset(out, 0, sizeof(*out));
    if ((doc = load_json(path, err)) == NULL)
        return -1;
    if (read_identity(doc, out, err) != 0)
        goto Exit;
    json_t *body = json_object_get(doc, "body");
    if (cph_snapshot_hash(body, computed) != 0 || strcmp(computed, out->hash) != 0) {
        cph_error_set(err, "hash_mismatch", "/hash", "the hash recomputed from the body does not match");
        goto Exit;
    }
    if (cph_snapshot_validate(body, err) != 0)
        goto Exit;
    out->body = json_incref(body);
    ret = 0;
Exit:
    json_decref(doc);
    return ret;
}

void cph_persisted_dispose(cph_persisted_t *p)
{
    if (p->body != NULL)
        json_decref(p->body);
    p->body = NULL;
}
