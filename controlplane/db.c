/*
 * db: the control plane's SQLite connection, its migrations and the single write path.
 *
 * Threading: libmicrohttpd runs handlers on several threads, and the data-plane server only calls back into us via
 * the commit hook. We keep ONE connection guarded by ONE mutex that every reader and writer holds for the length of
 * its statements. Why not a connection per thread: SQLite allows one writer at a time anyway, every admin write must
 * also publish its version to the data planes strictly in version order (the publish happens under the same lock,
 * right after COMMIT), and the admin API's reads are a handful of indexed rows; a mutex gives that ordering for free,
 * with no cross-connection visibility questions. WAL still lets an outside reader (the sqlite3 shell, a backup) read
 * while we write - and an outside writer (a backup, a migration tool, a second control plane by mistake) can make a
 * statement of ours meet SQLITE_BUSY. Our busy handler then waits like sqlite3_busy_timeout(5000) would (the same
 * backoff) and counts every retry, so GET /metrics shows contention (cephalo_cp_sqlite_busy_retries_total).
 *
 * Migrations: migrations/NNNN_name.sql, numbered from 0001 without gaps, each applied once inside its own
 * transaction and recorded in schema_migrations with the sha256 of the file. A changed or missing applied file, or a
 * gap, refuses to start: the schema would no longer be what the code expects.
 *
 * Writes: cph_db_write() runs the caller's change, bumps meta.generation, rebuilds the snapshot body from the rows,
 * validates it with the same proto/ validator the data plane runs, and stores the snapshot (with the configuration
 * rows it was built from, history.c, for a rollback) and an audit row - all inside one BEGIN IMMEDIATE transaction.
 * Anything failing rolls it all back: nothing is half-written. The time from building the body to its serialised
 * text, and that text's size, are kept per committed version for GET /metrics (relaxed atomics: the writer holds the
 * lock, the scrape reads without it).
 *
 * The file holds secrets (the Vault secrets the services' upstream credentials are built from, and the snapshot
 * bodies that carry them resolved), so it is created 0600, and an existing file readable by others is narrowed to
 * 0600 with a warning. SQLite gives its -wal and -shm files the database file's mode; existing ones are narrowed too.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include "controlplane/audit.h"
#include "controlplane/db.h"
#include "controlplane/history.h"
#include "controlplane/snapbuild.h"
#include "controlplane/store_revocation.h"
#include "proto/log.h"

#define MODULE "cp/db"
#define MIGRATIONS_MAX 1000
#define MIGRATION_FILE_MAX (4 * 1024 * 1024)
#define BUSY_BUDGET_MS 5000

struct st_cph_db_t {
    sqlite3 *sql;
    pthread_mutex_t lock;
    cph_db_on_commit_cb on_commit;
    void *on_commit_ud;
    /* counters for GET /metrics: written under lock (or by SQLite's busy callback), read by a scrape without it */
    atomic_uint_fast64_t busy_retries, busy_failures;
    atomic_uint_fast64_t build_buckets[CPH_DB_BUILD_BUCKETS + 1];
    atomic_uint_fast64_t build_ns_sum, build_ns_last, snapshot_bytes;
};

typedef struct st_migration_t {
    int version;
    char name[256];
} migration_t;

static int internal(cph_error_t *err, const char *what, sqlite3 *sql)
{
    cph_log_error(MODULE, "%s: %s", what, sql != NULL ? sqlite3_errmsg(sql) : "?");
    return cph_error_set(err, "internal", "", "internal database error");
}

int cph_db_exec(cph_db_t *db, const char *sql, cph_error_t *err)
{
    if (sqlite3_exec(db->sql, sql, NULL, NULL, NULL) != SQLITE_OK)
        return internal(err, "exec", db->sql);
    return 0;
}

void cph_db_now(char *buf, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    char base[24];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%03dZ", base, (int)(ts.tv_nsec / 1000000) % 1000);
}

void cph_db_lock(cph_db_t *db)
{
    pthread_mutex_lock(&db->lock);
}

void cph_db_unlock(cph_db_t *db)
{
    pthread_mutex_unlock(&db->lock);
}

sqlite3 *cph_db_handle(cph_db_t *db)
{
    return db->sql;
}

void cph_db_set_on_commit(cph_db_t *db, cph_db_on_commit_cb cb, void *ud)
{
    db->on_commit = cb;
    db->on_commit_ud = ud;
}

/* ---------------------------------------------------------------- busy handler and stats */

/*
 * SQLite's own sqlite3_busy_timeout() schedule (sqliteDefaultBusyCallback): the n-th wait in ms, and the time waited
 * before it. Past the table every wait is the last delay. Gives up once the next wait would pass BUSY_BUDGET_MS.
 */
static int on_busy(void *ud, int count)
{
    static const int DELAYS[] = {1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100};
    static const int TOTALS[] = {0, 1, 3, 8, 18, 33, 53, 78, 103, 128, 178, 228};
    const int n = (int)(sizeof(DELAYS) / sizeof(DELAYS[0]));
    cph_db_t *db = ud;
    int delay, prior;

    if (count < n) {
        delay = DELAYS[count];
        prior = TOTALS[count];
    } else {
        delay = DELAYS[n - 1];
        prior = TOTALS[n - 1] + delay * (count - (n - 1));
    }
    if (prior + delay > BUSY_BUDGET_MS) {
        delay = BUSY_BUDGET_MS - prior;
        if (delay <= 0) {
            atomic_fetch_add_explicit(&db->busy_failures, 1, memory_order_relaxed);
            return 0;
        }
    }
    atomic_fetch_add_explicit(&db->busy_retries, 1, memory_order_relaxed);
    sqlite3_sleep(delay);
    return 1;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One committed version: its build time goes into the histogram, its size is the last size. */
static void record_build(cph_db_t *db, uint64_t build_ns, uint64_t bytes)
{
    static const double BOUNDS[CPH_DB_BUILD_BUCKETS] = CPH_DB_BUILD_BOUNDS_S;
    size_t i = 0;

    while (i != CPH_DB_BUILD_BUCKETS && (double)build_ns / 1e9 > BOUNDS[i])
        ++i;
    atomic_fetch_add_explicit(&db->build_buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&db->build_ns_sum, build_ns, memory_order_relaxed);
    atomic_store_explicit(&db->build_ns_last, build_ns, memory_order_relaxed);
    atomic_store_explicit(&db->snapshot_bytes, bytes, memory_order_relaxed);
}

void cph_db_stats(cph_db_t *db, cph_db_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->busy_retries = atomic_load_explicit(&db->busy_retries, memory_order_relaxed);
    out->busy_failures = atomic_load_explicit(&db->busy_failures, memory_order_relaxed);
    for (size_t i = 0; i != CPH_DB_BUILD_BUCKETS + 1; ++i)
        out->build_buckets[i] = atomic_load_explicit(&db->build_buckets[i], memory_order_relaxed);
    out->build_ns_sum = atomic_load_explicit(&db->build_ns_sum, memory_order_relaxed);
    out->build_ns_last = atomic_load_explicit(&db->build_ns_last, memory_order_relaxed);
    out->snapshot_bytes = atomic_load_explicit(&db->snapshot_bytes, memory_order_relaxed);
}

/* ---------------------------------------------------------------- migrations */

static int parse_migration_name(const char *name, int *version)
{
    size_t len = strlen(name);

    if (len < 10 || len >= 256 || strcmp(name + len - 4, ".sql") != 0 || name[4] != '_')
        return -1;
    for (int i = 0; i < 4; ++i)
        if (name[i] < '0' || name[i] > '9')
            return -1;
    *version = atoi(name);
    return *version > 0 ? 0 : -1;
}

static int cmp_migration(const void *a, const void *b)
{
    return ((const migration_t *)a)->version - ((const migration_t *)b)->version;
}

/* Lists NNNN_*.sql in dir, sorted; refuses duplicates and gaps (they must be 1..n). */
static int list_migrations(const char *dir, migration_t **out, size_t *count, cph_error_t *err)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    migration_t *list = NULL;
    size_t n = 0;

    if (d == NULL)
        return cph_error_set(err, "migration", "", "cannot open the migrations directory");
    while ((e = readdir(d)) != NULL) {
        int v;
        if (parse_migration_name(e->d_name, &v) != 0)
            continue;
        if (n == MIGRATIONS_MAX)
            break;
        if ((list = realloc(list, (n + 1) * sizeof(*list))) == NULL)
            cph_fatal(MODULE, "out of memory");
        list[n].version = v;
        snprintf(list[n].name, sizeof(list[n].name), "%s", e->d_name);
        ++n;
    }
    closedir(d);
    if (n > 0)
        qsort(list, n, sizeof(*list), cmp_migration);
    for (size_t i = 0; i < n; ++i) {
        if (list[i].version != (int)i + 1) {
            cph_error_set(err, "migration", "", "migration numbering has a gap or a duplicate at %s", list[i].name);
            free(list);
            return -1;
        }
    }
    *out = list;
    *count = n;
    return 0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (f == NULL)
        return NULL;
    if ((buf = malloc(MIGRATION_FILE_MAX + 1)) == NULL)
        cph_fatal(MODULE, "out of memory");
    n = fread(buf, 1, MIGRATION_FILE_MAX + 1, f);
    fclose(f);
    if (n > MIGRATION_FILE_MAX) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;

    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    for (int i = 0; i < 32; ++i)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Returns 1 and fills checksum if version is recorded, 0 if not, -1 on error. */
static int applied_checksum(cph_db_t *db, int version, char checksum[65], cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int ret = -1, rc;

    if (sqlite3_prepare_v2(db->sql, "SELECT checksum FROM schema_migrations WHERE version = ?", -1, &st, NULL) != SQLITE_OK)
        return internal(err, "prepare", db->sql);
    sqlite3_bind_int(st, 1, version);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        snprintf(checksum, 65, "%s", (const char *)sqlite3_column_text(st, 0));
        ret = 1;
    } else if (rc == SQLITE_DONE) {
        ret = 0;
    } else {
        internal(err, "select schema_migrations", db->sql);
    }
    sqlite3_finalize(st);
    return ret;
}

static int record_migration(cph_db_t *db, const migration_t *m, const char *checksum, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    char now[32];
    int ok;

    cph_db_now(now, sizeof(now));
    if (sqlite3_prepare_v2(db->sql, "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?,?,?,?)", -1, &st,
                           NULL) != SQLITE_OK)
        return internal(err, "prepare", db->sql);
    sqlite3_bind_int(st, 1, m->version);
    sqlite3_bind_text(st, 2, m->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, checksum, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, now, -1, SQLITE_TRANSIENT);
    ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok ? 0 : internal(err, "insert schema_migrations", db->sql);
}

static int apply_one(cph_db_t *db, const char *dir, const migration_t *m, cph_error_t *err)
{
    char path[4096], checksum[65], recorded[65];
    char *text = NULL;
    size_t len = 0;
    int ret = -1, have;

    snprintf(path, sizeof(path), "%s/%s", dir, m->name);
    if ((text = read_file(path, &len)) == NULL)
        return cph_error_set(err, "migration", "", "cannot read migration %s", m->name);
    sha256_hex(text, len, checksum);
    if ((have = applied_checksum(db, m->version, recorded, err)) < 0)
        goto Exit;
    if (have) {
        if (strcmp(recorded, checksum) != 0) {
            cph_error_set(err, "migration", "", "migration %s changed after it was applied", m->name);
            goto Exit;
        }
        ret = 0;
        goto Exit;
    }
    if (cph_db_exec(db, "BEGIN IMMEDIATE", err) != 0)
        goto Exit;
    if (sqlite3_exec(db->sql, text, NULL, NULL, NULL) != SQLITE_OK) {
        cph_log_error(MODULE, "migration %s failed: %s", m->name, sqlite3_errmsg(db->sql));
        cph_error_set(err, "migration", "", "migration %s failed", m->name);
        sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
        goto Exit;
    }
    if (record_migration(db, m, checksum, err) != 0 || cph_db_exec(db, "COMMIT", err) != 0) {
        sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
        goto Exit;
    }
    cph_log_info(MODULE, "applied migration %s", m->name);
    ret = 0;
Exit:
    free(text);
    return ret;
}

/* An applied version beyond the files we have means the database is newer than this code. */
static int check_no_unknown_applied(cph_db_t *db, size_t count, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    int64_t max = 0;

    if (sqlite3_prepare_v2(db->sql, "SELECT coalesce(max(version), 0) FROM schema_migrations", -1, &st, NULL) != SQLITE_OK)
        return internal(err, "prepare", db->sql);
    if (sqlite3_step(st) == SQLITE_ROW)
        max = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (max > (int64_t)count)
        return cph_error_set(err, "migration", "", "the database has migration %" PRId64 " but no such file exists", max);
    return 0;
}

static int migrate(cph_db_t *db, const char *dir, cph_error_t *err)
{
    migration_t *list = NULL;
    size_t count = 0;
    int ret = -1;

    if (cph_db_exec(db,
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                    "checksum TEXT NOT NULL, applied_at TEXT NOT NULL)",
                    err) != 0)
        return -1;
    if (list_migrations(dir, &list, &count, err) != 0)
        return -1;
    if (count == 0) {
        cph_error_set(err, "migration", "", "no migrations found");
        goto Exit;
    }
    if (check_no_unknown_applied(db, count, err) != 0)
        goto Exit;
    for (size_t i = 0; i < count; ++i)
        if (apply_one(db, dir, &list[i], err) != 0)
            goto Exit;
    ret = 0;
Exit:
    free(list);
    return ret;
}

/* Narrows file (when it exists) to 0600 if group or others may access it; warns when it had to. */
static void narrow_mode(const char *file)
{
    struct stat sb;

    if (stat(file, &sb) != 0 || !S_ISREG(sb.st_mode) || (sb.st_mode & 077) == 0)
        return;
    if (chmod(file, S_IRUSR | S_IWUSR) != 0)
        cph_log_warn(MODULE, "%s is readable by others and cannot be made 0600: %s", file, strerror(errno));
    else
        cph_log_warn(MODULE, "%s was readable by others: made 0600", file);
}

/* Creates the database file 0600 before SQLite opens it (SQLite would use 0644 and the umask), or narrows its mode. */
static void make_private(const char *path)
{
    char side[4096];
    int fd;

    if (path[0] == '\0' || path[0] == ':' || strncmp(path, "file:", 5) == 0)
        return; /* in memory, temporary or a URI: nothing on disk of ours to create */
    if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, S_IRUSR | S_IWUSR)) >= 0)
        close(fd);
    narrow_mode(path);
    snprintf(side, sizeof(side), "%s-wal", path);
    narrow_mode(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    narrow_mode(side);
}

cph_db_t *cph_db_open(const char *path, const char *migrations_dir, cph_error_t *err)
{
    cph_db_t *db = calloc(1, sizeof(*db));

    if (db == NULL)
        cph_fatal(MODULE, "out of memory");
    pthread_mutex_init(&db->lock, NULL);
    make_private(path);
    if (sqlite3_open_v2(path, &db->sql, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
        internal(err, "open", db->sql);
        cph_error_set(err, "internal", "", "cannot open the database");
        goto Error;
    }
    sqlite3_busy_handler(db->sql, on_busy, db);
    if (cph_db_exec(db, "PRAGMA journal_mode = WAL", err) != 0 || cph_db_exec(db, "PRAGMA foreign_keys = ON", err) != 0 ||
        cph_db_exec(db, "PRAGMA synchronous = NORMAL", err) != 0)
        goto Error;
    if (migrate(db, migrations_dir, err) != 0)
        goto Error;
    return db;
Error:
    cph_db_close(db);
    return NULL;
}

void cph_db_close(cph_db_t *db)
{
    if (db == NULL)
        return;
    if (db->sql != NULL)
        sqlite3_close(db->sql);
    pthread_mutex_destroy(&db->lock);
    free(db);
}

/* ---------------------------------------------------------------- meta and snapshots */

int cph_db_meta(cph_db_t *db, char epoch[33], uint64_t *generation)
{
    sqlite3_stmt *st = NULL;
    int ret = -1;

    if (sqlite3_prepare_v2(db->sql, "SELECT epoch, generation FROM meta WHERE id = 1", -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(epoch, 33, "%s", (const char *)sqlite3_column_text(st, 0));
        *generation = (uint64_t)sqlite3_column_int64(st, 1);
        ret = 0;
    }
    sqlite3_finalize(st);
    return ret;
}

static json_t *load_snapshot(cph_db_t *db, uint64_t version, int with_body)
{
    sqlite3_stmt *st = NULL;
    json_t *out = NULL, *body;
    char epoch[33];
    uint64_t gen;

    if (cph_db_meta(db, epoch, &gen) != 0)
        return NULL;
    if (version == 0)
        version = gen;
    if (sqlite3_prepare_v2(db->sql, "SELECT hash, body FROM snapshots WHERE version = ?", -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)version);
    if (sqlite3_step(st) == SQLITE_ROW) {
        out = json_pack("{s:s, s:I, s:s, s:i}", "epoch", epoch, "version", (json_int_t)version, "hash",
                        (const char *)sqlite3_column_text(st, 0), "schema", CPH_SCHEMA_VERSION);
        if (with_body) {
            body = json_loads((const char *)sqlite3_column_text(st, 1), JSON_REJECT_DUPLICATES, NULL);
            if (body == NULL) {
                cph_log_error(MODULE, "snapshot %" PRIu64 " has an unreadable body", version);
                json_decref(out);
                out = NULL;
            } else {
                json_object_set_new(out, "body", body);
            }
        }
    }
    sqlite3_finalize(st);
    return out;
}

json_t *cph_db_current_snapshot(cph_db_t *db, int with_body)
{
    json_t *out;

    cph_db_lock(db);
    out = load_snapshot(db, 0, with_body);
    cph_db_unlock(db);
    return out;
}

static int bootstrap_cb(cph_db_t *db, void *ctx, cph_db_change_t *change, cph_error_t *err)
{
    (void)db, (void)err;
    change->action = ctx; /* "bootstrap" or "rebuild" */
    change->entity_type = "snapshot";
    return 0;
}

/* Whether the rows, built afresh, still give the current snapshot's hash. Returns 1, 0, or -1 with err. */
static int current_is_fresh(cph_db_t *db, const json_t *cur, cph_error_t *err)
{
    char hash[CPH_HASH_SIZE];
    json_t *body;
    int fresh;

    cph_db_lock(db);
    body = cph_snapbuild_body(db, err);
    cph_db_unlock(db);
    if (body == NULL)
        return -1;
    fresh = cph_snapshot_hash(body, hash) == 0 && strcmp(hash, json_string_value(json_object_get(cur, "hash"))) == 0;
    json_decref(body);
    return fresh;
}

int cph_db_ensure_snapshot(cph_db_t *db, cph_error_t *err)
{
    json_t *cur = cph_db_current_snapshot(db, 0);
    uint64_t version;
    int fresh;

    if (cur == NULL)
        return cph_db_write(db, "system", bootstrap_cb, "bootstrap", &version, err);
    /* A new release can change what the rows compile to (a new snapshot member), and time can retire a signing key:
     * the data planes must not wait for the next admin write to see either. */
    fresh = current_is_fresh(db, cur, err);
    json_decref(cur);
    if (fresh != 0)
        return fresh < 0 ? -1 : 0;
    return cph_db_write(db, "system", bootstrap_cb, "rebuild", &version, err);
}

/* ---------------------------------------------------------------- the write path */

static int bump_generation(cph_db_t *db, uint64_t *version, cph_error_t *err)
{
    char epoch[33];

    if (cph_db_exec(db, "UPDATE meta SET generation = generation + 1 WHERE id = 1", err) != 0)
        return -1;
    if (cph_db_meta(db, epoch, version) != 0)
        return internal(err, "read meta", db->sql);
    return 0;
}

/* "/services/3/targets/0/url" -> "/targets/0/url" when services[3] is the object the request changed. */
static void translate_path(const json_t *body, const cph_db_change_t *change, cph_error_t *err)
{
    char prefix[96];
    const char *section;
    json_t *arr, *item;
    size_t i, plen;

    if (change->entity_name == NULL || change->entity_type == NULL)
        return;
    section = strcmp(change->entity_type, "service") == 0 ? "services"
              : strcmp(change->entity_type, "route") == 0 ? "routes"
                                                          : NULL;
    if (section == NULL || (arr = json_object_get(body, section)) == NULL)
        return;
    json_array_foreach(arr, i, item)
    {
        if (json_is_string(json_object_get(item, "name")) &&
            strcmp(json_string_value(json_object_get(item, "name")), change->entity_name) == 0)
            break;
    }
    if (i == json_array_size(arr))
        return;
    snprintf(prefix, sizeof(prefix), "/%s/%zu", section, i);
    plen = strlen(prefix);
    if (strncmp(err->path, prefix, plen) == 0 && (err->path[plen] == '/' || err->path[plen] == '\0'))
        memmove(err->path, err->path + plen, strlen(err->path + plen) + 1);
}

/*
 * Inserts the snapshots row with the configuration rows it was built from (history.c: what a rollback restores); *bytes
 * is the size of the stored body text, and *done_ns when it was serialised.
 */
static int store_snapshot(cph_db_t *db, uint64_t version, const char *hash, const json_t *body, const char *author, uint64_t *bytes,
                          uint64_t *done_ns, cph_error_t *err)
{
    sqlite3_stmt *st = NULL;
    char *text = cph_json_canonical(body), *state;
    char now[32];
    int ok;

    if (text == NULL)
        return cph_error_set(err, "internal", "", "cannot serialise the snapshot");
    *done_ns = mono_ns();
    *bytes = strlen(text);
    if ((state = cph_history_export(db, err)) == NULL) {
        free(text);
        return -1;
    }
    cph_db_now(now, sizeof(now));
    if (sqlite3_prepare_v2(db->sql, "INSERT INTO snapshots (version, hash, body, author, created_at, state) VALUES (?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK) {
        free(text);
        free(state);
        return internal(err, "prepare", db->sql);
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)version);
    sqlite3_bind_text(st, 2, hash, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, text, -1, free);
    sqlite3_bind_text(st, 4, author, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, now, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 6, state, -1, free);
    ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok ? 0 : internal(err, "insert snapshot", db->sql);
}

/*
 * Everything after the caller's change, inside the transaction. On success *bodyp holds the new body, and build[0] the
 * ns from building it to its serialised text, build[1] that text's size.
 */
static int finish_write(cph_db_t *db, const char *actor, cph_db_change_t *change, uint64_t *version, char hash[CPH_HASH_SIZE],
                        json_t **bodyp, uint64_t build[2], cph_error_t *err)
{
    uint64_t start_ns, done_ns = 0;
    json_t *body;

    if (bump_generation(db, version, err) != 0)
        return -1;
    /* entries no token can match any more leave with this version (snapbuild itself reads rows only, never the clock) */
    if (cph_store_revocation_prune(db, (int64_t)time(NULL), err) != 0)
        return -1;
    start_ns = mono_ns();
    if ((body = cph_snapbuild_body(db, err)) == NULL)
        return -1;
    if (cph_snapshot_validate(body, err) != 0) {
        translate_path(body, change, err);
        json_decref(body);
        return -1;
    }
    if (cph_snapshot_hash(body, hash) != 0 || store_snapshot(db, *version, hash, body, actor, &build[1], &done_ns, err) != 0 ||
        cph_audit_record(db, actor, change, *version, err) != 0) {
        if (err->code[0] == '\0')
            cph_error_set(err, "internal", "", "cannot hash the snapshot");
        json_decref(body);
        return -1;
    }
    *bodyp = body;
    build[0] = done_ns - start_ns;
    return 0;
}

int cph_db_write(cph_db_t *db, const char *actor, cph_db_write_cb cb, void *ctx, uint64_t *version, cph_error_t *err)
{
    cph_db_change_t change = {NULL};
    char hash[CPH_HASH_SIZE];
    uint64_t build[2] = {0, 0};
    json_t *body = NULL;
    int ret = -1;

    memset(err, 0, sizeof(*err));
    cph_db_lock(db);
    if (cph_db_exec(db, "BEGIN IMMEDIATE", err) != 0)
        goto Exit;
    if (cb(db, ctx, &change, err) != 0 || finish_write(db, actor, &change, version, hash, &body, build, err) != 0 ||
        cph_db_exec(db, "COMMIT", err) != 0) {
        if (sqlite3_get_autocommit(db->sql) == 0)
            sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
        goto Exit;
    }
    record_build(db, build[0], build[1]);
    if (db->on_commit != NULL)
        db->on_commit(db->on_commit_ud, *version, hash, body);
    ret = 0;
Exit:
    cph_db_unlock(db);
    json_decref(body);
    json_decref(change.before);
    json_decref(change.after);
    return ret;
}
