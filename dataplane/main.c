/*
 * cephalo-dataplane: flags (docs/dataplane.md), then boot from the state dir, start the health checker, the workers,
 * the status listener and the control plane client, and run the control thread's loop until a SIGTERM/SIGINT drain
 * has finished.
 *
 * The main thread becomes the control thread: it owns the snapshot in force, the disk and the control plane
 * socket, so the workers never block on any of them.
 */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <openssl/sha.h>
#include "proto/log.h"
#include "dataplane/core/accesslog.h"
#include "dataplane/core/control.h"
#include "dataplane/core/cpclient.h"
#include "dataplane/core/health.h"
#include "dataplane/core/pdf.h"
#include "dataplane/core/redis.h"
#include "dataplane/core/server.h"
#include "dataplane/core/status.h"

#define MODULE "dp/main"

typedef struct st_cph_dp_options_t {
    const char *cp_socket;
    const char *listen;
    const char *listen_tls;
    const char *tls_cert;
    const char *tls_key;
    const char *workers;
    const char *state_dir;
    const char *status_listen;
    const char *dp_id;
    const char *drain_timeout_ms;
    const char *max_routes;
    const char *pdf_workers;
    const char *pdf_queue;
    const char *access_log;
    const char *access_log_sample;
} cph_dp_options_t;

enum {
    OPT_CP_SOCKET = 256,
    OPT_LISTEN,
    OPT_LISTEN_TLS,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_WORKERS,
    OPT_STATE_DIR,
    OPT_STATUS_LISTEN,
    OPT_DP_ID,
    OPT_DRAIN_TIMEOUT,
    OPT_MAX_ROUTES,
    OPT_PDF_WORKERS,
    OPT_PDF_QUEUE,
    OPT_ACCESS_LOG,
    OPT_ACCESS_LOG_SAMPLE,
    OPT_HELP
};

static const struct option long_options[] = {
    {"cp-socket", required_argument, NULL, OPT_CP_SOCKET},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"listen-tls", required_argument, NULL, OPT_LISTEN_TLS},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"state-dir", required_argument, NULL, OPT_STATE_DIR},
    {"status-listen", required_argument, NULL, OPT_STATUS_LISTEN},
    {"dp-id", required_argument, NULL, OPT_DP_ID},
    {"drain-timeout-ms", required_argument, NULL, OPT_DRAIN_TIMEOUT},
    {"max-routes", required_argument, NULL, OPT_MAX_ROUTES},
    {"pdf-workers", required_argument, NULL, OPT_PDF_WORKERS},
    {"pdf-queue", required_argument, NULL, OPT_PDF_QUEUE},
    {"access-log", required_argument, NULL, OPT_ACCESS_LOG},
    {"access-log-sample", required_argument, NULL, OPT_ACCESS_LOG_SAMPLE},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *fp)
{
    fputs("usage: cephalo-dataplane [options]\n"
          "  --cp-socket PATH          control plane socket (CEPHALO_CP_SOCKET, default var/cp/run/cp.sock)\n"
          "  --listen HOST:PORT        HTTP/1.1 and h2c (CEPHALO_LISTEN, default 0.0.0.0:8080)\n"
          "  --listen-tls HOST:PORT    TLS with ALPN h2, http/1.1 (CEPHALO_LISTEN_TLS, default off)\n"
          "  --tls-cert FILE           PEM certificate chain for --listen-tls (CEPHALO_TLS_CERT)\n"
          "  --tls-key FILE            PEM private key for --listen-tls (CEPHALO_TLS_KEY)\n"
          "  --workers N               worker threads (CEPHALO_WORKERS, default: number of cores)\n"
          "  --state-dir DIR           snapshot.json and snapshot.prev.json (CEPHALO_STATE_DIR, default var/dp)\n"
          "  --status-listen HOST:PORT /health, /ready, /metrics (CEPHALO_STATUS_LISTEN, default 127.0.0.1:9901)\n"
          "  --dp-id ID                identity towards the control plane (CEPHALO_DP_ID,\n"
          "                            default hostname + hash of the state dir)\n"
          "  --drain-timeout-ms N      SIGTERM: longest wait for in-flight requests (CEPHALO_DRAIN_TIMEOUT_MS,\n"
          "                            default 10000)\n"
          "  --max-routes N            refuse (nack) a snapshot with more routes (CEPHALO_MAX_ROUTES, default 0:\n"
          "                            only the schema's cap of 16384)\n"
          "  --pdf-workers N           concurrent PDF renders, all worker threads together (CEPHALO_PDF_WORKERS,\n"
          "                            1-64, default: number of cores)\n"
          "  --pdf-queue N             PDF renders waiting for a slot before 503 (CEPHALO_PDF_QUEUE, 0-1024,\n"
          "                            default 16)\n"
          "  --access-log stdout|PATH|off  one JSON line per request (CEPHALO_ACCESS_LOG, default off)\n"
          "  --access-log-sample R     log a request with probability R, 0 < R <= 1; 5xx and 429 always\n"
          "                            (CEPHALO_ACCESS_LOG_SAMPLE, default 1)\n"
          "  --help                    this text\n"
          "Flags win over the environment. CEPHALO_LOG_LEVEL=debug|info|warn|error sets the log level.\n",
          fp);
}

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? v : dflt;
}

static void set_log_level(void)
{
    const char *lvl = getenv("CEPHALO_LOG_LEVEL");

    if (lvl == NULL)
        return;
    if (strcasecmp(lvl, "debug") == 0)
        cph_log_set_level(CPH_LOG_DEBUG);
    else if (strcasecmp(lvl, "info") == 0)
        cph_log_set_level(CPH_LOG_INFO);
    else if (strcasecmp(lvl, "warn") == 0)
        cph_log_set_level(CPH_LOG_WARN);
    else if (strcasecmp(lvl, "error") == 0)
        cph_log_set_level(CPH_LOG_ERROR);
}

static int parse_options(int argc, char **argv, cph_dp_options_t *o)
{
    int ch;

    o->cp_socket = env_or("CEPHALO_CP_SOCKET", "var/cp/run/cp.sock");
    o->listen = env_or("CEPHALO_LISTEN", "0.0.0.0:8080");
    o->listen_tls = env_or("CEPHALO_LISTEN_TLS", NULL);
    o->tls_cert = env_or("CEPHALO_TLS_CERT", NULL);
    o->tls_key = env_or("CEPHALO_TLS_KEY", NULL);
    o->workers = env_or("CEPHALO_WORKERS", NULL);
    o->state_dir = env_or("CEPHALO_STATE_DIR", "var/dp");
    o->status_listen = env_or("CEPHALO_STATUS_LISTEN", "127.0.0.1:9901");
    o->dp_id = env_or("CEPHALO_DP_ID", NULL);
    o->drain_timeout_ms = env_or("CEPHALO_DRAIN_TIMEOUT_MS", "10000");
    o->max_routes = env_or("CEPHALO_MAX_ROUTES", "0");
    o->pdf_workers = env_or("CEPHALO_PDF_WORKERS", NULL);
    o->pdf_queue = env_or("CEPHALO_PDF_QUEUE", "16");
    o->access_log = env_or("CEPHALO_ACCESS_LOG", "off");
    o->access_log_sample = env_or("CEPHALO_ACCESS_LOG_SAMPLE", "1");
    while ((ch = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        switch (ch) {
        case OPT_CP_SOCKET:
            o->cp_socket = optarg;
            break;
        case OPT_LISTEN:
            o->listen = optarg;
            break;
        case OPT_LISTEN_TLS:
            o->listen_tls = optarg;
            break;
        case OPT_TLS_CERT:
            o->tls_cert = optarg;
            break;
        case OPT_TLS_KEY:
            o->tls_key = optarg;
            break;
        case OPT_WORKERS:
            o->workers = optarg;
            break;
        case OPT_STATE_DIR:
            o->state_dir = optarg;
            break;
        case OPT_STATUS_LISTEN:
            o->status_listen = optarg;
            break;
        case OPT_DP_ID:
            o->dp_id = optarg;
            break;
        case OPT_DRAIN_TIMEOUT:
            o->drain_timeout_ms = optarg;
            break;
        case OPT_MAX_ROUTES:
            o->max_routes = optarg;
            break;
        case OPT_PDF_WORKERS:
            o->pdf_workers = optarg;
            break;
        case OPT_PDF_QUEUE:
            o->pdf_queue = optarg;
            break;
        case OPT_ACCESS_LOG:
            o->access_log = optarg;
            break;
        case OPT_ACCESS_LOG_SAMPLE:
            o->access_log_sample = optarg;
            break;
        case 'h':
        case OPT_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "cephalo-dataplane: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

static int parse_uint(const char *s, const char *what, int min, unsigned long long max, unsigned long long *out)
{
    char *end;

    if (s == NULL || *s < '0' || *s > '9' || (*out = strtoull(s, &end, 10), *end != '\0') || *out > max ||
        *out < (unsigned long long)min) {
        fprintf(stderr, "cephalo-dataplane: %s must be an integer from %d to %llu\n", what, min, max);
        return -1;
    }
    return 0;
}

/* hostname + "-" + 12 hex of sha256(absolute state dir): stable across restarts, distinct per state dir. */
static void default_dp_id(const char *state_dir, char *out, size_t cap)
{
    char host[128] = "dp", abs[PATH_MAX];
    unsigned char md[SHA256_DIGEST_LENGTH];

    gethostname(host, sizeof(host) - 1);
    if (realpath(state_dir, abs) == NULL)
        snprintf(abs, sizeof(abs), "%s", state_dir);
    SHA256((const unsigned char *)abs, strlen(abs), md);
    snprintf(out, cap, "%.100s-%02x%02x%02x%02x%02x%02x", host, md[0], md[1], md[2], md[3], md[4], md[5]);
}

/* --pdf-workers (default: the online CPUs, at most 64) and --pdf-queue configure the render pool (core/pdf.h). */
static int resolve_pdf(const cph_dp_options_t *o, long ncpu)
{
    unsigned long long pdf_workers, pdf_queue;

    if (o->pdf_workers == NULL)
        pdf_workers = ncpu < 1 ? 1 : ncpu > CPH_PDF_WORKERS_MAX ? CPH_PDF_WORKERS_MAX : (unsigned long long)ncpu;
    else if (parse_uint(o->pdf_workers, "--pdf-workers", 1, CPH_PDF_WORKERS_MAX, &pdf_workers) != 0)
        return -1;
    if (parse_uint(o->pdf_queue, "--pdf-queue", 0, CPH_PDF_QUEUE_MAX, &pdf_queue) != 0)
        return -1;
    cph_pdf_pool_configure((unsigned)pdf_workers, (unsigned)pdf_queue);
    return 0;
}

/* Numbers and combinations the flag parser cannot check. Returns 0, or -1 after a message on stderr. */
static int resolve_options(const cph_dp_options_t *o, unsigned long long *workers, unsigned long long *drain_ms,
                           unsigned long long *max_routes)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    if (o->workers == NULL)
        *workers = ncpu > 0 ? (unsigned long long)ncpu : 1;
    else if (parse_uint(o->workers, "--workers", 1, 256, workers) != 0)
        return -1;
    if (parse_uint(o->drain_timeout_ms, "--drain-timeout-ms", 0, 86400000, drain_ms) != 0)
        return -1;
    if (parse_uint(o->max_routes, "--max-routes", 0, 16384, max_routes) != 0)
        return -1;
    if (resolve_pdf(o, ncpu) != 0)
        return -1;
    if (o->listen_tls != NULL && (o->tls_cert == NULL || o->tls_key == NULL)) {
        fprintf(stderr, "cephalo-dataplane: --listen-tls needs --tls-cert and --tls-key\n");
        return -1;
    }
    return 0;
}

static int open_access_log(const cph_dp_options_t *o)
{
    char *end;
    cph_error_t err;
    double sample = strtod(o->access_log_sample, &end);

    if (end == o->access_log_sample || *end != '\0' || !(sample > 0 && sample <= 1)) {
        fprintf(stderr, "cephalo-dataplane: --access-log-sample must be a number in (0, 1]\n");
        return -1;
    }
    if (cph_accesslog_open(o->access_log, sample, &err) != 0) {
        cph_log_error(MODULE, "access log: %s", err.msg);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    cph_dp_options_t o;
    cph_server_config_t scfg = {0};
    unsigned long long workers, drain_ms, max_routes;
    static cph_control_t control;
    static cph_server_t server;
    cph_error_t err;
    char dp_id[160];

    signal(SIGPIPE, SIG_IGN);
    set_log_level();
    if (parse_options(argc, argv, &o) != 0 || resolve_options(&o, &workers, &drain_ms, &max_routes) != 0)
        return 2;
    if (cph_control_init(&control, o.state_dir, &err) != 0) {
        cph_log_error(MODULE, "state dir: %s", err.msg);
        return 1;
    }
    control.max_routes = (size_t)max_routes;
    if (o.dp_id == NULL) {
        default_dp_id(o.state_dir, dp_id, sizeof(dp_id));
        o.dp_id = dp_id;
    }
    /* blocked before any thread starts, so only the signalfd sees SIGTERM/SIGINT */
    cph_control_watch_signals(&control, drain_ms);
    cph_redis_start(); /* before the boot, which configures it from the snapshot on disk */
    cph_snapshot_t *initial = cph_control_boot(&control);

    scfg.listen = o.listen;
    scfg.listen_tls = o.listen_tls;
    scfg.tls_cert = o.tls_cert;
    scfg.tls_key = o.tls_key;
    scfg.num_workers = (unsigned)workers;
    if (cph_server_init(&server, &scfg, &control.notify, &err) != 0) {
        cph_log_error(MODULE, "%s", err.msg);
        return 1;
    }
    cph_status_t *status = cph_status_start(&control, o.status_listen, &err);
    if (status == NULL) {
        cph_log_error(MODULE, "status listener: %s", err.msg);
        return 1;
    }
    if (open_access_log(&o) != 0)
        return 2;
    cph_health_start(); /* checks the booted snapshot's targets at once (cph_control_boot configured it) */
    cph_server_start(&server, initial);
    cph_control_attach(&control, &server);
    cph_cpclient_t *cp = cph_cpclient_create(&control, o.cp_socket, o.dp_id);
    cph_log_info(MODULE, "serving on %s%s%s with %u workers, status on %s, dp_id %s", o.listen,
                 o.listen_tls != NULL ? " and TLS " : "", o.listen_tls != NULL ? o.listen_tls : "", server.num_workers,
                 o.status_listen, o.dp_id);

    if (cph_control_run(&control) != 0) {
        /* drain timeout: the workers still hold requests; nothing more to wait for */
        cph_log_info(MODULE, "exit after drain timeout");
        _exit(0);
    }
    cph_cpclient_destroy(cp);
    cph_health_stop();
    cph_redis_stop(); /* after the workers are gone: nothing is submitted any more */
    cph_status_stop(status);
    cph_accesslog_close(); /* the workers are stopped: every recorded line is written */
    cph_server_dispose(&server);
    cph_control_dispose(&control);
    cph_log_info(MODULE, "exit: drained");
    return 0;
}
